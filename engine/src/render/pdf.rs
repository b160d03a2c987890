//! DisplayList → PDF bytes: A4 pages, fonts embedded as TrueType CID subsets (Identity-H, with a
//! ToUnicode map so text can be extracted and searched), one back page per front carrying the
//! caller's scrambled image.
//!
//! Output is a pure function of the inputs: objects are numbered in a fixed order, subsets are
//! built from sorted glyph sets, no clock is read, and the document /ID is a hash of the body.
//! Auditors re-render a certificate from history and compare bytes, under the [`Generation`] it was
//! issued with.

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::rc::Rc;
use std::sync::Arc;

use miniz_oxide::deflate::core::{
    compress, create_comp_flags_from_zip_params, CompressorOxide, TDEFLFlush, TDEFLStatus,
};
use pdf_writer::types::{CidFontType, FontFlags, SystemInfo};
use pdf_writer::{Content, Date, Filter, Finish, Name, Pdf, Rect, Ref, Str, TextStr};
use sha2::{Digest, Sha256};

use super::display_list::{DisplayList, Item, Page, TextRun, A4_HEIGHT, A4_WIDTH};
use super::fonts::{FontRole, FontSet, Glyph, SubsetSource};
use super::pantograph::{self, Pantograph, PathOp};
use super::subset_cache::{EmbeddedSubset, SubsetCache};
use super::RenderError;

/// The scrambled image for the back of one sheet, as an indexed-colour bitmap.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BackPage {
    pub width: u32,
    pub height: u32,
    /// RGB colours; index i of the image means `palette[i]`. At most 2^bits_per_index entries.
    pub palette: Vec<[u8; 3]>,
    /// 1, 2, 4 or 8.
    pub bits_per_index: u8,
    /// Row-major indices, rows packed MSB-first, each row padded to a whole byte.
    pub packed_indices: Vec<u8>,
}

impl BackPage {
    fn validate(&self, index: usize) -> Result<(), RenderError> {
        let bad = |reason: &'static str| RenderError::BadBackPage { index, reason };
        if !matches!(self.bits_per_index, 1 | 2 | 4 | 8) {
            return Err(bad("bits_per_index must be 1, 2, 4 or 8"));
        }
        if self.width == 0 || self.height == 0 {
            return Err(bad("empty image"));
        }
        if self.palette.is_empty() || self.palette.len() > 1 << self.bits_per_index {
            return Err(bad("palette size does not match bits_per_index"));
        }
        let row = (self.width as usize * self.bits_per_index as usize).div_ceil(8);
        if self.packed_indices.len() != row * self.height as usize {
            return Err(bad("packed_indices length does not match width, height and bits_per_index"));
        }
        Ok(())
    }
}

/// Document metadata. Everything that varies between two renderings of the same certificate
/// must come in here, so that a reproduction can pass the same values.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct PdfMeta {
    /// Printed on each back page beside the image, and written as the document subject.
    pub certificate_id: String,
    /// Document title (e.g. 住民票の写し). Must not contain personal data.
    pub title: String,
    /// The issuance time, Japan time; `None` leaves /CreationDate out.
    pub creation_date: Option<PdfTimestamp>,
}

/// A wall-clock time in Japan time (UTC+9), as recorded by the issuance.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PdfTimestamp {
    pub year: u16,
    pub month: u8,
    pub day: u8,
    pub hour: u8,
    pub minute: u8,
    pub second: u8,
}

/// Height of the band under the back image that carries the certificate id.
const BACK_BAND: f32 = 22.0;

/// How a renderer generation writes a certificate: what a back page carries besides the scrambled image,
/// and how the file is encoded. Certificates are reproduced byte for byte under the generation they were
/// issued with, so a generation, once issued, never changes; the renderer version recorded with an
/// issuance names it (`crate::certificate::generation`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Generation {
    /// Generation 1: the image and the id caption 8 pt above the bottom edge (2.8 mm: inside the
    /// ~4 mm many printers cannot print).
    Plain,
    /// Generation 2: the caption raised to 16 pt (5.6 mm) and the anti-copy latent image (桜
    /// line screen hiding 「証」, `scramble::latent`) beside it at the foot of the page.
    LatentImage,
    /// Generation 3: the page of generation 2, with the scrambled image stored PNG-Up-predicted and
    /// deflated by `fdeflate` instead of miniz level 1 (`back_image`): the same pixels for every
    /// reader, at ~0.6 ms instead of ~1.4 ms per back, the largest single step of an Issue.
    LatentImageFastDeflate,
    /// Generation 4: the pages of generation 3, pixel for pixel, encoded with less work (issue: 1,000
    /// certificates/s on two cores): the back image deflated straight from its block structure
    /// (`back_runs`, stored unpredicted), font subsets cut from the fonts' twins without glyph names
    /// (`nameless_font`), and the /ID a hash of the file before its cross-reference table, so that one
    /// SHA-256 pass gives both the /ID and the digest recorded with the issuance ([`WrittenPdf::sha256`]).
    LeanEncoding,
    /// Generation 5: the pages of generation 4, pixel for pixel, with the back image deflated eight bytes at
    /// a time (`back_segments`) instead of byte by byte: about 0.27 ms instead of 0.42 ms per back, for a
    /// stream ~10 % larger (issue 6: p99 ≤ 10 ms at 500 certificates/s on two cores).
    SegmentEncoding,
}

