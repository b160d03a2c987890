//! Certificate rendering: a layout turns a ready-to-render record into a display list, which is
//! drawn twice, as a vector PDF (the printed front) and as a grayscale raster (the source of the
//! scrambled back image). One display list for both means the back can never show something
//! the front does not.
//!
//! [`Renderer`] owns what is expensive and shared: the font files (loaded once), the glyph
//! bitmap cache of the rasterizer and the font subset cache of the PDF writer. It is `Sync`;
//! share one per process.

mod back_image;
pub mod back_runs;
pub mod back_segments;
pub mod bitmap;
pub mod display_list;
pub mod fonts;
pub mod layout;
mod nameless_font;
pub mod pantograph;
pub mod pdf;
pub mod raster;
pub mod subset_cache;

#[cfg(test)]
mod tests;

use bcl_projections::record::{CertificateDocument, ResidentRecordCertificate};

pub use display_list::{DisplayList, Item, Page, TextRun};
pub use fonts::{FontPaths, FontRole, FontSet, Glyph, SubsetSource};
pub use pdf::{BackPage, Generation, PdfMeta, PdfTimestamp, WrittenPdf};
pub use raster::{GrayRaster, BACK_IMAGE_DPI};

/// Why a certificate could not be rendered. Messages name the field and the rule, never the
/// value: certificate fields are personal data.
#[derive(Debug, thiserror::Error)]
pub enum RenderError {
    #[error("cannot read the {role} font file: {source}")]
    FontIo {
        role: &'static str,
        #[source]
        source: std::io::Error,
    },
    #[error("the {role} font file is not usable: {reason}")]
    FontInvalid { role: &'static str, reason: String },
    #[error("field {field}: contains a character or variation sequence the certificate font cannot draw")]
    UndrawableCharacter { field: String },
    #[error("field {field}: text does not fit its cell even at the minimum font size")]
    LayoutOverflow { field: String },
    #[error("field {field}: not a valid date from 1873-01-01 (Meiji 6) onwards")]
    DateOutOfRange { field: String },
    #[error("field {field}: {reason}")]
    ImageUnreadable { field: String, reason: &'static str },
    #[error("font subsetting failed: {reason}")]
    Subset { reason: String },
    #[error("back page {index} is malformed: {reason}")]
    BadBackPage { index: usize, reason: &'static str },
    #[error("{backs} back pages given for {fronts} front pages")]
    BackPageCount { fronts: usize, backs: usize },
}

/// Subsets kept per renderer (each a few tens of KB).
const SUBSET_CACHE_CAPACITY: usize = 1024;

/// The rendering facade used by issuance: layout, raster and PDF with shared fonts and caches.
pub struct Renderer {
    fonts: FontSet,
    glyphs: raster::GlyphCache,
    subsets: subset_cache::SubsetCache,
}

impl Renderer {
    /// Loads the fonts from `paths` (reads ~52 MB; do it once at startup).
    pub fn load(paths: &FontPaths) -> Result<Renderer, RenderError> {
        Ok(Renderer {
            fonts: FontSet::load(paths)?,
            glyphs: raster::GlyphCache::default(),
            subsets: subset_cache::SubsetCache::new(SUBSET_CACHE_CAPACITY),
        })
    }

    /// Loads the fonts from the Debian package paths ([`FontPaths::default`]).
    pub fn load_default() -> Result<Renderer, RenderError> {
        Self::load(&FontPaths::default())
    }

    /// Hex SHA-256 of the font files; record it with every issuance.
    pub fn font_digest(&self) -> &str {
        self.fonts.font_digest()
    }

    pub fn fonts(&self) -> &FontSet {
        &self.fonts
    }

    /// Lays out every sheet of every copy of a 住民票の写し.
    pub fn layout_resident_record(&self, cert: &ResidentRecordCertificate) -> Result<DisplayList, RenderError> {
        layout::resident_record::layout(&self.fonts, cert)
    }

    /// Lays out every sheet of every copy of any certificate.
    pub fn layout(&self, doc: &CertificateDocument) -> Result<DisplayList, RenderError> {
        match doc {
            CertificateDocument::ResidentRecord(c) => layout::resident_record::layout(&self.fonts, c),
            CertificateDocument::ResidentRecordItems(c) => layout::resident_record_items::layout(&self.fonts, c),
            CertificateDocument::Seal(c) => layout::seal_registration::layout(&self.fonts, c),
            CertificateDocument::Tax(c) => layout::tax::layout(&self.fonts, c),
            CertificateDocument::FamilyRegister(c) => layout::family_register::layout(&self.fonts, c),
            CertificateDocument::DisasterDamage(c) => layout::disaster_damage::layout(&self.fonts, c),
        }
    }

    /// Draws one page at `dpi` (use [`BACK_IMAGE_DPI`] for the back image).
    pub fn rasterize(&self, page: &Page, dpi: f32) -> GrayRaster {
        raster::rasterize(&self.fonts, &self.glyphs, page, dpi)
    }

    /// Writes the PDF: each front page followed by its back page (`backs` empty: fronts only), as the
    /// current generation writes it.
    pub fn write_pdf(&self, list: &DisplayList, backs: &[BackPage], meta: &PdfMeta) -> Result<Vec<u8>, RenderError> {
        Ok(self.write_pdf_as(list, backs, meta, Generation::CURRENT)?.pdf)
    }

    /// [`Self::write_pdf`] as a given renderer generation wrote it (reproduction), with the file's SHA-256.
    pub fn write_pdf_as(
        &self,
        list: &DisplayList,
        backs: &[BackPage],
        meta: &PdfMeta,
        generation: Generation,
    ) -> Result<WrittenPdf, RenderError> {
        pdf::write_pdf(&self.fonts, &self.subsets, list, backs, meta, generation)
    }
}
