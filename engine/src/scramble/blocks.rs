//! The keyed block shuffle: which front block lands where, turned how, with which level shift.
//!
//! The quantised front, padded on the right and bottom to whole blocks, is cut into 16×16 blocks.
//! Destination block `d` (row-major over the scrambled area) shows front block `source_of[d]`,
//! transformed by one of the 8 symmetries of the square and with its levels cyclically shifted:
//! `shown = (level + shift) mod 4`. Padding stays padding (white) under every shift. All three
//! decisions come from the key, so without it the back is a colour mosaic with no recoverable
//! reading order, orientation or tone.
//!
//! 16 px is about 4 mm at 100 dpi: smaller than a kanji, so no block carries a readable character,
//! and large enough that the per-block work (table look-ups, one 256-entry gather) is amortised and a
//! scanned block (issue 8) has an interior that survives blur at its edges.
//!
//! Speed: both directions run block by block with precomputed per-orientation index maps
//! ([`TRANSFORMS`]), reading and writing 16-pixel row runs. Scrambling first finds the blocks of one
//! level in one pass in raster order (blank paper, most of a page: one colour, the front never read
//! again), and draws blocks of mixed levels with SSSE3 where the CPU has it (`simd.rs`, same bytes), so
//! an A4 front costs ~0.2 ms.

use super::key::ScrambleKey;
use super::levels::{level_of, LEVELS, LEVEL_GRAY, PAD};

/// Side of a block in pixels.
pub const BLOCK: usize = 16;
const BLOCK_PIXELS: usize = BLOCK * BLOCK;
/// Number of orientations: the symmetries of the square.
const ORIENTATIONS: usize = 8;

/// `TRANSFORMS[o][i]`: index (row-major, within the block) of the source pixel that orientation
/// `o` puts at destination index `i`. Orientation bits: 1 = flip x, 2 = flip y, 4 = transpose,
/// applied to the destination coordinates in that order.
static TRANSFORMS: [[u8; BLOCK_PIXELS]; ORIENTATIONS] = build_transforms();

const fn build_transforms() -> [[u8; BLOCK_PIXELS]; ORIENTATIONS] {
    let mut maps = [[0u8; BLOCK_PIXELS]; ORIENTATIONS];
    let mut o = 0;
    while o < ORIENTATIONS {
        let mut i = 0;
        while i < BLOCK_PIXELS {
            let (mut x, mut y) = (i % BLOCK, i / BLOCK);
            if o & 1 != 0 {
                x = BLOCK - 1 - x;
            }
            if o & 2 != 0 {
                y = BLOCK - 1 - y;
            }
            if o & 4 != 0 {
                (x, y) = (y, x);
            }
            maps[o][i] = (y * BLOCK + x) as u8;
            i += 1;
        }
        o += 1;
    }
    maps
}

/// The per-key shuffle of one block grid, computed once per scramble or descramble call.
pub(crate) struct BlockPlan {
    pub blocks_x: usize,
    pub blocks_y: usize,
    /// `source_of[d]`: the front block shown at destination block `d`.
    source_of: Vec<u32>,
    /// Per destination block: orientation in bits 0-2, level shift in bits 3-4.
    xform: Vec<u8>,
}

impl BlockPlan {
    pub(crate) fn new(key: &ScrambleKey, blocks_x: usize, blocks_y: usize) -> BlockPlan {
        let n = blocks_x * blocks_y;
        let source_of = key.stream("blocks/permutation").permutation(n as u32);
        let mut s = key.stream("blocks/transforms");
        // Orientation and shift are both powers of two, so masking a word is uniform.
        let xform = (0..n).map(|_| (s.next_u32() & 0x1f) as u8).collect();
        BlockPlan { blocks_x, blocks_y, source_of, xform }
    }

    /// The first `n` entries of the permutation (for the frozen test vectors).
    #[cfg(test)]
    pub(crate) fn source_prefix(&self, n: usize) -> Vec<u32> {
        self.source_of[..n].to_vec()
    }

    /// The first `n` per-block transforms (orientation | shift << 3), for the frozen test vectors.
    #[cfg(test)]
    pub(crate) fn xform_prefix(&self, n: usize) -> Vec<u8> {
        self.xform[..n].to_vec()
    }

    /// The front block shown at destination block `d`.
    pub(crate) fn source(&self, d: usize) -> u32 {
        self.source_of[d]
    }