/// How a generation stores the scrambled image of a back.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum BackEncoding {
    /// The packed rows deflated by miniz level 1.
    Deflate,
    /// PNG-Up predicted, deflated by fdeflate (`back_image`).
    UpPredictedFdeflate,
    /// The packed rows as runs from the row above and the left, fixed codes (`back_runs`).
    BlockRuns,
    /// The packed rows as copies and literals decided 8 bytes at a time, fixed codes (`back_segments`).
    Segments,
}

impl Generation {
    /// The generation new certificates get.
    pub const CURRENT: Generation = Generation::SegmentEncoding;

    fn caption_baseline_from_bottom(self) -> f32 {
        match self {
            Generation::Plain => 8.0,
            Generation::LatentImage
            | Generation::LatentImageFastDeflate
            | Generation::LeanEncoding
            | Generation::SegmentEncoding => 16.0,
        }
    }

    fn has_latent_tile(self) -> bool {
        self != Generation::Plain
    }

    fn back_encoding(self) -> BackEncoding {
        match self {
            Generation::Plain | Generation::LatentImage => BackEncoding::Deflate,
            Generation::LatentImageFastDeflate => BackEncoding::UpPredictedFdeflate,
            Generation::LeanEncoding => BackEncoding::BlockRuns,
            Generation::SegmentEncoding => BackEncoding::Segments,
        }
    }

    fn subset_source(self) -> SubsetSource {
        match self {
            Generation::LeanEncoding | Generation::SegmentEncoding => SubsetSource::Nameless,
            _ => SubsetSource::File,
        }
    }

    /// /ID = SHA-256 of the file before the cross-reference table (generation 4 on), rather than of the
    /// objects and the `Debug` text of the metadata (generations 1–3, which then needed a second pass
    /// over the file for its digest).
    fn id_from_file_prefix(self) -> bool {
        matches!(self, Generation::LeanEncoding | Generation::SegmentEncoding)
    }
}

/// A written PDF and its SHA-256, the digest recorded with an issuance.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WrittenPdf {
    pub pdf: Vec<u8>,
    pub sha256: [u8; 32],
}

/// Placement of the latent tile on the back page (generation 2). At 1200 dpi one pixel is 0.06 pt;
/// the tile's left and top edges fall on whole pixels of a 1200-dpi rendering (and its left edge
/// on a whole line-screen period), so that a decoding overlay printed at 1200 dpi registers.
pub mod latent_tile {
    use crate::scramble::latent::{BACK_TILE_HEIGHT, BACK_TILE_WIDTH};

    pub const PT_PER_PX: f32 = 72.0 / 1200.0;
    /// Left edge, in 1200-dpi pixels from the page's left edge (300 pt).
    pub const LEFT_PX: u32 = 5000;
    /// Top edge, in 1200-dpi pixels from the page's top edge (784.26 pt; the tile's foot is at
    /// 14.4 pt = 5.1 mm, its top 7 pt below the finder ring of the scrambled image).
    pub const TOP_PX: u32 = 13071;
    pub const WIDTH_PT: f32 = BACK_TILE_WIDTH as f32 * PT_PER_PX;
    pub const HEIGHT_PT: f32 = BACK_TILE_HEIGHT as f32 * PT_PER_PX;
    /// 桜 pink. Its brightest channel stays far above the verifier's "dark" threshold, so the
    /// tile can never be taken for a finder mark or for ink.
    pub const RGB: [f32; 3] = [200.0 / 255.0, 40.0 / 255.0, 110.0 / 255.0];
}

/// zlib level for content streams and images: speed over the last few percent of size.
const DEFLATE_LEVEL: u8 = 1;

thread_local! {
    /// One miniz compressor per thread, reset between streams: a fresh one allocates and zeroes ~300 kB of
    /// tables (page faults included) for each of the few small streams of a certificate.
    static COMPRESSOR: RefCell<Option<Box<CompressorOxide>>> = const { RefCell::new(None) };
}

