//! Rendering budgets: one 住民票 front (layout + vector PDF) ≤ 1 ms; the back (scramble + encode) ≤ 5 ms.

use crate::stats::{measure, HEADER};
use bcl_engine::certificate::{render_resident_record, scramble_key};
use bcl_engine::render::{Renderer, BACK_IMAGE_DPI};
use bcl_engine::secrets::MasterSecret;
use bcl_projections::record::{Date, MunicipalityHeader, PersonEntry, ResidentRecordCertificate, Sex};
use bcl_projections::JstDateTime;

/// A household of four with rare kanji, every optional item printed: the heaviest single sheet.
pub fn sample_record(persons: usize) -> ResidentRecordCertificate {
    let names = [("髙橋", "一郎", "タカハシ", "イチロウ", "世帯主"), ("髙橋", "花子", "タカハシ", "ハナコ", "妻"),
        ("𠮷田", "健太", "ヨシダ", "ケンタ", "子"), ("山﨑", "美咲", "ヤマサキ", "ミサキ", "子")];
    let d = |year, month, day| Date { year, month, day };
    ResidentRecordCertificate {
        municipality: MunicipalityHeader {
            code: "131016".into(),
            name: "東京都千代田区".into(),
            mayor_title: "千代田区長".into(),
            mayor_name: "千代田　太郎".into(),
        },
        certificate_id: "131016-0123456789ABCDEF0123".into(),
        issued_on: d(2026, 4, 1),
        address: "東京都千代田区神田神保町二丁目１２番地３".into(),
        household_head_name: Some("髙橋　一郎".into()),
        whole_household: true,
        persons: (0..persons)
            .map(|i| {
                let (f, g, fk, gk, rel) = names[i % names.len()];
                PersonEntry {
                    family_name: f.into(),
                    given_name: g.into(),
                    family_name_kana: fk.into(),
                    given_name_kana: gk.into(),
                    birth_date: d(1960 + 10 * i as i32, 1 + i as u32, 10 + i as u32),
                    sex: if i % 2 == 0 { Sex::Male } else { Sex::Female },
                    relationship: Some(rel.into()),
                    resident_since: d(2001, 4, 1),
                    address_since: d(2010, 10, 1),
                    previous_address: Some("大阪府大阪市北区梅田一丁目１番２号".into()),
                    registered_domicile: Some("東京都千代田区千代田一番".into()),
                    domicile_head: Some("髙橋　一郎".into()),
                    personal_number: None,
                }
            })
            .collect(),
        copies: 1,
    }
}

pub fn run(args: &[String]) {
    let runs: usize = crate::arg(args, "--runs", 300);
    let renderer = Renderer::load_default().expect("fonts (run scripts/setup.sh)");
    let secret = MasterSecret::from_bytes([7; 32]);
    let record = sample_record(4);
    let issued_at = JstDateTime::parse_rfc3339("2026-04-01T10:00:00+09:00").unwrap();
    let list = renderer.layout_resident_record(&record).unwrap();
    let page = &list.pages[0];
    let raster = renderer.rasterize(page, BACK_IMAGE_DPI);
    let key = scramble_key(&secret, &record.certificate_id);

    let rows = [
        measure("front: layout + vector PDF (4 persons, no back)", 20, runs, || {
            let list = renderer.layout_resident_record(&record).unwrap();
            renderer.write_pdf(&list, &[], &Default::default()).unwrap()
        }),
        measure("front raster for the back (A4 at BACK_IMAGE_DPI)", 5, runs, || renderer.rasterize(page, BACK_IMAGE_DPI)),
        measure("back: scramble + encode (palette, packed)", 5, runs, || {
            bcl_engine::scramble::scramble(raster.width, raster.height, &raster.pixels, &key).unwrap()
        }),
        measure("whole certificate PDF (front + raster + back)", 5, runs, || {
            render_resident_record(&renderer, &secret, &record, issued_at).unwrap()
        }),
    ];
    println!("\n### Rendering (`cargo run --release -p bcl-bench -- render --runs {runs}`)\n\n{HEADER}");
    for r in &rows {
        println!("{}", r.row());
    }
    println!("\nback image: {}x{} px at {BACK_IMAGE_DPI} dpi", raster.width, raster.height);
}
