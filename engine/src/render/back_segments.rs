//! The encoding of the scrambled back image from generation 5 on (`Generation::SegmentEncoding`): a zlib
//! stream of fixed-code deflate tokens decided eight bytes at a time, so that the cost of a back is one
//! pass of 8-byte compares plus the literals it has to write.
//!
//! Generation 4 (`back_runs`) decides byte by byte: each token's length gives the position of the next,
//! and that chain, not the arithmetic, was its time (~0.42 ms, a fifth of an Issue's CPU). Here the image
//! is cut into segments of 8 bytes from its first byte (16 pixels: one row of a 16×16 scramble block when
//! the rows are whole blocks, as on a certificate's back), and each segment is decided on its own:
//!
//! 1. equal to the 8 bytes a row above: it joins the pending copy from the row above;
//! 2. otherwise one byte repeated 8 times (a row of a block of one colour): it joins or starts a copy of
//!    the byte to its left (a literal first when the byte before it differs);
//! 3. otherwise: the copy from above takes the segment's leading bytes that equal the row above, its bytes
//!    from the first to the last that differ are literals, and its trailing equal bytes start the next
//!    copy from above.
//!
//! A segment with no row above (in the first row, or everywhere when a row is longer than a deflate
//! distance reaches) takes rule 2 or 3 with every byte counted as differing. A pending copy of 3 bytes or more is written as matches of at most 258 bytes (distance = the row length,
//! or 1), a shorter one as literals. The last `len % 8` bytes are literals. The codes are the fixed ones of
//! RFC 1951 §3.2.6, as in generation 4, and the bits are written a whole 64-bit word at a time. For a
//! 4-person 住民票's back (`bcl-bench back-encoding`) the stream is ~10 % larger than generation 4's
//! (68.5 kB against 62.5 kB) and takes ~0.27 ms instead of ~0.42 ms. The rows are stored as they are (no `/DecodeParms`): a reader inflates and has the indices.
//!
//! The bytes are part of the issued certificate: the function is a pure function of its input, pinned by
//! the generation-5 goldens (`engine/tests/golden/back-v5`). Changing these rules is a new generation.

use super::back_runs::{distance_code, Bits, LITERALS, MAX_DISTANCE, MIN_MATCH};

/// Bytes decided together.
const SEGMENT: usize = 8;

/// The token writers of generation 5, on generation 4's bit stream.
impl Bits {
    /// Literals for `bytes`, four codes (at most 36 bits) between flushes.
    #[inline(always)]
    fn literals(&mut self, bytes: &[u8]) {
        for four in bytes.chunks(4) {
            for &b in four {
                self.put(LITERALS[b as usize]);
            }
            self.flush();
        }
    }

    /// Literals for bytes `first..=last` of the segment `here` (its bytes little-endian in a word), with no
    /// branch on either: the other bytes' codes are put with length 0.
    #[inline(always)]
    fn segment_literals(&mut self, here: u64, first: usize, last: usize) {
        for half in [0..4, 4..SEGMENT] {
            for i in half {
                let (code, len) = LITERALS[usize::from((here >> (8 * i)) as u8)];
                let keep = u32::from(i >= first && i <= last);
                self.put((code * keep, len * keep as u8));
            }
            self.flush();
        }
    }

    /// `length` bytes ending at `end` of `data`, equal to the bytes `distance` before them, whose distance
    /// code is `code`: matches of at most 258 bytes (none shorter than 3: a remainder of 1 or 2 is taken
    /// from the match before it) when there are at least 3 bytes, else literals (none for 0 bytes).
    #[inline(always)]
    fn copy(&mut self, data: &[u8], end: usize, length: usize, code: (u32, u8)) {
        if length < MIN_MATCH {
            self.literals(&data[end - length..end]);
        } else {
            self.run(length, code);
        }
    }
}

#[inline(always)]
fn word(data: &[u8], at: usize) -> u64 {
    u64::from_le_bytes(data[at..at + SEGMENT].try_into().expect("8 bytes"))
}

