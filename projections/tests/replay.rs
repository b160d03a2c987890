//! Replay properties: the projection is a pure function of the log, so anything that replays it (a
//! restart, an auditor, the data link re-sending what it already sent) must end in the same state.
//!
//! Events are generated valid (every one passes `validate_event`, which the test asserts) but otherwise
//! hostile to the fold: every body kind, two municipalities, a handful of residents, households, cards
//! and sequence numbers, so that gaps, out-of-order delivery, duplicates, conflicting re-sends, changes
//! to unknown residents and revoked cards all happen. They are appended in batches the way the engine's
//! writer does (admission of the whole batch, an anomaly leaf and nothing else on a conflict, otherwise
//! the new events folded on the hot path and stored as leaves).

use bcl_projections::{event_digest, validate_admission, validate_event, Admission, State};
use bcl_proto::change_event::Body;
use bcl_proto::log_leaf::Kind;
use bcl_proto::*;
use proptest::prelude::*;
use prost::Message;

const CODES: [&str; 2] = ["131016", "011002"];

fn date(day: u32) -> String {
    format!("2026-{:02}-{:02}", 1 + day % 12, 1 + (day / 12) % 28)
}

fn seal_png() -> Vec<u8> {
    // A header-valid PNG is all the fold needs; decoding is the renderer's business.
    let mut png = b"\x89PNG\r\n\x1a\n\0\0\0\x0dIHDR".to_vec();
    png.extend(96u32.to_be_bytes());
    png.extend(96u32.to_be_bytes());
    png.extend([8, 0, 0, 0, 0]);
    png
}

fn body() -> impl Strategy<Value = Body> {
    let r = (0u32..6).prop_map(|r| format!("R{r}"));
    let h = (0u32..3).prop_map(|h| format!("H{h}"));
    let serial = (0u32..5).prop_map(|c| format!("C{c}"));
    prop_oneof![
        4 => (r.clone(), h.clone(), 0u32..4, 1950u32..2020, any::<bool>(), any::<bool>()).prop_map(
            |(resident_id, household_id, n, year, head, gaiji)| Body::ResidentRegistered(ResidentRegistered {
                resident_id,
                household_id,
                family_name: ["佐藤", "葛\u{E0100}西", "山田", "髙橋"][n as usize].into(),
                given_name: format!("名{n}"),
                birth_date: format!("{year}-05-05"),
                sex: 1 + (n % 2) as i32,
                address: "東京都千代田区千代田1番1号".into(),
                household_head: head,
                relationship: if head { "世帯主".into() } else { "子".into() },
                resident_since: "2000-01-01".into(),
                address_since: "2000-01-01".into(),
                gaiji_pending: gaiji,
                ..Default::default()
            })
        ),
        3 => (r.clone(), prop::option::of(h.clone()), prop::option::of(0u32..4), prop::option::of(any::<bool>()))
            .prop_map(|(resident_id, household_id, n, head)| Body::ResidentChanged(ResidentChanged {
                resident_id,
                household_id,
                given_name: n.map(|n| format!("改{n}")),
                address: n.map(|n| format!("東京都千代田区{n}番")),
                household_head: head,
                ..Default::default()
            })),
        1 => (r.clone(), 0u32..300).prop_map(|(resident_id, d)| Body::MoveOutFiled(MoveOutFiled {
            resident_id,
            planned_date: date(d),
            destination: "大阪府".into(),
        })),
        1 => (r.clone(), 1i32..4).prop_map(|(resident_id, reason)| Body::ResidentRemoved(ResidentRemoved { resident_id, reason })),
        1 => (r.clone(), any::<bool>()).prop_map(|(resident_id, in_force)| Body::SupportMeasureChanged(SupportMeasureChanged { resident_id, in_force })),
        1 => (r.clone(), 0u32..3).prop_map(|(resident_id, n)| Body::SealRegistered(SealRegistered {
            resident_id,
            registration_number: format!("S{n}"),
            seal_image_png: seal_png(),
        })),
        1 => r.clone().prop_map(|resident_id| Body::SealAbolished(SealAbolished { resident_id })),
        1 => (r.clone(), 2024u32..2028, 0i64..=999_999_999_999, any::<bool>()).prop_map(|(resident_id, fiscal_year, income, exempt)| {
            Body::TaxAssessed(TaxAssessed {
                resident_id,
                fiscal_year,
                total_income: income,
                taxable_income: income / 2,
                municipal_tax: if exempt { 0 } else { income / 20 },
                prefectural_tax: if exempt { 0 } else { income / 30 },
            })
        }),
        2 => (r.clone(), serial.clone()).prop_map(|(resident_id, card_serial)| Body::CardIssued(CardIssued { resident_id, card_serial })),
        1 => serial.prop_map(|card_serial| Body::CardRevoked(CardRevoked { card_serial })),
        1 => (r, 0u32..2).prop_map(|(resident_id, n)| Body::FamilyRegisterRecorded(FamilyRegisterRecorded {
            resident_id,
            register_id: format!("F{n}"),
            domicile: "東京都千代田区千代田一番".into(),
            head: "山田太郎".into(),
        })),
        1 => (h, 1i32..7, 0u32..300).prop_map(|(household_id, grade, d)| Body::DamageCertified(DamageCertified {
            household_id,
            disaster_name: "令和八年台風第一号".into(),
            disaster_date: date(d),
            grade,
        })),
    ]
}

