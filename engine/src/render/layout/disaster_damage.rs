//! 罹災証明書: one sheet per disaster: the applicant, the damaged dwelling (the household's
//! address), the household's members, the disaster and its date, and the grade the survey
//! decided, printed large because it is what the certificate is used for.

use bcl_projections::record::{DamageEntry, DisasterDamageCertificate};

use super::era::era_date;
use super::form::{self, Part, ADDRESS, BODY, LEFT, NAME};
use super::{Align, Style};
use crate::render::display_list::DisplayList;
use crate::render::fonts::{FontRole, FontSet};
use crate::render::RenderError;

const LABEL_W: f32 = 110.0;
const ROW: f32 = 26.0;
const GRADE: Style = Style { font: FontRole::Gothic, size: 18.0, min_size: 10.0 };
/// Members per row of the household list.
const NAMES_PER_ROW: usize = 3;
/// Rows for members: a household larger than this does not fit and is refused.
const MAX_NAME_ROWS: usize = 4;

pub fn layout(fonts: &FontSet, cert: &DisasterDamageCertificate) -> Result<DisplayList, RenderError> {
    if cert.household_names.len() > NAMES_PER_ROW * MAX_NAME_ROWS {
        return Err(RenderError::LayoutOverflow { field: "household_names".into() });
    }
    let sheets = cert.sheets_per_copy();
    let mut one_copy = Vec::with_capacity(sheets as usize);
    for (i, damage) in cert.damages.iter().enumerate() {
        one_copy.push(sheet(fonts, cert, damage, i as u32 + 1, sheets)?);
    }
    Ok(form::copies(one_copy, cert.copies))
}

fn sheet(
    fonts: &FontSet,
    cert: &DisasterDamageCertificate,
    damage: &DamageEntry,
    sheet: u32,
    sheets: u32,
) -> Result<crate::render::display_list::Page, RenderError> {
    let mut c = form::sheet(fonts, &cert.municipality, "罹災証明書", sheet, sheets)?;
    let mut y = form::BODY_TOP;
    let top = y;
    form::row(&mut c, y, 32.0, &[Part::Label("申請者", LABEL_W), Part::Value(&cert.applicant_name, "applicant_name", 0.0, NAME, Align::Left)])?;
    y += 32.0;
    form::row(&mut c, y, 32.0, &[Part::Label("被災住家の所在地", LABEL_W), Part::Value(&cert.address, "address", 0.0, ADDRESS, Align::Left)])?;
    y += 32.0;
    let rows = cert.household_names.len().div_ceil(NAMES_PER_ROW).max(1);
    let list_top = y;
    let col = (form::WIDTH - LABEL_W) / NAMES_PER_ROW as f32;
    for r in 0..rows {
        let fields: Vec<String> = (0..NAMES_PER_ROW).map(|k| format!("household_names[{}]", r * NAMES_PER_ROW + k)).collect();
        let parts: Vec<Part> = fields
            .iter()
            .enumerate()
            .map(|(k, field)| {
                let name = cert.household_names.get(r * NAMES_PER_ROW + k).map_or("", String::as_str);
                Part::Value(name, field, col, BODY, Align::Left)
            })
            .collect();
        form::row_at(&mut c, LEFT + LABEL_W, y, ROW, &parts)?;
        y += ROW;
    }
    let label = super::Cell::new(LEFT, list_top, LABEL_W, y - list_top);
    c.rect(label, Some(form::LABEL_FILL), Some(form::THIN));
    c.label(label, "世帯構成員", form::LABEL_SIZE)?;
    form::frame(&mut c, LEFT, top, y);

    y += 16.0;
    let top = y;
    form::row(&mut c, y, ROW + 4.0, &[Part::Label("災害名", LABEL_W), Part::Value(&damage.disaster_name, "disaster_name", 0.0, ADDRESS, Align::Left)])?;
    y += ROW + 4.0;
    let date = era_date(damage.disaster_date, "disaster_date")?;
    form::row(&mut c, y, ROW, &[Part::Label("被災年月日", LABEL_W), Part::Value(&date, "disaster_date", 0.0, BODY, Align::Left)])?;
    y += ROW;
    form::row(&mut c, y, 48.0, &[Part::Label("住家の被害の程度", LABEL_W), Part::Value(&damage.grade, "grade", 0.0, GRADE, Align::Center)])?;
    y += 48.0;
    form::frame(&mut c, LEFT, top, y);
    c.text_at(
        "※ 被害の程度は、災害に係る住家の被害認定基準に基づく調査の結果による。",
        "note",
        FontRole::Mincho,
        8.0,
        LEFT,
        y + 16.0,
        Align::Left,
    )?;
    form::blank_mark(&mut c, y + 20.0)?;
    form::certification(&mut c, "上記のとおり相違ないことを証明する。", cert.issued_on, &cert.municipality, &cert.certificate_id)?;
    Ok(c.finish())
}
