//! Property tests of the catalogue: whatever the municipality sent, in whatever order, checking and
//! building any certificate never panics, and an issued certificate never breaks a rule. The rules are
//! restated here from the brief, against the folded state, not by calling the checks under test.

use bcl_projections::{build_certificate, check_request, CertificateDocument, JstDateTime, Plan, ResidentStatus, State};
use bcl_proto::change_event::Body;
use bcl_proto::log_leaf::Kind;
use bcl_proto::{
    admin_action::Action, AdminAction, CardIssued, CardRevoked, CertificateType as T, ChangeEvent, DamageCertified,
    FamilyRegisterRecorded, IssueRequest, LogLeaf, MoveOutFiled, MunicipalitySettings, ResidentChanged,
    ResidentRegistered, ResidentRemoved, SealAbolished, SealRegistered, SetIssuanceBlockRequest, SupportMeasureChanged,
    TaxAssessed,
};
use proptest::prelude::*;

const CODE: &str = "131016";
const NAME: &str = "東京都千代田区";
const TYPES: [T; 9] = [
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
const RESIDENTS: usize = 6;

#[derive(Debug, Clone)]
enum Op {
    MoveHousehold(usize, u8),
    Support(usize, bool),
    Tax(usize, u32, i64),
    Card(usize),
    Revoke(usize),
    Seal(usize),
    Abolish(usize),
    MoveOut(usize),
    Remove(usize),
    Register(usize, u8, bool),
    Damage(u8, u8),
    Block(usize, bool),
    Gaiji(usize, bool),
    Birth(usize, u16),
}

fn op() -> impl Strategy<Value = Op> {
    let r = 0usize..RESIDENTS;
    prop_oneof![
        (r.clone(), 0u8..3).prop_map(|(r, h)| Op::MoveHousehold(r, h)),
        (r.clone(), any::<bool>()).prop_map(|(r, b)| Op::Support(r, b)),
        (r.clone(), 2024u32..2028, 0i64..10_000_000).prop_map(|(r, y, t)| Op::Tax(r, y, t)),
        r.clone().prop_map(Op::Card),
        r.clone().prop_map(Op::Card),
        r.clone().prop_map(Op::Revoke),
        r.clone().prop_map(Op::Seal),
        r.clone().prop_map(Op::Abolish),
        r.clone().prop_map(Op::MoveOut),
        r.clone().prop_map(Op::Remove),
        (r.clone(), 0u8..3, any::<bool>()).prop_map(|(r, g, local)| Op::Register(r, g, local)),
        (0u8..3, 1u8..7).prop_map(|(h, g)| Op::Damage(h, g)),
        (r.clone(), any::<bool>()).prop_map(|(r, b)| Op::Block(r, b)),
        (r.clone(), any::<bool>()).prop_map(|(r, b)| Op::Gaiji(r, b)),
        (r, 0u16..30).prop_map(|(r, years)| Op::Birth(r, years)),
    ]
}

fn rid(i: usize) -> String {
    format!("R{}", i % RESIDENTS)
}

/// The log: settings enabling every type, registrations, then the operations (admin ones as admin leaves).
fn log(ops: &[Op]) -> Vec<LogLeaf> {
    let admin = |action: Action| LogLeaf { kind: Some(Kind::Admin(AdminAction { municipality_code: CODE.into(), at: String::new(), action: Some(action), actor: String::new() })) };
    let mut leaves = vec![admin(Action::UpdateSettings(MunicipalitySettings {
        municipality_code: CODE.into(),
        municipality_name: NAME.into(),
        mayor_title: "千代田区長".into(),
        enabled_types: TYPES.iter().map(|t| *t as i32).collect(),
        ..Default::default()
    }))];
    let mut bodies: Vec<Body> = (0..RESIDENTS)
        .map(|i| {
            Body::ResidentRegistered(ResidentRegistered {
                resident_id: rid(i),
                household_id: format!("HH{}", i % 3),
                family_name: "佐藤".into(),
                given_name: format!("名{i}"),
                birth_date: "1990-01-01".into(),
                sex: 1,
                address: "東京都千代田区千代田1番1号".into(),
                household_head: i < 3,
                resident_since: "2000-01-01".into(),
                address_since: "2000-01-01".into(),
                ..Default::default()
            })
        })
        .collect();
    let mut seq = 0u64;
    let mut push = |leaves: &mut Vec<LogLeaf>, body: Body| {
        seq += 1;
        let ev = ChangeEvent {
            municipality_code: CODE.into(),
            source_seq: seq,
            event_id: format!("00000000-0000-4000-8000-{seq:012x}"),
            effective_date: "2026-01-01".into(),
            body: Some(body),
        };
        leaves.push(LogLeaf { kind: Some(Kind::ChangeEvent(ev)) });
    };
    for b in bodies.drain(..) {
        push(&mut leaves, b);
    }
    for (k, op) in ops.iter().enumerate() {
        let body = match op {
            Op::MoveHousehold(r, h) => Body::ResidentChanged(ResidentChanged { resident_id: rid(*r), household_id: Some(format!("HH{h}")), ..Default::default() }),
            Op::Support(r, b) => Body::SupportMeasureChanged(SupportMeasureChanged { resident_id: rid(*r), in_force: *b }),
            Op::Tax(r, y, t) => Body::TaxAssessed(TaxAssessed {
                resident_id: rid(*r),
                fiscal_year: *y,
                total_income: *t,
                taxable_income: *t / 2,
                municipal_tax: *t / 20,
                prefectural_tax: *t / 30,
            }),
            Op::Card(r) => Body::CardIssued(CardIssued { resident_id: rid(*r), card_serial: format!("C{}", r) }),
            Op::Revoke(r) => Body::CardRevoked(CardRevoked { card_serial: format!("C{r}") }),
            Op::Seal(r) => Body::SealRegistered(SealRegistered {
                resident_id: rid(*r),
                registration_number: format!("S{k}"),
                seal_image_png: b"\x89PNG\r\n\x1a\n0000".to_vec(),
            }),
            Op::Abolish(r) => Body::SealAbolished(SealAbolished { resident_id: rid(*r) }),
            Op::MoveOut(r) => Body::MoveOutFiled(MoveOutFiled { resident_id: rid(*r), planned_date: "2026-05-01".into(), destination: "大阪府".into() }),
            Op::Remove(r) => Body::ResidentRemoved(ResidentRemoved { resident_id: rid(*r), reason: 1 }),
            Op::Register(r, g, local) => Body::FamilyRegisterRecorded(FamilyRegisterRecorded {
                resident_id: rid(*r),
                register_id: format!("F{g}"),
                domicile: if *local { format!("{NAME}千代田{g}番") } else { format!("大阪府大阪市北区梅田{g}番") },
                head: "佐藤\u{3000}名0".into(),
            }),
            Op::Damage(h, g) => Body::DamageCertified(DamageCertified {
                household_id: format!("HH{h}"),
                disaster_name: "豪雨".into(),
                disaster_date: "2025-09-10".into(),
                grade: *g as i32,
            }),
            Op::Block(r, b) => {
                leaves.push(admin(Action::SetIssuanceBlock(SetIssuanceBlockRequest { municipality_code: CODE.into(), resident_id: rid(*r), blocked: *b })));
                continue;
            }
            Op::Gaiji(r, b) => Body::ResidentChanged(ResidentChanged { resident_id: rid(*r), gaiji_pending: Some(*b), ..Default::default() }),
            Op::Birth(r, years) => Body::ResidentRegistered(ResidentRegistered {
                resident_id: format!("B{r}{years}"),
                household_id: format!("HH{}", r % 3),
                family_name: "佐藤".into(),
                given_name: "子".into(),
                birth_date: format!("{}-06-01", 2026 - *years as i32),
                sex: 2,
                address: "東京都千代田区千代田1番1号".into(),
                resident_since: "2020-01-01".into(),
                address_since: "2020-01-01".into(),
                ..Default::default()
            }),
        };
        push(&mut leaves, body);
    }
    leaves
}

/// The rules every issued certificate must satisfy, checked on the folded state.
fn assert_allowed(state: &State, req: &IssueRequest, plan: &Plan, doc: &CertificateDocument) -> Result<(), TestCaseError> {
    let m = state.municipality(CODE).unwrap();
    let card = m.card(&req.card_serial).expect("issued for a known card");
    prop_assert!(!card.revoked, "revoked card");
    let requester = m.resident(&card.resident_id).unwrap();
    prop_assert!(!requester.is_removed(), "removed requester");
    prop_assert!(requester.birth_date.year <= 2011, "requester under 15 (born {:?})", requester.birth_date);
    prop_assert!(!requester.gaiji_pending && !m.is_blocked(&requester.id));
    for member in m.household_members(&requester.household_id) {
        prop_assert!(!member.support_measure, "support measure in the household");
        prop_assert!(!matches!(member.status, ResidentStatus::MoveOutFiled { .. }), "move-out in the household");
    }
    let printed: Vec<String> = match plan {
        Plan::ResidentRecord(p) | Plan::ResidentRecordItems(p) => p.subject_ids.clone(),
        Plan::Person(p) => p.subject_ids.clone(),
    };
    for id in &printed {
        let r = m.resident(id).unwrap();
        prop_assert!(!r.is_removed() && !r.gaiji_pending && !m.is_blocked(id), "printed person barred");
    }
    match doc {
        CertificateDocument::Seal(_) => {
            prop_assert!(requester.seal.as_ref().is_some_and(|s| !s.abolished), "seal without registration");
        }
        CertificateDocument::Tax(t) => {
            prop_assert!(requester.tax.contains_key(&t.fiscal_year), "tax without assessment");
            prop_assert_eq!(t.exempt, t.municipal_tax == 0 && t.prefectural_tax == 0);
        }
        CertificateDocument::FamilyRegister(f) => {
            let reg = requester.family_register.as_ref();
            prop_assert!(reg.is_some_and(|r| r.domicile.starts_with(NAME)), "register kept elsewhere");
            for id in &printed {
                let r = m.resident(id).unwrap();
                prop_assert_eq!(r.family_register.as_ref().map(|x| &x.register_id), reg.map(|x| &x.register_id));
            }
            prop_assert_eq!(f.persons.len(), printed.len());
        }
        CertificateDocument::DisasterDamage(d) => {
            prop_assert!(!d.damages.is_empty() && !m.damage_records(&requester.household_id).is_empty());
        }
        CertificateDocument::ResidentRecord(_) | CertificateDocument::ResidentRecordItems(_) => {
            for id in &printed {
                prop_assert_eq!(&m.resident(id).unwrap().household_id, &requester.household_id);
            }
        }
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, .. ProptestConfig::default() })]

    #[test]
    fn no_event_sequence_issues_what_the_rules_exclude(
        ops in prop::collection::vec(op(), 0..40),
        subjects in prop::collection::vec(0usize..RESIDENTS, 0..3),
        fiscal_year in prop_oneof![Just(0u32), 2024u32..2028],
    ) {
        let state = {
            let mut s = State::default();
            s.apply_all(0, &log(&ops));
            s
        };
        let now = JstDateTime::parse_rfc3339("2026-04-01T12:00:00+09:00").unwrap();
        let mut subject_ids: Vec<String> = subjects.iter().map(|i| rid(*i)).collect();
        subject_ids.dedup();
        for t in TYPES {
            for card in 0..RESIDENTS {
                let req = IssueRequest {
                    request_id: "p".into(),
                    centre: 1,
                    municipality_code: CODE.into(),
                    card_serial: format!("C{card}"),
                    r#type: t as i32,
                    subject_resident_ids: subject_ids.clone(),
                    fiscal_year,
                    copies: 1,
                    ..Default::default()
                };
                if let Ok(plan) = check_request(&state, &req, now) {
                    let (doc, sources) = build_certificate(&state, &plan, "CERT", now.date).expect("a plan builds against its own state");
                    prop_assert!(sources.windows(2).all(|w| w[0] < w[1]), "sources ascending and distinct");
                    assert_allowed(&state, &req, &plan, &doc)?;
                }
            }
        }
    }
}

/// The property is not vacuous: the generator's vocabulary can make every type issuable.
#[test]
fn the_generator_can_make_every_type_issuable() {
    let ops = [Op::Card(0), Op::Seal(0), Op::Tax(0, 2026, 4_000_000), Op::Register(0, 0, true), Op::Damage(0, 4)];
    let mut state = State::default();
    state.apply_all(0, &log(&ops));
    let now = JstDateTime::parse_rfc3339("2026-04-01T12:00:00+09:00").unwrap();
    for t in TYPES {
        let req = IssueRequest { request_id: "p".into(), centre: 1, municipality_code: CODE.into(), card_serial: "C0".into(), r#type: t as i32, copies: 1, ..Default::default() };
        let plan = check_request(&state, &req, now).unwrap_or_else(|e| panic!("{t:?}: {e}"));
        let (doc, _) = build_certificate(&state, &plan, "CERT", now.date).unwrap();
        assert_allowed(&state, &req, &plan, &doc).unwrap();
    }
}