    fn orientation(&self, d: usize) -> usize {
        (self.xform[d] & 7) as usize
    }

    fn shift(&self, d: usize) -> usize {
        (self.xform[d] >> 3) as usize
    }
}

/// The front being scrambled: quantisation happens through the look-up tables, on the fly.
pub(crate) struct FrontView<'a> {
    pub width: usize,
    pub height: usize,
    pub gray: &'a [u8],
}

/// The 4-bit packed destination (the back's index rows) and where the scrambled area starts.
pub(crate) struct PackedTarget<'a> {
    pub bytes: &'a mut [u8],
    pub row_stride: usize,
    /// Byte offset of the area's left edge within a row (the area starts on an even pixel).
    pub x_byte: usize,
    pub y: usize,
}

/// Marks a source block that is not of one level (or reaches past the front) in [`uniform_grays`].
const MIXED: u16 = u16::MAX;

/// Per source block (row-major), a gray of its level if every pixel quantises to that one level and the
/// block lies wholly inside the front, else [`MIXED`]. Computed in one pass in raster order: the shuffle
/// then visits blank blocks (most of a page) without touching the front at all, where reading a block at
/// a random place costs 16 cache lines, each from a different row.
fn uniform_grays(front: &FrontView<'_>, blocks_x: usize, blocks_y: usize) -> Vec<u16> {
    let mut grays = vec![MIXED; blocks_x * blocks_y];
    let (full_x, full_y) = (front.width / BLOCK, front.height / BLOCK);
    let span = full_x * BLOCK;
    // Column-wise minima and maxima over the rows of one band of blocks, then folded per block: plain
    // loops over whole rows, which the compiler turns into vector min/max.
    let mut lo = vec![u8::MAX; span];
    let mut hi = vec![0u8; span];
    for by in 0..full_y {
        lo.fill(u8::MAX);
        hi.fill(0);
        for y in 0..BLOCK {
            let row = &front.gray[(by * BLOCK + y) * front.width..][..span];
            for ((l, h), &v) in lo.iter_mut().zip(hi.iter_mut()).zip(row) {
                *l = (*l).min(v);
                *h = (*h).max(v);
            }
        }
        for (bx, (l, h)) in lo.chunks_exact(BLOCK).zip(hi.chunks_exact(BLOCK)).enumerate() {
            let (l, h) = (l.iter().fold(u8::MAX, |a, &b| a.min(b)), h.iter().fold(0, |a, &b| a.max(b)));
            // Levels grow with the gray, so the darkest and lightest pixels decide.
            if level_of(l) == level_of(h) {
                grays[by * blocks_x + bx] = l as u16;
            }
        }
    }
    grays
}

/// Writes the scrambled area. `luts[band_set[row] * 4 + shift][gray]` is the palette index of a
/// front gray value in a block of that band with that shift; `pad` the index of padding.
pub(crate) fn scramble_into(
    plan: &BlockPlan,
    front: &FrontView<'_>,
    luts: &[[u8; 256]],
    band_set: &[u8],
    pad: u8,
    out: &mut PackedTarget<'_>,
) {
    #[cfg(target_arch = "x86_64")]
    let simd = std::arch::is_x86_feature_detected!("ssse3");
    #[cfg(not(target_arch = "x86_64"))]
    let simd = false;
    scramble_blocks(plan, front, luts, band_set, pad, out, simd)
}

