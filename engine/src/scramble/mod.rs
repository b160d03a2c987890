//! The scrambled image of the front that the colour back of every certificate sheet carries.
//!
//! A verification site holding the certificate's key descrambles the back (the image extracted from
//! the PDF here, exactly; a scan of the paper in `crate::verify`, approximately) and shows it next
//! to the front, so that a recipient can see whether the front was altered. The full scheme, with
//! frozen test vectors, is specified in `docs/scramble.md`. The pipeline:
//!
//! 1. **Quantise** the grayscale front to 4 levels: gray `v` becomes level `(v + 42) / 85`, the
//!    nearest of the grays 0, 85, 170, 255, and a quantised or restored front shows level `l` as
//!    gray `85 * l` ([`level_of`], [`quantise_gray`], [`quantise`]; why 4 levels: `levels.rs`).
//! 2. **Pad** it with padding pixels to whole 16×16 blocks (right and bottom edges).
//! 3. **Shuffle** the blocks with a keyed permutation, a keyed symmetry of the square per block and
//!    a keyed cyclic shift of the levels per block (`blocks.rs`).
//! 4. **Colour** each level through a keyed palette that varies per row of blocks (`palette.rs`);
//!    padding is white.
//! 5. **Frame** the scrambled area with a white ring carrying finder marks, leave a blank strip
//!    for the certificate id line and a quiet margin all around (`layout.rs`, [`BackLayout`]).
//!
//! The back is an indexed image with 4-bit indices packed exactly as a PDF Indexed image wants them
//! (rows MSB-first, padded to a byte), so the renderer embeds it without re-encoding.
//!
//! The guarantee tested here: for every front `f` and key `k`,
//! `descramble(&scramble(f, k), k) == quantise(f)`, byte for byte. The front's size needs no side
//! channel: the block grid follows from the back's size and the padding is recognisable (white is
//! never a data colour), so the descrambler crops it off and checks it lies exactly where a front of
//! that size puts it. That check also rejects a wrong key with high probability whenever the front
//! has padding (an A4 front at 100 dpi, 827×1169, does); a front of whole blocks descrambled with
//! the wrong key yields a garbled image instead of an error.

mod blocks;
mod key;
pub mod latent;
mod layout;
mod levels;
mod palette;
mod png_io;
#[cfg(target_arch = "x86_64")]
mod simd;
#[cfg(test)]
mod tests;

pub use blocks::BLOCK;
pub use key::ScrambleKey;
pub use layout::{BackLayout, FinderKind, Rect, FINDER_MODULE, FINDER_MODULES, ID_STRIP_HEIGHT, MARGIN, RING};
pub use levels::{level_of, quantise_gray, LEVELS, LEVEL_GRAY};
pub use png_io::{descramble_png, gray_to_png};

use blocks::{BlockPlan, FrontView, PackedTarget};
use levels::PAD;
use palette::{KeyedPalette, BLACK, PALETTE_SETS, WHITE};

/// Largest front side accepted, in pixels (an A4 page at 1200 dpi is under 14,100): bounds memory
/// and keeps every index arithmetic far from overflow.
pub const MAX_FRONT_SIDE: u32 = 16_384;

/// Bits per palette index on the back: the palette (`palette.rs`) has 14 entries.
const BITS_PER_INDEX: u8 = 4;

/// The colour back as the renderer embeds it: an Indexed-colour image.
///
/// Same fields as the renderer's `BackPage`: `palette[i]` is the RGB of index `i`; indices are
/// `bits_per_index` wide, packed MSB-first, each row padded to a whole byte.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BackImage {
    pub width: u32,
    pub height: u32,
    pub palette: Vec<[u8; 3]>,
    pub bits_per_index: u8,
    pub packed_indices: Vec<u8>,
}

/// A grayscale raster (0 = black, 255 = white, row-major): a quantised or descrambled front.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GrayImage {
    pub width: u32,
    pub height: u32,
    pub pixels: Vec<u8>,
}

