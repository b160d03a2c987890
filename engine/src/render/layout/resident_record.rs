//! The A4 sheet of 住民票の写し in the kiosk household style (世帯連記式): a header with the
//! household's address and (on request) its head, up to four person blocks per sheet, and the
//! certification with date, mayor and sheet mark. A household of n persons takes ceil(n/4)
//! sheets per copy; every sheet is complete on its own (title, address, 「x 枚中 y 枚目」,
//! certification), as a kiosk sheet must be.

use bcl_projections::record::{PersonEntry, ResidentRecordCertificate, Sex, PERSONS_PER_SHEET};

use super::era::era_date;
use super::{Align, Canvas, Cell, Style};
use crate::render::display_list::{DisplayList, Page, A4_WIDTH};
use crate::render::fonts::{FontRole, FontSet};
use crate::render::RenderError;

const LEFT: f32 = 42.5;
const RIGHT: f32 = A4_WIDTH - 42.5;
const INDEX_COL: f32 = 18.0;
const LABEL_COL: f32 = 70.0;
const VALUE_COL: f32 = 176.0;
const THIN: f32 = 0.5;
const THICK: f32 = 1.2;
/// Background of label cells: a light tint that survives photocopying and scanning.
const LABEL_FILL: f32 = 0.93;

const BODY: Style = Style { font: FontRole::Mincho, size: 9.5, min_size: 6.0 };
const ADDRESS: Style = Style { font: FontRole::Mincho, size: 11.0, min_size: 6.5 };
const NAME: Style = Style { font: FontRole::Mincho, size: 13.0, min_size: 7.0 };
const KANA: Style = Style { font: FontRole::Mincho, size: 7.0, min_size: 5.0 };
const MAYOR: Style = Style { font: FontRole::Mincho, size: 13.0, min_size: 8.0 };
const LABEL_SIZE: f32 = 8.0;

const ROW: f32 = 20.0;
const NAME_ROW: f32 = 38.0;

/// Which optional rows the person blocks of this certificate carry. Decided once per
/// certificate so every block (and every sheet) has the same shape.
#[derive(Clone, Copy)]
struct Rows {
    relationship_or_number: bool,
    domicile: bool,
}

impl Rows {
    fn of(cert: &ResidentRecordCertificate) -> Rows {
        Rows {
            relationship_or_number: cert
                .persons
                .iter()
                .any(|p| p.relationship.is_some() || p.personal_number.is_some()),
            domicile: cert.persons.iter().any(|p| p.registered_domicile.is_some() || p.domicile_head.is_some()),
        }
    }

    fn block_height(self) -> f32 {
        NAME_ROW + 2.0 * ROW + ROW * (self.relationship_or_number as u8 + self.domicile as u8) as f32
    }
}

/// Lays out all sheets of all copies.
pub fn layout(fonts: &FontSet, cert: &ResidentRecordCertificate) -> Result<DisplayList, RenderError> {
    let sheets = cert.sheets_per_copy();
    let rows = Rows::of(cert);
    let mut one_copy = Vec::with_capacity(sheets as usize);
    for sheet in 0..sheets {
        let start = sheet as usize * PERSONS_PER_SHEET;
        let end = (start + PERSONS_PER_SHEET).min(cert.persons.len());
        one_copy.push(sheet_page(fonts, cert, rows, sheet + 1, sheets, start, &cert.persons[start..end])?);
    }
    let mut pages = Vec::with_capacity(one_copy.len() * cert.copies.max(1) as usize);
    for _ in 0..cert.copies.max(1) {
        pages.extend(one_copy.iter().cloned());
    }
    Ok(DisplayList { pages })
}