/// The encoder between segments: the bits so far and the bytes decided but not written yet.
struct Encoder<'a> {
    rows: &'a [u8],
    row_bytes: usize,
    bits: Bits,
    /// The distance code of the row above, if a deflate distance reaches it.
    above_code: Option<(u32, u8)>,
    left_code: (u32, u8),
    /// Bytes just before the current segment not written yet: equal to the bytes a row above them
    /// (`from_above`), or equal to the byte before them (`from_left`). At most one of the two is non-zero.
    from_above: usize,
    from_left: usize,
}

impl Encoder<'_> {
    /// Rule 1 for `count` segments in a row, the first at `at`.
    #[inline(always)]
    fn repeat_above(&mut self, at: usize, count: usize) {
        self.bits.copy(self.rows, at, self.from_left, self.left_code);
        self.from_left = 0;
        self.from_above += count * SEGMENT;
    }

    /// Rules 2 and 3 for the segment at `at`, which does not repeat the row above (or has none).
    #[inline(always)]
    fn new_segment(&mut self, at: usize) {
        let rows = self.rows;
        let here = word(rows, at);
        // Without a row above, every byte differs from "above" and nothing is copied from it.
        let (above, above_code) = match self.above_code {
            Some(code) if at >= self.row_bytes => (word(rows, at - self.row_bytes), code),
            _ => (!here, self.left_code),
        };
        // 2. One byte, 8 times.
        let byte = here as u8;
        if here == u64::from(byte) * 0x0101_0101_0101_0101 {
            self.bits.copy(rows, at, self.from_above, above_code);
            self.from_above = 0;
            // A pending copy from the left, if any, is of the byte before: if that is this byte, it goes
            // on; otherwise it is written, and a literal starts a new one.
            let goes_on = at > 0 && rows[at.saturating_sub(1)] == byte;
            let written = if goes_on { 0 } else { self.from_left };
            self.bits.copy(rows, at, written, self.left_code);
            let (code, len) = LITERALS[usize::from(byte)];
            let keep = u32::from(!goes_on);
            self.bits.put((code * keep, len * keep as u8));
            self.bits.flush();
            self.from_left = if goes_on { self.from_left + SEGMENT } else { SEGMENT - 1 };
            return;
        }
        // 3. Mixed bytes.
        self.bits.copy(rows, at, self.from_left, self.left_code);
        self.from_left = 0;
        let differ = here ^ above;
        let first = (differ.trailing_zeros() / 8) as usize;
        let last = SEGMENT - 1 - (differ.leading_zeros() / 8) as usize;
        self.from_above += first;
        self.bits.copy(rows, at + first, self.from_above, above_code);
        self.bits.segment_literals(here, first, last);
        self.from_above = SEGMENT - 1 - last;
    }

    /// Writes what is pending at the end of the whole segments (`end`), the remaining bytes as literals,
    /// the end of the block and the zlib trailer.
    fn finish(mut self, end: usize) -> Vec<u8> {
        if self.from_above > 0 {
            let code = self.above_code.expect("copies from above only where the row fits");
            self.bits.copy(self.rows, end, self.from_above, code);
        }
        if self.from_left > 0 {
            self.bits.copy(self.rows, end, self.from_left, self.left_code);
        }
        self.bits.literals(&self.rows[end..]);
        self.bits.finish(self.rows)
    }
}

fn encoder(rows: &[u8], row_bytes: usize) -> Encoder<'_> {
    debug_assert!(row_bytes > 0 && rows.len().is_multiple_of(row_bytes));
    Encoder {
        rows,
        row_bytes,
        // Literals cost at most 9 bits a byte; matches less than the bytes they replace.
        bits: Bits::fixed_block(rows.len() / 8 * 9 + 64),
        // Rows longer than a deflate distance reaches get no copies from above.
        above_code: (row_bytes <= MAX_DISTANCE).then(|| distance_code(row_bytes)),
        left_code: distance_code(1),
        from_above: 0,
        from_left: 0,
    }
}