/// `miniz_oxide::deflate::compress_to_vec_zlib(input, DEFLATE_LEVEL)`, byte for byte (the same loop, with a
/// compressor reset to the state `CompressorOxide::new` gives it: `reset` zeroes the dictionary and hash
/// tables and renews the LZ and Huffman state), without the allocations.
fn zlib(input: &[u8]) -> Vec<u8> {
    COMPRESSOR.with(|cell| {
        let mut slot = cell.borrow_mut();
        let compressor = slot.get_or_insert_with(|| {
            Box::new(CompressorOxide::new(create_comp_flags_from_zip_params(DEFLATE_LEVEL.into(), 1, 0)))
        });
        compressor.reset();
        let mut input = input;
        let mut output = vec![0; (input.len() / 2).max(2)];
        let mut out_pos = 0;
        loop {
            let (status, bytes_in, bytes_out) = compress(compressor, input, &mut output[out_pos..], TDEFLFlush::Finish);
            out_pos += bytes_out;
            match status {
                TDEFLStatus::Done => {
                    output.truncate(out_pos);
                    return output;
                }
                TDEFLStatus::Okay if bytes_in <= input.len() => {
                    input = &input[bytes_in..];
                    if output.len().saturating_sub(out_pos) < 30 {
                        output.resize(output.len() * 2, 0)
                    }
                }
                // miniz_oxide's own loop panics here too: it cannot happen with a valid compressor.
                _ => panic!("zlib compression failed"),
            }
        }
    })
}

thread_local! {
    /// The deflated content of the pantograph forms this thread wrote last. A form is the same for every
    /// certificate of a type (the outlines of 「複写」 over a fixed area), and its path is the largest content
    /// stream of a front: compressing it once per certificate was pure repetition.
    static PANTOGRAPH_FORMS: RefCell<Vec<(Pantograph, Rc<[u8]>)>> = const { RefCell::new(Vec::new()) };
}

/// Distinct pantographs kept per thread (one or two per certificate type).
const PANTOGRAPH_FORMS_KEPT: usize = 16;

