//! The encoding of the scrambled back image of generation 3 (`Generation::LatentImageFastDeflate`; generation 4
//! writes its own stream, `back_runs`).
//!
//! A back is an indexed image of 16×16 blocks: most rows of a block repeat the row above (blank paper
//! scrambles to blocks of one colour), so after the PNG "Up" predictor (each byte minus the byte above)
//! the stream is mostly zero runs with the text blocks' detail between them. `fdeflate` encodes exactly
//! that shape (zero runs and literals, one fixed Huffman table) in one pass, ~2.5× faster than miniz at
//! level 1 on the unpredicted rows and about as small. A PDF reader undoes the predictor
//! (`/DecodeParms << /Predictor 12 ... >>`), so every reader sees the same pixels as before.
//!
//! The bytes are part of the issued certificate: the function must stay a pure function of its input
//! (one `write_data` call over the whole predicted stream, since fdeflate's runs end at call boundaries),
//! and its output is pinned by the generation-3 goldens (`engine/tests/golden/back-v3`).

/// `rows` (each `row_bytes` long) with the PNG Up predictor applied (a filter-type byte 2 before each
/// row), deflated into a zlib stream.
pub(crate) fn deflate_up_predicted(rows: &[u8], row_bytes: usize) -> Vec<u8> {
    debug_assert!(row_bytes > 0 && rows.len().is_multiple_of(row_bytes));
    thread_local! {
        /// The predicted rows (~680 kB for an A4 back), kept per thread: a fresh buffer of that size is
        /// fresh pages from the kernel for every certificate.
        static PREDICTED: std::cell::RefCell<Vec<u8>> = const { std::cell::RefCell::new(Vec::new()) };
    }
    PREDICTED.with(|cell| {
        let mut predicted = cell.borrow_mut();
        predicted.clear();
        predicted.reserve(rows.len() + rows.len() / row_bytes);
        let mut above: &[u8] = &[];
        for row in rows.chunks_exact(row_bytes) {
            predicted.push(2);
            if above.is_empty() {
                predicted.extend_from_slice(row);
            } else {
                predicted.extend(row.iter().zip(above).map(|(b, a)| b.wrapping_sub(*a)));
            }
            above = row;
        }
        let deflated = fdeflate::compress_to_vec(&predicted);
        // A much larger image than a sheet's back is not worth keeping memory for.
        if predicted.capacity() > 4 << 20 {
            *predicted = Vec::new();
        }
        deflated
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Undoes the predictor the way a PDF reader does.
    fn decode(stream: &[u8], row_bytes: usize) -> Vec<u8> {
        let predicted = miniz_oxide::inflate::decompress_to_vec_zlib(stream).expect("a valid zlib stream");
        let mut out: Vec<u8> = Vec::new();
        for row in predicted.chunks_exact(row_bytes + 1) {
            assert_eq!(row[0], 2, "every row says Up");
            let start = out.len();
            for (i, &b) in row[1..].iter().enumerate() {
                let above = if start == 0 { 0 } else { out[start - row_bytes + i] };
                out.push(b.wrapping_add(above));
            }
        }
        out
    }

    #[test]
    fn readers_get_the_rows_back() {
        let row_bytes = 40;
        let mut rows = vec![0x77u8; row_bytes * 48];
        for (i, b) in rows.iter_mut().enumerate() {
            if (i / row_bytes / 16 + i % row_bytes / 8) % 3 == 0 {
                *b = (i * 31 % 251) as u8;
            }
        }
        assert_eq!(decode(&deflate_up_predicted(&rows, row_bytes), row_bytes), rows);
        let one_row = [1u8, 2, 3];
        assert_eq!(decode(&deflate_up_predicted(&one_row, 3), 3), one_row);
    }
}
