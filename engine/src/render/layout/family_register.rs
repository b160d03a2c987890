//! 戸籍全部事項証明書, 戸籍個人事項証明書 and 戸籍の附票の写し: the register's 本籍 and 筆頭者,
//! then one block per person (名, 生年月日, 性別; on the annex, 住所 with the date it was set and
//! the address before it), up to four persons per sheet, every sheet complete on its own.

use bcl_projections::record::{FamilyRegisterCertificate, FamilyRegisterKind, RegisterPerson, REGISTER_PERSONS_PER_SHEET};

use super::era::era_date;
use super::form::{self, Part, ADDRESS, BODY, LEFT, NAME, THICK, THIN};
use super::{Align, Canvas, Cell};
use crate::render::display_list::DisplayList;
use crate::render::fonts::FontSet;
use crate::render::RenderError;

const INDEX_COL: f32 = 18.0;
const LABEL_W: f32 = 90.0;
const ROW: f32 = 22.0;
const NAME_ROW: f32 = 30.0;

fn title(kind: FamilyRegisterKind) -> &'static str {
    match kind {
        FamilyRegisterKind::Full => "戸籍全部事項証明書",
        FamilyRegisterKind::Personal => "戸籍個人事項証明書",
        FamilyRegisterKind::Annex => "戸籍の附票の写し",
    }
}

fn sentence(kind: FamilyRegisterKind) -> &'static str {
    match kind {
        FamilyRegisterKind::Full => "これは、戸籍に記録されている事項の全部を証明した書面である。",
        FamilyRegisterKind::Personal => "これは、戸籍中の一部の者について記録されている事項の全部を証明した書面である。",
        FamilyRegisterKind::Annex => "この写しは、戸籍の附票の原本と相違ないことを証明する。",
    }
}

pub fn layout(fonts: &FontSet, cert: &FamilyRegisterCertificate) -> Result<DisplayList, RenderError> {
    let sheets = cert.sheets_per_copy();
    let mut one_copy = Vec::with_capacity(sheets as usize);
    for sheet in 0..sheets {
        let start = sheet as usize * REGISTER_PERSONS_PER_SHEET;
        let end = (start + REGISTER_PERSONS_PER_SHEET).min(cert.persons.len());
        let mut c = form::sheet(fonts, &cert.municipality, title(cert.kind), sheet + 1, sheets)?;
        let mut y = form::BODY_TOP;
        let top = y;
        form::row(&mut c, y, 30.0, &[Part::Label("本籍", LABEL_W), Part::Value(&cert.domicile, "domicile", 0.0, ADDRESS, Align::Left)])?;
        y += 30.0;
        let head_label = if cert.kind == FamilyRegisterKind::Annex { "筆頭者" } else { "氏名" };
        form::row(&mut c, y, 30.0, &[Part::Label(head_label, LABEL_W), Part::Value(&cert.head, "head", 0.0, NAME, Align::Left)])?;
        y += 30.0;
        form::frame(&mut c, LEFT, top, y);
        y += 12.0;
        let caption = if cert.kind == FamilyRegisterKind::Annex { "附票に記録されている者" } else { "戸籍に記録されている者" };
        c.text_at(caption, "caption", crate::render::fonts::FontRole::Gothic, 9.5, LEFT, y + 10.0, Align::Left)?;
        y += 16.0;
        for (i, p) in cert.persons[start..end].iter().enumerate() {
            y = person(&mut c, cert.kind, start + i, p, y)?;
        }
        if end - start < REGISTER_PERSONS_PER_SHEET {
            form::blank_mark(&mut c, y)?;
        }
        form::certification(&mut c, sentence(cert.kind), cert.issued_on, &cert.municipality, &cert.certificate_id)?;
        one_copy.push(c.finish());
    }
    Ok(form::copies(one_copy, cert.copies))
}

/// One person's block; returns the y under it.
fn person(c: &mut Canvas, kind: FamilyRegisterKind, index: usize, p: &RegisterPerson, top: f32) -> Result<f32, RenderError> {
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
    if kind == FamilyRegisterKind::Annex {
        let (address, since) = p.address.as_ref().map_or(("", None), |(a, d)| (a.as_str(), Some(*d)));
        form::row_at(c, x, y, ROW + 4.0, &[Part::Label("住所", LABEL_W), Part::Value(address, &f("address"), 0.0, ADDRESS, Align::Left)])?;
        y += ROW + 4.0;
        let since = since.map(|d| era_date(d, &f("address_since"))).transpose()?.unwrap_or_default();
        form::row_at(c, x, y, ROW, &[Part::Label("住所を定めた日", LABEL_W), Part::Value(&since, &f("address_since"), 0.0, BODY, Align::Left)])?;
        y += ROW;
        let previous = p.previous_address.as_deref().unwrap_or("");
        form::row_at(c, x, y, ROW, &[Part::Label("前住所", LABEL_W), Part::Value(previous, &f("previous_address"), 0.0, BODY, Align::Left)])?;
        y += ROW;
    }
    let index_cell = Cell::new(LEFT, top, INDEX_COL, y - top);
    c.rect(index_cell, None, Some(THIN));
    c.fit(index_cell, &(index + 1).to_string(), "index", BODY, Align::Center)?;
    c.rect(Cell::new(LEFT, top, form::WIDTH, y - top), None, Some(THICK));
    Ok(y + 8.0)
}
