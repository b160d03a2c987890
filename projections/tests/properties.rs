//! Property tests of the fold and of validation: the guarantees the engine and auditors rely on.

use std::collections::BTreeMap;

use bcl_projections::{validate_event, State};
use bcl_proto::change_event::Body;
use bcl_proto::log_leaf::Kind;
use bcl_proto::{
    admin_action, AdminAction, CardIssued, ChangeEvent, LinkAnomaly, LogLeaf, MoveOutFiled, MunicipalityState,
    ResidentChanged, ResidentRegistered, ResidentRemoved, SealRegistered, SetMaintenanceRequest,
    SupportMeasureChanged, TaxAssessed,
};
use prost::Message;
use proptest::prelude::*;

const A: &str = "131016";
const B: &str = "011002";

fn uuid(code: &str, seq: u64) -> String {
    format!("00000000-0000-4000-8{}-{seq:012x}", &code[..3])
}

fn event(code: &str, seq: u64, body: Body) -> ChangeEvent {
    ChangeEvent {
        municipality_code: code.into(),
        source_seq: seq,
        event_id: uuid(code, seq),
        effective_date: "2026-01-01".into(),
        body: Some(body),
    }
}

fn leaf(ev: ChangeEvent) -> LogLeaf {
    LogLeaf { kind: Some(Kind::ChangeEvent(ev)) }
}

/// An operation on resident `r` (index into the registered residents).
#[derive(Debug, Clone)]
enum Op {
    Rename(usize, u8),
    MoveHousehold(usize, u8),
    Support(usize, bool),
    Tax(usize, u32, i64),
    Card(usize),
    Seal(usize),
    MoveOut(usize),
    Remove(usize),
}

fn op() -> impl Strategy<Value = Op> {
    let r = 0usize..6;
    prop_oneof![
        (r.clone(), any::<u8>()).prop_map(|(r, n)| Op::Rename(r, n)),
        (r.clone(), 0u8..3).prop_map(|(r, h)| Op::MoveHousehold(r, h)),
        (r.clone(), any::<bool>()).prop_map(|(r, b)| Op::Support(r, b)),
        (r.clone(), 2020u32..2027, 0i64..10_000_000).prop_map(|(r, y, t)| Op::Tax(r, y, t)),
        r.clone().prop_map(Op::Card),
        r.clone().prop_map(Op::Seal),
        r.clone().prop_map(Op::MoveOut),
        r.prop_map(Op::Remove),
    ]
}

/// A municipality's event stream: `residents` registrations then `ops`, numbered from 1.
fn stream(code: &str, residents: usize, ops: &[Op]) -> Vec<ChangeEvent> {
    let rid = |i: usize| format!("R{}", i % residents);
    let mut bodies: Vec<Body> = (0..residents)
        .map(|i| {
            Body::ResidentRegistered(ResidentRegistered {
                resident_id: rid(i),
                household_id: format!("HH{}", i % 3),
                family_name: "佐藤".into(),
                given_name: format!("名{i}"),
                birth_date: "1990-01-01".into(),
                sex: 1,
                address: "北海道札幌市中央区北1条西2丁目".into(),
                household_head: i < 3,
                resident_since: "2000-01-01".into(),
                address_since: "2000-01-01".into(),
                ..Default::default()
            })
        })
        .collect();
    for (k, op) in ops.iter().enumerate() {
        bodies.push(match op {
            Op::Rename(r, n) => Body::ResidentChanged(ResidentChanged {
                resident_id: rid(*r),
                given_name: Some(format!("改{n}")),
                ..Default::default()
            }),
            Op::MoveHousehold(r, h) => Body::ResidentChanged(ResidentChanged {
                resident_id: rid(*r),
                household_id: Some(format!("HH{h}")),
                ..Default::default()
            }),
            Op::Support(r, b) => {
                Body::SupportMeasureChanged(SupportMeasureChanged { resident_id: rid(*r), in_force: *b })
            }
            Op::Tax(r, y, t) => Body::TaxAssessed(TaxAssessed {
                resident_id: rid(*r),
                fiscal_year: *y,
                total_income: *t,
                taxable_income: *t / 2,
                municipal_tax: *t / 20,
                prefectural_tax: *t / 30,
            }),
            Op::Card(r) => Body::CardIssued(CardIssued { resident_id: rid(*r), card_serial: format!("C{k}") }),
            Op::Seal(r) => Body::SealRegistered(SealRegistered {
                resident_id: rid(*r),
                registration_number: format!("S{k}"),
                seal_image_png: b"\x89PNG\r\n\x1a\n0000".to_vec(),
            }),
            Op::MoveOut(r) => Body::MoveOutFiled(MoveOutFiled {
                resident_id: rid(*r),
                planned_date: "2026-05-01".into(),
                destination: "大阪府".into(),
            }),
            Op::Remove(r) => Body::ResidentRemoved(ResidentRemoved { resident_id: rid(*r), reason: 1 }),
        });
    }
    bodies.into_iter().enumerate().map(|(i, b)| event(code, i as u64 + 1, b)).collect()
}