fn sheet_page(
    fonts: &FontSet,
    cert: &ResidentRecordCertificate,
    rows: Rows,
    sheet: u32,
    sheets: u32,
    first_index: usize,
    persons: &[PersonEntry],
) -> Result<Page, RenderError> {
    let mut c = Canvas::new(fonts, Page::a4());
    let width = RIGHT - LEFT;
    // The copy-deterrent pantograph (牽制文字) first, under everything else; the same area as the other
    // certificate types, so every front shows 「複写」 when copied.
    let background = crate::render::pantograph::build(fonts, LEFT - 12.0, 56.0, width + 24.0, 724.0)?;
    c.page.items.push(crate::render::Item::Pantograph(std::sync::Arc::new(background)));

    // Header line: issuer on the left, sheet mark on the right.
    c.text_at(&cert.municipality.name, "municipality.name", FontRole::Mincho, 10.0, LEFT, 44.0, Align::Left)?;
    c.text_at(&format!("{sheets} 枚中 {sheet} 枚目"), "sheet_mark", FontRole::Mincho, 9.5, RIGHT, 44.0, Align::Right)?;
    c.spaced("住民票の写し", FontRole::Gothic, 22.0, 8.0, A4_WIDTH / 2.0, 84.0)?;

    // Household: address and, on request, its head.
    let mut y = 104.0;
    let top = y;
    let address_row = 28.0;
    let value = Cell::new(LEFT + LABEL_COL, y, width - LABEL_COL, address_row);
    header_label(&mut c, Cell::new(LEFT, y, LABEL_COL, address_row), "住所")?;
    c.rect(value, None, Some(THIN));
    c.fit(value, &cert.address, "address", ADDRESS, Align::Left)?;
    y += address_row;
    if let Some(head) = &cert.household_head_name {
        let value = Cell::new(LEFT + LABEL_COL, y, width - LABEL_COL, ROW + 2.0);
        header_label(&mut c, Cell::new(LEFT, y, LABEL_COL, ROW + 2.0), "世帯主")?;
        c.rect(value, None, Some(THIN));
        c.fit(value, head, "household_head_name", BODY, Align::Left)?;
        y += ROW + 2.0;
    }
    c.rect(Cell::new(LEFT, top, width, y - top), None, Some(THICK));

    // Person blocks.
    y += 12.0;
    for (i, person) in persons.iter().enumerate() {
        person_block(&mut c, rows, first_index + i, person, y)?;
        y += rows.block_height();
    }
    if persons.len() < PERSONS_PER_SHEET {
        c.text_at("以下余白", "blank_mark", FontRole::Mincho, 9.5, A4_WIDTH / 2.0, y + 18.0, Align::Center)?;
    }

    // Certification.
    let sentence = if cert.whole_household {
        "この写しは、世帯全員の住民票の原本と相違ないことを証明する。"
    } else {
        "この写しは、住民票の原本と相違ないことを証明する。"
    };
    c.text_at(sentence, "certification", FontRole::Mincho, 10.5, LEFT + 12.0, 700.0, Align::Left)?;
    let issued = era_date(cert.issued_on, "issued_on")?;
    c.text_at(&issued, "issued_on", FontRole::Mincho, 10.5, LEFT + 24.0, 728.0, Align::Left)?;
    let mayor = Cell::new(LEFT + 150.0, 744.0, width - 150.0 - 20.0, 26.0);
    c.fit_in_band(
        mayor,
        mayor.y,
        mayor.h,
        &[(&cert.municipality.mayor_title, "municipality.mayor_title"), (&cert.municipality.mayor_name, "municipality.mayor_name")],
        "　",
        MAYOR,
        Align::Right,
    )?;

    // Footer: identification and the note about the back page.
    c.line(LEFT, 786.0, RIGHT, 786.0, THIN);
    c.text_at(&format!("証明書番号 {}", cert.certificate_id), "certificate_id", FontRole::Mincho, 7.5, LEFT, 798.0, Align::Left)?;
    c.text_at(
        "裏面には、この面の内容を暗号化した画像（スクランブル画像）を印刷しています。",
        "footer",
        FontRole::Mincho,
        7.0,
        LEFT,
        810.0,
        Align::Left,
    )?;
    Ok(c.finish())
}

fn header_label(c: &mut Canvas, cell: Cell, text: &str) -> Result<(), RenderError> {
    c.rect(cell, Some(LABEL_FILL), Some(THIN));
    c.label(cell, text, LABEL_SIZE + 1.0)
}

fn label_cell(c: &mut Canvas, cell: Cell, text: &str) -> Result<(), RenderError> {
    c.rect(cell, Some(LABEL_FILL), Some(THIN));
    c.label(cell, text, LABEL_SIZE)
}

fn value_cell(c: &mut Canvas, cell: Cell, text: Option<&str>, field: &str, style: Style) -> Result<(), RenderError> {
    c.rect(cell, None, Some(THIN));
    match text {
        Some(text) => c.fit(cell, text, field, style, Align::Left),
        None => Ok(()),
    }
}

