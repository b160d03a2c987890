//! The fold: structured sequences of change events over a small vocabulary (two municipalities, a few
//! residents, households, cards and sequence numbers, so that events collide and interact: gaps,
//! duplicates, conflicts, changes to unknown residents, moves between households, revocations...),
//! appended in batches through the engine's admission and mixed with maintenance switches.
//! Invariants: nothing panics; a batch accepted once and sent again changes nothing; the live
//! projection equals the one rebuilt from the stored leaves, and folding is deterministic.
#![no_main]

use arbitrary::Arbitrary;
use bcl_proto::change_event::Body;
use bcl_proto::*;
use libfuzzer_sys::fuzz_target;

#[derive(Arbitrary, Debug)]
enum Step {
    Batch(Vec<Ev>),
    Maintenance { second: bool, on: bool },
    Resend,
}

#[derive(Arbitrary, Debug)]
struct Ev {
    second: bool,
    seq: u8,
    /// Same (municipality, seq, salt) = same event id: re-sends and conflicts.
    salt: u8,
    day: u8,
    body: B,
}

#[derive(Arbitrary, Debug)]
enum B {
    Registered { r: u8, h: u8, name: u8, born: u8, head: bool, gaiji: bool },
    Changed { r: u8, h: Option<u8>, name: Option<u8>, address: Option<u8>, head: Option<bool>, gaiji: Option<bool> },
    MoveOut { r: u8, day: u8 },
    Removed { r: u8, reason: u8 },
    Support { r: u8, on: bool },
    Seal { r: u8, n: u8 },
    SealAbolished { r: u8 },
    Tax { r: u8, year: u8, income: u32, exempt: bool },
    Card { r: u8, serial: u8 },
    CardRevoked { serial: u8 },
    Register { r: u8, id: u8 },
    Damage { h: u8, grade: u8, day: u8 },
}

fn code(second: bool) -> &'static str {
    if second {
        "011002"
    } else {
        "131016"
    }
}

fn date(day: u8) -> String {
    format!("2026-{:02}-{:02}", 1 + day % 12, 1 + (day / 12) % 28)
}

fn seal_png() -> Vec<u8> {
    static PNG: std::sync::OnceLock<Vec<u8>> = std::sync::OnceLock::new();
    PNG.get_or_init(|| bcl_fixtures::seal::seal_png("佐藤")).clone()
}

fn event(e: &Ev) -> ChangeEvent {
    let rid = |r: u8| format!("R{}", r % 6);
    let hid = |h: u8| format!("H{}", h % 3);
    let body = match &e.body {
        B::Registered { r, h, name, born, head, gaiji } => Body::ResidentRegistered(ResidentRegistered {
            resident_id: rid(*r),
            household_id: hid(*h),
            family_name: ["佐藤", "葛\u{E0100}西", "山田"][*name as usize % 3].into(),
            given_name: format!("名{}", name % 4),
            birth_date: format!("{}-05-05", 1950 + u32::from(*born) % 76),
            sex: 1 + i32::from(*name % 2),
            address: "東京都千代田区千代田1番1号".into(),
            household_head: *head,
            relationship: if *head { "世帯主".into() } else { "子".into() },
            resident_since: "2000-01-01".into(),
            address_since: "2000-01-01".into(),
            gaiji_pending: *gaiji,
            ..Default::default()
        }),
        B::Changed { r, h, name, address, head, gaiji } => Body::ResidentChanged(ResidentChanged {
            resident_id: rid(*r),
            household_id: h.map(hid),
            given_name: name.map(|n| format!("改{}", n % 4)),
            address: address.map(|a| format!("東京都千代田区{}番", a % 3)),
            address_since: address.map(|_| "2026-01-01".into()),
            household_head: *head,
            gaiji_pending: *gaiji,
            ..Default::default()
        }),
        B::MoveOut { r, day } => Body::MoveOutFiled(MoveOutFiled {
            resident_id: rid(*r),
            planned_date: date(*day),
            destination: "大阪府".into(),
        }),
        B::Removed { r, reason } => {
            Body::ResidentRemoved(ResidentRemoved { resident_id: rid(*r), reason: 1 + i32::from(*reason % 3) })
        }
        B::Support { r, on } => {
            Body::SupportMeasureChanged(SupportMeasureChanged { resident_id: rid(*r), in_force: *on })
        }
        B::Seal { r, n } => Body::SealRegistered(SealRegistered {
            resident_id: rid(*r),
            registration_number: format!("S{}", n % 4),
            seal_image_png: seal_png(),
        }),
        B::SealAbolished { r } => Body::SealAbolished(SealAbolished { resident_id: rid(*r) }),
        B::Tax { r, year, income, exempt } => Body::TaxAssessed(TaxAssessed {
            resident_id: rid(*r),
            fiscal_year: 2024 + u32::from(*year % 4),
            total_income: i64::from(*income),
            taxable_income: i64::from(*income / 2),
            municipal_tax: if *exempt { 0 } else { i64::from(*income / 20) },
            prefectural_tax: if *exempt { 0 } else { i64::from(*income / 30) },
        }),
        B::Card { r, serial } => {
            Body::CardIssued(CardIssued { resident_id: rid(*r), card_serial: format!("C{}", serial % 5) })
        }
        B::CardRevoked { serial } => Body::CardRevoked(CardRevoked { card_serial: format!("C{}", serial % 5) }),
        B::Register { r, id } => Body::FamilyRegisterRecorded(FamilyRegisterRecorded {
            resident_id: rid(*r),
            register_id: format!("F{}", id % 2),
            domicile: "東京都千代田区千代田一番".into(),
            head: "山田太郎".into(),
        }),
        B::Damage { h, grade, day } => Body::DamageCertified(DamageCertified {
            household_id: hid(*h),
            disaster_name: "令和八年台風第一号".into(),
            disaster_date: date(*day),
            grade: 1 + i32::from(*grade % 6),
        }),
    };
    let seq = u64::from(e.seq % 24) + 1;
    ChangeEvent {
        municipality_code: code(e.second).into(),
        source_seq: seq,
        event_id: format!(
            "00000000-0000-4000-8{:03x}-{:012x}",
            u16::from(e.salt % 4) + if e.second { 16 } else { 0 },
            seq
        ),
        effective_date: date(e.day),
        body: Some(body),
    }
}

fuzz_target!(|steps: Vec<Step>| {
    let mut log = bcl_fuzz::Log::default();
    let mut last: Option<Vec<ChangeEvent>> = None;
    for step in steps.iter().take(64) {
        match step {
            Step::Batch(evs) => {
                let batch: Vec<ChangeEvent> = evs.iter().take(32).map(event).collect();
                if log.append(&batch).is_some() {
                    last = Some(batch);
                }
            }
            Step::Maintenance { second, on } => {
                log.admin(AdminAction {
                    municipality_code: code(*second).into(),
                    at: String::new(),
                    actor: "fuzz".into(),
                    action: Some(admin_action::Action::SetMaintenance(SetMaintenanceRequest {
                        municipality_code: code(*second).into(),
                        on: *on,
                        reason: "点検".into(),
                    })),
                });
            }
            Step::Resend => {
                if let Some(batch) = &last {
                    let before = (log.leaves.len(), log.live.state.clone());
                    log.append(batch).expect("an accepted batch is accepted again");
                    assert_eq!(log.leaves.len(), before.0, "a re-sent batch writes nothing");
                    assert!(log.live.state == before.1, "a re-sent batch changes nothing");
                }
            }
        }
    }
    log.check_replay();
});
