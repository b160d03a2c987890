//! The engine's in-memory projection: the pure fold of the whole log (from `bcl-projections`) plus the few
//! facts the writer needs to decide whether an issuance prepared against an earlier snapshot is still valid.

use bcl_projections::State;
use bcl_proto::{log_leaf::Kind, LogLeaf};
use std::collections::HashMap;

#[derive(Default)]
pub struct Projection {
    pub state: State,
    /// Number of leaves folded so far = the position the next leaf will get.
    pub leaf_count: u64,
    /// Per municipality, the position of the last leaf that could change what a certificate shows or
    /// whether it may be issued (change events, admin actions, link anomalies; not issuances).
    last_change: HashMap<String, u64>,
    /// The newest `Leadership` leaf and its position (replicated deployments only): who sequences the log.
    pub leadership: Option<(u64, bcl_proto::Leadership)>,
    /// Position of the first Leadership leaf of the current epoch (where the current primary took over).
    pub epoch_start: Option<u64>,
}

impl Projection {
    pub fn apply(&mut self, leaf: &LogLeaf) {
        let position = self.leaf_count;
        self.state.apply(position, leaf);
        let municipality = match &leaf.kind {
            Some(Kind::ChangeEvent(e)) => Some(&e.municipality_code),
            Some(Kind::Admin(a)) => Some(&a.municipality_code),
            Some(Kind::LinkAnomaly(a)) => Some(&a.municipality_code),
            // Issuances and refusals change neither eligibility nor printed data.
            Some(Kind::Issuance(_)) | Some(Kind::Refusal(_)) | None => None,
            Some(Kind::Leadership(l)) => {
                if self.leadership.as_ref().is_none_or(|(_, old)| old.epoch != l.epoch) {
                    self.epoch_start = Some(position);
                }
                self.leadership = Some((position, l.clone()));
                None
            }
        };
        if let Some(code) = municipality {
            let code = code.clone();
            self.touch(&code, position);
        }
        self.leaf_count += 1;
    }

    /// Folds a change event as a leaf, with its digest already computed (the ingest hot path).
    pub fn apply_change_event(&mut self, ev: &bcl_proto::ChangeEvent, digest: [u8; 32]) {
        let position = self.leaf_count;
        self.state.apply_change_event(position, ev, digest);
        self.touch(&ev.municipality_code, position);
        self.leaf_count += 1;
    }

    fn touch(&mut self, code: &str, position: u64) {
        match self.last_change.get_mut(code) {
            Some(p) => *p = position,
            None => {
                self.last_change.insert(code.to_string(), position);
            }
        }
    }

    /// The position of the last leaf that changed `municipality` (see `changed_since`).
    pub fn last_change(&self, municipality: &str) -> Option<u64> {
        self.last_change.get(municipality).copied()
    }

    /// Whether anything about `municipality` changed at or after `position`.
    pub fn changed_since(&self, municipality: &str, position: u64) -> bool {
        self.last_change.get(municipality).is_some_and(|&p| p >= position)
    }
}