fn person_block(c: &mut Canvas, rows: Rows, index: usize, p: &PersonEntry, top: f32) -> Result<(), RenderError> {
    let f = |name: &str| format!("persons[{index}].{name}");
    let x0 = LEFT + INDEX_COL;
    let (a, b, cc, d) = (x0, x0 + LABEL_COL, x0 + LABEL_COL + VALUE_COL, x0 + 2.0 * LABEL_COL + VALUE_COL);
    let d_w = RIGHT - d;
    let height = rows.block_height();
    let index_cell = Cell::new(LEFT, top, INDEX_COL, height);
    c.rect(index_cell, None, Some(THIN));
    c.fit(index_cell, &(index + 1).to_string(), "index", BODY, Align::Center)?;

    // 氏名 (with ふりがな) | 生年月日 | 性別
    let mut y = top;
    label_cell(c, Cell::new(a, y, LABEL_COL, NAME_ROW), "氏名")?;
    let name = Cell::new(b, y, VALUE_COL, NAME_ROW);
    c.rect(name, None, Some(THIN));
    c.fit_in_band(
        name,
        y + 1.0,
        12.0,
        &[(&p.family_name_kana, &f("family_name_kana")), (&p.given_name_kana, &f("given_name_kana"))],
        "　",
        KANA,
        Align::Left,
    )?;
    c.fit_in_band(
        name,
        y + 12.0,
        NAME_ROW - 13.0,
        &[(&p.family_name, &f("family_name")), (&p.given_name, &f("given_name"))],
        "　",
        NAME,
        Align::Left,
    )?;
    label_cell(c, Cell::new(cc, y, LABEL_COL, NAME_ROW), "生年月日")?;
    let (date_w, sex_label_w) = (d_w - 70.0, 32.0);
    value_cell(c, Cell::new(d, y, date_w, NAME_ROW), Some(&era_date(p.birth_date, &f("birth_date"))?), &f("birth_date"), BODY)?;
    label_cell(c, Cell::new(d + date_w, y, sex_label_w, NAME_ROW), "性別")?;
    let sex = match p.sex {
        Sex::Male => "男",
        Sex::Female => "女",
    };
    let sex_cell = Cell::new(d + date_w + sex_label_w, y, d_w - date_w - sex_label_w, NAME_ROW);
    c.rect(sex_cell, None, Some(THIN));
    c.fit(sex_cell, sex, &f("sex"), BODY, Align::Center)?;
    y += NAME_ROW;

    // 住民となった日 | 住所を定めた日
    label_cell(c, Cell::new(a, y, LABEL_COL, ROW), "住民となった日")?;
    value_cell(c, Cell::new(b, y, VALUE_COL, ROW), Some(&era_date(p.resident_since, &f("resident_since"))?), &f("resident_since"), BODY)?;
    label_cell(c, Cell::new(cc, y, LABEL_COL, ROW), "住所を定めた日")?;
    value_cell(c, Cell::new(d, y, d_w, ROW), Some(&era_date(p.address_since, &f("address_since"))?), &f("address_since"), BODY)?;
    y += ROW;

    // 続柄 | 個人番号 (only on certificates that print either)
    if rows.relationship_or_number {
        label_cell(c, Cell::new(a, y, LABEL_COL, ROW), "続柄")?;
        value_cell(c, Cell::new(b, y, VALUE_COL, ROW), p.relationship.as_deref(), &f("relationship"), BODY)?;
        label_cell(c, Cell::new(cc, y, LABEL_COL, ROW), "個人番号")?;
        value_cell(c, Cell::new(d, y, d_w, ROW), p.personal_number.as_deref(), &f("personal_number"), BODY)?;
        y += ROW;
    }

    // 前住所
    label_cell(c, Cell::new(a, y, LABEL_COL, ROW), "前住所")?;
    value_cell(c, Cell::new(b, y, RIGHT - b, ROW), p.previous_address.as_deref(), &f("previous_address"), BODY)?;
    y += ROW;

    // 本籍 | 筆頭者 (only on certificates that print the domicile)
    if rows.domicile {
        let domicile_w = VALUE_COL + 90.0;
        let head_label = 46.0;
        label_cell(c, Cell::new(a, y, LABEL_COL, ROW), "本籍")?;
        value_cell(c, Cell::new(b, y, domicile_w, ROW), p.registered_domicile.as_deref(), &f("registered_domicile"), BODY)?;
        label_cell(c, Cell::new(b + domicile_w, y, head_label, ROW), "筆頭者")?;
        let head = Cell::new(b + domicile_w + head_label, y, RIGHT - b - domicile_w - head_label, ROW);
        value_cell(c, head, p.domicile_head.as_deref(), &f("domicile_head"), BODY)?;
    }
    c.rect(Cell::new(LEFT, top, RIGHT - LEFT, height), None, Some(THICK));
    Ok(())
}