/// Bit `i` set when segment `i` of `here` (at most 64) differs from the same segment of `above`.
#[inline(always)]
fn new_segments(here: &[u8], above: &[u8]) -> u64 {
    debug_assert!(here.len() == above.len() && here.len() <= 64 * SEGMENT);
    let mut new: u64 = 0;
    let mut i = 0;
    #[cfg(target_arch = "x86_64")]
    {
        use std::arch::x86_64::*;
        // Two segments per 16-byte compare (SSE2, which every x86-64 has): 32-bit lanes compared, each
        // ANDed with its neighbour, one sign bit per 64-bit lane.
        for (h, a) in here.chunks_exact(16).zip(above.chunks_exact(16)) {
            // SAFETY: SSE2 is part of x86-64; the loads are unaligned loads of 16-byte chunks.
            let equal = unsafe {
                let h = _mm_loadu_si128(h.as_ptr() as *const __m128i);
                let a = _mm_loadu_si128(a.as_ptr() as *const __m128i);
                let lanes = _mm_cmpeq_epi32(h, a);
                let both = _mm_and_si128(lanes, _mm_shuffle_epi32(lanes, 0b10_11_00_01));
                _mm_movemask_pd(_mm_castsi128_pd(both)) as u64
            };
            new |= (!equal & 0b11) << i;
            i += 2;
        }
    }
    for (h, a) in here[i * SEGMENT..].chunks_exact(SEGMENT).zip(above[i * SEGMENT..].chunks_exact(SEGMENT)) {
        let (h, a): ([u8; SEGMENT], [u8; SEGMENT]) = (h.try_into().expect("8"), a.try_into().expect("8"));
        new |= u64::from(u64::from_ne_bytes(h) != u64::from_ne_bytes(a)) << i;
        i += 1;
    }
    new
}

/// `rows` (each `row_bytes` long, stored as they are) as a zlib stream of one fixed-code deflate block.
///
/// Most segments of a back repeat the row above, and which ones do not is unpredictable, so rather than
/// branch on every segment this works out, 64 segments at a time, a mask of those that do not (compares
/// without branches), and visits only those; a stretch of repeating segments costs one step.
pub fn deflate_segments(rows: &[u8], row_bytes: usize) -> Vec<u8> {
    let mut encoder = encoder(rows, row_bytes);
    let segments = rows.len() / SEGMENT;
    // The segments that have no row above (the first row, or all of them when rows are too long).
    let lead = if encoder.above_code.is_some() { row_bytes.div_ceil(SEGMENT).min(segments) } else { segments };
    for s in 0..lead {
        encoder.new_segment(s * SEGMENT);
    }
    let mut first = lead;
    while first < segments {
        let count = (segments - first).min(64);
        let here = &rows[first * SEGMENT..][..count * SEGMENT];
        let above = &rows[first * SEGMENT - row_bytes..][..count * SEGMENT];
        let mut new = new_segments(here, above);
        let mut next = 0;
        while new != 0 {
            let i = new.trailing_zeros() as usize;
            new &= new - 1;
            if i > next {
                encoder.repeat_above((first + next) * SEGMENT, i - next);
            }
            encoder.new_segment((first + i) * SEGMENT);
            next = i + 1;
        }
        if count > next {
            encoder.repeat_above((first + next) * SEGMENT, count - next);
        }
        first += count;
    }
    encoder.finish(segments * SEGMENT)
}

#[cfg(test)]
mod tests {
    use super::super::back_runs::tests::{inflate, noise};
    use super::*;

    /// A back-like image: bands of 16 rows, blocks of 8 bytes, most of one colour, some with detail that
    /// often repeats the row above (strokes), at any offset when `row_bytes` is not a multiple of 8.
    fn blocks(row_bytes: usize, bands: usize, seed: u64) -> Vec<u8> {
        let mut seed = seed | 1;
        let mut rows = vec![0u8; row_bytes * bands * 16];
        for band in 0..bands {
            for block in 0..row_bytes.div_ceil(8) {
                let colour = (noise(&mut seed) % 14) as u8 * 0x11;
                let detailed = noise(&mut seed).is_multiple_of(3);
                for y in 0..16 {
                    let keep = y > 0 && !noise(&mut seed).is_multiple_of(4);
                    for x in block * 8..(block * 8 + 8).min(row_bytes) {
                        let at = (band * 16 + y) * row_bytes + x;
                        rows[at] = if !detailed {
                            colour
                        } else if keep {
                            rows[at - row_bytes]
                        } else {
                            (noise(&mut seed) % 4) as u8 * 0x45
                        };
                    }
                }
            }
        }
        rows
    }