fn fold(leaves: &[LogLeaf]) -> State {
    let mut s = State::default();
    s.apply_all(0, leaves);
    s
}

/// The resident data of a municipality with provenance translated from log positions to source_seq (which
/// do not depend on delivery order), for comparing folds of different deliveries.
fn resident_view(state: &State, code: &str, seq_at: &BTreeMap<u64, u64>) -> String {
    let m = state.municipality(code).expect("municipality");
    let mut out = String::new();
    for r in m.residents() {
        let prov: Vec<u64> = r.provenance.iter().map(|p| seq_at[p]).collect();
        out += &format!(
            "{} {} {} {}{} {} {:?} {} {:?} {:?} {:?}\n",
            r.id,
            r.household_id,
            r.family_name,
            r.given_name,
            r.household_head,
            r.support_measure,
            r.status,
            r.seal.as_ref().map_or(String::new(), |s| s.registration_number.clone()),
            r.tax.values().map(|t| (t.fiscal_year, t.total_income, seq_at[&t.position])).collect::<Vec<_>>(),
            prov,
            r.birth_date,
        );
    }
    for (id, h) in m.households() {
        out += &format!("{id}: {:?}\n", h.members);
    }
    for (serial, c) in m.cards() {
        out += &format!("{serial}: {} {}\n", c.resident_id, c.revoked);
    }
    out
}

