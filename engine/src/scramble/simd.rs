//! The SSSE3 path of the shuffle for a block of mixed levels (text, rules): the same bytes as the scalar
//! path in `blocks.rs`, 16 pixels per instruction. Such blocks are ~40 % of a certificate's front and
//! were most of the scramble's time (a table look-up and a scattered store per pixel); here a block is 16
//! row loads, quantisation by three unsigned compares, the colour by one byte shuffle per row, the
//! symmetry of the square by a byte transpose and reversals, and the 4-bit packing by one multiply-add per
//! row. `blocks::tests` checks it against the scalar path for every orientation and shift.

use std::arch::x86_64::*;

/// Writes the destination rows of one front block lying wholly inside the front.
/// `front`: the front starting at the block's top-left pixel, `stride` bytes per row. `colours[l]`: the
/// palette index level `l` shows in this block (shift and band set applied). `orientation`: bit 1 flip x, 2
/// flip y, 4 transpose (of destination coordinates, in that order). `out`: the destination's first byte,
/// `out_stride` bytes per row, 8 bytes written per row.
///
/// # Safety
/// The CPU must support SSSE3.
#[target_feature(enable = "ssse3")]
pub(crate) unsafe fn mixed_block(
    front: &[u8],
    stride: usize,
    colours: [u8; 4],
    orientation: usize,
    out: &mut [u8],
    out_stride: usize,
) {
    // The unaligned loads and stores below stay inside these bounds.
    assert!(front.len() >= 15 * stride + 16 && out.len() >= 15 * out_stride + 8);
    let mut table = [0u8; 16];
    table[..4].copy_from_slice(&colours);
    let table = _mm_loadu_si128(table.as_ptr() as *const __m128i);
    let (t1, t2, t3) = (_mm_set1_epi8(43), _mm_set1_epi8(128u8 as i8), _mm_set1_epi8(213u8 as i8));
    let zero = _mm_setzero_si128();
    let mut r = [zero; 16];
    for (y, row) in r.iter_mut().enumerate() {
        let v = _mm_loadu_si128(front.as_ptr().add(y * stride) as *const __m128i);
        // level = (v >= 43) + (v >= 128) + (v >= 213), i.e. (v + 42) / 85; each compare is -1 where true.
        let ge = |t| _mm_cmpeq_epi8(_mm_max_epu8(v, t), v);
        let level = _mm_sub_epi8(zero, _mm_add_epi8(_mm_add_epi8(ge(t1), ge(t2)), ge(t3)));
        *row = _mm_shuffle_epi8(table, level);
    }
    if orientation & 4 != 0 {
        transpose(&mut r);
    }
    let reverse = _mm_setr_epi8(15, 14, 13, 12, 11, 10, 9, 8, 7, 6, 5, 4, 3, 2, 1, 0);
    let pack = _mm_set1_epi16(0x0110); // bytes 16, 1: even pixel * 16 + odd pixel
    for y in (0..16).step_by(2) {
        let pick = |y: usize| {
            let src = if orientation & 2 != 0 { r[15 - y] } else { r[y] };
            let src = if orientation & 1 != 0 { _mm_shuffle_epi8(src, reverse) } else { src };
            _mm_maddubs_epi16(src, pack)
        };
        let both = _mm_packus_epi16(pick(y), pick(y + 1));
        _mm_storel_epi64(out.as_mut_ptr().add(y * out_stride) as *mut __m128i, both);
        _mm_storel_epi64(out.as_mut_ptr().add((y + 1) * out_stride) as *mut __m128i, _mm_unpackhi_epi64(both, both));
    }
}

/// In-place transpose of a 16×16 byte matrix held as 16 rows.
#[target_feature(enable = "ssse3")]
unsafe fn transpose(r: &mut [__m128i; 16]) {
    // Four rounds of interleaving: after round k, each register holds 2^k-element groups from 2^k rows.
    let mut a = *r;
    let mut b = [_mm_setzero_si128(); 16];
    // Rounds alternate between the two arrays: a -> b, b -> a, twice.
    for _ in 0..2 {
        for i in 0..8 {
            b[2 * i] = _mm_unpacklo_epi8(a[i], a[i + 8]);
            b[2 * i + 1] = _mm_unpackhi_epi8(a[i], a[i + 8]);
        }
        for i in 0..8 {
            a[2 * i] = _mm_unpacklo_epi8(b[i], b[i + 8]);
            a[2 * i + 1] = _mm_unpackhi_epi8(b[i], b[i + 8]);
        }
    }
    *r = a;
}