/// Why a front cannot be scrambled or an image cannot be encoded.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ScrambleError {
    #[error("image width and height must be between 1 and {MAX_FRONT_SIDE} pixels")]
    BadDimensions,
    #[error("pixel buffer length does not match width x height")]
    PixelCountMismatch,
    #[error("back image is inconsistent: {0}")]
    InconsistentBack(&'static str),
    #[error("PNG encoding failed")]
    PngEncode,
}

/// Why a back could not be descrambled. None of these carries pixel data.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum DescrambleError {
    #[error("not a readable PNG image")]
    PngDecode,
    #[error("unsupported PNG colour type or bit depth")]
    UnsupportedPng,
    #[error("image has more than 256 distinct colours; it cannot be held as an indexed back")]
    TooManyColours,
    #[error("back image is inconsistent: {0}")]
    InconsistentBack(&'static str),
    #[error("image size {width}x{height} is not the size of any certificate back")]
    NotABackSize { width: u32, height: u32 },
    #[error("the {corner} finder mark is missing: the image is not a certificate back")]
    FinderMarkMissing { corner: &'static str },
    #[error("block padding is not where the front size puts it: wrong key or damaged back")]
    PaddingMismatch,
}

/// The canonical quantised front: each pixel replaced by its representative gray
/// ([`quantise_gray`]). This is exactly what [`descramble`] restores.
pub fn quantise(width: u32, height: u32, gray: &[u8]) -> Result<GrayImage, ScrambleError> {
    check_front(width, height, gray)?;
    Ok(GrayImage { width, height, pixels: gray.iter().map(|&v| quantise_gray(v)).collect() })
}

/// The layout of the back of a front of this size (for the renderer: where the id strip is).
pub fn back_layout(front_width: u32, front_height: u32) -> Result<BackLayout, ScrambleError> {
    check_dimensions(front_width, front_height)?;
    Ok(BackLayout::for_front(front_width, front_height))
}

/// Scrambles a grayscale front (`width × height`, row-major, 0 = black) into its colour back.
pub fn scramble(width: u32, height: u32, gray: &[u8], key: &ScrambleKey) -> Result<BackImage, ScrambleError> {
    check_front(width, height, gray)?;
    let layout = BackLayout::for_front(width, height);
    let (bx, by) = (layout.blocks_x as usize, layout.blocks_y as usize);
    let plan = BlockPlan::new(key, bx, by);
    let palette = KeyedPalette::new(key, by);

    // One table per (colour set, level shift): gray value -> palette index. 12 × 256 bytes, built
    // per call so the pixel loop does a single look-up per pixel for quantise + shift + colour.
    let mut luts = vec![[0u8; 256]; PALETTE_SETS * LEVELS as usize];
    for set in 0..PALETTE_SETS {
        for shift in 0..LEVELS as usize {
            let lut = &mut luts[set * LEVELS as usize + shift];
            for (v, entry) in lut.iter_mut().enumerate() {
                let shown = (level_of(v as u8) as usize + shift) % LEVELS as usize;
                *entry = palette.index_of[set][shown];
            }
        }
    }

    let row_stride = packed_row_bytes(layout.width, BITS_PER_INDEX);
    let mut packed = SPARE_PACKED.with(|spare| spare.borrow_mut().pop()).unwrap_or_default();
    whiten_outside(&mut packed, row_stride, layout.height as usize, layout.scramble_area);
    layout.for_each_dark_mark_pixel(|x, y| set_nibble(&mut packed, row_stride, x, y, BLACK));
    let front = FrontView { width: width as usize, height: height as usize, gray };
    let mut target = PackedTarget {
        bytes: &mut packed,
        row_stride,
        x_byte: (layout.scramble_area.x / 2) as usize,
        y: layout.scramble_area.y as usize,
    };
    blocks::scramble_into(&plan, &front, &luts, &palette.band_set, WHITE, &mut target);

    Ok(BackImage {
        width: layout.width,
        height: layout.height,
        palette: palette.to_vec(),
        bits_per_index: BITS_PER_INDEX,
        packed_indices: packed,
    })
}

/// Sizes `packed` to `height` rows of `row_stride` bytes and paints every pixel outside `area` white.
/// The area itself is left as it was: [`blocks::scramble_into`] writes each of its bytes (every block,
/// uniform or mixed), so whitening it first would be a wasted pass over ~70 % of a recycled buffer.
fn whiten_outside(packed: &mut Vec<u8>, row_stride: usize, height: usize, area: Rect) {
    const WHITE_PAIR: u8 = (WHITE << 4) | WHITE;
    packed.resize(row_stride * height, WHITE_PAIR);
    // The area starts on an even pixel and spans whole blocks of 16 px, so it covers whole bytes.
    debug_assert!(area.x.is_multiple_of(2) && area.width.is_multiple_of(2));
    let (x0, x1) = ((area.x / 2) as usize, ((area.x + area.width) / 2) as usize);
    let (y0, y1) = (area.y as usize, (area.y + area.height) as usize);
    for (y, row) in packed.chunks_exact_mut(row_stride).enumerate() {
        if (y0..y1).contains(&y) {
            row[..x0].fill(WHITE_PAIR);
            row[x1..].fill(WHITE_PAIR);
        } else {
            row.fill(WHITE_PAIR);
        }
    }
}

thread_local! {
    /// Index buffers given back by [`recycle_packed`]: a back is ~700 kB, built for every sheet.
    static SPARE_PACKED: std::cell::RefCell<Vec<Vec<u8>>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// Gives a back's `packed_indices` back for the next [`scramble`] on this thread, once the back is written.
pub fn recycle_packed(packed: Vec<u8>) {
    // A few sheets' worth per thread; larger buffers than an A4 back at 100 dpi are not kept.
    if packed.capacity() <= 4 << 20 {
        SPARE_PACKED.with(|spare| {
            let mut spare = spare.borrow_mut();
            if spare.len() < 4 {
                spare.push(packed);
            }
        });
    }
}

/// Restores the quantised front from an undamaged back.
///
/// Pixels are classified by nearest keyed colour, so a back whose palette was slightly altered by
/// re-encoding still descrambles exactly.
pub fn descramble(back: &BackImage, key: &ScrambleKey) -> Result<GrayImage, DescrambleError> {
    back.check().map_err(DescrambleError::InconsistentBack)?;
    let layout = BackLayout::from_back_size(back.width, back.height)?;
    let dark: Vec<bool> = back.palette.iter().map(|&c| is_dark(c)).collect();
    layout.check_finders(|x, y| dark[back.index_at(x, y) as usize])?;

    let palette = KeyedPalette::new(key, layout.blocks_y as usize);
    // class_of[set][palette index]: classification of each back colour, once per set.
    let class_of: Vec<Vec<u8>> =
        (0..PALETTE_SETS).map(|set| back.palette.iter().map(|&c| palette.classify(set, c)).collect()).collect();
    let area = layout.scramble_area;
    let mut shown = Vec::with_capacity((area.width * area.height) as usize);
    for y in 0..area.height {
        let table = &class_of[palette.band_set[(y as usize) / BLOCK] as usize];
        shown.extend((0..area.width).map(|x| table[back.index_at(area.x + x, area.y + y) as usize]));
    }
    finish(&layout, key, &shown)
}

/// Restores the quantised front from a back given as 8-bit pixels with `channels` samples each
/// (1 gray, 2 gray+alpha, 3 RGB, 4 RGBA; alpha is ignored), e.g. decoded from `pdfimages -png`.
pub fn descramble_pixels(
    width: u32,
    height: u32,
    channels: usize,
    pixels: &[u8],
    key: &ScrambleKey,
) -> Result<GrayImage, DescrambleError> {
    if !(1..=4).contains(&channels) {
        return Err(DescrambleError::UnsupportedPng);
    }
    if pixels.len() != width as usize * height as usize * channels {
        return Err(DescrambleError::InconsistentBack("pixel buffer length does not match the size"));
    }
    let rgb_at = |x: u32, y: u32| {
        let i = (y as usize * width as usize + x as usize) * channels;
        if channels < 3 {
            [pixels[i]; 3]
        } else {
            [pixels[i], pixels[i + 1], pixels[i + 2]]
        }
    };
    let layout = BackLayout::from_back_size(width, height)?;
    layout.check_finders(|x, y| is_dark(rgb_at(x, y)))?;

    let palette = KeyedPalette::new(key, layout.blocks_y as usize);
    let area = layout.scramble_area;
    let mut shown = Vec::with_capacity((area.width * area.height) as usize);
    for y in 0..area.height {
        let set = palette.band_set[(y as usize) / BLOCK] as usize;
        // Backs are runs of few colours: classify a colour once per run.
        let mut last: Option<([u8; 3], u8)> = None;
        for x in 0..area.width {
            let c = rgb_at(area.x + x, area.y + y);
            let class = match last {
                Some((lc, class)) if lc == c => class,
                _ => palette.classify(set, c),
            };
            last = Some((c, class));
            shown.push(class);
        }
    }
    finish(&layout, key, &shown)
}

/// Gray shown for a pixel of a descrambled scan that read as no data colour (e.g. white where the
/// front has a pixel): neither ink nor paper, so that it counts against a match.
pub const UNREADABLE_GRAY: u8 = 128;

/// Restores the front (`front_width × front_height`) from a back *observed* through `observe(x, y)`,
/// the colour seen at the centre of back pixel `(x, y)` of the scrambled area, e.g. resampled from a
/// scan. Unlike [`descramble`] it never fails on damage: each pixel is classified by nearest keyed
/// colour (or white), and a front pixel whose observation reads as white shows
/// [`UNREADABLE_GRAY`]. The decision whether the result is the right front is the verifier's.
pub fn descramble_observed(
    front_width: u32,
    front_height: u32,
    key: &ScrambleKey,
    mut observe: impl FnMut(u32, u32) -> [u8; 3],
) -> Result<GrayImage, ScrambleError> {
    let classifier = ObservedClassifier::new(key, front_width, front_height)?;
    let (aw, ah) = classifier.area_size();
    let mut shown = vec![0u8; aw as usize * ah as usize];
    for (y, row) in shown.chunks_exact_mut(aw as usize).enumerate() {
        let table = classifier.row_table(y as u32);
        for (x, out) in row.iter_mut().enumerate() {
            *out = ObservedClassifier::classify(table, observe(x as u32, y as u32));
        }
    }
    descramble_classified(front_width, front_height, key, &shown)
}

/// Nearest-colour classification of observed back colours, for readers that sample the scrambled
/// area themselves (e.g. in parallel): [`ObservedClassifier::row_table`] once per row, then
/// [`ObservedClassifier::classify`] per pixel, then [`descramble_classified`].
pub struct ObservedClassifier {
    /// Per colour set, the class of each cell of a 32-level grid per channel (cell centres): one
    /// look-up per pixel instead of five distances. The palette's colours are at least 100 apart,
    /// so the 4-unit rounding only matters for colours already midway between two classes.
    tables: Vec<Vec<u8>>,
    band_set: Vec<u8>,
    area: (u32, u32),
}

impl ObservedClassifier {
    pub fn new(key: &ScrambleKey, front_width: u32, front_height: u32) -> Result<Self, ScrambleError> {
        check_dimensions(front_width, front_height)?;
        let layout = BackLayout::for_front(front_width, front_height);
        let palette = KeyedPalette::new(key, layout.blocks_y as usize);
        let tables = (0..PALETTE_SETS)
            .map(|set| {
                (0..32 * 32 * 32)
                    .map(|i| {
                        let c = |k: usize| (((i >> (10 - 5 * k)) & 31) * 8 + 4) as u8;
                        palette.classify(set, [c(0), c(1), c(2)])
                    })
                    .collect()
            })
            .collect();
        let area = (layout.scramble_area.width, layout.scramble_area.height);
        Ok(ObservedClassifier { tables, band_set: palette.band_set.clone(), area })
    }

    /// Width and height of the scrambled area, in back pixels.
    pub fn area_size(&self) -> (u32, u32) {
        self.area
    }

    /// The table for row `y` of the scrambled area (its band's colour set).
    pub fn row_table(&self, y: u32) -> &[u8] {
        &self.tables[self.band_set[y as usize / BLOCK] as usize]
    }

    #[inline]
    pub fn classify(table: &[u8], [r, g, b]: [u8; 3]) -> u8 {
        table[((r as usize >> 3) << 10) | ((g as usize >> 3) << 5) | (b as usize >> 3)]
    }
}

/// Restores the front from the classes of the scrambled area's pixels (row-major, as
/// [`ObservedClassifier::classify`] gives them).
pub fn descramble_classified(
    front_width: u32,
    front_height: u32,
    key: &ScrambleKey,
    shown: &[u8],
) -> Result<GrayImage, ScrambleError> {
    check_dimensions(front_width, front_height)?;
    let layout = BackLayout::for_front(front_width, front_height);
    let area = layout.scramble_area;
    if shown.len() != area.width as usize * area.height as usize {
        return Err(ScrambleError::PixelCountMismatch);
    }
    let plan = BlockPlan::new(key, layout.blocks_x as usize, layout.blocks_y as usize);
    let padded = blocks::unscramble(&plan, shown);
    let (w, h) = (front_width as usize, front_height as usize);
    // Row by row into a preallocated buffer: a flat_map over a million pixels cannot know its
    // length and costs as much as reading the scan.
    let gray_of = |c: u8| if c == PAD { UNREADABLE_GRAY } else { LEVEL_GRAY[c as usize & 3] };
    let mut pixels = Vec::with_capacity(w * h);
    for row in padded.chunks_exact(area.width as usize).take(h) {
        pixels.extend(row[..w].iter().map(|&c| gray_of(c)));
    }
    Ok(GrayImage { width: front_width, height: front_height, pixels })
}

/// The data colours of a key's back (every colour of the keyed palette but white and black), for a
/// verifier that wants to tell data from paper and marks.
pub fn data_colours(key: &ScrambleKey, front_width: u32, front_height: u32) -> Vec<[u8; 3]> {
    let layout = BackLayout::for_front(front_width.max(1), front_height.max(1));
    KeyedPalette::new(key, layout.blocks_y as usize).to_vec()[..WHITE as usize].to_vec()
}

/// The front block (column, row) that destination block `(dest_col, dest_row)` of the scrambled
/// area shows, for a front of this size: lets a verifier map damage on the back to the front.
pub fn source_block(
    key: &ScrambleKey,
    front_width: u32,
    front_height: u32,
    dest_col: u32,
    dest_row: u32,
) -> (u32, u32) {
    let layout = BackLayout::for_front(front_width.max(1), front_height.max(1));
    let plan = BlockPlan::new(key, layout.blocks_x as usize, layout.blocks_y as usize);
    let s = plan.source(dest_row as usize * layout.blocks_x as usize + dest_col as usize);
    (s % layout.blocks_x, s / layout.blocks_x)
}

/// Unshuffles the classified scrambled area and crops the padding, checking that it lies exactly
/// where a front of the implied size puts it.
fn finish(layout: &BackLayout, key: &ScrambleKey, shown: &[u8]) -> Result<GrayImage, DescrambleError> {
    let plan = BlockPlan::new(key, layout.blocks_x as usize, layout.blocks_y as usize);
    let padded = blocks::unscramble(&plan, shown);
    let (pw, ph) = (layout.scramble_area.width as usize, layout.scramble_area.height as usize);
    // The front's last column and row carry levels, never padding; trailing padding on the first
    // row and column therefore measures the padding exactly.
    let pad_x = padded[..pw].iter().rev().take_while(|&&c| c == PAD).count();
    let pad_y = (0..ph).rev().take_while(|&y| padded[y * pw] == PAD).count();
    if pad_x >= BLOCK || pad_y >= BLOCK {
        return Err(DescrambleError::PaddingMismatch);
    }
    let (w, h) = (pw - pad_x, ph - pad_y);
    let mut pixels = Vec::with_capacity(w * h);
    for (y, row) in padded.chunks_exact(pw).enumerate() {
        let (inside, outside) = row.split_at(w);
        if outside.iter().any(|&c| c != PAD) {
            return Err(DescrambleError::PaddingMismatch);
        }
        if y < h {
            for &c in inside {
                if c == PAD {
                    return Err(DescrambleError::PaddingMismatch);
                }
                pixels.push(LEVEL_GRAY[c as usize]);
            }
        } else if inside.iter().any(|&c| c != PAD) {
            return Err(DescrambleError::PaddingMismatch);
        }
    }
    Ok(GrayImage { width: w as u32, height: h as u32, pixels })
}

impl BackImage {
    /// The palette index of pixel `(x, y)`; the caller guarantees the image is consistent and the
    /// pixel inside it.
    #[inline]
    pub fn index_at(&self, x: u32, y: u32) -> u8 {
        let bits = self.bits_per_index as usize;
        let stride = packed_row_bytes(self.width, self.bits_per_index);
        let bit = x as usize * bits;
        let byte = self.packed_indices[y as usize * stride + bit / 8];
        let per_byte_shift = 8 - bits - bit % 8;
        (byte >> per_byte_shift) & ((1u16 << bits) - 1) as u8
    }

    /// Checks that the fields describe an image: depth, buffer length, indices within the palette.
    fn check(&self) -> Result<(), &'static str> {
        if self.width == 0 || self.height == 0 {
            return Err("width and height must be non-zero");
        }
        if ![1, 2, 4, 8].contains(&self.bits_per_index) {
            return Err("bits per index must be 1, 2, 4 or 8");
        }
        if self.palette.is_empty() || self.palette.len() > 1 << self.bits_per_index {
            return Err("palette size does not fit the bits per index");
        }
        let expected = packed_row_bytes(self.width, self.bits_per_index) * self.height as usize;
        if self.packed_indices.len() != expected {
            return Err("packed index buffer length does not match the size");
        }
        if self.palette.len() < 1 << self.bits_per_index {
            for y in 0..self.height {
                for x in 0..self.width {
                    if self.index_at(x, y) as usize >= self.palette.len() {
                        return Err("an index lies outside the palette");
                    }
                }
            }
        }
        Ok(())
    }
}

fn check_dimensions(width: u32, height: u32) -> Result<(), ScrambleError> {
    let ok = |v: u32| (1..=MAX_FRONT_SIDE).contains(&v);
    if ok(width) && ok(height) {
        Ok(())
    } else {
        Err(ScrambleError::BadDimensions)
    }
}

fn check_front(width: u32, height: u32, gray: &[u8]) -> Result<(), ScrambleError> {
    check_dimensions(width, height)?;
    if gray.len() != width as usize * height as usize {
        return Err(ScrambleError::PixelCountMismatch);
    }
    Ok(())
}

fn packed_row_bytes(width: u32, bits: u8) -> usize {
    (width as usize * bits as usize).div_ceil(8)
}

fn set_nibble(packed: &mut [u8], stride: usize, x: u32, y: u32, index: u8) {
    let byte = &mut packed[y as usize * stride + x as usize / 2];
    *byte = if x.is_multiple_of(2) { (*byte & 0x0f) | (index << 4) } else { (*byte & 0xf0) | index };
}

/// Dark for the finder-mark check: ITU-R BT.601 luma below mid-gray.
fn is_dark(c: [u8; 3]) -> bool {
    let luma = 299 * u32::from(c[0]) + 587 * u32::from(c[1]) + 114 * u32::from(c[2]);
    luma < 128 * 1000
}
