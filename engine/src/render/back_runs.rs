//! The encoding of the scrambled back image of generation 4 (`Generation::LeanEncoding`; generation 5
//! decides 8 bytes at a time instead, `back_segments`, and shares this module's code tables): a zlib
//! stream written directly from the block structure of the back, with no predictor and no general-purpose
//! compressor.
//!
//! A back is an indexed image of 16×16 blocks (`crate::scramble`): inside a block band most rows repeat the
//! row above (blank paper scrambles to blocks of one colour, margins and ring are white), and the first row
//! of a band is mostly blocks of one colour, i.e. one byte repeated for 8 bytes. So the stream is encoded
//! greedily as three kinds of token: a run equal to the row above (a deflate match at distance = the row
//! length), a run of the byte to the left (a match at distance 1), or a literal. Runs are found eight bytes
//! at a time; there is no hash table, no search and no Huffman table to build (the fixed codes of RFC 1951
//! §3.2.6), so a back costs one comparison pass plus ~40k tokens, and the stream comes out smaller than
//! generation 3's predicted fdeflate stream (~55 kB instead of ~95 kB for a 4-person 住民票).
//!
//! The rows are stored as they are (no `/DecodeParms`), so a reader inflates and has the indices. The
//! bytes are part of the issued certificate: the function is a pure function of its input, pinned by the
//! generation-4 goldens (`engine/tests/golden/back-v4`). Changing the greedy rule or the codes is a new
//! generation.

/// Largest distance a deflate match can have (RFC 1951): rows longer than this get no row-above matches.
pub(super) const MAX_DISTANCE: usize = 32_768;
pub(super) const MIN_MATCH: usize = 3;
const MAX_MATCH: usize = 258;

/// Base length of length symbols 257..=285 and their extra bits (RFC 1951 §3.2.5).
const LENGTH_BASE: [u16; 29] =
    [3, 4, 5, 6, 7, 8, 9, 10, 11, 13, 15, 17, 19, 23, 27, 31, 35, 43, 51, 59, 67, 83, 99, 115, 131, 163, 195, 227, 258];
const LENGTH_EXTRA: [u8; 29] = [0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 2, 2, 2, 2, 3, 3, 3, 3, 4, 4, 4, 4, 5, 5, 5, 5, 0];
/// Base distance of distance codes 0..=29 and their extra bits.
const DISTANCE_BASE: [u16; 30] = [
    1, 2, 3, 4, 5, 7, 9, 13, 17, 25, 33, 49, 65, 97, 129, 193, 257, 385, 513, 769, 1025, 1537, 2049, 3073, 4097, 6145,
    8193, 12289, 16385, 24577,
];
const DISTANCE_EXTRA: [u8; 30] =
    [0, 0, 0, 0, 1, 1, 2, 2, 3, 3, 4, 4, 5, 5, 6, 6, 7, 7, 8, 8, 9, 9, 10, 10, 11, 11, 12, 12, 13, 13];

/// `code` of `len` bits, reversed: deflate sends Huffman codes most significant bit first into an
/// LSB-first bit stream.
const fn reversed(code: u32, len: u8) -> u32 {
    let mut out = 0;
    let mut i = 0;
    while i < len {
        out |= ((code >> i) & 1) << (len - 1 - i);
        i += 1;
    }
    out
}

/// The fixed literal/length code of `symbol` (RFC 1951 §3.2.6), as (bits ready to send, length).
pub(super) const fn fixed_code(symbol: u32) -> (u32, u8) {
    let (code, len) = match symbol {
        0..=143 => (0x30 + symbol, 8),
        144..=255 => (0x190 + symbol - 144, 9),
        256..=279 => (symbol - 256, 7),
        _ => (0xC0 + symbol - 280, 8),
    };
    (reversed(code, len), len)
}

const fn literal_codes() -> [(u32, u8); 256] {
    let mut table = [(0, 0); 256];
    let mut i = 0;
    while i < 256 {
        table[i] = fixed_code(i as u32);
        i += 1;
    }
    table
}

/// Symbol code and extra bits of every match length 0..=258 (entries below 3 unused), as one group of bits.
const fn length_codes() -> [(u32, u8); MAX_MATCH + 1] {
    let mut table = [(0, 0); MAX_MATCH + 1];
    let mut length = MIN_MATCH;
    while length <= MAX_MATCH {
        let mut i = 28;
        while LENGTH_BASE[i] as usize > length {
            i -= 1;
        }
        let (code, len) = fixed_code(257 + i as u32);
        let extra = (length - LENGTH_BASE[i] as usize) as u32;
        table[length] = (code | extra << len, len + LENGTH_EXTRA[i]);
        length += 1;
    }
    table
}

pub(super) static LITERALS: [(u32, u8); 256] = literal_codes();
static LENGTHS: [(u32, u8); MAX_MATCH + 1] = length_codes();

