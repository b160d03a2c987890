//! The decision: does the restored front show the expected front, everywhere?
//!
//! A page is mostly blank paper, so any score averaged over the page (global SSIM, mean pixel
//! error) is dominated by paper that matches by default. The information is in the ink. We compare
//! *ink* (levels 0 and 1, i.e. darker than mid-gray) block by block on the 16-px grid the scramble
//! shuffles, with one pixel of tolerance for the blur and resampling of a scan:
//!
//! - a pixel *disagrees* when it is ink on one side with no ink within one pixel on the other,
//!   when it shows any tone where the expected front is blank paper within one pixel (a garbled
//!   block often decodes as a uniform light gray, which is not ink), or when the scan could not be
//!   read there ([`UNREADABLE_GRAY`]);
//! - a block's *mismatch* is the fraction of its pixels that disagree;
//! - the **score** is `1 - mean mismatch of the WORST_BLOCKS worst blocks`.
//!
//! Why the worst blocks: tampering with the back (a pasted-over region) garbles the front blocks it
//! covers, scattered over the page by the shuffle, while leaving the rest perfect; a mean would
//! dilute it to nothing. A wrong key garbles every block (about three pixels in four read as ink
//! of some level). A genuine scan disagrees only at stroke edges. Blocks whose mismatch exceeds
//! [`TAMPERED_BLOCK_MISMATCH`] are reported as tampered, in front block coordinates.

use crate::scramble::{GrayImage, BLOCK, UNREADABLE_GRAY};

/// Number of worst blocks the score averages: the smallest tampering the verdict is sure to
/// catch garbles this many blocks (a pasted region of about 2×2 blocks, 8 mm square on paper).
pub const WORST_BLOCKS: usize = 4;
/// Verdict threshold on the score (between the measured genuine and non-genuine ranges; see
/// BENCHMARKS.md "Scan verification").
pub const MATCH_THRESHOLD: f64 = 0.70;
/// A block whose mismatch exceeds this is reported as tampered.
pub const TAMPERED_BLOCK_MISMATCH: f64 = 0.2;

/// Block-by-block agreement of a restored front with the expected one.
#[derive(Clone, Debug, PartialEq)]
pub struct BlockScores {
    /// Blocks per row and column (the last ones may be partial).
    pub blocks_x: u32,
    pub blocks_y: u32,
    /// Mismatch of each block, row-major, in `0..=1`.
    pub mismatch: Vec<f64>,
    /// The decision score in `0..=1`; see the module docs.
    pub score: f64,
    /// Blocks (column, row) whose mismatch exceeds [`TAMPERED_BLOCK_MISMATCH`].
    pub tampered: Vec<(u32, u32)>,
    /// Ink F1 over the whole page (with the same tolerance), for information.
    pub ink_f1: f64,
}

fn is_ink(v: u8) -> bool {
    v <= 85
}

/// The pixels that satisfy `pred` (as 0/1 bytes) dilated by one pixel (3×3). Written as whole-row
/// slice operations without branches so that the compiler vectorises them: scoring a page is
/// three of these plus one pass, about a million pixels each.
fn dilated(img: &GrayImage, pred: impl Fn(u8) -> bool) -> Vec<u8> {
    let (w, h) = (img.width as usize, img.height as usize);
    let hit: Vec<u8> = img.pixels.iter().map(|&v| u8::from(pred(v))).collect();
    let mut horiz = vec![0u8; w * h];
    for (src, dst) in hit.chunks_exact(w).zip(horiz.chunks_exact_mut(w)) {
        dst.copy_from_slice(src);
        for (d, s) in dst[1..].iter_mut().zip(&src[..w - 1]) {
            *d |= s;
        }
        for (d, s) in dst[..w - 1].iter_mut().zip(&src[1..]) {
            *d |= s;
        }
    }
    let mut out = horiz.clone();
    for y in 0..h {
        let row = &mut out[y * w..(y + 1) * w];
        if y > 0 {
            for (d, s) in row.iter_mut().zip(&horiz[(y - 1) * w..y * w]) {
                *d |= s;
            }
        }
        if y + 1 < h {
            for (d, s) in row.iter_mut().zip(&horiz[(y + 1) * w..(y + 2) * w]) {
                *d |= s;
            }
        }
    }
    out
}