/// Writes the document: for each front page, the front followed by its back (if `backs` is
/// non-empty it must have exactly one entry per front page).
pub fn write_pdf(
    fonts: &FontSet,
    subsets: &SubsetCache,
    list: &DisplayList,
    backs: &[BackPage],
    meta: &PdfMeta,
    generation: Generation,
) -> Result<WrittenPdf, RenderError> {
    if !backs.is_empty() && backs.len() != list.pages.len() {
        return Err(RenderError::BackPageCount { fronts: list.pages.len(), backs: backs.len() });
    }
    for (i, back) in backs.iter().enumerate() {
        back.validate(i)?;
    }
    let back_caption = if backs.is_empty() {
        None
    } else {
        let caption = format!("証明書番号 {}　（この面は表面のスクランブル画像です）", meta.certificate_id);
        let glyphs = fonts.shape(FontRole::Mincho, &caption, "certificate_id")?;
        let baseline = A4_HEIGHT - generation.caption_baseline_from_bottom();
        Some(TextRun { x: 42.5, baseline, size: 7.0, font: FontRole::Mincho, tracking: 0.0, glyphs })
    };

    // Every glyph each font needs, with the character it stands for (first occurrence wins,
    // which is deterministic because pages and runs are walked in order).
    let mut used: BTreeMap<FontRole, BTreeMap<u16, char>> = BTreeMap::new();
    let runs = list
        .pages
        .iter()
        .flat_map(|p| p.items.iter())
        .filter_map(|i| match i {
            Item::Text(run) => Some(run),
            _ => None,
        })
        .chain(back_caption.iter());
    for run in runs {
        let set = used.entry(run.font).or_default();
        for g in &run.glyphs {
            set.entry(g.id).or_insert(g.base);
        }
    }

    let mut next = 1;
    let mut alloc = || {
        let r = Ref::new(next);
        next += 1;
        r
    };
    let catalog_id = alloc();
    let pages_id = alloc();
    let info_id = alloc();

    // Room for the whole document up front (the back images and font subsets are most of it), so the
    // buffer is not regrown and copied a dozen times on the way to ~180 kB.
    let capacity = 64 * 1024 + backs.len() * 160 * 1024 + list.pages.len() * 16 * 1024;
    let mut pdf = Pdf::with_capacity(capacity + 4096);
    // Generations 1–3 hash the objects alone for the /ID, so they write them into a chunk of their own and
    // copy it into the file; from generation 4 on the objects go straight into the file after the catalog
    // (the same layout, without the copy).
    let mut separate = (!generation.id_from_file_prefix()).then(|| pdf_writer::Chunk::with_capacity(capacity));
    if separate.is_none() {
        pdf.catalog(catalog_id).pages(pages_id);
    }
    let chunk: &mut pdf_writer::Chunk = match &mut separate {
        Some(chunk) => chunk,
        None => &mut pdf,
    };
    let mut font_names: BTreeMap<FontRole, (Vec<u8>, Arc<EmbeddedSubset>)> = BTreeMap::new();
    let mut font_refs = Vec::new();
    for (role, glyphs) in &used {
        let subset = subsets.get_or_build(fonts, *role, generation.subset_source(), glyphs)?;
        let type0 = alloc();
        write_font(chunk, fonts, *role, &subset, glyphs, type0, &mut alloc);
        let name = format!("F{}", font_refs.len()).into_bytes();
        font_refs.push((name.clone(), type0));
        font_names.insert(*role, (name, subset));
    }

    // Copy-deterrent backgrounds: each distinct one written once as a form, shared by the pages.
    let mut distinct: Vec<&Arc<Pantograph>> = Vec::new();
    for item in list.pages.iter().flat_map(|p| p.items.iter()) {
        if let Item::Pantograph(p) = item {
            if !distinct.contains(&p) {
                distinct.push(p);
            }
        }
    }
    let mut pantographs: Vec<(Arc<Pantograph>, Ref)> = Vec::new();
    if !distinct.is_empty() {
        let (fine, coarse) = (alloc(), alloc());
        write_dot_pattern(chunk, fine, pantograph::FINE_DOT, pantograph::FINE_STEP);
        write_dot_pattern(chunk, coarse, pantograph::COARSE_DOT, pantograph::COARSE_STEP);
        for p in distinct {
            let id = alloc();
            write_pantograph(chunk, id, p, fine, coarse);
            pantographs.push((p.clone(), id));
        }
    }

    // The latent tile is the same on every back: one image, shared by the back pages.
    let latent = if generation.has_latent_tile() && !backs.is_empty() {
        let id = alloc();
        write_latent_mask(chunk, id);
        Some(id)
    } else {
        None
    };

    let mut page_ids = Vec::new();
    let mut encoded: Vec<Rc<Vec<u8>>> = Vec::with_capacity(backs.len());
    for (i, page) in list.pages.iter().enumerate() {
        let page_id = alloc();
        let content_id = alloc();
        page_ids.push(page_id);
        // Front images (the seal impression), named Im1, Im2, ... in page order.
        let mut images = Vec::new();
        for item in &page.items {
            if let Item::Image { bitmap, .. } = item {
                let id = alloc();
                write_gray_image(chunk, id, bitmap);
                images.push((format!("Im{}", images.len() + 1).into_bytes(), id));
            }
        }
        let mut forms = 0;
        for item in &page.items {
            if let Item::Pantograph(p) = item {
                let id = pantographs.iter().find(|(q, _)| q == p).map(|(_, id)| *id).expect("collected above");
                forms += 1;
                images.push((format!("Pg{forms}").into_bytes(), id));
            }
        }
        let content = front_content(page, &font_names);
        write_page(chunk, page_id, content_id, pages_id, &content, &font_refs, &images);
        if let Some(back) = backs.get(i) {
            let page_id = alloc();
            let content_id = alloc();
            let image_id = alloc();
            page_ids.push(page_id);
            // A second copy of a certificate repeats its sheets: encode each distinct back once.
            let data = match backs[..i].iter().position(|earlier| earlier == back) {
                Some(j) => encoded[j].clone(),
                None => Rc::new(encode_back(back, generation)),
            };
            encoded.push(data.clone());
            write_image(chunk, image_id, back, &data, generation);
            let caption = back_caption.as_ref().expect("caption exists when backs do");
            let content = back_content(back, caption, &font_names, latent.is_some());
            let mut images = vec![(b"Im0".to_vec(), image_id)];
            images.extend(latent.map(|id| (b"Lt".to_vec(), id)));
            write_page(chunk, page_id, content_id, pages_id, &content, &font_refs, &images);
        }
    }
    chunk.pages(pages_id).kids(page_ids.iter().copied()).count(page_ids.len() as i32);

    // The /ID must be stable for identical input and differ for any change in it.
    let Some(chunk) = separate else {
        // A hash of everything before the cross-reference table (every object, the metadata in the info
        // dictionary); the same hasher then takes the table and trailer for the file's digest.
        write_info(&mut pdf, info_id, meta);
        let prefix = pdf.len();
        let mut hasher = Sha256::new();
        hasher.update(pdf.as_bytes());
        let id = hasher.clone().finalize();
        pdf.set_file_id((id[..16].to_vec(), id[..16].to_vec()));
        let pdf = pdf.finish();
        hasher.update(&pdf[prefix..]);
        return Ok(WrittenPdf { pdf, sha256: hasher.finalize().into() });
    };
    pdf.catalog(catalog_id).pages(pages_id);
    // A hash of every object written above and of the metadata written below.
    let mut hasher = Sha256::new();
    hasher.update(chunk.as_bytes());
    hasher.update(format!("{:?}", meta).as_bytes());
    let id = hasher.finalize();
    pdf.set_file_id((id[..16].to_vec(), id[..16].to_vec()));
    pdf.extend(&chunk);
    write_info(&mut pdf, info_id, meta);
    let pdf = pdf.finish();
    let sha256 = Sha256::digest(&pdf).into();
    Ok(WrittenPdf { pdf, sha256 })
}

