//! Layout rules of the catalogue that the integration test cannot see directly: the seal is placed at
//! its physical size and never scaled, every sheet carries its mark, wording follows the record.

use std::sync::Arc;

use bcl_projections::record::*;

use crate::render::display_list::{DisplayList, Item};
use crate::render::{RenderError, Renderer};

fn renderer() -> &'static Renderer {
    static R: std::sync::OnceLock<Renderer> = std::sync::OnceLock::new();
    R.get_or_init(|| Renderer::load_default().expect("fonts (run scripts/setup.sh)"))
}

fn header() -> MunicipalityHeader {
    MunicipalityHeader { code: "131016".into(), name: "東京都千代田区".into(), mayor_title: "千代田区長".into(), mayor_name: "千代田　太郎".into() }
}

fn day(year: i32, month: u32, day: u32) -> Date {
    Date { year, month, day }
}

fn png(side: u32, pixels_per_metre: Option<u32>) -> Vec<u8> {
    let mut out = Vec::new();
    let mut enc = png::Encoder::new(&mut out, side, side);
    enc.set_color(png::ColorType::Grayscale);
    enc.set_depth(png::BitDepth::Eight);
    if let Some(ppm) = pixels_per_metre {
        enc.set_pixel_dims(Some(png::PixelDimensions { xppu: ppm, yppu: ppm, unit: png::Unit::Meter }));
    }
    enc.write_header().unwrap().write_image_data(&vec![0; (side * side) as usize]).unwrap();
    out
}

fn seal(image: Vec<u8>) -> SealCertificate {
    SealCertificate {
        municipality: header(),
        certificate_id: "131016-TEST".into(),
        issued_on: day(2026, 4, 1),
        registration_number: "0000014".into(),
        family_name: "佐藤".into(),
        given_name: "健一".into(),
        birth_date: day(1980, 4, 14),
        sex: Sex::Male,
        address: "東京都千代田区猿楽町二丁目10番地18".into(),
        seal_image_png: image,
        copies: 1,
    }
}

fn text(list: &DisplayList, page: usize) -> String {
    list.pages[page]
        .items
        .iter()
        .filter_map(|i| match i {
            Item::Text(run) => Some(run.glyphs.iter().map(|g| g.base).collect::<String>()),
            _ => None,
        })
        .collect::<Vec<_>>()
        .join("|")
}

#[test]
fn seal_is_placed_at_its_physical_size_inside_a_frame_of_at_least_25_mm() {
    const MM: f32 = 72.0 / 25.4;
    // 24 mm at 600 dpi (23622 px/m): 567 px.
    let list = renderer().layout(&CertificateDocument::Seal(seal(png(567, Some(23622))))).unwrap();
    let (w, h, x, y) = list.pages[0]
        .items
        .iter()
        .find_map(|i| match i {
            Item::Image { w, h, x, y, bitmap } => {
                assert_eq!(Arc::strong_count(bitmap), 1);
                Some((*w, *h, *x, *y))
            }
            _ => None,
        })
        .expect("an image item");
    assert!((w / MM - 24.0).abs() < 0.05 && (h / MM - 24.0).abs() < 0.05, "{w} x {h} pt");
    // The frame around it: a square rect of at least 25 mm that contains the image.
    let frame = list.pages[0].items.iter().any(|i| match i {
        Item::Rect { x: fx, y: fy, w: fw, h: fh, .. } => {
            *fw >= 25.0 * MM && (fw - fh).abs() < 0.01 && *fx <= x && *fy <= y && fx + fw >= x + w && fy + fh >= y + h
        }
        _ => false,
    });
    assert!(frame, "a square frame of at least 25 mm around the impression");
}

#[test]
fn an_impression_larger_than_25_mm_is_refused_not_shrunk() {
    // 26 mm at 100 dpi (no pHYs): 102 px.
    match renderer().layout(&CertificateDocument::Seal(seal(png(103, None)))) {
        Err(RenderError::LayoutOverflow { field }) => assert_eq!(field, "seal_image"),
        other => panic!("expected LayoutOverflow, got {:?}", other.map(|l| l.pages.len())),
    }
    assert!(renderer().layout(&CertificateDocument::Seal(seal(png(98, None)))).is_ok(), "24.9 mm fits");
}

fn tax(kind: TaxCertificateKind, municipal_tax: i64, prefectural_tax: i64) -> CertificateDocument {
    CertificateDocument::Tax(TaxCertificate {
        kind,
        municipality: header(),
        certificate_id: "131016-TAX".into(),
        issued_on: day(2026, 4, 1),
        fiscal_year: 2026,
        family_name: "佐藤".into(),
        given_name: "健一".into(),
        birth_date: day(1980, 4, 14),
        address: "東京都千代田区猿楽町二丁目10番地18".into(),
        total_income: 6_393_000,
        taxable_income: 5_004_000,
        municipal_tax,
        prefectural_tax,
        exempt: municipal_tax == 0 && prefectural_tax == 0,
        copies: 2,
    })
}