impl BlockScores {
    /// Compares `restored` with `expected` (same size; the caller guarantees it).
    pub fn compare(restored: &GrayImage, expected: &GrayImage) -> BlockScores {
        assert_eq!(
            (restored.width, restored.height),
            (expected.width, expected.height),
            "compared images must have the same size"
        );
        let (w, h) = (expected.width as usize, expected.height as usize);
        let (bx, by) = (w.div_ceil(BLOCK), h.div_ceil(BLOCK));
        let near_r = dilated(restored, is_ink);
        let near_e = dilated(expected, is_ink);
        let near_e_marked = dilated(expected, |v| v < 255);
        let mut bad = vec![0u32; bx * by];
        let (mut ink_r, mut ink_e, mut hit_r, mut hit_e) = (0u64, 0u64, 0u64, 0u64);
        let mut disagree = vec![0u8; w];
        for y in 0..h {
            let row = y * w..(y + 1) * w;
            let (r, e) = (&restored.pixels[row.clone()], &expected.pixels[row.clone()]);
            let (nr, ne, nm) = (&near_r[row.clone()], &near_e[row.clone()], &near_e_marked[row]);
            // Per-row counts fit in u32 and keep the loop free of 64-bit accumulators.
            let (mut ir, mut ie, mut hr, mut he) = (0u32, 0u32, 0u32, 0u32);
            for (i, d) in disagree.iter_mut().enumerate() {
                let (ri, ei) = (u8::from(is_ink(r[i])), u8::from(is_ink(e[i])));
                ir += u32::from(ri);
                ie += u32::from(ei);
                hr += u32::from(ri & ne[i]);
                he += u32::from(ei & nr[i]);
                // Tone on blank paper: a garbled block often decodes as a uniform light gray,
                // which is not ink but is not paper either.
                let stray_tone = u8::from(r[i] < 255) & (1 ^ nm[i]);
                *d = u8::from(r[i] == UNREADABLE_GRAY) | stray_tone | (ri & (1 ^ ne[i])) | (ei & (1 ^ nr[i]));
            }
            (ink_r, ink_e, hit_r, hit_e) = (ink_r + ir as u64, ink_e + ie as u64, hit_r + hr as u64, hit_e + he as u64);
            let blocks = &mut bad[(y / BLOCK) * bx..][..bx];
            for (b, chunk) in blocks.iter_mut().zip(disagree.chunks(BLOCK)) {
                *b += chunk.iter().map(|&d| u32::from(d)).sum::<u32>();
            }
        }
        // Over a whole block's area even for the partial blocks of the right and bottom edges: a
        // one-pixel sliver of the front carries little information and must not decide alone.
        let full = (BLOCK * BLOCK) as f64;
        let mismatch: Vec<f64> = bad.iter().map(|&b| b as f64 / full).collect();
        let mut sorted = mismatch.clone();
        sorted.sort_by(|a, b| b.total_cmp(a));
        let k = WORST_BLOCKS.min(sorted.len());
        let score = 1.0 - sorted[..k].iter().sum::<f64>() / k as f64;
        let tampered = mismatch
            .iter()
            .enumerate()
            .filter(|(_, &m)| m > TAMPERED_BLOCK_MISMATCH)
            .map(|(i, _)| ((i % bx) as u32, (i / bx) as u32))
            .collect();
        let precision = if ink_r == 0 { 1.0 } else { hit_r as f64 / ink_r as f64 };
        let recall = if ink_e == 0 { 1.0 } else { hit_e as f64 / ink_e as f64 };
        let ink_f1 = if precision + recall == 0.0 { 0.0 } else { 2.0 * precision * recall / (precision + recall) };
        BlockScores { blocks_x: bx as u32, blocks_y: by as u32, mismatch, score, tampered, ink_f1 }
    }
}