/// The document information dictionary: title, subject (the certificate id), producer, issuance time.
fn write_info(pdf: &mut Pdf, info_id: Ref, meta: &PdfMeta) {
    let mut info = pdf.document_info(info_id);
    info.title(TextStr(&meta.title)).subject(TextStr(&meta.certificate_id)).producer(TextStr("bcl"));
    if let Some(t) = meta.creation_date {
        let date = Date::new(t.year)
            .month(t.month)
            .day(t.day)
            .hour(t.hour)
            .minute(t.minute)
            .second(t.second)
            .utc_offset_hour(9)
            .utc_offset_minute(0);
        info.creation_date(date);
    }
    info.finish();
}

fn write_font(
    chunk: &mut pdf_writer::Chunk,
    fonts: &FontSet,
    role: FontRole,
    subset: &EmbeddedSubset,
    glyphs: &BTreeMap<u16, char>,
    type0: Ref,
    alloc: &mut impl FnMut() -> Ref,
) {
    let font = fonts.font(role);
    let cid_id = alloc();
    let descriptor_id = alloc();
    let cmap_id = alloc();
    let file_id = alloc();
    let base_font = format!("{}+{}", subset.tag, font.postscript_name);
    let base_font = Name(base_font.as_bytes());
    let scale = 1000.0 / font.units_per_em() as f32;
    let system_info = SystemInfo { registry: Str(b"Adobe"), ordering: Str(b"Identity"), supplement: 0 };

    chunk
        .type0_font(type0)
        .base_font(base_font)
        .encoding_predefined(Name(b"Identity-H"))
        .descendant_font(cid_id)
        .to_unicode(cmap_id);

    let mut cid = chunk.cid_font(cid_id);
    cid.subtype(CidFontType::Type2)
        .base_font(base_font)
        .system_info(system_info)
        .font_descriptor(descriptor_id)
        .default_width(1000.0)
        .cid_to_gid_map_predefined(Name(b"Identity"));
    // CIDs are the subset's glyph ids (0 = .notdef, then the sorted originals).
    let widths: Vec<f32> =
        subset.original_gids.iter().map(|g| (font.advance_units(*g) as f32 * scale).round()).collect();
    cid.widths().consecutive(0, widths);
    cid.finish();

    let [x0, y0, x1, y1] = font.bbox;
    chunk
        .font_descriptor(descriptor_id)
        .name(base_font)
        .flags(FontFlags::SYMBOLIC)
        .bbox(Rect::new(x0 * scale, y0 * scale, x1 * scale, y1 * scale))
        .italic_angle(0.0)
        .ascent(font.ascent * scale)
        .descent(font.descent * scale)
        .cap_height(font.cap_height * scale)
        .stem_v(80.0)
        .font_file2(file_id);

    let mut cmap = pdf_writer::types::UnicodeCmap::new(
        Name(b"Bcl-UCS"),
        SystemInfo { registry: Str(b"Adobe"), ordering: Str(b"UCS"), supplement: 0 },
    );
    for (new_gid, original) in subset.original_gids.iter().enumerate().skip(1) {
        if let Some(c) = glyphs.get(original) {
            cmap.pair(new_gid as u16, *c);
        }
    }
    let cmap = cmap.finish();
    chunk.stream(cmap_id, cmap.as_slice());

    let mut file = chunk.stream(file_id, &subset.data);
    file.pair(Name(b"Length1"), subset.data.len() as i32);
    file.finish();
}

fn write_page(
    chunk: &mut pdf_writer::Chunk,
    page_id: Ref,
    content_id: Ref,
    parent: Ref,
    content: &[u8],
    fonts: &[(Vec<u8>, Ref)],
    images: &[(Vec<u8>, Ref)],
) {
    let mut page = chunk.page(page_id);
    page.parent(parent).media_box(Rect::new(0.0, 0.0, A4_WIDTH, A4_HEIGHT)).contents(content_id);
    let mut resources = page.resources();
    let mut font_dict = resources.fonts();
    for (name, r) in fonts {
        font_dict.pair(Name(name), *r);
    }
    font_dict.finish();
    if !images.is_empty() {
        let mut x_objects = resources.x_objects();
        for (name, r) in images {
            x_objects.pair(Name(name), *r);
        }
        x_objects.finish();
    }
    resources.finish();
    page.finish();
    let deflated = zlib(content);
    chunk.stream(content_id, &deflated).filter(Filter::FlateDecode);
}

