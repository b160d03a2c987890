//! Rendering per certificate type, one sheet and four sheets (more persons, more disasters, or copies for
//! the one-sheet types), beside the 住民票 for comparison: layout + vector front only, and the whole
//! certificate (front, raster, scrambled back, PDF).

use crate::stats::{measure, HEADER};
use bcl_engine::certificate::render;
use bcl_engine::render::Renderer;
use bcl_engine::secrets::MasterSecret;
use bcl_projections::record::*;
use bcl_projections::JstDateTime;

fn header() -> MunicipalityHeader {
    MunicipalityHeader { code: "131016".into(), name: "東京都千代田区".into(), mayor_title: "千代田区長".into(), mayor_name: "千代田　太郎".into() }
}

fn d(year: i32, month: u32, day: u32) -> Date {
    Date { year, month, day }
}

const ID: &str = "131016-0123456789ABCDEF0123";
const ADDRESS: &str = "東京都千代田区神田神保町二丁目１２番地３";

/// Every type with `sheets` sheets per certificate.
fn documents(sheets: u32) -> Vec<(&'static str, CertificateDocument)> {
    let persons = 4 * sheets as usize;
    // The render bench's household of four, repeated: its sample dates are valid for four persons only.
    let mut rr = crate::render::sample_record(4);
    rr.persons = (0..persons).map(|i| rr.persons[i % 4].clone()).collect();
    rr.certificate_id = ID.into();
    let copies = sheets;
    let register_person = |i: usize| RegisterPerson {
        family_name: "髙橋".into(),
        given_name: ["一郎", "花子", "健太", "美咲"][i % 4].into(),
        birth_date: d(1960 + i as i32, 1, 10),
        sex: if i.is_multiple_of(2) { Sex::Male } else { Sex::Female },
        address: Some((ADDRESS.into(), d(2010, 10, 1))),
        previous_address: Some("大阪府大阪市北区梅田一丁目１番２号".into()),
    };
    vec![
        ("住民票の写し", CertificateDocument::ResidentRecord(rr)),
        (
            "住民票記載事項証明書",
            CertificateDocument::ResidentRecordItems(ResidentRecordItemsCertificate {
                municipality: header(),
                certificate_id: ID.into(),
                issued_on: d(2026, 4, 1),
                address: ADDRESS.into(),
                household_head_name: Some("髙橋　一郎".into()),
                persons: (0..persons)
                    .map(|i| ItemsPerson {
                        family_name: "髙橋".into(),
                        given_name: "一郎".into(),
                        birth_date: d(1970 + i as i32, 2, 3),
                        sex: Sex::Male,
                        relationship: Some("子".into()),
                        registered_domicile: Some("東京都千代田区千代田一番".into()),
                        domicile_head: Some("髙橋　一郎".into()),
                        personal_number: None,
                    })
                    .collect(),
                copies: 1,
            }),
        ),
        (
            "印鑑登録証明書",
            CertificateDocument::Seal(SealCertificate {
                municipality: header(),
                certificate_id: ID.into(),
                issued_on: d(2026, 4, 1),
                registration_number: "0000014".into(),
                family_name: "髙橋".into(),
                given_name: "一郎".into(),
                birth_date: d(1960, 1, 10),
                sex: Sex::Male,
                address: ADDRESS.into(),
                seal_image_png: bcl_fixtures::seal::seal_png("髙橋"),
                copies,
            }),
        ),
        (
            "課税証明書",
            CertificateDocument::Tax(TaxCertificate {
                kind: TaxCertificateKind::Assessment,
                municipality: header(),
                certificate_id: ID.into(),
                issued_on: d(2026, 4, 1),
                fiscal_year: 2026,
                family_name: "髙橋".into(),
                given_name: "一郎".into(),
                birth_date: d(1960, 1, 10),
                address: ADDRESS.into(),
                total_income: 6_393_000,
                taxable_income: 5_004_000,
                municipal_tax: 303_200,
                prefectural_tax: 201_100,
                exempt: false,
                copies,
            }),
        ),
        (
            "戸籍全部事項証明書",
            CertificateDocument::FamilyRegister(FamilyRegisterCertificate {
                kind: FamilyRegisterKind::Full,
                municipality: header(),
                certificate_id: ID.into(),
                issued_on: d(2026, 4, 1),
                domicile: "東京都千代田区千代田一番".into(),
                head: "髙橋　一郎".into(),
                persons: (0..persons).map(|i| RegisterPerson { address: None, previous_address: None, ..register_person(i) }).collect(),
                copies: 1,
            }),
        ),
        (
            "戸籍の附票の写し",
            CertificateDocument::FamilyRegister(FamilyRegisterCertificate {
                kind: FamilyRegisterKind::Annex,
                municipality: header(),
                certificate_id: ID.into(),
                issued_on: d(2026, 4, 1),
                domicile: "東京都千代田区千代田一番".into(),
                head: "髙橋　一郎".into(),
                persons: (0..persons).map(register_person).collect(),
                copies: 1,
            }),
        ),
        (
            "罹災証明書",
            CertificateDocument::DisasterDamage(DisasterDamageCertificate {
                municipality: header(),
                certificate_id: ID.into(),
                issued_on: d(2026, 4, 1),
                applicant_name: "髙橋　一郎".into(),
                address: ADDRESS.into(),
                household_names: vec!["髙橋　一郎".into(), "髙橋　花子".into(), "𠮷田　健太".into()],
                damages: (0..sheets)
                    .map(|i| DamageEntry { disaster_name: format!("令和7年{}月豪雨", i + 6), disaster_date: d(2025, 6 + i, 10), grade: "半壊".into() })
                    .collect(),
                copies: 1,
            }),
        ),
    ]
}

pub fn run(args: &[String]) {
    let runs: usize = crate::arg(args, "--runs", 100);
    let renderer = Renderer::load_default().expect("fonts (run scripts/setup.sh)");
    let secret = MasterSecret::from_bytes([7; 32]);
    let issued_at = JstDateTime::parse_rfc3339("2026-04-01T10:00:00+09:00").unwrap();
    let mut rows = Vec::new();
    for sheets in [1, 4] {
        for (name, doc) in documents(sheets) {
            let got = renderer.layout(&doc).unwrap().pages.len();
            assert_eq!(got, sheets as usize, "{name}: sheets");
            rows.push(measure(&format!("{name}, {sheets} sheet(s): front (layout + PDF)"), 5, runs, || {
                let list = renderer.layout(&doc).unwrap();
                renderer.write_pdf(&list, &[], &Default::default()).unwrap()
            }));
            rows.push(measure(&format!("{name}, {sheets} sheet(s): whole certificate"), 3, runs, || {
                render(&renderer, &secret, &doc, issued_at).unwrap()
            }));
        }
    }
    println!("\n### Rendering per type (`cargo run --release -p bcl-bench -- catalogue --runs {runs}`)\n\n{HEADER}");
    for r in &rows {
        println!("{}", r.row());
    }
}