/// Any leaf, including nonsense: events with random seqs and content, anomalies, maintenance switches.
fn any_leaf() -> impl Strategy<Value = LogLeaf> {
    let code = prop_oneof![Just(A), Just(B), Just("999999")];
    prop_oneof![
        6 => (code.clone(), 0u64..12, 0usize..4, prop::collection::vec(op(), 0..3)).prop_map(|(c, seq, n, ops)| {
            let evs = stream(c, n.max(1), &ops);
            let mut ev = evs[seq as usize % evs.len()].clone();
            ev.source_seq = seq;
            leaf(ev)
        }),
        1 => (code.clone(), 0u64..12).prop_map(|(c, seq)| LogLeaf { kind: Some(Kind::LinkAnomaly(LinkAnomaly {
            municipality_code: c.into(), source_seq: seq, kind: "conflict".into(), ..Default::default()
        })) }),
        1 => (code, any::<bool>()).prop_map(|(c, on)| LogLeaf { kind: Some(Kind::Admin(AdminAction {
            municipality_code: c.into(),
            at: String::new(),
            action: Some(admin_action::Action::SetMaintenance(SetMaintenanceRequest {
                municipality_code: c.into(), on, reason: "点検".into()
            })),
            actor: String::new(),
        })) }),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 128, .. ProptestConfig::default() })]

    /// (a) Rebuilding is a pure fold: stopping at any point and continuing from a copy of that state gives
    /// the same state as folding in one go.
    #[test]
    fn folding_split_at_any_point_equals_folding_at_once(
        leaves in prop::collection::vec(any_leaf(), 0..40),
        split in any::<prop::sample::Index>(),
    ) {
        let whole = fold(&leaves);
        let at = if leaves.is_empty() { 0 } else { split.index(leaves.len() + 1) };
        let mut prefix = fold(&leaves[..at]);
        let mut resumed = prefix.clone();
        resumed.apply_all(at as u64, &leaves[at..]);
        prefix.apply_all(at as u64, &leaves[at..]);
        prop_assert_eq!(&resumed, &whole);
        prop_assert_eq!(&prefix, &whole);
    }

    /// (b) Any delivery order of a municipality's events ends in the same resident data once all are in;
    /// the municipality is suspended exactly when some event arrived out of order.
    #[test]
    fn any_delivery_order_converges(
        residents in 1usize..6,
        ops in prop::collection::vec(op(), 0..25),
        order in any::<u64>(),
    ) {
        let events = stream(A, residents, &ops);
        let in_order: Vec<LogLeaf> = events.iter().cloned().map(leaf).collect();
        let reference = fold(&in_order);
        // Only streams a real resident system could send: every event applicable in order.
        prop_assume!(reference.status(A).unwrap().state() == MunicipalityState::Active);

        let mut perm: Vec<usize> = (0..events.len()).collect();
        let mut seed = order;
        for i in (1..perm.len()).rev() {
            seed = seed.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            perm.swap(i, (seed >> 33) as usize % (i + 1));
        }
        let delivered: Vec<LogLeaf> = perm.iter().map(|i| in_order[*i].clone()).collect();
        let state = fold(&delivered);

        let identity: BTreeMap<u64, u64> = (0..events.len() as u64).map(|p| (p, p + 1)).collect();
        let permuted: BTreeMap<u64, u64> = perm.iter().enumerate().map(|(p, i)| (p as u64, *i as u64 + 1)).collect();
        prop_assert_eq!(resident_view(&state, A, &permuted), resident_view(&reference, A, &identity));
        let status = state.status(A).unwrap();
        prop_assert_eq!((status.applied_seq, status.received_seq, status.backlog), (events.len() as u64, events.len() as u64, 0));
        let out_of_order = perm.iter().enumerate().any(|(p, i)| p != *i);
        prop_assert_eq!(status.state() == MunicipalityState::Suspended, out_of_order);
        prop_assert!(state.check_lift(A).is_ok());
    }

    /// (c) Whatever happens to municipality A's link, B's status and data are those of B's events alone.
    #[test]
    fn municipalities_are_isolated(
        noise in prop::collection::vec(any_leaf(), 0..30),
        ops in prop::collection::vec(op(), 0..10),
        interleave in prop::collection::vec(any::<bool>(), 0..80),
    ) {
        let b_events: Vec<LogLeaf> = stream(B, 3, &ops).into_iter().map(leaf).collect();
        let a_noise: Vec<LogLeaf> = noise.into_iter().filter(|l| match &l.kind {
            Some(Kind::ChangeEvent(e)) => e.municipality_code != B,
            Some(Kind::LinkAnomaly(a)) => a.municipality_code != B,
            Some(Kind::Admin(a)) => a.municipality_code != B,
            _ => true,
        }).collect();
        let mut mixed = Vec::new();
        let (mut bi, mut ai) = (b_events.iter(), a_noise.iter());
        for take_b in interleave.iter().chain(std::iter::repeat_n(&true, b_events.len())) {
            if let Some(l) = if *take_b { bi.next() } else { ai.next() } { mixed.push(l.clone()); }
        }
        mixed.extend(ai.cloned());
        let alone = fold(&b_events);
        let together = fold(&mixed);
        let (sa, st) = (alone.status(B).unwrap(), together.status(B).unwrap());
        prop_assert_eq!(sa, st);
        let count = |s: &State| s.municipality(B).unwrap().residents().count();
        prop_assert_eq!(count(&alone), count(&together));
    }

    /// (d) Validation and the fold never panic on arbitrary input, and a marker planted in personal fields
    /// never shows up in a validation message or a suspension reason.
    #[test]
    fn validation_is_total_and_discreet(
        name in ".{0,40}",
        address in ".{0,220}",
        birth in prop_oneof![Just("1990-02-29".to_string()), "[0-9-]{0,12}", Just("2000-02-29".to_string())],
        seq in 0u64..4,
        sex in -2i32..5,
        id in "[A-Za-z0-9 _.-]{0,70}",
        pn in "[0-9]{0,13}",
    ) {
        const MARKER: &str = "ZZSECRETZZ";
        let ev = event(A, seq, Body::ResidentRegistered(ResidentRegistered {
            resident_id: id,
            household_id: "HH".into(),
            family_name: format!("{name}{MARKER}"),
            given_name: format!("{MARKER}{name}"),
            birth_date: birth,
            sex,
            address: format!("{address}{MARKER}"),
            resident_since: "2000-01-01".into(),
            address_since: "2000-01-01".into(),
            personal_number: pn,
            ..Default::default()
        }));
        if let Err(e) = validate_event(&ev) {
            prop_assert!(!e.to_string().contains(MARKER));
        }
        let mut state = State::default();
        state.apply(0, &leaf(ev));
        prop_assert!(!state.status(A).unwrap().reason.contains(MARKER));
    }

    /// Arbitrary bytes that happen to decode as a leaf are folded without panicking.
    #[test]
    fn fold_is_total_on_decoded_garbage(bytes in prop::collection::vec(any::<u8>(), 0..200)) {
        if let Ok(l) = LogLeaf::decode(bytes.as_slice()) {
            let mut state = State::default();
            state.apply(0, &l);
            state.apply(1, &l);
            if let Some(Kind::ChangeEvent(e)) = &l.kind {
                let _ = validate_event(e);
            }
        }
    }
}