/// [`scramble_into`], with the SIMD path for mixed blocks or without it (the reference it is tested
/// against).
fn scramble_blocks(
    plan: &BlockPlan,
    front: &FrontView<'_>,
    luts: &[[u8; 256]],
    band_set: &[u8],
    pad: u8,
    out: &mut PackedTarget<'_>,
    simd: bool,
) {
    let uniform = uniform_grays(front, plan.blocks_x, plan.blocks_y);
    let mut src = [0u8; BLOCK_PIXELS];
    for (dr, &set) in band_set.iter().enumerate().take(plan.blocks_y) {
        let lut_base = set as usize * LEVELS as usize;
        for dc in 0..plan.blocks_x {
            let d = dr * plan.blocks_x + dc;
            let s = plan.source_of[d] as usize;
            let lut = &luts[lut_base + plan.shift(d)];
            let row0 = (out.y + dr * BLOCK) * out.row_stride + out.x_byte + dc * BLOCK / 2;
            // A block of one level is one colour whatever the orientation.
            if uniform[s] != MIXED {
                let v = uniform[s] as usize;
                let byte = (lut[v] << 4) | lut[v];
                for y in 0..BLOCK {
                    out.bytes[row0 + y * out.row_stride..][..BLOCK / 2].fill(byte);
                }
                continue;
            }
            let (sx0, sy0) = ((s % plan.blocks_x) * BLOCK, (s / plan.blocks_x) * BLOCK);
            #[cfg(target_arch = "x86_64")]
            if simd && sx0 + BLOCK <= front.width && sy0 + BLOCK <= front.height {
                // The look-up tables depend on the level only: one gray per level gives its colour.
                let colours = LEVEL_GRAY.map(|g| lut[g as usize]);
                let from = &front.gray[sy0 * front.width + sx0..];
                let to = &mut out.bytes[row0..];
                // SAFETY: `simd` is only set when the CPU has SSSE3.
                unsafe {
                    super::simd::mixed_block(from, front.width, colours, plan.orientation(d), to, out.row_stride)
                };
                continue;
            }
            gather_block(front, sx0, sy0, lut, pad, &mut src);

            let map = &TRANSFORMS[plan.orientation(d)];
            for y in 0..BLOCK {
                let dst = &mut out.bytes[row0 + y * out.row_stride..][..BLOCK / 2];
                let m = &map[y * BLOCK..][..BLOCK];
                for (i, byte) in dst.iter_mut().enumerate() {
                    *byte = (src[m[2 * i] as usize] << 4) | src[m[2 * i + 1] as usize];
                }
            }
        }
    }
}

/// Copies one front block, mapped through `lut`, into `block`; pixels beyond the front are `pad`.
#[inline]
fn gather_block(front: &FrontView<'_>, x0: usize, y0: usize, lut: &[u8; 256], pad: u8, block: &mut [u8; BLOCK_PIXELS]) {
    if x0 + BLOCK <= front.width && y0 + BLOCK <= front.height {
        for y in 0..BLOCK {
            let row = &front.gray[(y0 + y) * front.width + x0..][..BLOCK];
            for (b, &v) in block[y * BLOCK..][..BLOCK].iter_mut().zip(row) {
                *b = lut[v as usize];
            }
        }
        return;
    }
    // Edge block: only here do we pay for bounds decisions.
    block.fill(pad);
    let w = front.width.saturating_sub(x0).min(BLOCK);
    let h = front.height.saturating_sub(y0).min(BLOCK);
    for y in 0..h {
        let row = &front.gray[(y0 + y) * front.width + x0..][..w];
        for (b, &v) in block[y * BLOCK..][..w].iter_mut().zip(row) {
            *b = lut[v as usize];
        }
    }
}

