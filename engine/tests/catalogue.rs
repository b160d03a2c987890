//! Every certificate type through the real server: issued for the fixture's cases, the PDF passes `qpdf
//! --check`, its text (`pdftotext`) shows the key fields taken from the fixture's events (folded here
//! independently of the engine), the seal image is embedded at 1:1, every certificate reproduces byte for
//! byte, and the month's transactions and settlement match a hand count.

mod common;

use bcl_fixtures::Expect;
use bcl_proto::change_event::Body;
use bcl_proto::{
    CertificateType as T, ChangeEvent, FamilyRegisterRecorded, IssueRequest, ListTransactionsRequest,
    MunicipalitySettings, ReproduceRequest, SettlementRequest, TaxAssessed, TypeFee,
};
use common::*;
use sha2::Digest;
use std::collections::HashMap;
use std::path::Path;

const DOMICILE: &str = "東京都千代田区千代田一丁目1番";

fn squeeze(s: &str) -> String {
    s.chars().filter(|c| !c.is_whitespace() && *c != '　').collect()
}

/// Thousands separators, written independently of the engine's formatter.
fn yen(n: i64) -> String {
    let s = n.to_string();
    let mut out = String::new();
    for (i, c) in s.chars().enumerate() {
        if i > 0 && (s.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out + "円"
}

fn fees() -> Vec<TypeFee> {
    [(T::SealRegistration, 200), (T::FamilyRegister, 450), (T::FamilyRegisterPersonal, 450), (T::DisasterDamage, 0)]
        .into_iter()
        .map(|(t, fee_yen)| TypeFee { r#type: t as i32, fee_yen })
        .collect()
}

fn fee_of(t: T) -> u32 {
    fees().iter().find(|f| f.r#type == t as i32).map_or(300, |f| f.fee_yen)
}

struct Pdf {
    text: String,
    pages: u32,
    path: String,
}

/// Checks the PDF with qpdf, extracts its text, and keeps a copy under `BCL_CATALOGUE_OUT` for eyes.
fn inspect(dir: &Path, name: &str, pdf: &[u8]) -> Pdf {
    let path = dir.join(format!("{name}.pdf"));
    std::fs::write(&path, pdf).unwrap();
    if let Ok(out) = std::env::var("BCL_CATALOGUE_OUT") {
        std::fs::create_dir_all(&out).unwrap();
        std::fs::write(Path::new(&out).join(format!("{name}.pdf")), pdf).unwrap();
    }
    let p = path.to_str().unwrap().to_string();
    tool("qpdf", &["--check", &p]);
    let text = squeeze(&String::from_utf8(tool("pdftotext", &["-layout", &p, "-"])).unwrap());
    let pages = String::from_utf8(tool("qpdf", &["--show-npages", &p])).unwrap().trim().parse().unwrap();
    Pdf { text, pages, path: p }
}

fn request(id: &str, t: T, card: &str, subjects: &[String]) -> IssueRequest {
    IssueRequest { r#type: t as i32, include_relationship: false, include_domicile: false, ..resident_record(id, card, subjects) }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_type_is_issued_checked_reproduced_and_settled() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), NOW);
    let municipality = fixture(20);
    let mut events = municipality.events.clone();

    // The ordinary family of the fixture: head (seal, taxes), wife (no seal), child (8). Record them in a
    // register kept here and make the wife 非課税 this year, so every type has data for them.
    let ordinary = municipality.cases.iter().find(|c| c.name == "ordinary_household_3").unwrap();
    let (head, wife) = (ordinary.subject_resident_ids[0].clone(), ordinary.subject_resident_ids[1].clone());
    let fy = municipality.cases.iter().find(|c| c.name == "tax_assessed").unwrap().fiscal_year;
    let mut registered = HashMap::new();
    for ev in &events {
        if let Some(Body::ResidentRegistered(r)) = &ev.body {
            registered.insert(r.resident_id.clone(), r.clone());
        }
    }
    let head_name = format!("{}\u{3000}{}", registered[&head].family_name, registered[&head].given_name);
    let mut extra = Vec::new();
    for id in &ordinary.subject_resident_ids {
        extra.push(Body::FamilyRegisterRecorded(FamilyRegisterRecorded {
            resident_id: id.clone(),
            register_id: "F9000001".into(),
            domicile: DOMICILE.into(),
            head: head_name.clone(),
        }));
    }
    extra.push(Body::TaxAssessed(TaxAssessed {
        resident_id: wife.clone(),
        fiscal_year: fy,
        total_income: 980_000,
        taxable_income: 0,
        municipal_tax: 0,
        prefectural_tax: 0,
    }));
    for body in extra {
        let seq = events.len() as u64 + 1;
        events.push(ChangeEvent {
            municipality_code: CODE.into(),
            source_seq: seq,
            event_id: format!("00000000-0000-4000-8000-{seq:012x}"),
            effective_date: "2026-03-31".into(),
            body: Some(body),
        });
    }
    append_all(&server, &events).await;
    server
        .admin()
        .await
        .update_settings(MunicipalitySettings {
            enabled_types: (1..=9).collect(),
            fees: fees(),
            ..bcl_fixtures::municipality_settings(CODE)
        })
        .await
        .expect("settings");

    // What the events say, folded naively (the latest event of each kind wins).
    let mut seal = HashMap::new();
    let mut tax = HashMap::new();
    let mut damage = HashMap::new();
    for ev in &events {
        match &ev.body {
            Some(Body::SealRegistered(s)) => {
                seal.insert(s.resident_id.clone(), s.clone());
            }
            Some(Body::TaxAssessed(t)) => {
                tax.insert((t.resident_id.clone(), t.fiscal_year), t.clone());
            }
            Some(Body::DamageCertified(d)) => {
                damage.insert(d.household_id.clone(), d.clone());
            }
            _ => {}
        }
    }
    let name_of = |id: &str| squeeze(&format!("{}{}", registered[id].family_name, registered[id].given_name));

    let mut client = server.issuance().await;
    let mut issued: Vec<(String, T, u32)> = Vec::new(); // (certificate id, type, copies)

    // 1. The fixture's own seal and tax cases, as expected.
    for (i, case) in municipality.cases.iter().filter(|c| c.certificate_type != T::ResidentRecord).enumerate() {
        let mut req = request(&format!("case-{i}"), case.certificate_type, &case.card_serial, &case.subject_resident_ids);
        req.fiscal_year = case.fiscal_year;
        match (case.expect, client.issue(req).await) {
            (Expect::Issue { .. }, Ok(resp)) => {
                let resp = resp.into_inner();
                let pdf = inspect(dir.path(), case.name, &resp.pdf);
                assert!(pdf.text.contains(&name_of(&case.requester_resident_id)), "{}: name", case.name);
                assert!(pdf.text.contains(&resp.certificate_id), "{}: certificate id", case.name);
                assert_eq!(pdf.pages, 2 * resp.sheets, "{}: a back per sheet", case.name);
                assert_eq!(resp.fee_yen, fee_of(case.certificate_type), "{}", case.name);
                issued.push((resp.certificate_id, case.certificate_type, 1));
            }
            (Expect::Refuse(reason), Err(status)) => assert_eq!(super_reason(&status), reason, "{}", case.name),
            (expect, got) => panic!("{}: expected {expect:?}, got {:?}", case.name, got.map(|r| r.into_inner().certificate_id).map_err(|s| reason(&s))),
        }
    }

    // 2. Every type for the ordinary family, checking each type's key fields.
    let card = ordinary.card_serial.clone();
    let wife_card = municipality.cases.iter().find(|c| c.name == "no_seal_registration").unwrap().card_serial.clone();
    let address = squeeze(&registered[&head].address);
    let today = "令和8年4月1日";

    let issue = |id: &str, t: T, card: &str, subjects: &[String], copies: u32, fiscal_year: u32, include: bool| {
        let mut req = request(id, t, card, subjects);
        req.copies = copies;
        req.fiscal_year = fiscal_year;
        req.include_relationship = include;
        req.include_domicile = include;
        req
    };
    let mut run = async |name: &str, req: IssueRequest| -> (bcl_proto::IssueResponse, Pdf) {
        let t = T::try_from(req.r#type).unwrap();
        let copies = req.copies.max(1);
        let resp = client.issue(req).await.unwrap_or_else(|s| panic!("{name}: {s:?}")).into_inner();
        let pdf = inspect(dir.path(), name, &resp.pdf);
        assert_eq!(pdf.pages, 2 * resp.sheets, "{name}: a back per sheet");
        assert!(pdf.text.contains(&resp.certificate_id), "{name}: certificate id");
        assert!(pdf.text.contains(today), "{name}: date of issue");
        assert!(pdf.text.contains("千代田区長千代田太郎"), "{name}: mayor");
        let per_copy = resp.sheets / copies;
        for sheet in 1..=per_copy {
            assert!(pdf.text.contains(&format!("{per_copy}枚中{sheet}枚目")), "{name}: sheet mark {sheet}/{per_copy}");
        }
        assert_eq!(resp.fee_yen, fee_of(t) * copies, "{name}: fee");
        issued.push((resp.certificate_id.clone(), t, copies));
        (resp, pdf)
    };

    // 印鑑登録証明書, two copies: the registration number, and the impression embedded at 1:1 (100 dpi).
    let (resp, pdf) = run("seal", issue("seal", T::SealRegistration, &card, &[], 2, 0, false)).await;
    assert_eq!(resp.sheets, 2);
    assert!(pdf.text.contains("印鑑登録証明書") && pdf.text.contains(&seal[&head].registration_number));
    assert!(pdf.text.contains(&name_of(&head)) && pdf.text.contains(&address));
    let images = String::from_utf8(tool("pdfimages", &["-list", &pdf.path])).unwrap();
    let seal_rows: Vec<&str> = images.lines().filter(|l| l.contains(" gray ")).collect();
    assert_eq!(seal_rows.len(), 2, "one impression per sheet: {images}");
    for row in seal_rows {
        let cols: Vec<&str> = row.split_whitespace().collect();
        // page num type width height color comp bpc enc interp object ID x-ppi y-ppi size ratio
        assert_eq!((cols[3], cols[4]), ("96", "96"), "{row}");
        assert_eq!((cols[12], cols[13]), ("100", "100"), "printed at the scan's resolution, i.e. 1:1: {row}");
    }

    // 課税証明書 of the head, the current fiscal year by default.
    let t = &tax[&(head.clone(), fy)];
    let (_, pdf) = run("tax", issue("tax", T::TaxAssessment, &card, &[], 1, 0, false)).await;
    let title = if t.municipal_tax == 0 && t.prefectural_tax == 0 { "令和8年度非課税証明書" } else { "令和8年度課税証明書" };
    assert!(pdf.text.contains(title), "tax title");
    for amount in [t.total_income, t.taxable_income, t.municipal_tax, t.prefectural_tax, t.municipal_tax + t.prefectural_tax] {
        assert!(pdf.text.contains(&yen(amount)), "tax amount {amount} with separators");
    }
    assert!(pdf.text.contains("令和7年中"), "income year");
    // Last year's on request.
    let last = &tax[&(head.clone(), fy - 1)];
    let (_, pdf) = run("tax_last_year", issue("tax-last", T::TaxAssessment, &card, &[], 1, fy - 1, false)).await;
    assert!(pdf.text.contains("令和7年度") && pdf.text.contains(&yen(last.total_income)));

    // The wife is 非課税: the assessment says so, and her income certificate too.
    let (_, pdf) = run("tax_exempt", issue("tax-exempt", T::TaxAssessment, &wife_card, &[], 1, 0, false)).await;
    assert!(pdf.text.contains("令和8年度非課税証明書") && pdf.text.contains("非課税であることを証明する"));
    assert!(pdf.text.contains(&yen(980_000)));
    let (_, pdf) = run("income", issue("income", T::Income, &wife_card, &[], 1, 0, false)).await;
    assert!(pdf.text.contains("令和8年度所得証明書") && pdf.text.contains("非課税") && pdf.text.contains(&name_of(&wife)));

    // 戸籍: the whole register, one person, the annex.
    let (_, pdf) = run("family_register", issue("fr", T::FamilyRegister, &card, &[], 1, 0, false)).await;
    assert!(pdf.text.contains("戸籍全部事項証明書") && pdf.text.contains(&squeeze(DOMICILE)));
    for id in &ordinary.subject_resident_ids {
        assert!(pdf.text.contains(&name_of(id)), "register lists every person");
    }
    let (_, pdf) = run("family_register_personal", issue("frp", T::FamilyRegisterPersonal, &wife_card, &[], 1, 0, false)).await;
    assert!(pdf.text.contains("戸籍個人事項証明書") && pdf.text.contains(&name_of(&wife)));
    assert!(!pdf.text.contains(&squeeze(&registered[&ordinary.subject_resident_ids[2]].given_name)), "only the requester");
    let (_, pdf) = run("family_register_annex", issue("fra", T::FamilyRegisterAnnex, &card, &[], 1, 0, false)).await;
    assert!(pdf.text.contains("戸籍の附票の写し") && pdf.text.contains(&address));

    // 罹災証明書 of the household.
    let household = &registered[&head].household_id;
    let d = &damage[household];
    let (_, pdf) = run("disaster", issue("dd", T::DisasterDamage, &wife_card, &[], 1, 0, false)).await;
    assert!(pdf.text.contains("罹災証明書") && pdf.text.contains(&squeeze(&d.disaster_name)));
    assert!(pdf.text.contains("半壊"), "the fixture's ordinary household was surveyed 半壊");
    assert!(pdf.text.contains(&name_of(&head)) && pdf.text.contains(&name_of(&wife)));

    // 住民票記載事項証明書 with 世帯主・続柄 and 本籍.
    let (_, pdf) = run("resident_record_items", issue("items", T::ResidentRecordItems, &card, &[], 1, 0, true)).await;
    assert!(pdf.text.contains("住民票記載事項証明書") && pdf.text.contains("世帯主") && pdf.text.contains(&address));
    assert!(!pdf.text.contains("住民となった日"), "only the selected items");

    // Refusals specific to the new types.
    let refused = |t: T, card: &str, fy: u32| {
        // The request id is the centre's key: derived here without the card serial, which the
        // transaction list must never show.
        let key = hex::encode(&sha2::Sha256::digest(card.as_bytes())[..6]);
        let mut req = request(&format!("refused-{t:?}-{key}-{fy}"), t, card, &[]);
        req.fiscal_year = fy;
        req
    };
    // Cards of issuable residents (the fixture's positive 住民票 cases) without a register / damage record.
    let in_register: Vec<&String> = events
        .iter()
        .filter_map(|e| match &e.body {
            Some(Body::FamilyRegisterRecorded(f)) => Some(&f.resident_id),
            _ => None,
        })
        .collect();
    let positive = || {
        municipality.cases.iter().filter(|c| c.certificate_type == T::ResidentRecord && matches!(c.expect, Expect::Issue { .. }))
    };
    let no_register = positive().find(|c| !in_register.contains(&&c.requester_resident_id)).expect("a resident without register");
    let no_damage = positive()
        .find(|c| !damage.contains_key(&registered[&c.requester_resident_id].household_id))
        .expect("a household without damage");
    for (t, card, fy, reason) in [
        (T::TaxAssessment, card.as_str(), fy + 1, "NO_TAX_ASSESSMENT"),
        (T::FamilyRegister, no_register.card_serial.as_str(), 0, "NOT_IN_REGISTER"),
        (T::DisasterDamage, no_damage.card_serial.as_str(), 0, "NO_DAMAGE_RECORD"),
    ] {
        let status = client.issue(refused(t, card, fy)).await.map(|_| ()).expect_err("refused");
        assert_eq!(super_reason(&status), reason, "{t:?}");
    }

    // 3. Every certificate reproduces byte for byte from the log.
    let mut audit = server.audit().await;
    for (id, t, _) in &issued {
        let again = audit.reproduce(ReproduceRequest { certificate_id: id.clone() }).await.unwrap_or_else(|s| panic!("{t:?}: {s:?}")).into_inner();
        assert_eq!(again.content_sha256, hex::encode(sha2::Sha256::digest(&again.pdf)), "{t:?}");
    }

    // 4. Transactions and the month's settlement, counted by hand from what was issued above.
    let mut admin = server.admin().await;
    let mut stream = admin
        .list_transactions(ListTransactionsRequest { municipality_code: CODE.into(), from_date: "2026-04-01".into(), to_date: "2026-04-30".into(), limit: 0 })
        .await
        .unwrap()
        .into_inner();
    let mut listed = Vec::new();
    while let Some(t) = stream.message().await.unwrap() {
        if t.outcome == "ISSUED" {
            listed.push(t);
        } else {
            // The refusals above are transactions too: with their reason, never charged.
            assert!(t.certificate_id.is_empty() && t.fee_yen == 0 && t.bcl_fee_yen == 0, "{t:?}");
            assert!(t.outcome.chars().all(|c| c.is_ascii_uppercase() || c == '_'), "{t:?}");
        }
    }
    assert_eq!(listed.len(), issued.len());
    for (t, (id, ty, copies)) in listed.iter().zip(&issued) {
        assert_eq!((&t.certificate_id, t.r#type, t.copies), (id, *ty as i32, *copies));
        assert_eq!(t.kiosk_id, "KIOSK-00001");
        assert_eq!(t.outcome, "ISSUED");
    }
    let march = admin
        .list_transactions(ListTransactionsRequest { municipality_code: CODE.into(), to_date: "2026-03-31".into(), ..Default::default() })
        .await
        .unwrap()
        .into_inner()
        .message()
        .await
        .unwrap();
    assert!(march.is_none(), "nothing was issued in March");

    let s = admin.get_settlement(SettlementRequest { municipality_code: CODE.into(), month: "2026-04".into() }).await.unwrap().into_inner();
    // Issued in section 2: seal ×2 copies, tax ×3, income ×1, FR ×1, FR personal ×1, annex ×1, disaster ×1,
    // items ×1 = 11 certificates, 1 of them disaster; plus the fixture's issued cases in section 1.
    let fixture_issued: Vec<T> = issued.iter().take(issued.len() - 10).map(|(_, t, _)| *t).collect();
    assert!(fixture_issued.iter().all(|t| matches!(t, T::SealRegistration | T::TaxAssessment)));
    let n_fixture = fixture_issued.len() as u64;
    let fixture_fees: u64 = fixture_issued.iter().map(|t| u64::from(fee_of(*t))).sum();
    assert_eq!((s.certificates, s.disaster_certificates), (11 + n_fixture, 1));
    assert_eq!(s.bcl_fee_yen, 10 * 180 + 107 + 180 * n_fixture);
    assert_eq!(s.store_commission_yen, 10 * 117 + 10 + 117 * n_fixture);
    // seal 2×200, tax 3×300, income 300, FR 450, personal 450, annex 300, disaster 0, items 300.
    assert_eq!(s.resident_fees_yen, 400 + 900 + 300 + 450 + 450 + 300 + 300 + fixture_fees);
    let disaster = s.per_type.iter().find(|e| e.r#type == T::DisasterDamage as i32).unwrap();
    assert_eq!((disaster.issuances, disaster.bcl_fee_yen, disaster.store_commission_yen, disaster.resident_fees_yen), (1, 107, 10, 0));
    // The same figures through `bcl admin`.
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_bcl"))
        .args(["admin", "--server", &server.url(), "--code", CODE, "settlement", "--month", "2026-04", "--json"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let cli: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(cli["bclFeeYen"], s.bcl_fee_yen);
    assert_eq!(cli["residentFeesYen"], s.resident_fees_yen);
    assert_eq!(cli["perType"].as_array().unwrap().len(), s.per_type.len());
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_bcl"))
        .args(["admin", "--server", &server.url(), "transactions", "--from", "2026-04-01", "--json"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let rows: Vec<serde_json::Value> = String::from_utf8(out.stdout).unwrap().lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    let issued_rows: Vec<_> = rows.iter().filter(|r| r["outcome"] == "ISSUED").collect();
    assert_eq!(issued_rows.len(), issued.len());
    assert_eq!(rows.len(), listed.len() + (rows.len() - issued_rows.len()), "refusals are listed too");
    assert_eq!(issued_rows[0]["certificateId"], issued[0].0.as_str());
    for row in &rows {
        let row = row.to_string();
        assert!(!row.contains(&head) && !row.contains(&card), "no resident id or card serial in the transaction list");
    }

    // 中間DB参照 of the wife: what is held, and the answer per type (no seal → NO_SEAL_REGISTRATION).
    let view = admin
        .lookup_resident(bcl_proto::LookupResidentRequest { municipality_code: CODE.into(), resident_id: wife.clone() })
        .await
        .unwrap()
        .into_inner();
    assert_eq!((view.household_id.as_str(), view.status.as_str(), view.seal_registered), (household.as_str(), "ACTIVE", false));
    assert!(view.tax_years.contains(&fy) && view.family_register_id == "F9000001");
    let answer = |t: T| view.eligibility.iter().find(|e| e.r#type == t as i32).map(|e| (e.issuable, e.reason.clone())).unwrap();
    assert_eq!(answer(T::SealRegistration), (false, "NO_SEAL_REGISTRATION".to_string()));
    assert_eq!(answer(T::DisasterDamage), (true, String::new()));
    assert_eq!(answer(T::ResidentRecord), (true, String::new()));
    let missing = admin
        .lookup_resident(bcl_proto::LookupResidentRequest { municipality_code: CODE.into(), resident_id: "R-NOBODY".into() })
        .await
        .unwrap_err();
    assert_eq!(missing.code(), tonic::Code::NotFound);

    let empty = admin.get_settlement(SettlementRequest { municipality_code: CODE.into(), month: "2026-05".into() }).await.unwrap().into_inner();
    assert_eq!((empty.certificates, empty.bcl_fee_yen), (0, 0));
    let bad = admin.get_settlement(SettlementRequest { municipality_code: CODE.into(), month: "2026-13".into() }).await.unwrap_err();
    assert_eq!(bad.code(), tonic::Code::InvalidArgument);
}

fn super_reason(status: &tonic::Status) -> String {
    reason(status)
}
