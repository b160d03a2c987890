//! The two certificate fonts, loaded once, and the mapping of text to glyphs.
//!
//! Japanese certificate text needs no OpenType shaping (no ligatures, no kerning in horizontal
//! setting), but it does need Ideographic Variation Sequences: a registered name such as 葛󠄀 is a
//! base character followed by a selector, and the selector picks a different glyph through the
//! font's cmap format 14 subtable. "Shaping" here is therefore: split into clusters of base
//! character + optional selector, map each cluster to one glyph, and sum advance widths.
//!
//! A character the font cannot draw is an error, never a tofu box: printing the wrong shape of a
//! name is a wrong issuance (誤交付).

use std::ops::Range;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use sha2::{Digest, Sha256};
use skrifa::charmap::{MapVariant, MappingIndex};
use skrifa::prelude::{LocationRef, Size};
use skrifa::raw::TableProvider;
use skrifa::string::StringId;
use skrifa::{FontRef, MetadataProvider};

use super::RenderError;

/// Which of the two fonts a text run uses. The display list names fonts by role so that the
/// layout does not depend on file names.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum FontRole {
    /// IPAmj明朝: body text, names and addresses (covers the MJ character set incl. IVS).
    Mincho,
    /// IPAexゴシック: headings and labels.
    Gothic,
}

impl FontRole {
    /// All roles, in the order their files enter [`FontSet::font_digest`].
    pub const ALL: [FontRole; 2] = [FontRole::Mincho, FontRole::Gothic];

    fn index(self) -> usize {
        match self {
            FontRole::Mincho => 0,
            FontRole::Gothic => 1,
        }
    }

    fn label(self) -> &'static str {
        match self {
            FontRole::Mincho => "mincho",
            FontRole::Gothic => "gothic",
        }
    }
}

/// Where the font files are. The defaults are the paths of the Debian packages
/// `fonts-ipamj-mincho` and `fonts-ipaexfont-gothic` (see fixtures/fonts/README.md).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FontPaths {
    pub mincho: PathBuf,
    pub gothic: PathBuf,
}

impl Default for FontPaths {
    fn default() -> Self {
        FontPaths {
            mincho: PathBuf::from("/usr/share/fonts/truetype/ipamj/ipamjm.ttf"),
            gothic: PathBuf::from("/usr/share/fonts/opentype/ipaexfont-gothic/ipaexg.ttf"),
        }
    }
}

/// One glyph of a shaped run: what the PDF writer and the rasterizer both need.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Glyph {
    /// Glyph id in the original (unsubsetted) font.
    pub id: u16,
    /// Advance width as a fraction of the em (multiply by the font size in points).
    pub advance: f32,
    /// The base character of the cluster, without any variation selector. This is what text
    /// extraction (ToUnicode) returns; the selector only chose the glyph's shape.
    pub base: char,
}

/// Which bytes a font subset is cut from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SubsetSource {
    /// The font file as it is (generations 1–3: their subsets carry the glyph names).
    File,
    /// The file's twin without glyph names (generation 4 on, `super::nameless_font`).
    Nameless,
}

/// A parsed font file kept in memory for the life of the renderer.
pub struct LoadedFont {
    /// The font file at `file`; where the file has glyph names, the whole buffer is its twin without them
    /// (`super::nameless_font`), sharing the file's bytes.
    buffer: Arc<[u8]>,
    file: Range<usize>,
    mapping: MappingIndex,
    units_per_em: u16,
    /// Advance widths of every glyph in font units, read once from hmtx so measuring is an index.
    advances: Vec<u16>,
    /// PostScript name, used for the embedded font's /BaseFont.
    pub(crate) postscript_name: String,
    pub(crate) ascent: f32,
    pub(crate) descent: f32,
    pub(crate) cap_height: f32,
    pub(crate) bbox: [f32; 4],
}

impl LoadedFont {
    fn parse(role: FontRole, file: Vec<u8>) -> Result<LoadedFont, RenderError> {
        let invalid = |reason: String| RenderError::FontInvalid { role: role.label(), reason };
        let (buffer, file) = match super::nameless_font::without_glyph_names(&file) {
            Some((twin, range)) => (Arc::<[u8]>::from(twin), range),
            None => (Arc::<[u8]>::from(file.as_slice()), 0..file.len()),
        };
        let data = &buffer[file.clone()];
        let font = FontRef::new(data).map_err(|e| invalid(e.to_string()))?;
        if font.glyf().is_err() {
            // The PDF writer embeds CIDFontType2 (TrueType outlines) only.
            return Err(invalid("no glyf table (only TrueType outlines are supported)".into()));
        }
        let mapping = MappingIndex::new(&font);
        if !mapping.charmap(&font).has_map() {
            return Err(invalid("no Unicode cmap subtable".into()));
        }
        let metrics = font.metrics(Size::unscaled(), LocationRef::default());
        let glyph_metrics = font.glyph_metrics(Size::unscaled(), LocationRef::default());
        let advances = (0..metrics.glyph_count as u32)
            .map(|g| glyph_metrics.advance_width(g.into()).unwrap_or(0.0).round() as u16)
            .collect();
        let postscript_name = font
            .localized_strings(StringId::POSTSCRIPT_NAME)
            .english_or_first()
            .map(|s| s.chars().filter(|c| c.is_ascii_alphanumeric() || *c == '-').collect())
            .filter(|s: &String| !s.is_empty())
            .unwrap_or_else(|| format!("BclFont-{}", role.label()));
        let bbox = metrics.bounds.map(|b| [b.x_min, b.y_min, b.x_max, b.y_max]).unwrap_or([
            0.0,
            metrics.descent,
            metrics.units_per_em as f32,
            metrics.ascent,
        ]);
        Ok(LoadedFont {
            units_per_em: metrics.units_per_em,
            advances,
            postscript_name,
            ascent: metrics.ascent,
            descent: metrics.descent,
            cap_height: metrics.cap_height.unwrap_or(metrics.ascent),
            bbox,
            mapping,
            buffer,
            file,
        })
    }

