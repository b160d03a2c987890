//! The display list: what a page shows, decided once by the layout and drawn twice, into the
//! vector PDF and into the grayscale raster that becomes the scrambled back image. Both outputs
//! read the same pre-shaped glyphs, so the back image cannot disagree with the front.
//!
//! Units are PDF points (1/72 inch) with the origin at the top-left corner of the page and y
//! growing downwards, which is how a layout is naturally written; the PDF writer flips y.

use super::fonts::{FontRole, Glyph};

/// A4 portrait in points.
pub const A4_WIDTH: f32 = 595.276;
pub const A4_HEIGHT: f32 = 841.89;

#[derive(Debug, Clone, PartialEq, Default)]
pub struct DisplayList {
    pub pages: Vec<Page>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Page {
    pub width: f32,
    pub height: f32,
    pub items: Vec<Item>,
}

impl Page {
    pub fn a4() -> Page {
        Page { width: A4_WIDTH, height: A4_HEIGHT, items: Vec::new() }
    }
}

/// A gray level for fills: 0.0 is black, 1.0 is white (DeviceGray semantics).
pub type Gray = f32;

#[derive(Debug, Clone, PartialEq)]
pub enum Item {
    Text(TextRun),
    /// A straight stroke of `width` points, black.
    Line { x1: f32, y1: f32, x2: f32, y2: f32, width: f32 },
    /// An axis-aligned rectangle, filled with `fill` and/or stroked with a black line of width
    /// `stroke`.
    Rect { x: f32, y: f32, w: f32, h: f32, fill: Option<Gray>, stroke: Option<f32> },
    /// A grayscale bitmap scaled into the box (x, y, w, h): the seal impression. Shared, because copies
    /// repeat pages.
    Image { x: f32, y: f32, w: f32, h: f32, bitmap: std::sync::Arc<super::bitmap::Bitmap> },
    /// The copy-deterrent background (牽制文字). Drawn on the printed front only, never into the raster
    /// the scrambled back is made from.
    Pantograph(std::sync::Arc<super::pantograph::Pantograph>),
}

/// A single line of text in one font and size, already mapped to glyphs.
#[derive(Debug, Clone, PartialEq)]
pub struct TextRun {
    /// Left end of the baseline.
    pub x: f32,
    /// Baseline position (distance from the top of the page).
    pub baseline: f32,
    /// Font size in points.
    pub size: f32,
    pub font: FontRole,
    /// Extra space after every glyph, in points (used to spread short labels such as 住　所).
    pub tracking: f32,
    pub glyphs: Vec<Glyph>,
}

impl TextRun {
    /// Pen positions (x of each glyph origin), in points.
    pub fn positions(&self) -> impl Iterator<Item = (f32, &Glyph)> + '_ {
        let mut x = self.x;
        self.glyphs.iter().map(move |g| {
            let at = x;
            x += g.advance * self.size + self.tracking;
            (at, g)
        })
    }
}