#[test]
fn tax_wording_follows_the_assessment() {
    let taxed = renderer().layout(&tax(TaxCertificateKind::Assessment, 303_200, 201_100)).unwrap();
    assert_eq!(taxed.pages.len(), 2, "two copies, one sheet each");
    let t = text(&taxed, 1);
    for expected in ["令和8年度", "課税証明書", "6,393,000円", "1,389,000円", "504,300円", "課税されていることを証明する", "1 枚中 1 枚目"] {
        assert!(t.contains(expected), "{expected} in {t}");
    }
    let exempt = text(&renderer().layout(&tax(TaxCertificateKind::Assessment, 0, 0)).unwrap(), 0);
    assert!(exempt.contains("非課税証明書") && exempt.contains("非課税であることを証明する"), "{exempt}");
    let income = text(&renderer().layout(&tax(TaxCertificateKind::Income, 0, 0)).unwrap(), 0);
    assert!(income.contains("所得証明書") && income.contains("非課税") && !income.contains("合計税額"), "{income}");
}

#[test]
fn every_sheet_of_a_register_carries_its_mark() {
    let person = |i: usize| RegisterPerson {
        family_name: "鈴木".into(),
        given_name: format!("名{i}"),
        birth_date: day(1970 + i as i32, 1, 1),
        sex: Sex::Female,
        address: None,
        previous_address: None,
    };
    let cert = FamilyRegisterCertificate {
        kind: FamilyRegisterKind::Full,
        municipality: header(),
        certificate_id: "131016-FR".into(),
        issued_on: day(2026, 4, 1),
        domicile: "東京都千代田区千代田一丁目1番".into(),
        head: "鈴木　名0".into(),
        persons: (0..6).map(person).collect(),
        copies: 1,
    };
    let list = renderer().layout(&CertificateDocument::FamilyRegister(cert)).unwrap();
    assert_eq!(list.pages.len(), 2);
    assert!(text(&list, 0).contains("2 枚中 1 枚目") && text(&list, 1).contains("2 枚中 2 枚目"));
    assert!(text(&list, 1).contains("名5") && !text(&list, 1).contains("名3"));
    assert!(text(&list, 1).contains("以下余白") && !text(&list, 0).contains("以下余白"));
}

#[test]
fn disaster_sheet_per_damage_and_an_oversized_household_is_refused() {
    let damage = |name: &str, grade: &str| DamageEntry { disaster_name: name.into(), disaster_date: day(2025, 9, 10), grade: grade.into() };
    let mut cert = DisasterDamageCertificate {
        municipality: header(),
        certificate_id: "131016-DD".into(),
        issued_on: day(2026, 4, 1),
        applicant_name: "佐藤　裕子".into(),
        address: "東京都千代田区猿楽町二丁目10番地18".into(),
        household_names: vec!["佐藤　健一".into(), "佐藤　裕子".into()],
        damages: vec![damage("令和7年9月豪雨", "半壊"), damage("令和7年10月地震", "一部損壊（準半壊に至らない）")],
        copies: 1,
    };
    let list = renderer().layout(&CertificateDocument::DisasterDamage(cert.clone())).unwrap();
    assert_eq!(list.pages.len(), 2);
    assert!(text(&list, 0).contains("半壊") && text(&list, 0).contains("令和7年9月10日"));
    assert!(text(&list, 1).contains("一部損壊（準半壊に至らない）") && text(&list, 1).contains("2 枚中 2 枚目"));
    cert.household_names = (0..13).map(|i| format!("佐藤　{i}")).collect();
    assert!(matches!(
        renderer().layout(&CertificateDocument::DisasterDamage(cert)),
        Err(RenderError::LayoutOverflow { .. })
    ));
}

#[test]
fn pantograph_is_one_shared_form_and_stays_out_of_the_back_raster() {
    let mut cert = seal(png(96, None));
    cert.copies = 3;
    let list = renderer().layout(&CertificateDocument::Seal(cert)).unwrap();
    let background = |p: &crate::render::Page| p.items.iter().filter(|i| matches!(i, Item::Pantograph(_))).count();
    assert!(list.pages.iter().all(|p| background(p) == 1), "every sheet has the background");
    let pdf = renderer().write_pdf(&list, &[], &Default::default()).unwrap();
    let forms = pdf.windows(b"/Subtype /Form".len()).filter(|w| *w == b"/Subtype /Form").count();
    let patterns = pdf.windows(b"/PatternType 1".len()).filter(|w| *w == b"/PatternType 1").count();
    assert_eq!((forms, patterns), (1, 2), "one form and two dot patterns for the whole document");
    if let Some(out) = std::env::var_os("BCL_CATALOGUE_OUT") {
        std::fs::write(std::path::Path::new(&out).join("pantograph_seal.pdf"), &pdf).unwrap();
    }
    // The back is made from the content only.
    let mut without = list.pages[0].clone();
    without.items.retain(|i| !matches!(i, Item::Pantograph(_)));
    assert_eq!(renderer().rasterize(&list.pages[0], 100.0), renderer().rasterize(&without, 100.0));
    // The latent word is really there: outlines of two glyphs per tile, several tiles.
    let Some(Item::Pantograph(p)) = list.pages[0].items.first() else { panic!("background first") };
    let moves = p.latent.iter().filter(|op| matches!(op, crate::render::pantograph::PathOp::Move(..))).count();
    assert!(moves > 20, "{moves} contours");
}
