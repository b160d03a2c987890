//! A font file's twin without glyph names, the source of font subsets from generation 4 on.
//!
//! `subsetter` copies the glyph names of a `post` table of version 2.0 into each subset, and to find the
//! names of the few glyphs a certificate uses it first collects the names of every glyph of the font: for
//! IPAmj明朝 (~60k glyphs, a 650 kB `post` table) that was ~9 % of the engine's CPU at load, paid again for
//! almost every certificate (each has its own glyph set, so the subset cache rarely hits). A PDF never
//! uses TrueType glyph names (CIDFontType2 draws by glyph id and extracts text by ToUnicode), so from
//! generation 4 on subsets are cut from a twin whose `post` table is version 3.0 (the same header, no
//! names), which `subsetter` passes through untouched.
//!
//! The twin shares the original's bytes: one buffer holds a new table directory, then the original file
//! unchanged, then the new `post` table. The directory points into the original's tables (offsets moved by
//! the directory's size, checksums kept) and at the new `post` (its own checksum). The original is the
//! buffer's middle, a valid font file on its own, so the renderer keeps a single copy of ~52 MB of fonts.
//! The unreferenced bytes in between (the original's directory and `post`) are allowed by OpenType and
//! ignored by every reader; `head.checkSumAdjustment` is not recomputed, since `subsetter` rewrites it for
//! each subset. The twin is a pure function of the font file, so the recorded font digest (of the files)
//! still identifies everything a certificate was drawn with.

use std::ops::Range;

const POST: [u8; 4] = *b"post";
const POST_VERSION_2: u32 = 0x0002_0000;
const POST_VERSION_3: u32 = 0x0003_0000;
/// The fixed header of every `post` version: version, italic angle, underline position and thickness,
/// fixed pitch, four memory hints.
const POST_HEADER: usize = 32;

fn be32(data: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_be_bytes(data.get(at..at + 4)?.try_into().ok()?))
}

/// The OpenType table checksum: the sum of the big-endian 32-bit words, the last one zero-padded.
fn checksum(table: &[u8]) -> u32 {
    table.chunks(4).fold(0u32, |sum, word| {
        let mut padded = [0u8; 4];
        padded[..word.len()].copy_from_slice(word);
        sum.wrapping_add(u32::from_be_bytes(padded))
    })
}

