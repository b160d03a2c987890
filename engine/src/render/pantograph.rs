//! The copy-deterrent background (牽制文字, void pantograph): fine dots everywhere and, inside the outlines
//! of 「複写」 tiled across the sheet, coarse dots of the same tone. On the printed original both areas look
//! like the same light tint; a copier drops the fine dots and keeps the coarse ones, so 「複写」 ("copy")
//! appears on every copy.
//!
//! It is drawn once per document as a PDF form XObject made of two tiling patterns and a clip path (the
//! glyph outlines as paths, not text, so nothing is added to the extracted text), and each front page
//! refers to it: it costs one `Do` per page. It is not part of the raster the scrambled back is made from:
//! the back reproduces the certificate's content, and dots would only add noise to it.

use skrifa::outline::{DrawSettings, OutlinePen};
use skrifa::prelude::{LocationRef, Size};
use skrifa::MetadataProvider;

use super::fonts::{FontRole, FontSet};
use super::RenderError;

/// The latent word.
pub const LATENT_TEXT: &str = "複写";
/// Size of the latent word, points.
const LATENT_SIZE: f32 = 150.0;
/// Tiles of the latent word: horizontal and vertical step, points; odd rows shifted by half a step.
const STEP_X: f32 = 340.0;
const STEP_Y: f32 = 240.0;

/// Fine dots: `FINE_DOT` square on a `FINE_STEP` grid. Coarse dots: 3× both, so both cover the same
/// fraction of the paper (1/16) and print the same tone; a fine dot (0.14 mm) is below what a copier
/// reproduces, a coarse one (0.42 mm) is not.
pub const FINE_DOT: f32 = 0.4;
pub const FINE_STEP: f32 = 1.6;
pub const COARSE_DOT: f32 = 1.2;
pub const COARSE_STEP: f32 = 4.8;
/// Gray level of the dots (0 black, 1 white): light enough not to disturb reading.
pub const DOT_GRAY: f32 = 0.5;

/// A path segment in page coordinates (points, y down).
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum PathOp {
    Move(f32, f32),
    Line(f32, f32),
    Cubic(f32, f32, f32, f32, f32, f32),
    Close,
}

/// The background of one sheet: the dotted area and the outlines of the latent word within it.
#[derive(Debug, Clone, PartialEq)]
pub struct Pantograph {
    pub x: f32,
    pub y: f32,
    pub w: f32,
    pub h: f32,
    pub latent: Vec<PathOp>,
}

/// Collects a glyph's outline, scaled and placed on the page (font units are y up; the page is y down).
struct Placed<'a> {
    ops: &'a mut Vec<PathOp>,
    x: f32,
    baseline: f32,
    last: (f32, f32),
}

impl Placed<'_> {
    fn p(&self, x: f32, y: f32) -> (f32, f32) {
        (self.x + x, self.baseline - y)
    }
}

impl OutlinePen for Placed<'_> {
    fn move_to(&mut self, x: f32, y: f32) {
        let p = self.p(x, y);
        self.ops.push(PathOp::Move(p.0, p.1));
        self.last = p;
    }
    fn line_to(&mut self, x: f32, y: f32) {
        let p = self.p(x, y);
        self.ops.push(PathOp::Line(p.0, p.1));
        self.last = p;
    }
    fn quad_to(&mut self, cx: f32, cy: f32, x: f32, y: f32) {
        // A quadratic Bézier as the equivalent cubic.
        let (c, p, l) = (self.p(cx, cy), self.p(x, y), self.last);
        let c1 = (l.0 + 2.0 / 3.0 * (c.0 - l.0), l.1 + 2.0 / 3.0 * (c.1 - l.1));
        let c2 = (p.0 + 2.0 / 3.0 * (c.0 - p.0), p.1 + 2.0 / 3.0 * (c.1 - p.1));
        self.ops.push(PathOp::Cubic(c1.0, c1.1, c2.0, c2.1, p.0, p.1));
        self.last = p;
    }
    fn curve_to(&mut self, cx0: f32, cy0: f32, cx1: f32, cy1: f32, x: f32, y: f32) {
        let (a, b, p) = (self.p(cx0, cy0), self.p(cx1, cy1), self.p(x, y));
        self.ops.push(PathOp::Cubic(a.0, a.1, b.0, b.1, p.0, p.1));
        self.last = p;
    }
    fn close(&mut self) {
        self.ops.push(PathOp::Close);
    }
}

/// The background for the area (x, y, w, h): the latent word tiled over it, clipped to whole tiles that
/// lie inside the area.
pub fn build(fonts: &FontSet, x: f32, y: f32, w: f32, h: f32) -> Result<Pantograph, RenderError> {
    let glyphs = fonts.shape(FontRole::Gothic, LATENT_TEXT, "pantograph")?;
    let font = fonts.font(FontRole::Gothic).font_ref();
    let outlines = font.outline_glyphs();
    let word_w: f32 = glyphs.iter().map(|g| g.advance * LATENT_SIZE).sum();
    let mut latent = Vec::new();
    let mut row = 0;
    let mut baseline = y + LATENT_SIZE * 0.9;
    while baseline + LATENT_SIZE * 0.15 <= y + h {
        let mut left = x + if row % 2 == 1 { STEP_X / 2.0 } else { 12.0 };
        while left + word_w <= x + w {
            let mut pen_x = left;
            for g in &glyphs {
                if let Some(outline) = outlines.get(g.id.into()) {
                    let mut pen = Placed { ops: &mut latent, x: pen_x, baseline, last: (pen_x, baseline) };
                    outline
                        .draw(DrawSettings::unhinted(Size::new(LATENT_SIZE), LocationRef::default()), &mut pen)
                        .map_err(|_| RenderError::FontInvalid { role: "gothic", reason: "unreadable glyph outline".into() })?;
                }
                pen_x += g.advance * LATENT_SIZE;
            }
            left += STEP_X;
        }
        baseline += STEP_Y;
        row += 1;
    }
    Ok(Pantograph { x, y, w, h, latent })
}

#[cfg(test)]
mod tests {
    #[test]
    fn fine_and_coarse_dots_print_the_same_tone() {
        use super::*;
        let fine = (FINE_DOT / FINE_STEP).powi(2);
        let coarse = (COARSE_DOT / COARSE_STEP).powi(2);
        assert!((fine - coarse).abs() < 1e-6);
        const { assert!(COARSE_DOT > 2.0 * FINE_DOT, "coarse dots must survive a copier that drops fine ones") };
    }
}