/// Mean SSIM of two equally sized gray images over all 7×7 windows (uniform weights, the usual
/// constants `C1 = (0.01·255)²`, `C2 = (0.03·255)²`), via summed-area tables. Reported beside the
/// decision for image quality, never used for it.
pub fn ssim(a: &GrayImage, b: &GrayImage) -> f64 {
    assert_eq!((a.width, a.height), (b.width, b.height));
    const WIN: usize = 7;
    let (w, h) = (a.width as usize, a.height as usize);
    if w < WIN || h < WIN {
        return if a.pixels == b.pixels { 1.0 } else { 0.0 };
    }
    // Summed-area tables of a, b, a², b², ab, one row and column of zeros in front.
    let sw = w + 1;
    let mut tables = vec![[0f64; 5]; sw * (h + 1)];
    for y in 0..h {
        let mut row = [0f64; 5];
        for x in 0..w {
            let (p, q) = (a.pixels[y * w + x] as f64, b.pixels[y * w + x] as f64);
            let v = [p, q, p * p, q * q, p * q];
            for k in 0..5 {
                row[k] += v[k];
                tables[(y + 1) * sw + x + 1][k] = tables[y * sw + x + 1][k] + row[k];
            }
        }
    }
    let (c1, c2) = ((0.01f64 * 255.0).powi(2), (0.03f64 * 255.0).powi(2));
    let n = (WIN * WIN) as f64;
    let mut total = 0.0;
    let mut count = 0usize;
    for y in 0..=h - WIN {
        for x in 0..=w - WIN {
            let s: [f64; 5] = std::array::from_fn(|k| {
                tables[(y + WIN) * sw + x + WIN][k] - tables[y * sw + x + WIN][k] - tables[(y + WIN) * sw + x][k]
                    + tables[y * sw + x][k]
            });
            let (ma, mb) = (s[0] / n, s[1] / n);
            let va = s[2] / n - ma * ma;
            let vb = s[3] / n - mb * mb;
            let cov = s[4] / n - ma * mb;
            total += ((2.0 * ma * mb + c1) * (2.0 * cov + c2)) / ((ma * ma + mb * mb + c1) * (va + vb + c2));
            count += 1;
        }
    }
    total / count as f64
}

#[cfg(test)]
mod tests {
    use super::*;

    fn img(w: u32, h: u32, f: impl Fn(u32, u32) -> u8) -> GrayImage {
        GrayImage {
            width: w,
            height: h,
            pixels: (0..h).flat_map(|y| (0..w).map(move |x| (x, y))).map(|(x, y)| f(x, y)).collect(),
        }
    }

    fn text(x: u32, y: u32) -> u8 {
        if (4..60).contains(&x) && (x / 3 + y / 5).is_multiple_of(4) {
            0
        } else {
            255
        }
    }

    #[test]
    fn identical_images_score_one_and_ssim_one() {
        let a = img(64, 48, text);
        let s = BlockScores::compare(&a, &a);
        assert_eq!(s.score, 1.0);
        assert!(s.tampered.is_empty());
        assert_eq!(s.ink_f1, 1.0);
        assert!((ssim(&a, &a) - 1.0).abs() < 1e-9);
    }

    #[test]
    fn a_one_pixel_shift_is_tolerated() {
        let a = img(64, 48, text);
        let b = img(64, 48, |x, y| text(x.saturating_sub(1), y));
        assert_eq!(BlockScores::compare(&b, &a).score, 1.0);
    }

    #[test]
    fn one_garbled_block_is_flagged_and_lowers_the_score() {
        let a = img(64, 48, text);
        let b = img(64, 48, |x, y| {
            if (16..32).contains(&x) && (32..48).contains(&y) {
                if (x * 7 + y * 3) % 3 == 0 {
                    255
                } else {
                    0
                }
            } else {
                text(x, y)
            }
        });
        let s = BlockScores::compare(&b, &a);
        assert_eq!(s.tampered, vec![(1, 2)]);
        assert!(s.score < 1.0 - 0.2 / WORST_BLOCKS as f64, "{}", s.score);
        // Unreadable pixels count against the match even on blank paper.
        let blank = img(32, 32, |_, _| 255);
        let unread = img(32, 32, |x, _| if x < 16 { UNREADABLE_GRAY } else { 255 });
        assert_eq!(BlockScores::compare(&unread, &blank).tampered, vec![(0, 0), (0, 1)]);
    }
}
