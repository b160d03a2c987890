//! What the fuzz targets share: the engine's write path replayed in memory, so that every target which
//! gets events through validation also checks that the projection a running engine holds equals the one
//! a restart rebuilds from the stored leaves.

use bcl_engine::projection::Projection;
use bcl_projections::{event_digest, Admission, State};
use bcl_proto::log_leaf::Kind;
use bcl_proto::{AdminAction, ChangeEvent, LinkAnomaly, LogLeaf};
use prost::Message;

/// An in-memory log with the live projection next to it, appended to the way the writer does.
#[derive(Default)]
pub struct Log {
    pub live: Projection,
    pub leaves: Vec<Vec<u8>>,
}

impl Log {
    /// `Ingest.Append` minus the network and the disk: ingest validation, admission of the whole batch,
    /// an anomaly leaf on a conflict (and nothing else of the batch), otherwise every new event folded on
    /// the hot path (`apply_change_event`) and stored as its leaf. Returns the positions, or `None` when
    /// the request was refused.
    pub fn append(&mut self, events: &[ChangeEvent]) -> Option<Vec<u64>> {
        bcl_engine::ingest::validate_batch(events).ok()?;
        let digests: Vec<[u8; 32]> = events.iter().map(event_digest).collect();
        let admissions = self.live.state.admit_batch_with_digests(events, &digests);
        if let Some(ev) = events.iter().zip(&admissions).find_map(|(ev, a)| match a {
            Admission::Conflict { .. } => Some(ev),
            _ => None,
        }) {
            self.push(LogLeaf {
                kind: Some(Kind::LinkAnomaly(LinkAnomaly {
                    municipality_code: ev.municipality_code.clone(),
                    source_seq: ev.source_seq,
                    event_id: ev.event_id.clone(),
                    kind: "conflict".into(),
                    event_sha256: String::new(),
                    at: String::new(),
                })),
            });
            return None;
        }
        let mut positions: Vec<u64> = Vec::with_capacity(events.len());
        for (i, (ev, admission)) in events.iter().zip(admissions).enumerate() {
            let position = match admission {
                Admission::New => {
                    let position = self.live.leaf_count;
                    self.leaves.push(LogLeaf { kind: Some(Kind::ChangeEvent(ev.clone())) }.encode_to_vec());
                    self.live.apply_change_event(ev, digests[i]);
                    position
                }
                Admission::Duplicate { position } => position,
                Admission::DuplicateInBatch { index } => positions[index],
                Admission::Conflict { .. } => unreachable!("handled above"),
            };
            positions.push(position);
        }
        Some(positions)
    }

    /// An admin leaf (maintenance switches), with the engine's precondition for lifting maintenance.
    pub fn admin(&mut self, action: AdminAction) -> bool {
        if let Some(bcl_proto::admin_action::Action::SetMaintenance(m)) = &action.action {
            if !m.on && self.live.state.check_lift(&m.municipality_code).is_err() {
                return false;
            }
        }
        self.push(LogLeaf { kind: Some(Kind::Admin(action)) });
        true
    }

    fn push(&mut self, leaf: LogLeaf) {
        self.leaves.push(leaf.encode_to_vec());
        self.live.apply(&leaf);
    }

    /// The projection a restart builds: every stored leaf decoded and folded from scratch.
    pub fn rebuild(&self) -> State {
        let mut p = Projection::default();
        for bytes in &self.leaves {
            p.apply(&LogLeaf::decode(bytes.as_slice()).expect("a stored leaf decodes"));
        }
        p.state
    }

    /// Replay invariants: the rebuilt projection equals the live one, and folding twice (or resuming a
    /// fold from a copy made halfway) gives the same state.
    pub fn check_replay(&self) {
        let rebuilt = self.rebuild();
        assert!(rebuilt == self.live.state, "rebuilt projection differs from the live one");
        assert!(self.rebuild() == rebuilt, "folding is not deterministic");
        let leaves: Vec<LogLeaf> = self.leaves.iter().map(|b| LogLeaf::decode(b.as_slice()).unwrap()).collect();
        let half = leaves.len() / 2;
        let mut prefix = State::default();
        prefix.apply_all(0, &leaves[..half]);
        let mut resumed = prefix.clone();
        resumed.apply_all(half as u64, &leaves[half..]);
        assert!(resumed == rebuilt, "a fold resumed from a copy differs");
    }
}

/// Rewrites every chunk CRC of a PNG-looking input so that mutations reach the decoder's chunk and
/// image logic instead of stopping at the checksum (which the decoder checks first).
pub fn fix_png_crcs(bytes: &[u8]) -> Vec<u8> {
    let mut out = bytes.to_vec();
    let mut at = 8;
    while at + 12 <= out.len() {
        let len = u32::from_be_bytes(out[at..at + 4].try_into().unwrap()) as usize;
        let Some(end) = (at + 8).checked_add(len).filter(|e| e + 4 <= out.len()) else { break };
        let crc = crc32fast::hash(&out[at + 4..end]);
        out[end..end + 4].copy_from_slice(&crc.to_be_bytes());
        at = end + 4;
    }
    out
}