/// The fixed distance code and extra bits of `distance` (1..=32768), as one group of bits.
pub(super) fn distance_code(distance: usize) -> (u32, u8) {
    let i = DISTANCE_BASE.iter().rposition(|&b| b as usize <= distance).expect("distance >= 1");
    let extra = (distance - DISTANCE_BASE[i] as usize) as u32;
    (reversed(i as u32, 5) | extra << 5, 5 + DISTANCE_EXTRA[i])
}

/// An LSB-first bit stream holding one fixed-code deflate block in a zlib stream, written a word at a time:
/// `put` adds at most 31 bits, and `flush` writes the whole bytes. Between two flushes at most 56 bits may be
/// put, so the buffer (at most 7 bits after a flush) never holds more than 63. The encoders of generation 4
/// (here) and 5 (`back_segments`) both write through it.
pub(super) struct Bits {
    out: Vec<u8>,
    buffer: u64,
    count: u32,
}

impl Bits {
    /// The zlib header and the header of one fixed-code block, with room for `capacity` bytes in all.
    pub(super) fn fixed_block(capacity: usize) -> Bits {
        let mut out = Vec::with_capacity(capacity);
        // zlib: deflate with a 32 KiB window, no preset dictionary, "fastest" (CMF·256 + FLG ≡ 0 mod 31).
        out.extend_from_slice(&[0x78, 0x01]);
        let mut bits = Bits { out, buffer: 0, count: 0 };
        // BFINAL = 1, BTYPE = 01 (fixed Huffman codes).
        bits.put((0b011, 3));
        bits
    }

    #[inline(always)]
    pub(super) fn put(&mut self, (bits, len): (u32, u8)) {
        debug_assert!(self.count + len as u32 <= 63);
        self.buffer |= (bits as u64) << self.count;
        self.count += len as u32;
    }

    /// Writes the buffer's whole bytes with one 8-byte store; no branch on how many there are.
    #[inline(always)]
    pub(super) fn flush(&mut self) {
        let bytes = self.count / 8;
        self.out.extend_from_slice(&self.buffer.to_le_bytes());
        self.out.truncate(self.out.len() - 8 + bytes as usize);
        // `bytes` is at most 7, so the shift is at most 56.
        self.buffer >>= bytes * 8;
        self.count -= bytes * 8;
    }

    /// A run of `length >= 3` bytes copied from `distance` back (its code and extra bits), as matches of at
    /// most 258 bytes (none shorter than 3: a remainder of 1 or 2 is taken from the match before it).
    #[inline(always)]
    pub(super) fn run(&mut self, mut length: usize, distance: (u32, u8)) {
        while length >= MIN_MATCH {
            let mut take = length.min(MAX_MATCH);
            if (1..MIN_MATCH).contains(&(length - take)) {
                take = length - MIN_MATCH;
            }
            // Length (at most 8 + 5 bits) and distance (at most 5 + 13 bits): 31 bits.
            self.put(LENGTHS[take]);
            self.put(distance);
            self.flush();
            length -= take;
        }
    }

    /// Ends the block, then the zlib stream with the checksum of `data`, the bytes the block holds.
    pub(super) fn finish(mut self, data: &[u8]) -> Vec<u8> {
        self.put(fixed_code(256));
        self.flush();
        if self.count > 0 {
            self.out.push(self.buffer as u8);
        }
        self.out.extend_from_slice(&simd_adler32::adler32(&data).to_be_bytes());
        self.out
    }
}

/// How many bytes from `at` on equal the bytes `distance` before them (`distance <= at`); overlapping is
/// fine, as in a deflate match (at distance 1 it is the run of the byte before `at`).
#[inline(always)]
fn run_length(data: &[u8], at: usize, distance: usize) -> usize {
    let mut i = at;
    while i + 8 <= data.len() {
        let here = u64::from_le_bytes(data[i..i + 8].try_into().expect("8 bytes"));
        let there = u64::from_le_bytes(data[i - distance..i - distance + 8].try_into().expect("8 bytes"));
        let differ = here ^ there;
        if differ != 0 {
            return i - at + (differ.trailing_zeros() / 8) as usize;
        }
        i += 8;
    }
    while i < data.len() && data[i] == data[i - distance] {
        i += 1;
    }
    i - at
}