    /// The whole font file.
    pub fn data(&self) -> &[u8] {
        &self.buffer[self.file.clone()]
    }

    /// The bytes subsets are cut from: the file, or its twin without glyph names (the file itself when it
    /// has none).
    pub fn subset_source(&self, source: SubsetSource) -> &[u8] {
        match source {
            SubsetSource::File => self.data(),
            SubsetSource::Nameless => &self.buffer,
        }
    }

    /// A skrifa view of the font. Parsing the table directory is a few hundred nanoseconds, so
    /// views are made on demand rather than stored (which would make the struct self-referential).
    pub fn font_ref(&self) -> FontRef<'_> {
        FontRef::new(self.data()).expect("validated at load")
    }

    pub fn units_per_em(&self) -> u16 {
        self.units_per_em
    }

    /// Advance of glyph `id` in font units (0 for ids outside the font).
    pub fn advance_units(&self, id: u16) -> u16 {
        self.advances.get(id as usize).copied().unwrap_or(0)
    }
}

/// The fonts every certificate is drawn with, plus the digest that identifies them.
pub struct FontSet {
    fonts: [LoadedFont; 2],
    digest: String,
}

fn is_variation_selector(c: char) -> bool {
    matches!(c as u32, 0xFE00..=0xFE0F | 0xE0100..=0xE01EF)
}

impl FontSet {
    /// Reads and parses both font files. Called once at startup: the mincho file is 46 MB.
    pub fn load(paths: &FontPaths) -> Result<FontSet, RenderError> {
        let read = |role: FontRole, path: &Path| -> Result<Vec<u8>, RenderError> {
            std::fs::read(path).map_err(|source| RenderError::FontIo { role: role.label(), source })
        };
        let mincho = read(FontRole::Mincho, &paths.mincho)?;
        let gothic = read(FontRole::Gothic, &paths.gothic)?;
        let mut hasher = Sha256::new();
        hasher.update(&mincho);
        hasher.update(&gothic);
        let digest = hex::encode(hasher.finalize());
        Ok(FontSet {
            fonts: [LoadedFont::parse(FontRole::Mincho, mincho)?, LoadedFont::parse(FontRole::Gothic, gothic)?],
            digest,
        })
    }

    /// Hex SHA-256 over the font files in [`FontRole::ALL`] order. Recorded with every issuance
    /// so an auditor can reproduce a certificate with exactly the same fonts.
    pub fn font_digest(&self) -> &str {
        &self.digest
    }

    pub fn font(&self, role: FontRole) -> &LoadedFont {
        &self.fonts[role.index()]
    }

    /// Maps `text` to glyphs of `role`'s font. `field` names the record field for the error
    /// (e.g. `persons[1].family_name`); the text itself never appears in an error.
    ///
    /// A variation selector with no preceding base character, a base character missing from the
    /// font, or a variation sequence the font does not register is `UndrawableCharacter`.
    pub fn shape(&self, role: FontRole, text: &str, field: &str) -> Result<Vec<Glyph>, RenderError> {
        let loaded = self.font(role);
        let font = loaded.font_ref();
        let charmap = loaded.mapping.charmap(&font);
        let undrawable = || RenderError::UndrawableCharacter { field: field.to_string() };
        let upem = loaded.units_per_em as f32;
        let mut glyphs = Vec::with_capacity(text.len() / 2);
        let mut chars = text.chars().peekable();
        while let Some(base) = chars.next() {
            if is_variation_selector(base) {
                return Err(undrawable());
            }
            let nominal = charmap.map(base).ok_or_else(undrawable)?;
            let id = match chars.peek().copied().filter(|c| is_variation_selector(*c)) {
                Some(selector) => {
                    chars.next();
                    match charmap.map_variant(base, selector) {
                        Some(MapVariant::UseDefault) => nominal,
                        Some(MapVariant::Variant(g)) => g,
                        None => return Err(undrawable()),
                    }
                }
                None => nominal,
            };
            // Glyph 0 is .notdef: a cmap pointing there is a gap in the font, not a glyph.
            let id = u16::try_from(id.to_u32()).ok().filter(|g| *g != 0).ok_or_else(undrawable)?;
            glyphs.push(Glyph { id, advance: loaded.advance_units(id) as f32 / upem, base });
        }
        Ok(glyphs)
    }
}

/// Width of a shaped run in points at `size`, with `tracking` points added after each glyph but
/// the last.
pub fn run_width(glyphs: &[Glyph], size: f32, tracking: f32) -> f32 {
    let advance: f32 = glyphs.iter().map(|g| g.advance).sum::<f32>() * size;
    advance + tracking * glyphs.len().saturating_sub(1) as f32
}