/// A valid event. Sequence numbers mostly run in order (`seq_hint` is the position in the stream) but
/// sometimes jump, and event ids come from a small pool per (municipality, seq), so re-sends and
/// conflicts both occur.
fn event() -> impl Strategy<Value = (usize, u64, u8, Body, u32)> {
    (0usize..2, 1u64..30, 0u8..3, body(), 0u32..300)
}

fn to_event((m, seq, salt, body, day): (usize, u64, u8, Body, u32)) -> ChangeEvent {
    ChangeEvent {
        municipality_code: CODES[m].into(),
        source_seq: seq,
        event_id: format!("00000000-0000-4000-8{m:01x}{salt:02x}-{seq:012x}"),
        effective_date: date(day),
        body: Some(body),
    }
}

/// Batches of valid events; most batches continue each municipality's sequence so the fold gets deep.
fn batches() -> impl Strategy<Value = Vec<Vec<ChangeEvent>>> {
    prop::collection::vec(prop::collection::vec((event(), any::<bool>()), 1..8), 1..12).prop_map(|batches| {
        let mut next = [1u64; 2];
        batches
            .into_iter()
            .map(|batch| {
                batch
                    .into_iter()
                    .map(|((m, seq, salt, body, day), in_order)| {
                        // In order: the municipality's next sequence number, so most events apply.
                        let seq = if in_order {
                            next[m] += 1;
                            next[m] - 1
                        } else {
                            seq
                        };
                        to_event((m, seq, salt, body, day))
                    })
                    .collect()
            })
            .collect()
    })
}

/// The engine's write path over an in-memory log: the state it keeps live and the leaves it stores.
#[derive(Default)]
struct Log {
    live: State,
    leaves: Vec<Vec<u8>>,
}