/// The image stream of a back: its indices deflated as `generation` stores them.
fn encode_back(back: &BackPage, generation: Generation) -> Vec<u8> {
    let row_bytes = (back.width as usize * back.bits_per_index as usize).div_ceil(8);
    match generation.back_encoding() {
        BackEncoding::Deflate => zlib(&back.packed_indices),
        BackEncoding::UpPredictedFdeflate => super::back_image::deflate_up_predicted(&back.packed_indices, row_bytes),
        BackEncoding::BlockRuns => super::back_runs::deflate_rows(&back.packed_indices, row_bytes),
        BackEncoding::Segments => super::back_segments::deflate_segments(&back.packed_indices, row_bytes),
    }
}

fn write_image(chunk: &mut pdf_writer::Chunk, id: Ref, back: &BackPage, data: &[u8], generation: Generation) {
    let lookup: Vec<u8> = back.palette.iter().flatten().copied().collect();
    let predicted = generation.back_encoding() == BackEncoding::UpPredictedFdeflate;
    let mut image = chunk.image_xobject(id, data);
    image.filter(Filter::FlateDecode);
    if predicted {
        image
            .decode_parms()
            .predictor(pdf_writer::types::Predictor::PngUp)
            .colors(1)
            .bits_per_component(back.bits_per_index as i32)
            .columns(back.width as i32);
    }
    image.width(back.width as i32).height(back.height as i32);
    image.color_space().indexed(Name(b"DeviceRGB"), back.palette.len() as i32 - 1, &lookup);
    image.bits_per_component(back.bits_per_index as i32);
    image.finish();
}

/// The latent tile as a 1-bit stencil (`/ImageMask`), painted in the current fill colour; no
/// interpolation, so the line screen prints as drawn.
fn write_latent_mask(chunk: &mut pdf_writer::Chunk, id: Ref) {
    use crate::scramble::latent::{back_tile_mask_deflated, BACK_TILE_HEIGHT, BACK_TILE_WIDTH};
    let mut image = chunk.image_xobject(id, back_tile_mask_deflated());
    image.filter(Filter::FlateDecode);
    image.width(BACK_TILE_WIDTH as i32).height(BACK_TILE_HEIGHT as i32);
    image.image_mask(true);
    image.bits_per_component(1);
    image.interpolate(false);
    image.finish();
}

/// A front bitmap as an 8-bit DeviceGray image XObject, drawn without interpolation so the impression's
/// edges print as registered.
fn write_gray_image(chunk: &mut pdf_writer::Chunk, id: Ref, bitmap: &super::bitmap::Bitmap) {
    let data = zlib(&bitmap.pixels);
    let mut image = chunk.image_xobject(id, &data);
    image.filter(Filter::FlateDecode);
    image.width(bitmap.width as i32).height(bitmap.height as i32);
    image.color_space().device_gray();
    image.bits_per_component(8);
    image.interpolate(false);
    image.finish();
}

/// A tiling pattern of black-ish square dots of side `dot` on a `step` grid.
fn write_dot_pattern(chunk: &mut pdf_writer::Chunk, id: Ref, dot: f32, step: f32) {
    let mut cell = Content::new();
    cell.set_fill_gray(pantograph::DOT_GRAY);
    cell.rect((step - dot) / 2.0, (step - dot) / 2.0, dot, dot);
    cell.fill_nonzero();
    let cell = cell.finish();
    let mut pattern = chunk.tiling_pattern(id, &cell);
    pattern
        .paint_type(pdf_writer::types::PaintType::Colored)
        .tiling_type(pdf_writer::types::TilingType::ConstantSpacing)
        .bbox(Rect::new(0.0, 0.0, step, step))
        .x_step(step)
        .y_step(step);
    pattern.resources();
    pattern.finish();
}