/// Inverts [`scramble_into`] on classified pixels. `shown` holds, row-major over the scrambled
/// area, the shown level of each pixel or [`PAD`]; the result holds the front's levels (or `PAD`)
/// over the padded front, `blocks_x * 16` wide.
pub(crate) fn unscramble(plan: &BlockPlan, shown: &[u8]) -> Vec<u8> {
    let width = plan.blocks_x * BLOCK;
    let mut front = vec![PAD; shown.len()];
    // unshift[shift][class]: the front level of a shown class; PAD stays PAD.
    let mut unshift = [[PAD; LEVELS as usize + 1]; LEVELS as usize];
    for (k, row) in unshift.iter_mut().enumerate() {
        for (c, v) in row.iter_mut().take(LEVELS as usize).enumerate() {
            *v = ((c + LEVELS as usize - k) % LEVELS as usize) as u8;
        }
    }
    let mut block = [0u8; BLOCK_PIXELS];
    for dr in 0..plan.blocks_y {
        for dc in 0..plan.blocks_x {
            let d = dr * plan.blocks_x + dc;
            let table = &unshift[plan.shift(d)];
            let map = &TRANSFORMS[plan.orientation(d)];
            let origin = dr * BLOCK * width + dc * BLOCK;
            for y in 0..BLOCK {
                let row = &shown[origin + y * width..][..BLOCK];
                for (x, &c) in row.iter().enumerate() {
                    block[map[y * BLOCK + x] as usize] = table[c as usize];
                }
            }
            let s = plan.source_of[d] as usize;
            let origin = (s / plan.blocks_x) * BLOCK * width + (s % plan.blocks_x) * BLOCK;
            for y in 0..BLOCK {
                front[origin + y * width..][..BLOCK].copy_from_slice(&block[y * BLOCK..][..BLOCK]);
            }
        }
    }
    front
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_eight_orientations_are_distinct_permutations() {
        for (o, map) in TRANSFORMS.iter().enumerate() {
            let mut seen = [false; BLOCK_PIXELS];
            for &i in map {
                assert!(!seen[i as usize], "orientation {o} is not a bijection");
                seen[i as usize] = true;
            }
            for other in &TRANSFORMS[..o] {
                assert_ne!(map, other);
            }
        }
        assert!(TRANSFORMS[0].iter().enumerate().all(|(i, &v)| i == v as usize), "0 is the identity");
    }

    #[test]
    fn orientations_move_a_corner_pixel_to_every_corner() {
        let corners: std::collections::HashSet<usize> =
            TRANSFORMS.iter().map(|m| m.iter().position(|&s| s == 0).expect("pixel 0 lands somewhere")).collect();
        let l = BLOCK - 1;
        assert_eq!(corners, [0, l, l * BLOCK, l * BLOCK + l].into_iter().collect());
    }

    /// The SIMD path for mixed blocks writes exactly what the scalar path writes: fronts of text-like
    /// strokes, noise and blank paper, every orientation and shift, edge blocks included.
    #[test]
    fn simd_and_scalar_paths_write_the_same_bytes() {
        let mut seed = 0x9e37_79b9_7f4a_7c15u64;
        let mut next = move || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed
        };
        for (i, &(w, h)) in [(827usize, 1169usize), (100, 70), (33, 17), (16, 16), (48, 31)].iter().enumerate() {
            // Blank paper with rectangles of noise and of every gray, so blocks of one level, of two
            // levels and of all four occur.
            let mut gray = vec![255u8; w * h];
            for _ in 0..(w * h / 600).max(4) {
                let (x0, y0) = (next() as usize % w, next() as usize % h);
                let (rw, rh, kind) = (1 + next() as usize % 40, 1 + next() as usize % 30, next() % 3);
                for y in y0..(y0 + rh).min(h) {
                    for x in x0..(x0 + rw).min(w) {
                        gray[y * w + x] = match kind {
                            0 => next() as u8,
                            1 => (x * 7 + y * 13) as u8,
                            _ => (next() % 4 * 85) as u8,
                        };
                    }
                }
            }
            let (bx, by) = (w.div_ceil(BLOCK), h.div_ceil(BLOCK));
            let plan = BlockPlan::new(&ScrambleKey::from_bytes([i as u8 + 1; 32]), bx, by);
            let mut luts = vec![[0u8; 256]; 12];
            for (k, lut) in luts.iter_mut().enumerate() {
                for (v, e) in lut.iter_mut().enumerate() {
                    *e = ((k / 4) * 4 + (level_of(v as u8) as usize + k % 4) % 4) as u8;
                }
            }
            let band_set: Vec<u8> = (0..by).map(|_| (next() % 3) as u8).collect();
            let front = FrontView { width: w, height: h, gray: &gray };
            let row_stride = bx * BLOCK / 2 + 5;
            let run = |simd: bool| {
                let mut bytes = vec![0xEEu8; row_stride * (by * BLOCK + 3)];
                let mut out = PackedTarget { bytes: &mut bytes, row_stride, x_byte: 2, y: 1 };
                scramble_blocks(&plan, &front, &luts, &band_set, 12, &mut out, simd);
                bytes
            };
            #[cfg(target_arch = "x86_64")]
            let simd = std::arch::is_x86_feature_detected!("ssse3");
            #[cfg(not(target_arch = "x86_64"))]
            let simd = false;
            assert_eq!(run(simd), run(false), "{w}x{h}");
        }
    }

    #[test]
    fn plan_uses_every_orientation_and_shift() {
        let plan = BlockPlan::new(&ScrambleKey::from_bytes([4; 32]), 20, 20);
        let orientations: std::collections::HashSet<_> = (0..400).map(|d| plan.orientation(d)).collect();
        let shifts: std::collections::HashSet<_> = (0..400).map(|d| plan.shift(d)).collect();
        assert_eq!(orientations.len(), ORIENTATIONS);
        assert_eq!(shifts.len(), LEVELS as usize);
    }
}
