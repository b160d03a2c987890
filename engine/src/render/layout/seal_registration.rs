//! 印鑑登録証明書: the registered impression at 1:1 in a 30 mm frame beside the registration
//! number, name, date of birth and address. The impression is never scaled: one larger than a
//! registrable seal (25 mm square) is refused rather than shrunk.

use std::sync::Arc;

use bcl_projections::record::SealCertificate;

use super::era::era_date;
use super::form::{self, Part, ADDRESS, BODY, LEFT, NAME, THICK, THIN};
use super::{Align, Cell};
use crate::render::bitmap::decode_png;
use crate::render::display_list::{DisplayList, Item};
use crate::render::fonts::{FontRole, FontSet};
use crate::render::RenderError;

/// Points per millimetre.
const MM: f32 = 72.0 / 25.4;
/// A registrable seal fits in a 25 mm square.
pub const MAX_SEAL_MM: f32 = 25.0;
/// The printed frame around the impression (at least 25 mm, as the rule requires).
pub const FRAME_MM: f32 = 30.0;

pub fn layout(fonts: &FontSet, cert: &SealCertificate) -> Result<DisplayList, RenderError> {
    let image = decode_png(&cert.seal_image_png, "seal_image")?;
    if image.width_pt > MAX_SEAL_MM * MM + 0.01 || image.height_pt > MAX_SEAL_MM * MM + 0.01 {
        return Err(RenderError::LayoutOverflow { field: "seal_image".into() });
    }
    let mut c = form::sheet(fonts, &cert.municipality, "印鑑登録証明書", 1, 1)?;

    // Left: 印影 over the frame; right: the registration's rows, as tall together as the left.
    let top = form::BODY_TOP;
    let left_w = FRAME_MM * MM + 24.0;
    let label_h = 22.0;
    let frame_cell = Cell::new(LEFT, top + label_h, left_w, FRAME_MM * MM + 24.0);
    let bottom = frame_cell.y + frame_cell.h;
    c.rect(Cell::new(LEFT, top, left_w, label_h), Some(form::LABEL_FILL), Some(THIN));
    c.label(Cell::new(LEFT, top, left_w, label_h), "印影", form::LABEL_SIZE)?;
    c.rect(frame_cell, None, Some(THIN));
    let side = FRAME_MM * MM;
    let (fx, fy) = (frame_cell.x + (frame_cell.w - side) / 2.0, frame_cell.y + (frame_cell.h - side) / 2.0);
    c.rect(Cell::new(fx, fy, side, side), None, Some(0.8));
    let (w, h) = (image.width_pt, image.height_pt);
    c.page.items.push(Item::Image {
        x: fx + (side - w) / 2.0,
        y: fy + (side - h) / 2.0,
        w,
        h,
        bitmap: Arc::new(image.bitmap),
    });

    let x = LEFT + left_w;
    let rows_h = bottom - top;
    let (number_h, name_h, birth_h) = (rows_h * 0.2, rows_h * 0.3, rows_h * 0.2);
    let address_h = rows_h - number_h - name_h - birth_h;
    let label_w = 76.0;
    let mut y = top;
    form::row_at(&mut c, x, y, number_h, &[
        Part::Label("登録番号", label_w),
        Part::Value(&cert.registration_number, "registration_number", 0.0, BODY, Align::Left),
    ])?;
    y += number_h;
    let name = form::full_name(&cert.family_name, &cert.given_name);
    form::row_at(&mut c, x, y, name_h, &[
        Part::Label("氏名", label_w),
        Part::Value(&name, "name", 0.0, NAME, Align::Left),
    ])?;
    y += name_h;
    let birth = era_date(cert.birth_date, "birth_date")?;
    form::row_at(&mut c, x, y, birth_h, &[
        Part::Label("生年月日", label_w),
        Part::Value(&birth, "birth_date", 150.0, BODY, Align::Left),
        Part::Label("性別", 40.0),
        Part::Value(form::sex(cert.sex), "sex", 0.0, BODY, Align::Center),
    ])?;
    y += birth_h;
    form::row_at(&mut c, x, y, address_h, &[
        Part::Label("住所", label_w),
        Part::Value(&cert.address, "address", 0.0, ADDRESS, Align::Left),
    ])?;
    c.rect(Cell::new(LEFT, top, form::WIDTH, bottom - top), None, Some(THICK));
    form::blank_mark(&mut c, bottom)?;
    c.text_at(
        "※ 印影は登録されている印影を原寸で表示しています。",
        "note",
        FontRole::Mincho,
        8.0,
        LEFT,
        bottom + 44.0,
        Align::Left,
    )?;

    form::certification(
        &mut c,
        "この写しは、登録されている印影と相違ないことを証明する。",
        cert.issued_on,
        &cert.municipality,
        &cert.certificate_id,
    )?;
    Ok(form::copies(vec![c.finish()], cert.copies))
}