/// A buffer holding `original`'s twin without glyph names (from offset 0) and `original` itself (at the
/// returned range), or `None` when there are no names to drop: no `post` table of version 2.0, or not a
/// single-font sfnt file.
pub(crate) fn without_glyph_names(original: &[u8]) -> Option<(Vec<u8>, Range<usize>)> {
    if !matches!(be32(original, 0)?, 0x0001_0000 | 0x7472_7565 | 0x4F54_544F) {
        return None;
    }
    let tables = u16::from_be_bytes(original.get(4..6)?.try_into().ok()?) as usize;
    let directory = 12 + 16 * tables;
    let records = original.get(12..directory)?;
    let post = records.chunks_exact(16).find(|r| r[..4] == POST)?;
    let (post_offset, post_length) = (be32(post, 8)? as usize, be32(post, 12)? as usize);
    let post_table = original.get(post_offset..post_offset.checked_add(post_length)?)?;
    if post_length < POST_HEADER || be32(post_table, 0)? != POST_VERSION_2 {
        return None;
    }
    let mut nameless_post = post_table[..POST_HEADER].to_vec();
    nameless_post[..4].copy_from_slice(&POST_VERSION_3.to_be_bytes());

    // Tables start on 4-byte boundaries: the original keeps its alignment if it starts on one.
    let start = directory.next_multiple_of(4);
    let post_at = (start + original.len()).next_multiple_of(4);
    let end = post_at + POST_HEADER;
    u32::try_from(end).ok()?;
    let mut buffer = Vec::with_capacity(end);
    // sfnt version, table count and the binary search fields: the same tables, so the same header.
    buffer.extend_from_slice(&original[..12]);
    for record in records.chunks_exact(16) {
        buffer.extend_from_slice(&record[..4]);
        if record[..4] == POST {
            buffer.extend_from_slice(&checksum(&nameless_post).to_be_bytes());
            buffer.extend_from_slice(&(post_at as u32).to_be_bytes());
            buffer.extend_from_slice(&(POST_HEADER as u32).to_be_bytes());
        } else {
            let offset = (be32(record, 8)? as usize).checked_add(start)?;
            buffer.extend_from_slice(&record[4..8]);
            buffer.extend_from_slice(&u32::try_from(offset).ok()?.to_be_bytes());
            buffer.extend_from_slice(&record[12..16]);
        }
    }
    buffer.resize(start, 0);
    buffer.extend_from_slice(original);
    buffer.resize(post_at, 0);
    buffer.extend_from_slice(&nameless_post);
    Some((buffer, start..start + original.len()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use skrifa::raw::{FontRef, TableProvider};

    fn mincho() -> Vec<u8> {
        std::fs::read(crate::render::FontPaths::default().mincho).expect("fonts (run scripts/setup.sh)")
    }

    /// The tables of a font file, by tag, as the directory says.
    fn tables(font: &[u8]) -> Vec<([u8; 4], u32, Vec<u8>)> {
        let count = u16::from_be_bytes([font[4], font[5]]) as usize;
        font[12..12 + 16 * count]
            .chunks_exact(16)
            .map(|r| {
                let (offset, length) = (be32(r, 8).unwrap() as usize, be32(r, 12).unwrap() as usize);
                assert_eq!(offset % 4, 0, "{:?} aligned", std::str::from_utf8(&r[..4]));
                (r[..4].try_into().unwrap(), be32(r, 4).unwrap(), font[offset..offset + length].to_vec())
            })
            .collect()
    }

    #[test]
    fn the_twin_has_every_table_but_the_glyph_names() {
        let original = mincho();
        let (twin, range) = without_glyph_names(&original).expect("IPAmj明朝 has glyph names");
        assert_eq!(&twin[range], &original[..], "the original is kept whole");
        let (before, after) = (tables(&original), tables(&twin));
        assert_eq!(before.len(), after.len());
        for ((tag, sum, data), (tag2, sum2, data2)) in before.iter().zip(&after) {
            assert_eq!(tag, tag2);
            // head's checksum is taken with its whole-file checkSumAdjustment as zero.
            let mut summed = data2.clone();
            if tag == b"head" {
                summed[8..12].fill(0);
            }
            assert_eq!(*sum2, checksum(&summed), "{:?}: checksum", std::str::from_utf8(tag));
            if *tag == POST {
                assert_eq!(data2.len(), POST_HEADER);
                assert_eq!(be32(data2, 0), Some(POST_VERSION_3));
                assert_eq!(data2[4..], data[4..POST_HEADER], "same header");
            } else {
                assert_eq!((sum, data), (sum2, data2));
            }
        }
        let font = FontRef::new(&twin).expect("a font skrifa reads");
        assert_eq!(font.post().unwrap().version(), skrifa::raw::types::Version16Dot16::VERSION_3_0);
        assert_eq!(font.maxp().unwrap().num_glyphs(), FontRef::new(&original).unwrap().maxp().unwrap().num_glyphs());
        // Nothing to drop the second time.
        assert!(without_glyph_names(&twin).is_none());
    }

    #[test]
    fn subsets_of_the_twin_differ_only_in_the_post_table() {
        let original = mincho();
        let (twin, _) = without_glyph_names(&original).unwrap();
        let remapper = subsetter::GlyphRemapper::new_from_glyphs_sorted(&[5, 100, 2000, 30_000]);
        let named = subsetter::subset(&original, 0, &remapper).unwrap();
        let nameless = subsetter::subset(&twin, 0, &remapper).unwrap();
        let (named, nameless) = (tables(&named), tables(&nameless));
        assert_eq!(named.len(), nameless.len());
        for ((tag, _, data), (tag2, _, data2)) in named.iter().zip(&nameless) {
            assert_eq!(tag, tag2);
            // head differs in the whole-file checksum adjustment only.
            match tag {
                b"post" => assert_eq!(data2.len(), POST_HEADER),
                b"head" => assert_eq!((&data[..8], &data[12..]), (&data2[..8], &data2[12..])),
                _ => assert!(data == data2, "{:?} differs", std::str::from_utf8(tag)),
            }
        }
    }

    #[test]
    fn fonts_without_names_and_other_files_are_left_alone() {
        assert!(without_glyph_names(b"").is_none());
        assert!(without_glyph_names(b"ttcf\0\x01\0\0").is_none());
        let original = mincho();
        let (twin, _) = without_glyph_names(&original).unwrap();
        assert!(without_glyph_names(&twin[..twin.len() - 1]).is_none(), "a truncated post table");
    }
}