/// `rows` (each `row_bytes` long, stored as they are) as a zlib stream of one fixed-code deflate block.
pub fn deflate_rows(rows: &[u8], row_bytes: usize) -> Vec<u8> {
    debug_assert!(row_bytes > 0 && rows.len().is_multiple_of(row_bytes));
    let mut bits = Bits::fixed_block(rows.len() / 8 + 64);
    let above = (row_bytes <= MAX_DISTANCE).then(|| distance_code(row_bytes));
    let left = distance_code(1);
    let mut at = 0;
    if let Some(&first) = rows.first() {
        bits.put(LITERALS[first as usize]);
        bits.flush();
        at = 1;
    }
    while at < rows.len() {
        // The row above first: it is what most of a back repeats, and its runs are the long ones.
        if let Some(above) = above.filter(|_| at >= row_bytes) {
            let run = run_length(rows, at, row_bytes);
            if run >= MIN_MATCH {
                bits.run(run, above);
                at += run;
                continue;
            }
        }
        let run = run_length(rows, at, 1);
        if run >= MIN_MATCH {
            bits.run(run, left);
            at += run;
        } else {
            bits.put(LITERALS[rows[at] as usize]);
            bits.flush();
            at += 1;
        }
    }
    bits.finish(rows)
}

#[cfg(test)]
pub(super) mod tests {
    use super::*;

    /// What a reader does with the stream (also used by `back_segments`' tests).
    pub(in crate::render) fn inflate(stream: &[u8]) -> Vec<u8> {
        miniz_oxide::inflate::decompress_to_vec_zlib(stream).expect("a valid zlib stream")
    }

    /// A xorshift generator: deterministic test images.
    pub(in crate::render) fn noise(seed: &mut u64) -> u64 {
        *seed ^= *seed << 13;
        *seed ^= *seed >> 7;
        *seed ^= *seed << 17;
        *seed
    }

    /// A back-like image: bands of 16 rows, blocks of 8 bytes, most uniform, one in 16 noisy.
    fn blocks(row_bytes: usize, bands: usize, seed: u64) -> Vec<u8> {
        let mut seed = seed | 1;
        let mut rows = vec![0u8; row_bytes * bands * 16];
        for band in 0..bands {
            for block in 0..row_bytes.div_ceil(8) {
                let colour = (noise(&mut seed) % 14) as u8 * 0x11;
                let detailed = noise(&mut seed).is_multiple_of(16);
                for y in 0..16 {
                    for x in block * 8..(block * 8 + 8).min(row_bytes) {
                        let b = if detailed { (noise(&mut seed) % 4) as u8 * 0x45 } else { colour };
                        rows[(band * 16 + y) * row_bytes + x] = b;
                    }
                }
            }
        }
        rows
    }

    #[test]
    fn readers_get_the_rows_back() {
        let mut seed = 0x2545_f491_4f6c_dd1d;
        let mut cases: Vec<(Vec<u8>, usize)> = vec![
            (vec![7], 1),
            (vec![1, 2, 3], 3),
            (vec![0; 3], 1),
            (vec![9; 100_000], 500),
            (blocks(496, 86, 1), 496),
            (blocks(13, 5, 2), 13),
            ((0..200_000).map(|_| noise(&mut seed) as u8).collect(), 1000),
        ];
        // Runs of every length around the 258-byte limit, at distance 1 and from the row above.
        for run in [3, 4, 257, 258, 259, 260, 261, 515, 516, 517, 518, 1000] {
            let mut rows = vec![5u8; run + 2];
            rows[0] = 1;
            rows[run + 1] = 2;
            cases.push((rows.clone(), rows.len()));
            let mut two = (0..rows.len()).map(|i| (i * 37 % 251) as u8).collect::<Vec<_>>();
            two.extend_from_slice(&two.clone());
            let len = two.len() / 2;
            cases.push((two, len));
        }
        // Rows longer than a deflate distance reaches.
        cases.push((blocks(40_000, 1, 3), 40_000));
        for (rows, row_bytes) in cases {
            assert_eq!(inflate(&deflate_rows(&rows, row_bytes)), rows, "{} bytes, rows of {row_bytes}", rows.len());
        }
    }

    #[test]
    fn block_images_come_out_small() {
        let rows = blocks(496, 86, 4);
        let stream = deflate_rows(&rows, 496);
        // A noisy block costs a literal a byte (~70 kB here); the uniform ones a few bits a row.
        assert!(stream.len() < 90_000, "{} bytes for {}", stream.len(), rows.len());
    }

    #[test]
    fn fixed_codes_are_those_of_rfc_1951() {
        // Literal 0 is 00110000, 144 is 110010000, end of block 0000000, symbol 280 11000000; sent reversed.
        assert_eq!(fixed_code(0), (0b00001100, 8));
        assert_eq!(fixed_code(144), (0b000010011, 9));
        assert_eq!(fixed_code(256), (0, 7));
        assert_eq!(fixed_code(280), (0b00000011, 8));
        // Length 3 is symbol 257 (0000001), no extra bits; length 258 is symbol 285 (11000101).
        assert_eq!(LENGTHS[3], (0b1000000, 7));
        assert_eq!(LENGTHS[258], (0b10100011, 8));
        // Distance 496 is code 17 (base 385, 7 extra bits: 111).
        assert_eq!(distance_code(496), (reversed(17, 5) | 111 << 5, 12));
    }
}
