//! 住民票記載事項証明書: the household's address (and 世帯主 when selected), then per person only
//! the certified items: 氏名, 生年月日, 性別, and 続柄, 本籍・筆頭者, 個人番号 when selected. Four
//! persons per sheet, as on the 住民票の写し.

use bcl_projections::record::{ItemsPerson, ResidentRecordItemsCertificate, PERSONS_PER_SHEET};

use super::era::era_date;
use super::form::{self, Part, ADDRESS, BODY, LEFT, NAME, THICK, THIN};
use super::{Align, Canvas, Cell};
use crate::render::display_list::DisplayList;
use crate::render::fonts::FontSet;
use crate::render::RenderError;

const INDEX_COL: f32 = 18.0;
const LABEL_W: f32 = 80.0;
const ROW: f32 = 22.0;
const NAME_ROW: f32 = 30.0;

pub fn layout(fonts: &FontSet, cert: &ResidentRecordItemsCertificate) -> Result<DisplayList, RenderError> {
    let sheets = cert.sheets_per_copy();
    let mut one_copy = Vec::with_capacity(sheets as usize);
    for sheet in 0..sheets {
        let start = sheet as usize * PERSONS_PER_SHEET;
        let end = (start + PERSONS_PER_SHEET).min(cert.persons.len());
        let mut c = form::sheet(fonts, &cert.municipality, "住民票記載事項証明書", sheet + 1, sheets)?;
        let mut y = form::BODY_TOP;
        let top = y;
        form::row(&mut c, y, 28.0, &[Part::Label("住所", LABEL_W), Part::Value(&cert.address, "address", 0.0, ADDRESS, Align::Left)])?;
        y += 28.0;
        if let Some(head) = &cert.household_head_name {
            form::row(&mut c, y, ROW, &[Part::Label("世帯主", LABEL_W), Part::Value(head, "household_head_name", 0.0, BODY, Align::Left)])?;
            y += ROW;
        }
        form::frame(&mut c, LEFT, top, y);
        y += 12.0;
        for (i, p) in cert.persons[start..end].iter().enumerate() {
            y = person(&mut c, start + i, p, y)?;
        }
        if end - start < PERSONS_PER_SHEET {
            form::blank_mark(&mut c, y)?;
        }
        form::certification(
            &mut c,
            "上記の事項は、住民票に記載されていることを証明する。",
            cert.issued_on,
            &cert.municipality,
            &cert.certificate_id,
        )?;
        one_copy.push(c.finish());
    }
    Ok(form::copies(one_copy, cert.copies))
}

fn person(c: &mut Canvas, index: usize, p: &ItemsPerson, top: f32) -> Result<f32, RenderError> {
    let f = |name: &str| format!("persons[{index}].{name}");
    let x = LEFT + INDEX_COL;
    let mut y = top;
    let name = form::full_name(&p.family_name, &p.given_name);
    form::row_at(c, x, y, NAME_ROW, &[Part::Label("氏名", LABEL_W), Part::Value(&name, &f("name"), 0.0, NAME, Align::Left)])?;
    y += NAME_ROW;
    let birth = era_date(p.birth_date, &f("birth_date"))?;
    form::row_at(c, x, y, ROW, &[
        Part::Label("生年月日", LABEL_W),
        Part::Value(&birth, &f("birth_date"), 190.0, BODY, Align::Left),
        Part::Label("性別", 50.0),
        Part::Value(form::sex(p.sex), &f("sex"), 0.0, BODY, Align::Center),
    ])?;
    y += ROW;
    if let Some(relationship) = &p.relationship {
        form::row_at(c, x, y, ROW, &[Part::Label("続柄", LABEL_W), Part::Value(relationship, &f("relationship"), 0.0, BODY, Align::Left)])?;
        y += ROW;
    }
    if p.registered_domicile.is_some() || p.domicile_head.is_some() {
        form::row_at(c, x, y, ROW, &[
            Part::Label("本籍", LABEL_W),
            Part::Value(p.registered_domicile.as_deref().unwrap_or(""), &f("registered_domicile"), 250.0, BODY, Align::Left),
            Part::Label("筆頭者", 50.0),
            Part::Value(p.domicile_head.as_deref().unwrap_or(""), &f("domicile_head"), 0.0, BODY, Align::Left),
        ])?;
        y += ROW;
    }
    if let Some(number) = &p.personal_number {
        form::row_at(c, x, y, ROW, &[Part::Label("個人番号", LABEL_W), Part::Value(number, &f("personal_number"), 0.0, BODY, Align::Left)])?;
        y += ROW;
    }
    let index_cell = Cell::new(LEFT, top, INDEX_COL, y - top);
    c.rect(index_cell, None, Some(THIN));
    c.fit(index_cell, &(index + 1).to_string(), "index", BODY, Align::Center)?;
    c.rect(Cell::new(LEFT, top, form::WIDTH, y - top), None, Some(THICK));
    Ok(y + 8.0)
}
