//! Table-driven eligibility of every certificate type: the shared gates give the same reason for every type,
//! then each type's own rules and what its plan and record hold.

use bcl_proto::admin_action::Action;
use bcl_proto::change_event::Body;
use bcl_proto::{
    CertificateType as T, DamageCertified, DamageGrade, FamilyRegisterRecorded, IssueRequest, LogLeaf,
    MoveOutFiled, MunicipalitySettings, ResidentChanged, ResidentRemoved, SealAbolished, SealRegistered,
    SetIssuanceBlockRequest, SetMaintenanceRequest, SupportMeasureChanged, TaxAssessed,
};

use super::*;
use crate::record::CertificateDocument;
use crate::testkit::*;

/// (case name, extra change events, extra admin leaves, card, clock, expected reason)
type GateCase = (&'static str, Vec<Body>, Vec<LogLeaf>, &'static str, &'static str, RefusalReason);
/// (type, card, subjects, fiscal year, subjects printed or the reason)
type TypeCase = (T, &'static str, Vec<&'static str>, u32, Result<usize, RefusalReason>);

const NOON: &str = "2026-04-01T12:00:00+09:00";
const ALL_TYPES: [T; 9] = [
    T::ResidentRecord,
    T::ResidentRecordItems,
    T::SealRegistration,
    T::TaxAssessment,
    T::Income,
    T::FamilyRegister,
    T::FamilyRegisterPersonal,
    T::FamilyRegisterAnnex,
    T::DisasterDamage,
];

fn now(s: &str) -> JstDateTime {
    JstDateTime::parse_rfc3339(s).unwrap()
}

fn enable_all() -> LogLeaf {
    admin(Action::UpdateSettings(MunicipalitySettings {
        enabled_types: ALL_TYPES.iter().map(|t| *t as i32).collect(),
        ..Default::default()
    }))
}

fn register(id: &str, register_id: &str, domicile: &str) -> Body {
    Body::FamilyRegisterRecorded(FamilyRegisterRecorded {
        resident_id: id.into(),
        register_id: register_id.into(),
        domicile: domicile.into(),
        head: "山田\u{3000}名H".into(),
    })
}

/// Eligibility never decodes the image: a PNG signature is all validation asks for.
fn png(tail: &[u8]) -> Vec<u8> {
    [b"\x89PNG\r\n\x1a\n".as_slice(), tail].concat()
}

fn tax(id: &str, fiscal_year: u32, municipal_tax: i64, prefectural_tax: i64) -> Body {
    Body::TaxAssessed(TaxAssessed {
        resident_id: id.into(),
        fiscal_year,
        total_income: 4_500_000,
        taxable_income: 3_120_000,
        municipal_tax,
        prefectural_tax,
    })
}

fn damage(household: &str, name: &str, grade: DamageGrade) -> Body {
    Body::DamageCertified(DamageCertified {
        household_id: household.into(),
        disaster_name: name.into(),
        disaster_date: "2026-03-10".into(),
        grade: grade as i32,
    })
}

/// The household of the testkit with the data each type reads: H has a seal, assessments for 2025 and 2026
/// and is the 筆頭者 of a local register holding H, S and T; S's seal is abolished and S is 非課税 in 2026; C has
/// no data of their own; X (another household) is in a register kept elsewhere. HH1 was surveyed after one
/// disaster twice (the later result counts).
fn base_bodies() -> Vec<Body> {
    vec![
        Body::SealRegistered(SealRegistered { resident_id: "H".into(), registration_number: "1001".into(), seal_image_png: png(b"H") }),
        Body::SealRegistered(SealRegistered { resident_id: "S".into(), registration_number: "1002".into(), seal_image_png: png(b"S") }),
        Body::SealAbolished(SealAbolished { resident_id: "S".into() }),
        tax("H", 2025, 150_000, 100_000),
        tax("H", 2026, 160_000, 107_000),
        tax("S", 2026, 0, 0),
        register("H", "REG-1", "東京都千代田区千代田1番"),
        register("S", "REG-1", "東京都千代田区千代田1番"),
        register("T", "REG-1", "東京都千代田区千代田1番"),
        register("X", "REG-2", "大阪府大阪市北区梅田1丁目1番"),
        damage("HH1", "令和8年3月豪雨", DamageGrade::Half),
        damage("HH1", "令和8年3月豪雨", DamageGrade::LargeScaleHalf),
    ]
}

fn state_with(more: Vec<Body>, admin_leaves: Vec<LogLeaf>) -> State {
    let mut log = household_log();
    log.push(enable_all());
    let bodies = base_bodies().into_iter().chain(more);
    log.extend(bodies.enumerate().map(|(i, b)| leaf(event(11 + i as u64, b))));
    log.extend(admin_leaves);
    fold(&log)
}

fn request(t: T, card: &str, subjects: &[&str]) -> IssueRequest {
    IssueRequest {
        request_id: "req-1".into(),
        centre: bcl_proto::Centre::East as i32,
        kiosk_id: "kiosk-1".into(),
        municipality_code: CODE.into(),
        card_serial: card.into(),
        r#type: t as i32,
        subject_resident_ids: subjects.iter().map(|s| s.to_string()).collect(),
        copies: 1,
        ..Default::default()
    }
}

fn outcome(state: &State, req: &IssueRequest, at: &str) -> Result<Plan, RefusalReason> {
    check_request(state, req, now(at)).map_err(|r| r.reason)
}

/// Every gate that is not about the type gives the same reason for every type.
#[test]
fn shared_gates_apply_to_every_type() {
    use RefusalReason::*;
    let block = |id: &str| admin(Action::SetIssuanceBlock(SetIssuanceBlockRequest { municipality_code: CODE.into(), resident_id: id.into(), blocked: true }));
    let maintenance = admin(Action::SetMaintenance(SetMaintenanceRequest { municipality_code: CODE.into(), on: true, reason: "x".into() }));
    let only_rr = admin(Action::UpdateSettings(MunicipalitySettings { enabled_types: vec![T::ResidentRecord as i32], ..Default::default() }));
    let cases: Vec<GateCase> = vec![
        ("unknown card", vec![], vec![], "K-NONE", NOON, UnknownCard),
        ("revoked card", vec![Body::CardRevoked(bcl_proto::CardRevoked { card_serial: "K-H".into() })], vec![], "K-H", NOON, CardRevoked),
        ("under 15", vec![], vec![], "K-C", NOON, UnderAge),
        ("removed requester", vec![Body::ResidentRemoved(ResidentRemoved { resident_id: "H".into(), reason: 2 })], vec![], "K-H", NOON, NotResident),
        ("support measure in the household", vec![Body::SupportMeasureChanged(SupportMeasureChanged { resident_id: "C".into(), in_force: true })], vec![], "K-H", NOON, SupportMeasure),
        ("move-out filed in the household", vec![Body::MoveOutFiled(MoveOutFiled { resident_id: "C".into(), planned_date: "2026-04-10".into(), destination: "大阪府".into() })], vec![], "K-H", NOON, MovingOut),
        ("moved in today", vec![Body::ResidentChanged(ResidentChanged { resident_id: "H".into(), address_since: Some("2026-04-01".into()), ..Default::default() })], vec![], "K-H", NOON, MovedInToday),
        ("gaiji pending", vec![Body::ResidentChanged(ResidentChanged { resident_id: "H".into(), gaiji_pending: Some(true), ..Default::default() })], vec![], "K-H", NOON, GaijiPending),
        ("blocked", vec![], vec![block("H")], "K-H", NOON, IssuanceBlocked),
        ("maintenance", vec![], vec![maintenance], "K-H", NOON, MunicipalitySuspended),
        ("type disabled", vec![], vec![only_rr], "K-H", NOON, TypeDisabled),
        ("before 06:30", vec![], vec![], "K-H", "2026-04-01T06:29:00+09:00", OutOfHours),
        ("year-end closure", vec![], vec![], "K-H", "2026-12-30T12:00:00+09:00", OutOfHours),
    ];
    for (name, bodies, leaves, card, at, expected) in cases {
        let state = state_with(bodies, leaves);
        for t in ALL_TYPES {
            if t == T::ResidentRecord && expected == TypeDisabled {
                continue; // the one type left enabled
            }
            assert_eq!(outcome(&state, &request(t, card, &[]), at).err(), Some(expected), "{name}: {t:?}");
        }
    }
    // The positive control: the same card with no bar gets every type.
    let state = state_with(vec![], vec![]);
    for t in ALL_TYPES {
        assert!(outcome(&state, &request(t, "K-H", &[]), NOON).is_ok(), "{t:?}");
    }
}

fn person_plan(state: &State, req: &IssueRequest) -> PersonPlan {
    match check_request(state, req, now(NOON)).unwrap() {
        Plan::Person(p) => p,
        other => panic!("expected a person plan, got {other:?}"),
    }
}

fn build(state: &State, req: &IssueRequest) -> (CertificateDocument, Vec<u64>) {
    let plan = check_request(state, req, now(NOON)).unwrap();
    build_certificate(state, &plan, "CERT-1", now(NOON).date).unwrap()
}

#[test]
fn type_rules() {
    use RefusalReason::*;
    let state = state_with(vec![], vec![]);
    let cases: Vec<TypeCase> = vec![
        // Seal: self only, registration in force.
        (T::SealRegistration, "K-H", vec![], 0, Ok(1)),
        (T::SealRegistration, "K-H", vec!["H"], 0, Ok(1)),
        (T::SealRegistration, "K-H", vec!["S"], 0, Err(InvalidRequest)),
        (T::SealRegistration, "K-S", vec![], 0, Err(NoSealRegistration)),
        (T::SealRegistration, "K-T", vec![], 0, Err(NoSealRegistration)),
        // Tax and income: self only, the requested (or current) fiscal year must be assessed.
        (T::TaxAssessment, "K-H", vec![], 0, Ok(1)),
        (T::TaxAssessment, "K-H", vec![], 2025, Ok(1)),
        (T::TaxAssessment, "K-H", vec![], 2024, Err(NoTaxAssessment)),
        (T::TaxAssessment, "K-H", vec!["S"], 0, Err(InvalidRequest)),
        (T::TaxAssessment, "K-T", vec![], 0, Err(NoTaxAssessment)),
        (T::Income, "K-S", vec![], 2026, Ok(1)),
        (T::Income, "K-S", vec![], 2025, Err(NoTaxAssessment)),
        // Family register: the requester and subjects must be in a register kept here.
        (T::FamilyRegister, "K-H", vec![], 0, Ok(3)),
        (T::FamilyRegister, "K-T", vec!["S"], 0, Ok(3)),
        (T::FamilyRegister, "K-H", vec!["C"], 0, Err(NotInRegister)),
        (T::FamilyRegister, "K-X", vec![], 0, Err(NotInRegister)),
        (T::FamilyRegisterPersonal, "K-S", vec![], 0, Ok(1)),
        (T::FamilyRegisterPersonal, "K-H", vec!["T", "S"], 0, Ok(2)),
        (T::FamilyRegisterPersonal, "K-H", vec!["X"], 0, Err(NotInRegister)),
        (T::FamilyRegisterAnnex, "K-H", vec![], 0, Ok(3)),
        (T::FamilyRegisterAnnex, "K-H", vec!["T"], 0, Ok(1)),
        (T::FamilyRegisterAnnex, "K-X", vec![], 0, Err(NotInRegister)),
        // Disaster: the applicant's household must have a survey result; subjects from the household only.
        (T::DisasterDamage, "K-S", vec![], 0, Ok(4)),
        (T::DisasterDamage, "K-H", vec!["T"], 0, Ok(4)),
        (T::DisasterDamage, "K-H", vec!["X"], 0, Err(NotSameHousehold)),
        (T::DisasterDamage, "K-X", vec![], 0, Err(NoDamageRecord)),
        // 記載事項証明書: the 住民票 rules.
        (T::ResidentRecordItems, "K-H", vec![], 0, Ok(4)),
        (T::ResidentRecordItems, "K-H", vec!["X"], 0, Err(NotSameHousehold)),
    ];
    for (t, card, subjects, fiscal_year, expected) in cases {
        let mut req = request(t, card, &subjects);
        req.fiscal_year = fiscal_year;
        let got = outcome(&state, &req, NOON).map(|plan| match plan {
            Plan::Person(p) => p.subject_ids.len(),
            Plan::ResidentRecord(p) | Plan::ResidentRecordItems(p) => p.subject_ids.len(),
        });
        assert_eq!(got, expected, "{t:?} card {card} subjects {subjects:?} year {fiscal_year}");
    }
}

#[test]
fn register_kept_elsewhere_or_not_recorded_is_not_in_register() {
    // C is in no register at all; a register whose domicile merely mentions the name later is not local.
    let state = state_with(vec![register("S", "REG-3", "北海道千代田区")], vec![]);
    let mut req = request(T::FamilyRegisterPersonal, "K-S", &[]);
    assert_eq!(outcome(&state, &req, NOON).err(), Some(RefusalReason::NotInRegister));
    req.card_serial = "K-T".into();
    assert_eq!(person_plan(&state, &req).subject_ids, vec!["T"]);
}

#[test]
fn a_support_measure_in_another_household_of_the_register_bars_the_register() {
    // X moves into register REG-1 while living in HH2, then gets a support measure.
    let bodies = vec![
        register("X", "REG-1", "東京都千代田区千代田1番"),
        Body::SupportMeasureChanged(SupportMeasureChanged { resident_id: "X".into(), in_force: true }),
    ];
    let state = state_with(bodies, vec![]);
    assert_eq!(outcome(&state, &request(T::FamilyRegister, "K-H", &[]), NOON).err(), Some(RefusalReason::SupportMeasure));
    // A personal certificate of H alone does not print X.
    assert!(outcome(&state, &request(T::FamilyRegisterPersonal, "K-H", &[]), NOON).is_ok());
}

#[test]
fn fiscal_year_starts_on_the_first_of_april() {
    let d = |y, m, day| Date { year: y, month: m, day };
    assert_eq!(fiscal_year_of(d(2026, 3, 31)), 2025);
    assert_eq!(fiscal_year_of(d(2026, 4, 1)), 2026);
    assert_eq!(fiscal_year_of(d(2026, 12, 31)), 2026);
    assert_eq!(fiscal_year_of(d(2027, 1, 1)), 2026);
    // Default year of a request on 31 March is the previous fiscal year, which H has.
    let state = state_with(vec![], vec![]);
    let req = request(T::TaxAssessment, "K-H", &[]);
    let plan = check_request(&state, &req, now("2026-03-31T12:00:00+09:00")).unwrap();
    assert!(matches!(plan, Plan::Person(PersonPlan { fiscal_year: 2025, .. })));
}

#[test]
fn every_grade_has_its_wording() {
    let all = [
        (DamageGrade::Total, "全壊"),
        (DamageGrade::LargeScaleHalf, "大規模半壊"),
        (DamageGrade::MediumScaleHalf, "中規模半壊"),
        (DamageGrade::Half, "半壊"),
        (DamageGrade::SemiHalf, "準半壊"),
        (DamageGrade::Partial, "一部損壊（準半壊に至らない）"),
    ];
    for (grade, wording) in all {
        assert_eq!(grade_wording(grade), Some(wording));
    }
    // Validation refuses an unknown grade on the link; were one folded anyway, it is never printed.
    assert_eq!(grade_wording(DamageGrade::Unspecified), None);
}

#[test]
fn records_hold_what_each_type_prints() {
    let state = state_with(vec![damage("HH1", "令和8年4月地震", DamageGrade::Partial)], vec![]);
    let (doc, positions) = build(&state, &request(T::SealRegistration, "K-H", &[]));
    let CertificateDocument::Seal(seal) = &doc else { panic!("seal") };
    assert_eq!((seal.registration_number.as_str(), seal.seal_image_png.clone()), ("1001", png(b"H")));
    assert_eq!(seal.given_name, "名H");
    assert!(positions.windows(2).all(|w| w[0] < w[1]));
    assert!(positions.contains(&12), "the seal registration (position 12) is a source");
    assert_eq!(doc.title(), "印鑑登録証明書");

    let (doc, _) = build(&state, &request(T::TaxAssessment, "K-H", &[]));
    let CertificateDocument::Tax(t) = &doc else { panic!("tax") };
    assert_eq!((t.fiscal_year, t.municipal_tax, t.prefectural_tax, t.exempt), (2026, 160_000, 107_000, false));
    assert_eq!(t.income_year(), 2025);
    assert_eq!(doc.title(), "課税証明書");
    let (doc, _) = build(&state, &request(T::TaxAssessment, "K-S", &[]));
    assert_eq!(doc.title(), "非課税証明書");
    let (doc, _) = build(&state, &request(T::Income, "K-S", &[]));
    assert_eq!(doc.title(), "所得証明書");

    let (doc, _) = build(&state, &request(T::FamilyRegister, "K-T", &[]));
    let CertificateDocument::FamilyRegister(f) = &doc else { panic!("register") };
    assert_eq!(f.persons.iter().map(|p| p.given_name.as_str()).collect::<Vec<_>>(), ["名H", "名S", "名T"]);
    assert!(f.persons.iter().all(|p| p.address.is_none()));
    let (doc, _) = build(&state, &request(T::FamilyRegisterAnnex, "K-T", &[]));
    let CertificateDocument::FamilyRegister(f) = &doc else { panic!("annex") };
    assert!(f.persons.iter().all(|p| p.address.as_ref().is_some_and(|(a, _)| a.starts_with("東京都千代田区"))));
    assert_eq!(doc.title(), "戸籍の附票の写し");

    let (doc, positions) = build(&state, &request(T::DisasterDamage, "K-S", &[]));
    let CertificateDocument::DisasterDamage(d) = &doc else { panic!("damage") };
    let grades: Vec<(&str, &str)> = d.damages.iter().map(|e| (e.disaster_name.as_str(), e.grade.as_str())).collect();
    assert_eq!(grades, [("令和8年3月豪雨", "大規模半壊"), ("令和8年4月地震", "一部損壊（準半壊に至らない）")]);
    assert_eq!(d.household_names.len(), 4);
    assert_eq!(doc.sheets_per_copy(), 2);
    // Survey results at 22 (superseded by the re-survey at 23) and 24.
    assert!(positions.contains(&23) && positions.contains(&24), "survey results are sources");
    assert!(!positions.contains(&22), "a superseded survey result is not a source");

    let mut req = request(T::ResidentRecordItems, "K-H", &["S"]);
    req.include_domicile = true;
    let (doc, _) = build(&state, &req);
    let CertificateDocument::ResidentRecordItems(items) = &doc else { panic!("items") };
    assert_eq!(items.persons.len(), 1);
    assert!(items.persons[0].registered_domicile.is_some() && items.persons[0].relationship.is_none());
    assert!(items.household_head_name.is_none() && items.persons[0].personal_number.is_none());
}

#[test]
fn fees_follow_the_municipality_per_type() {
    let fees = admin(Action::UpdateSettings(MunicipalitySettings {
        fees: vec![bcl_proto::TypeFee { r#type: T::SealRegistration as i32, fee_yen: 200 }],
        ..Default::default()
    }));
    let state = state_with(vec![], vec![fees]);
    let mut req = request(T::SealRegistration, "K-H", &[]);
    req.copies = 3;
    assert_eq!(check_request(&state, &req, now(NOON)).unwrap().fee_yen(), 600);
    req.r#type = T::TaxAssessment as i32;
    assert_eq!(check_request(&state, &req, now(NOON)).unwrap().fee_yen(), 900);
}

#[test]
fn lookup_answers_every_type_with_the_residents_own_card() {
    let state = state_with(vec![], vec![]);
    let answers = eligibility_today(&state, CODE, "S", now(NOON));
    assert_eq!(answers.len(), 9);
    let reason = |t: T| answers.iter().find(|(x, _)| *x == t).unwrap().1.as_ref().err().map(|r| r.reason);
    assert_eq!(reason(T::ResidentRecord), None);
    assert_eq!(reason(T::SealRegistration), Some(RefusalReason::NoSealRegistration), "S's seal is abolished");
    assert_eq!(reason(T::TaxAssessment), None, "S is assessed (非課税) for 2026");
    assert_eq!(reason(T::FamilyRegister), None);
    // C is 10: every type is UNDER_AGE; someone without a card is UNKNOWN_CARD.
    assert!(eligibility_today(&state, CODE, "C", now(NOON)).iter().all(|(_, a)| a.as_ref().err().map(|r| r.reason) == Some(RefusalReason::UnderAge)));
    assert!(eligibility_today(&state, CODE, "nobody", now(NOON)).iter().all(|(_, a)| a.as_ref().err().map(|r| r.reason) == Some(RefusalReason::UnknownCard)));
}
