//! The parts every kiosk certificate sheet shares, in the look of the 住民票の写し: issuer and
//! 「x 枚中 y 枚目」 on top, the spaced Gothic title, ruled label/value rows with tinted label
//! cells, the certification with the date of issue and the mayor beside the official seal box,
//! and the footer with the certificate number and the note about the scrambled back.

use bcl_projections::record::{Date, MunicipalityHeader, Sex};

use super::era::era_date;
use super::{Align, Canvas, Cell, Style};
use std::sync::Arc;

use crate::render::display_list::{DisplayList, Item, Page, A4_WIDTH};
use crate::render::pantograph;
use crate::render::fonts::{FontRole, FontSet};
use crate::render::RenderError;

pub const LEFT: f32 = 42.5;
pub const RIGHT: f32 = A4_WIDTH - 42.5;
pub const WIDTH: f32 = RIGHT - LEFT;
pub const THIN: f32 = 0.5;
pub const THICK: f32 = 1.2;
/// Background of label cells: a light tint that survives photocopying and scanning.
pub const LABEL_FILL: f32 = 0.93;
pub const LABEL_SIZE: f32 = 8.5;
/// Where the body of a sheet starts, under the title.
pub const BODY_TOP: f32 = 104.0;
/// The body must end above the certification.
pub const BODY_BOTTOM: f32 = 680.0;

pub const BODY: Style = Style { font: FontRole::Mincho, size: 10.0, min_size: 6.0 };
pub const ADDRESS: Style = Style { font: FontRole::Mincho, size: 11.0, min_size: 6.5 };
pub const NAME: Style = Style { font: FontRole::Mincho, size: 13.0, min_size: 7.0 };
const MAYOR: Style = Style { font: FontRole::Mincho, size: 13.0, min_size: 8.0 };

/// One cell of a ruled row.
pub enum Part<'a> {
    /// A tinted label cell of this width.
    Label(&'a str, f32),
    /// A value cell: text, record field name, width (0 = the rest of the row), style, alignment.
    Value(&'a str, &'a str, f32, Style, Align),
}

/// Draws one ruled row at `y` of height `h` from the left margin (or `x`) to the right margin.
pub fn row_at(c: &mut Canvas, x: f32, y: f32, h: f32, parts: &[Part]) -> Result<(), RenderError> {
    let mut at = x;
    for (i, part) in parts.iter().enumerate() {
        let last = i + 1 == parts.len();
        match part {
            Part::Label(text, w) => {
                let cell = Cell::new(at, y, if last { RIGHT - at } else { *w }, h);
                c.rect(cell, Some(LABEL_FILL), Some(THIN));
                c.label(cell, text, LABEL_SIZE)?;
                at += cell.w;
            }
            Part::Value(text, field, w, style, align) => {
                let w = if *w <= 0.0 || last { RIGHT - at } else { *w };
                let cell = Cell::new(at, y, w, h);
                c.rect(cell, None, Some(THIN));
                if !text.is_empty() {
                    c.fit(cell, text, field, *style, *align)?;
                }
                at += w;
            }
        }
    }
    Ok(())
}

pub fn row(c: &mut Canvas, y: f32, h: f32, parts: &[Part]) -> Result<(), RenderError> {
    row_at(c, LEFT, y, h, parts)
}

/// A thick frame around a group of rows.
pub fn frame(c: &mut Canvas, x: f32, top: f32, bottom: f32) {
    c.rect(Cell::new(x, top, RIGHT - x, bottom - top), None, Some(THICK));
}

/// A new sheet with the issuer, the sheet mark and the title.
pub fn sheet<'f>(
    fonts: &'f FontSet,
    municipality: &MunicipalityHeader,
    title: &str,
    sheet: u32,
    sheets: u32,
) -> Result<Canvas<'f>, RenderError> {
    let mut c = Canvas::new(fonts, Page::a4());
    // The copy-deterrent background first, under everything else.
    let background = pantograph::build(fonts, LEFT - 12.0, 56.0, WIDTH + 24.0, 724.0)?;
    c.page.items.push(Item::Pantograph(Arc::new(background)));
    c.text_at(&municipality.name, "municipality.name", FontRole::Mincho, 10.0, LEFT, 44.0, Align::Left)?;
    c.text_at(&format!("{sheets} 枚中 {sheet} 枚目"), "sheet_mark", FontRole::Mincho, 9.5, RIGHT, 44.0, Align::Right)?;
    let tracking = if title.chars().count() > 8 { 3.0 } else { 8.0 };
    c.spaced(title, FontRole::Gothic, 22.0, tracking, A4_WIDTH / 2.0, 84.0)?;
    Ok(c)
}