impl Log {
    fn append(&mut self, events: &[ChangeEvent]) -> Option<Vec<u64>> {
        let admissions = self.live.admit_batch(events);
        if let Some(ev) =
            events.iter().zip(&admissions).find_map(|(ev, a)| matches!(a, Admission::Conflict { .. }).then_some(ev))
        {
            let leaf = LogLeaf {
                kind: Some(Kind::LinkAnomaly(LinkAnomaly {
                    municipality_code: ev.municipality_code.clone(),
                    source_seq: ev.source_seq,
                    event_id: ev.event_id.clone(),
                    kind: "conflict".into(),
                    event_sha256: hex::encode(event_digest(ev)),
                    at: String::new(),
                })),
            };
            self.live.apply(self.leaves.len() as u64, &leaf);
            self.leaves.push(leaf.encode_to_vec());
            return None;
        }
        let mut positions: Vec<u64> = Vec::new();
        for (ev, admission) in events.iter().zip(admissions) {
            positions.push(match admission {
                Admission::New => {
                    let position = self.leaves.len() as u64;
                    self.live.apply_change_event(position, ev, event_digest(ev));
                    self.leaves.push(LogLeaf { kind: Some(Kind::ChangeEvent(ev.clone())) }.encode_to_vec());
                    position
                }
                Admission::Duplicate { position } => position,
                Admission::DuplicateInBatch { index } => positions[index],
                Admission::Conflict { .. } => unreachable!(),
            });
        }
        Some(positions)
    }

    /// What a restart does: decode every stored leaf and fold from scratch.
    fn rebuild(&self) -> State {
        let mut state = State::default();
        for (position, bytes) in self.leaves.iter().enumerate() {
            state.apply(position as u64, &LogLeaf::decode(bytes.as_slice()).expect("stored leaf decodes"));
        }
        state
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, .. ProptestConfig::default() })]

    /// Folding the log from scratch, twice, gives the state the engine held live while appending, and the
    /// same state both times: a restart (or an auditor's replay) sees exactly what was served.
    #[test]
    fn replaying_the_log_gives_the_live_projection(batches in batches()) {
        let mut log = Log::default();
        for batch in &batches {
            for ev in batch {
                prop_assert_eq!(validate_event(ev), Ok(()));
                prop_assert_eq!(validate_admission(ev), Ok(()));
            }
            log.append(batch);
        }
        let first = log.rebuild();
        let second = log.rebuild();
        prop_assert!(first == log.live, "rebuilt projection differs from the live one");
        prop_assert!(second == first, "two replays of the same log differ");
        prop_assert_eq!(first.len(), log.leaves.len() as u64);
    }

    /// The data link replaying everything it sent (after a lost acknowledgement, a restart of the link
    /// server...): every accepted batch sent a second time answers its original positions, writes no
    /// leaf and leaves every projection as it was.
    #[test]
    fn sending_every_accepted_batch_twice_changes_nothing(batches in batches()) {
        let mut log = Log::default();
        let mut accepted = Vec::new();
        for batch in &batches {
            if let Some(positions) = log.append(batch) {
                accepted.push((batch.clone(), positions));
            }
        }
        let (state, leaves) = (log.live.clone(), log.leaves.len());
        for (batch, positions) in &accepted {
            prop_assert_eq!(log.append(batch), Some(positions.clone()));
        }
        prop_assert_eq!(log.leaves.len(), leaves);
        prop_assert!(log.live == state, "a replayed batch changed the projection");
        prop_assert!(log.rebuild() == state);
        for code in CODES {
            prop_assert_eq!(log.live.status(code), state.status(code));
        }
    }

    /// A replay can stop anywhere (a crash) and resume from the state it had reached: the result is the
    /// same as one replay straight through.
    #[test]
    fn a_replay_interrupted_anywhere_resumes_to_the_same_state(batches in batches(), cut in any::<prop::sample::Index>()) {
        let mut log = Log::default();
        for batch in &batches {
            log.append(batch);
        }
        let leaves: Vec<LogLeaf> = log.leaves.iter().map(|b| LogLeaf::decode(b.as_slice()).unwrap()).collect();
        let at = cut.index(leaves.len() + 1);
        let mut prefix = State::default();
        prefix.apply_all(0, &leaves[..at]);
        // Resume from a copy, as a restart from a snapshot of the state would.
        let mut resumed = prefix.clone();
        resumed.apply_all(at as u64, &leaves[at..]);
        prop_assert!(resumed == log.live);
    }
}
