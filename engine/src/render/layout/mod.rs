//! Certificate layouts: each file turns one ready-to-render record into a display list.
//! This module holds what all layouts share: placing text in ruled cells, shrinking it to fit,
//! and refusing (rather than clipping) what cannot fit.

pub mod disaster_damage;
pub mod era;
pub mod family_register;
pub mod form;
pub mod resident_record;
pub mod resident_record_items;
pub mod seal_registration;
pub mod tax;

#[cfg(test)]
mod catalogue_tests;

use super::display_list::{Item, Page, TextRun};
use super::fonts::{run_width, FontRole, FontSet};
use super::RenderError;

/// A rectangular cell of the ruled table, in points from the top-left of the page.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Cell {
    pub x: f32,
    pub y: f32,
    pub w: f32,
    pub h: f32,
}

impl Cell {
    pub fn new(x: f32, y: f32, w: f32, h: f32) -> Cell {
        Cell { x, y, w, h }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Align {
    Left,
    Center,
    Right,
}

/// How a piece of text is set: font, preferred size and the smallest size it may shrink to.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Style {
    pub font: FontRole,
    pub size: f32,
    pub min_size: f32,
}

/// Horizontal padding inside a cell, points.
pub const CELL_PAD: f32 = 4.0;

/// Draws onto one page, shaping text with the certificate fonts.
pub struct Canvas<'f> {
    fonts: &'f FontSet,
    pub page: Page,
}

impl<'f> Canvas<'f> {
    pub fn new(fonts: &'f FontSet, page: Page) -> Self {
        Canvas { fonts, page }
    }

    pub fn finish(self) -> Page {
        self.page
    }

    pub fn line(&mut self, x1: f32, y1: f32, x2: f32, y2: f32, width: f32) {
        self.page.items.push(Item::Line { x1, y1, x2, y2, width });
    }

    pub fn rect(&mut self, cell: Cell, fill: Option<f32>, stroke: Option<f32>) {
        self.page.items.push(Item::Rect { x: cell.x, y: cell.y, w: cell.w, h: cell.h, fill, stroke });
    }

    /// Sets `text` on one line with its baseline at `baseline`, starting at `x` (Left), centred
    /// on `x` (Center) or ending at `x` (Right). Returns the width used.
    #[allow(clippy::too_many_arguments)] // what, for which field, in which face, where and how aligned
    pub fn text_at(
        &mut self,
        text: &str,
        field: &str,
        font: FontRole,
        size: f32,
        x: f32,
        baseline: f32,
        align: Align,
    ) -> Result<f32, RenderError> {
        let glyphs = self.fonts.shape(font, text, field)?;
        let width = run_width(&glyphs, size, 0.0);
        let x = match align {
            Align::Left => x,
            Align::Center => x - width / 2.0,
            Align::Right => x - width,
        };
        if !glyphs.is_empty() {
            self.page.items.push(Item::Text(TextRun { x, baseline, size, font, tracking: 0.0, glyphs }));
        }
        Ok(width)
    }

    /// Sets `text` on one line inside `cell`, vertically centred, shrinking from `style.size`
    /// down to `style.min_size` if needed. Text that does not fit at the minimum size is a
    /// `LayoutOverflow` for `field`: a certificate must never be printed with part of a name
    /// or address cut off.
    pub fn fit(&mut self, cell: Cell, text: &str, field: &str, style: Style, align: Align) -> Result<(), RenderError> {
        self.fit_in_band(cell, cell.y, cell.h, &[(text, field)], "", style, align)
    }

    /// Like [`Canvas::fit`] but centred in the horizontal band `top..top+height` of `cell`, and
    /// made of several record fields joined by `sep` (e.g. family and given name joined by a
    /// full-width space), each shaped under its own field name so an undrawable character is
    /// reported against the exact field.
    #[allow(clippy::too_many_arguments)]
    pub fn fit_in_band(
        &mut self,
        cell: Cell,
        top: f32,
        height: f32,
        parts: &[(&str, &str)],
        sep: &str,
        style: Style,
        align: Align,
    ) -> Result<(), RenderError> {
        let mut glyphs = Vec::new();
        for (i, (text, field)) in parts.iter().enumerate() {
            if i > 0 && !text.is_empty() && !glyphs.is_empty() {
                glyphs.extend(self.fonts.shape(style.font, sep, "separator")?);
            }
            glyphs.extend(self.fonts.shape(style.font, text, field)?);
        }
        if glyphs.is_empty() {
            return Ok(());
        }
        let overflow = || RenderError::LayoutOverflow {
            field: parts.iter().map(|(_, f)| *f).collect::<Vec<_>>().join("+"),
        };
        let room = cell.w - 2.0 * CELL_PAD;
        let natural = run_width(&glyphs, 1.0, 0.0);
        let size = if natural * style.size <= room { style.size } else { room / natural };
        // Quarter-point steps keep sizes (and so glyph cache keys) few and reproducible.
        let size = (size * 4.0).floor() / 4.0;
        if size < style.min_size || size > height {
            return Err(overflow());
        }
        let width = natural * size;
        let x = match align {
            Align::Left => cell.x + CELL_PAD,
            Align::Center => cell.x + (cell.w - width) / 2.0,
            Align::Right => cell.x + cell.w - CELL_PAD - width,
        };
        // Ideographs sit in an em box from -0.12 em to 0.88 em around the baseline.
        let baseline = top + height / 2.0 + size * 0.38;
        self.page.items.push(Item::Text(TextRun { x, baseline, size, font: style.font, tracking: 0.0, glyphs }));
        Ok(())
    }

    /// A free-standing run with letter spacing (titles).
    #[allow(clippy::too_many_arguments)]
    pub fn spaced(
        &mut self,
        text: &str,
        font: FontRole,
        size: f32,
        tracking: f32,
        center_x: f32,
        baseline: f32,
    ) -> Result<(), RenderError> {
        let glyphs = self.fonts.shape(font, text, "title")?;
        let x = center_x - run_width(&glyphs, size, tracking) / 2.0;
        self.page.items.push(Item::Text(TextRun { x, baseline, size, font, tracking, glyphs }));
        Ok(())
    }

    /// A table label such as 氏名 or 住所, spread evenly across the cell the way printed forms
    /// do (氏　　名), in the heading font.
    pub fn label(&mut self, cell: Cell, text: &str, size: f32) -> Result<(), RenderError> {
        let glyphs = self.fonts.shape(FontRole::Gothic, text, "label")?;
        let room = cell.w - 2.0 * CELL_PAD;
        let natural = run_width(&glyphs, size, 0.0);
        let n = glyphs.len();
        // Spread short labels to at most 4 em, never squeeze long ones.
        let target = room.min(size * 4.0);
        let tracking = if n > 1 && natural < target { (target - natural) / (n - 1) as f32 } else { 0.0 };
        let size = if natural > room { size * room / natural } else { size };
        let width = run_width(&glyphs, size, tracking);
        let x = cell.x + (cell.w - width) / 2.0;
        let baseline = cell.y + cell.h / 2.0 + size * 0.38;
        self.page.items.push(Item::Text(TextRun { x, baseline, size, font: FontRole::Gothic, tracking, glyphs }));
        Ok(())
    }
}