/// The background form: fine dots over the area, then, clipped to the latent word's outlines, paper
/// white and coarse dots.
fn write_pantograph(chunk: &mut pdf_writer::Chunk, id: Ref, p: &Pantograph, fine: Ref, coarse: Ref) {
    let cached =
        PANTOGRAPH_FORMS.with(|forms| forms.borrow().iter().find(|(q, _)| identical(q, p)).map(|(_, c)| c.clone()));
    let content = cached.unwrap_or_else(|| {
        let content: Rc<[u8]> = zlib(&pantograph_content(p)).into();
        PANTOGRAPH_FORMS.with(|forms| {
            let mut forms = forms.borrow_mut();
            if forms.len() >= PANTOGRAPH_FORMS_KEPT {
                forms.clear();
            }
            forms.push((p.clone(), content.clone()));
        });
        content
    });
    let mut form = chunk.form_xobject(id, &content);
    form.filter(Filter::FlateDecode);
    form.bbox(Rect::new(0.0, 0.0, A4_WIDTH, A4_HEIGHT));
    let mut resources = form.resources();
    let mut patterns = resources.patterns();
    patterns.pair(Name(b"Pf"), fine);
    patterns.pair(Name(b"Pc"), coarse);
    patterns.finish();
    resources.finish();
    form.finish();
}

/// Equal bit for bit: `==` on floats takes -0.0 for 0.0, which the content stream writes differently.
fn identical(a: &Pantograph, b: &Pantograph) -> bool {
    let same = |x: &[f32], y: &[f32]| x.len() == y.len() && x.iter().zip(y).all(|(x, y)| x.to_bits() == y.to_bits());
    let op = |o: &PathOp| -> (u8, [f32; 6]) {
        match *o {
            PathOp::Move(x, y) => (0, [x, y, 0.0, 0.0, 0.0, 0.0]),
            PathOp::Line(x, y) => (1, [x, y, 0.0, 0.0, 0.0, 0.0]),
            PathOp::Cubic(x1, y1, x2, y2, x, y) => (2, [x1, y1, x2, y2, x, y]),
            PathOp::Close => (3, [0.0; 6]),
        }
    };
    same(&[a.x, a.y, a.w, a.h], &[b.x, b.y, b.w, b.h])
        && a.latent.len() == b.latent.len()
        && a.latent.iter().zip(&b.latent).all(|(p, q)| {
            let ((kp, vp), (kq, vq)) = (op(p), op(q));
            kp == kq && same(&vp, &vq)
        })
}

/// The form's content stream, before compression.
fn pantograph_content(p: &Pantograph) -> Vec<u8> {
    let h = A4_HEIGHT;
    let mut c = Content::new();
    let area = |c: &mut Content| {
        c.rect(p.x, h - p.y - p.h, p.w, p.h);
    };
    c.save_state();
    c.set_fill_color_space(pdf_writer::types::ColorSpaceOperand::Pattern);
    c.set_fill_pattern(None, Name(b"Pf"));
    area(&mut c);
    c.fill_nonzero();
    c.restore_state();
    if !p.latent.is_empty() {
        c.save_state();
        for op in &p.latent {
            match *op {
                PathOp::Move(x, y) => {
                    c.move_to(x, h - y);
                }
                PathOp::Line(x, y) => {
                    c.line_to(x, h - y);
                }
                PathOp::Cubic(x1, y1, x2, y2, x, y) => {
                    c.cubic_to(x1, h - y1, x2, h - y2, x, h - y);
                }
                PathOp::Close => {
                    c.close_path();
                }
            }
        }
        c.clip_nonzero();
        c.end_path();
        c.set_fill_gray(1.0);
        area(&mut c);
        c.fill_nonzero();
        c.set_fill_color_space(pdf_writer::types::ColorSpaceOperand::Pattern);
        c.set_fill_pattern(None, Name(b"Pc"));
        area(&mut c);
        c.fill_nonzero();
        c.restore_state();
    }
    c.finish().to_vec()
}

fn show_run(content: &mut Content, run: &TextRun, fonts: &BTreeMap<FontRole, (Vec<u8>, Arc<EmbeddedSubset>)>) {
    let (name, subset) = &fonts[&run.font];
    let mut codes = Vec::with_capacity(run.glyphs.len() * 2);
    for Glyph { id, .. } in &run.glyphs {
        let cid = subset.new_gid(*id).expect("every glyph of the document is in its subset");
        codes.extend_from_slice(&cid.to_be_bytes());
    }
    content.begin_text();
    content.set_font(Name(name), run.size);
    // Tc is text state and outlives BT/ET, so every run sets it, zero included.
    content.set_char_spacing(run.tracking);
    content.set_text_matrix([1.0, 0.0, 0.0, 1.0, run.x, A4_HEIGHT - run.baseline]);
    content.show(Str(&codes));
    content.end_text();
}