/// 「以下余白」 under the last entry of a sheet that has room left.
pub fn blank_mark(c: &mut Canvas, y: f32) -> Result<(), RenderError> {
    c.text_at("以下余白", "blank_mark", FontRole::Mincho, 9.5, A4_WIDTH / 2.0, y + 18.0, Align::Center)?;
    Ok(())
}

/// The certification: sentence, date of issue, mayor and the official seal box, then the footer.
pub fn certification(
    c: &mut Canvas,
    sentence: &str,
    issued_on: Date,
    municipality: &MunicipalityHeader,
    certificate_id: &str,
) -> Result<(), RenderError> {
    c.text_at(sentence, "certification", FontRole::Mincho, 10.5, LEFT + 12.0, 700.0, Align::Left)?;
    let issued = era_date(issued_on, "issued_on")?;
    c.text_at(&issued, "issued_on", FontRole::Mincho, 10.5, LEFT + 24.0, 728.0, Align::Left)?;
    // The mayor's name ends just left of the official seal (職印) box.
    let seal = Cell::new(RIGHT - 62.0, 734.0, 46.0, 46.0);
    let mayor = Cell::new(LEFT + 150.0, 744.0, seal.x - 2.0 - (LEFT + 150.0), 26.0);
    c.fit_in_band(
        mayor,
        mayor.y,
        mayor.h,
        &[(&municipality.mayor_title, "municipality.mayor_title"), (&municipality.mayor_name, "municipality.mayor_name")],
        "　",
        MAYOR,
        Align::Right,
    )?;
    c.rect(seal, None, Some(1.0));
    c.rect(Cell::new(seal.x + 3.0, seal.y + 3.0, seal.w - 6.0, seal.h - 6.0), None, Some(0.4));
    c.text_at("職印", "official_seal", FontRole::Gothic, 7.0, seal.x + seal.w / 2.0, seal.y + seal.h / 2.0 + 2.5, Align::Center)?;

    c.line(LEFT, 786.0, RIGHT, 786.0, THIN);
    c.text_at(&format!("証明書番号 {certificate_id}"), "certificate_id", FontRole::Mincho, 7.5, LEFT, 798.0, Align::Left)?;
    c.text_at(
        "裏面には、この面の内容を暗号化した画像（スクランブル画像）を印刷しています。",
        "footer",
        FontRole::Mincho,
        7.0,
        LEFT,
        810.0,
        Align::Left,
    )?;
    Ok(())
}

/// Every sheet of one copy, repeated for each copy.
pub fn copies(one_copy: Vec<Page>, copies: u32) -> DisplayList {
    let mut pages = Vec::with_capacity(one_copy.len() * copies.max(1) as usize);
    for _ in 0..copies.max(1) {
        pages.extend(one_copy.iter().cloned());
    }
    DisplayList { pages }
}

pub fn sex(s: Sex) -> &'static str {
    match s {
        Sex::Male => "男",
        Sex::Female => "女",
    }
}

/// A full name as printed: family and given name joined by an ideographic space.
pub fn full_name(family: &str, given: &str) -> String {
    if given.is_empty() {
        family.to_owned()
    } else {
        format!("{family}\u{3000}{given}")
    }
}

/// The era year of a fiscal year (令和8年度). Named by the era of its calendar year as it ended, which
/// is how documents issued after an era change name the year: 2019年度 is 令和元年度, not 平成31年度.
pub fn era_fiscal_year(fiscal_year: u32, field: &str) -> Result<String, RenderError> {
    Ok(format!("{}度", era_calendar_year(fiscal_year as i32, field)?))
}

/// The era year of a calendar year's income (令和7年中): the era on its last day.
pub fn era_calendar_year(year: i32, field: &str) -> Result<String, RenderError> {
    let last_day = era_date(Date { year, month: 12, day: 31 }, field)?;
    Ok(era_year_prefix(&last_day).to_owned())
}

fn era_year_prefix(era_date: &str) -> &str {
    let end = era_date.find('年').map_or(era_date.len(), |i| i + '年'.len_utf8());
    &era_date[..end]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn era_years() {
        assert_eq!(era_fiscal_year(2026, "f").unwrap(), "令和8年度");
        assert_eq!(era_fiscal_year(2019, "f").unwrap(), "令和元年度");
        assert_eq!(era_fiscal_year(1988, "f").unwrap(), "昭和63年度");
        assert_eq!(era_calendar_year(2019, "f").unwrap(), "令和元年");
        assert_eq!(era_calendar_year(2025, "f").unwrap(), "令和7年");
    }
}