    /// The rules segment by segment, as the module documents them: what the masks must give.
    fn reference(rows: &[u8], row_bytes: usize) -> Vec<u8> {
        let mut encoder = encoder(rows, row_bytes);
        let whole = rows.len() / SEGMENT * SEGMENT;
        for at in (0..whole).step_by(SEGMENT) {
            let repeats = encoder.above_code.is_some() && at >= row_bytes && word(rows, at) == word(rows, at - row_bytes);
            if repeats {
                encoder.repeat_above(at, 1);
            } else {
                encoder.new_segment(at);
            }
        }
        encoder.finish(whole)
    }

    #[test]
    fn readers_get_the_rows_back() {
        let mut seed = 0x2545_f491_4f6c_dd1d;
        let mut cases: Vec<(Vec<u8>, usize)> = vec![
            (vec![7], 1),
            (vec![1, 2, 3], 3),
            (vec![0; 3], 1),
            (vec![0; 16], 16),
            (vec![9; 100_000], 500),
            (blocks(496, 86, 1), 496),
            (blocks(13, 5, 2), 13),
            (blocks(4, 9, 5), 4),
            (blocks(21, 40, 6), 21),
            ((0..200_000).map(|_| noise(&mut seed) as u8).collect(), 1000),
        ];
        // Runs of every length around the 258-byte limit, at distance 1 and from the row above, and short
        // copies (1 and 2 bytes) written as literals.
        for run in [1, 2, 3, 4, 7, 8, 9, 15, 16, 17, 257, 258, 259, 260, 261, 515, 516, 517, 518, 1000] {
            let mut rows = vec![5u8; run + 2];
            rows[0] = 1;
            rows[run + 1] = 2;
            cases.push((rows.clone(), rows.len()));
            let mut two = (0..rows.len()).map(|i| (i * 37 % 251) as u8).collect::<Vec<_>>();
            two.extend_from_slice(&two.clone());
            let len = two.len() / 2;
            cases.push((two, len));
        }
        // Random images of few values, in every row length from 1 to 40: every branch at every offset.
        for row_bytes in 1..=40 {
            let rows: Vec<u8> = (0..row_bytes * 37).map(|_| (noise(&mut seed) % 3) as u8).collect();
            cases.push((rows, row_bytes));
            cases.push((blocks(row_bytes, 3, row_bytes as u64), row_bytes));
        }
        // Rows longer than a deflate distance reaches.
        cases.push((blocks(40_000, 1, 3), 40_000));
        for (rows, row_bytes) in cases {
            let stream = deflate_segments(&rows, row_bytes);
            assert_eq!(inflate(&stream), rows, "{} bytes, rows of {row_bytes}", rows.len());
            assert!(stream == reference(&rows, row_bytes), "{} bytes, rows of {row_bytes}: not the rules", rows.len());
        }
    }

    #[test]
    fn block_images_come_out_small() {
        let rows = blocks(496, 86, 4);
        let stream = deflate_segments(&rows, 496);
        // A third of the blocks detailed, a quarter of their rows new: ~87 kB, of which ~80 kB literals.
        assert!(stream.len() < 95_000, "{} bytes for {}", stream.len(), rows.len());
        // At most a tenth more than deciding byte by byte (generation 4).
        let v4 = super::super::back_runs::deflate_rows(&rows, 496).len();
        assert!(stream.len() * 10 < v4 * 11, "{} bytes, generation 4 {v4}", stream.len());
    }

    #[test]
    fn blank_paper_costs_a_few_kilobytes() {
        // A white A4 back at 100 dpi: one literal, then copies of at most 258 bytes (~20 bits each).
        let rows = vec![0xCC; 496 * 1376];
        assert!(deflate_segments(&rows, 496).len() < 7_000);
    }
}