fn front_content(page: &Page, fonts: &BTreeMap<FontRole, (Vec<u8>, Arc<EmbeddedSubset>)>) -> Vec<u8> {
    let h = page.height;
    let mut content = Content::new();
    let mut images = 0;
    let mut forms = 0;
    for item in &page.items {
        match item {
            Item::Pantograph(_) => {
                forms += 1;
                content.x_object(Name(format!("Pg{forms}").as_bytes()));
            }
            Item::Image { x, y, w, h: ih, .. } => {
                images += 1;
                let name = format!("Im{images}");
                content.save_state();
                content.transform([*w, 0.0, 0.0, *ih, *x, h - y - ih]);
                content.x_object(Name(name.as_bytes()));
                content.restore_state();
            }
            Item::Text(run) => show_run(&mut content, run, fonts),
            Item::Line { x1, y1, x2, y2, width } => {
                content.set_line_width(*width).move_to(*x1, h - y1).line_to(*x2, h - y2).stroke();
            }
            Item::Rect { x, y, w, h: rh, fill, stroke } => {
                content.rect(*x, h - y - rh, *w, *rh);
                match (fill, stroke) {
                    (Some(g), Some(sw)) => {
                        content.set_fill_gray(*g).set_line_width(*sw).fill_nonzero_and_stroke().set_fill_gray(0.0);
                    }
                    (Some(g), None) => {
                        content.set_fill_gray(*g).fill_nonzero().set_fill_gray(0.0);
                    }
                    (None, Some(sw)) => {
                        content.set_line_width(*sw).stroke();
                    }
                    (None, None) => {
                        content.end_path();
                    }
                }
            }
        }
    }
    content.finish().to_vec()
}

fn back_content(
    back: &BackPage,
    caption: &TextRun,
    fonts: &BTreeMap<FontRole, (Vec<u8>, Arc<EmbeddedSubset>)>,
    latent: bool,
) -> Vec<u8> {
    // The image keeps its aspect ratio and fills the page above the caption band.
    let room_h = A4_HEIGHT - BACK_BAND;
    let scale = (A4_WIDTH / back.width as f32).min(room_h / back.height as f32);
    let (w, h) = (back.width as f32 * scale, back.height as f32 * scale);
    let x = (A4_WIDTH - w) / 2.0;
    let y = BACK_BAND + (room_h - h) / 2.0;
    let mut content = Content::new();
    content.save_state();
    content.transform([w, 0.0, 0.0, h, x, y]);
    content.x_object(Name(b"Im0"));
    content.restore_state();
    if latent {
        use latent_tile::*;
        let bottom = A4_HEIGHT - (TOP_PX as f32 * PT_PER_PX + HEIGHT_PT);
        content.save_state();
        content.set_fill_rgb(RGB[0], RGB[1], RGB[2]);
        content.transform([WIDTH_PT, 0.0, 0.0, HEIGHT_PT, LEFT_PX as f32 * PT_PER_PX, bottom]);
        content.x_object(Name(b"Lt"));
        content.restore_state();
    }
    show_run(&mut content, caption, fonts);
    content.finish().to_vec()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The per-thread compressor, reset between streams, writes what a fresh one writes, whatever it
    /// compressed before.
    #[test]
    fn zlib_with_a_reused_compressor_equals_a_fresh_one() {
        let mut seed = 0x2545_f491_4f6c_dd1du64;
        let mut inputs: Vec<Vec<u8>> = vec![Vec::new(), vec![7], vec![0; 100_000], b"BT /F0 9 Tf ET\n".repeat(3000)];
        for len in [1usize, 31, 1000, 70_000, 300_000] {
            inputs.push(
                (0..len)
                    .map(|i| {
                        seed ^= seed << 13;
                        seed ^= seed >> 7;
                        seed ^= seed << 17;
                        if i % 3 == 0 {
                            (seed >> 40) as u8
                        } else {
                            (i / 7) as u8
                        }
                    })
                    .collect(),
            );
        }
        for round in 0..2 {
            for input in &inputs {
                let fresh = miniz_oxide::deflate::compress_to_vec_zlib(input, DEFLATE_LEVEL);
                assert_eq!(zlib(input), fresh, "round {round}, {} bytes", input.len());
            }
        }
    }

    #[test]
    fn pantographs_differing_only_in_the_sign_of_zero_are_not_identical() {
        let p = Pantograph { x: 0.0, y: 1.0, w: 2.0, h: 3.0, latent: vec![PathOp::Move(0.0, 1.0), PathOp::Close] };
        assert!(identical(&p, &p.clone()));
        assert!(!identical(&p, &Pantograph { x: -0.0, ..p.clone() }));
        assert!(!identical(&p, &Pantograph { latent: vec![PathOp::Move(-0.0, 1.0), PathOp::Close], ..p.clone() }));
        assert!(!identical(&p, &Pantograph { latent: vec![PathOp::Move(0.0, 1.0)], ..p.clone() }));
    }
}
