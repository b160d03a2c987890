//! Font subsets ready to embed, cached by glyph set.
//!
//! Subsetting a font is the most expensive step of writing a certificate PDF. A
//! subset is a pure function of (font, source bytes, sorted glyph set), so it can be shared by every document
//! that uses exactly that set: a reproduction by an auditor, a retried request, a second copy,
//! the same household asking again, and above all the fixed glyphs of the form itself when a
//! font is used only by the form (the heading font). The cache never changes the output, only
//! how fast it is produced.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};

use sha2::{Digest, Sha256};
use subsetter::GlyphRemapper;

use super::fonts::{FontRole, FontSet, SubsetSource};
use super::RenderError;

/// A subset of one font, for a /FontFile2 stream.
#[derive(Debug)]
pub struct EmbeddedSubset {
    /// Six capital letters derived from the glyph set, as PDF requires for subset font names.
    pub tag: String,
    /// `original_gids[new_gid]`: glyph 0 is .notdef, then the requested glyphs in ascending order.
    pub original_gids: Vec<u16>,
    /// The subset font file, stored uncompressed: TrueType outlines of CJK glyphs shrink only
    /// ~20% under zlib level 1 (54 KB → 43 KB for a 4-person sheet) while compressing costs about
    /// as much as subsetting itself, which would push a fresh certificate past its 1 ms budget.
    pub data: Vec<u8>,
    new_gids: HashMap<u16, u16>,
}

impl EmbeddedSubset {
    pub fn new_gid(&self, original: u16) -> Option<u16> {
        self.new_gids.get(&original).copied()
    }
}

/// Font, source and sorted glyph set: the source too, since a generation-3 subset (with glyph names) and a
/// generation-4 one differ.
type Key = (FontRole, SubsetSource, Vec<u16>);

/// Bounded, thread-safe cache of subsets. When full it is emptied and refilled: the working set
/// (form glyphs, frequent households) comes back at once, and no eviction order has to be kept.
pub struct SubsetCache {
    entries: Mutex<HashMap<Key, Arc<EmbeddedSubset>>>,
    capacity: usize,
}

impl SubsetCache {
    pub fn new(capacity: usize) -> Self {
        SubsetCache { entries: Mutex::new(HashMap::new()), capacity }
    }

    /// Returns the subset of `role`'s font, cut from `source`, holding exactly the glyphs in `glyphs` (keys).
    pub fn get_or_build(
        &self,
        fonts: &FontSet,
        role: FontRole,
        source: SubsetSource,
        glyphs: &BTreeMap<u16, char>,
    ) -> Result<Arc<EmbeddedSubset>, RenderError> {
        let key: Vec<u16> = glyphs.keys().copied().collect();
        let lookup = (role, source, key);
        if let Some(hit) = self.entries.lock().expect("subset cache poisoned").get(&lookup) {
            return Ok(hit.clone());
        }
        // Built outside the lock so two threads never wait on each other's subsetting.
        let built = Arc::new(build(fonts, role, source, &lookup.2)?);
        let mut entries = self.entries.lock().expect("subset cache poisoned");
        if entries.len() >= self.capacity {
            entries.clear();
        }
        Ok(entries.entry(lookup).or_insert(built).clone())
    }
}

fn build(fonts: &FontSet, role: FontRole, source: SubsetSource, sorted: &[u16]) -> Result<EmbeddedSubset, RenderError> {
    let remapper = GlyphRemapper::new_from_glyphs_sorted(sorted);
    let data = subsetter::subset(fonts.font(role).subset_source(source), 0, &remapper)
        .map_err(|e| RenderError::Subset { reason: e.to_string() })?;
    let original_gids: Vec<u16> = remapper.remapped_gids().collect();
    let new_gids = original_gids.iter().enumerate().map(|(new, old)| (*old, new as u16)).collect();
    let mut hasher = Sha256::new();
    hasher.update([role as u8]);
    for g in sorted {
        hasher.update(g.to_be_bytes());
    }
    let tag = hasher.finalize()[..6].iter().map(|b| (b'A' + b % 26) as char).collect();
    Ok(EmbeddedSubset { tag, original_gids, data, new_gids })
}
