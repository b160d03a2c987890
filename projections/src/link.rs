//! Per-municipality sequencing of the data link (連携) and the fail-closed state machine around it.
//!
//! Change events must be folded in `source_seq` order with no gaps: a missing or unappliable event means the
//! copy of the resident data may be wrong, and issuing from a wrong copy is 誤交付, the worst failure. So any
//! anomaly suspends the municipality, later events wait in a backlog, and only an explicit
//! `SetMaintenance(on=false)`, accepted once nothing is waiting or held, resumes issuance. The link knows
//! nothing about residents: applying an event is a callback, which keeps this file about ordering only.

use std::collections::BTreeMap;

use bcl_proto::{ChangeEvent, MunicipalityState};
use thiserror::Error;

/// Whether kiosks may issue for the municipality. Reasons never contain personal data.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Mode {
    Active,
    /// Switched off by an operator or the municipality (SetMaintenance on=true).
    Maintenance {
        reason: String,
    },
    /// Fail-closed after a data-link anomaly.
    Suspended {
        reason: String,
    },
}

/// Why maintenance cannot be lifted yet.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum LiftRefusal {
    #[error("data link backlog not applied: waiting for source_seq {waiting_for}, {backlog} event(s) received but not applied")]
    Gap { waiting_for: u64, backlog: u64 },
    #[error("source_seq {source_seq} cannot be applied: {rule}; {backlog} event(s) received but not applied")]
    Held { source_seq: u64, rule: String, backlog: u64 },
}

/// The sequencing state of one municipality's data link.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Link {
    applied_seq: u64,
    received_seq: u64,
    /// source_seq → (log position, event), for events received but not yet applied.
    backlog: BTreeMap<u64, (u64, ChangeEvent)>,
    /// The head of the backlog was tried and refused, with the rule it broke (no personal data).
    held: Option<(u64, String)>,
    mode: Mode,
}

impl Default for Link {
    fn default() -> Self {
        Link { applied_seq: 0, received_seq: 0, backlog: BTreeMap::new(), held: None, mode: Mode::Active }
    }
}

impl Link {
    pub fn applied_seq(&self) -> u64 {
        self.applied_seq
    }

    pub fn received_seq(&self) -> u64 {
        self.received_seq
    }

    pub fn backlog_len(&self) -> u64 {
        self.backlog.len() as u64
    }

    pub fn mode(&self) -> &Mode {
        &self.mode
    }

    /// True when kiosks may issue: active and nothing waiting.
    pub fn is_active(&self) -> bool {
        self.mode == Mode::Active
    }

    /// The event that could not be applied, if any: (source_seq, rule).
    pub fn held(&self) -> Option<(u64, &str)> {
        self.held.as_ref().map(|(s, r)| (*s, r.as_str()))
    }

    pub fn state(&self) -> MunicipalityState {
        match self.mode {
            Mode::Active => MunicipalityState::Active,
            Mode::Maintenance { .. } => MunicipalityState::Maintenance,
            Mode::Suspended { .. } => MunicipalityState::Suspended,
        }
    }

    pub fn reason(&self) -> &str {
        match &self.mode {
            Mode::Active => "",
            Mode::Maintenance { reason } | Mode::Suspended { reason } => reason,
        }
    }

    /// Fail closed. Suspension overrides maintenance; the latest anomaly names the reason.
    pub fn suspend(&mut self, reason: String) {
        self.mode = Mode::Suspended { reason };
    }

    /// Queues a new event (the caller has checked that its source_seq is above `applied_seq` and not yet
    /// received) and applies whatever has become contiguous. `apply` must either apply the whole event or
    /// change nothing and return the rule it broke; once it has applied an event it may move fields out of it
    /// (the fold keeps the strings instead of copying them), so the caller must not rely on more than the
    /// event's id, municipality and sequence number afterwards.
    pub fn receive<E: ToString>(
        &mut self,
        position: u64,
        event: &mut ChangeEvent,
        mut apply: impl FnMut(u64, &mut ChangeEvent) -> Result<(), E>,
    ) {
        let seq = event.source_seq;
        self.received_seq = self.received_seq.max(seq);
        // The common case, an in-order event with nothing waiting: apply it directly instead of queueing a
        // copy (this is the hot path of ingest).
        if seq == self.applied_seq + 1 && self.backlog.is_empty() && self.held.is_none() {
            match apply(position, event) {
                Ok(()) => self.applied_seq = seq,
                Err(rule) => {
                    let rule = rule.to_string();
                    self.backlog.insert(seq, (position, event.clone()));
                    self.suspend(format!("source_seq {seq} cannot be applied: {rule}"));
                    self.held = Some((seq, rule));
                }
            }
            return;
        }
        self.backlog.insert(seq, (position, event.clone()));
        if seq != self.applied_seq + 1 && self.held.is_none() {
            self.suspend(format!("data link gap: waiting for source_seq {}", self.applied_seq + 1));
        }
        self.drain(&mut apply);
    }

    fn drain<E: ToString>(&mut self, apply: &mut impl FnMut(u64, &mut ChangeEvent) -> Result<(), E>) {
        let next = self.applied_seq + 1;
        if self.held.as_ref().is_some_and(|(s, _)| *s == next) {
            // The head was refused already and nothing it depends on can have changed: only this
            // municipality's own applied events change its data, and none can pass the head.
            return;
        }
        while let Some(mut entry) = self.backlog.first_entry() {
            if *entry.key() != self.applied_seq + 1 {
                break;
            }
            let (position, event) = entry.get_mut();
            match apply(*position, event) {
                Ok(()) => {
                    entry.remove();
                    self.applied_seq += 1;
                }
                Err(rule) => {
                    let rule = rule.to_string();
                    let seq = self.applied_seq + 1;
                    self.suspend(format!("source_seq {seq} cannot be applied: {rule}"));
                    self.held = Some((seq, rule));
                    return;
                }
            }
        }
    }

    /// Rewrites events still waiting in the backlog (crypto-shredding removes a resident's personal fields
    /// from them too); their order and positions do not change.
    pub fn redact_backlog(&mut self, mut redact: impl FnMut(&mut ChangeEvent)) {
        for (_, event) in self.backlog.values_mut() {
            redact(event);
        }
    }

    /// Lifting is allowed only when every received event has been applied.
    pub fn check_lift(&self) -> Result<(), LiftRefusal> {
        let backlog = self.backlog_len();
        if let Some((source_seq, rule)) = &self.held {
            return Err(LiftRefusal::Held { source_seq: *source_seq, rule: rule.clone(), backlog });
        }
        if backlog > 0 || self.received_seq > self.applied_seq {
            return Err(LiftRefusal::Gap { waiting_for: self.applied_seq + 1, backlog });
        }
        Ok(())
    }

    /// SetMaintenance. `on=true` switches an active municipality to maintenance (a suspended one stays
    /// suspended: the anomaly is not cleared by an operator's switch). `on=false` is honoured only when
    /// [`Link::check_lift`] allows it, so a log that records a premature lift still folds fail-closed.
    pub fn set_maintenance(&mut self, on: bool, reason: &str) {
        if on {
            if !matches!(self.mode, Mode::Suspended { .. }) {
                self.mode = Mode::Maintenance { reason: reason.to_owned() };
            }
        } else if self.check_lift().is_ok() {
            self.mode = Mode::Active;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ev(seq: u64) -> ChangeEvent {
        ChangeEvent { source_seq: seq, ..Default::default() }
    }

    /// Applies every event except those in `refuse`, recording the order.
    fn run(link: &mut Link, seqs: &[u64], refuse: &[u64], applied: &mut Vec<u64>) {
        for (pos, s) in seqs.iter().enumerate() {
            link.receive(pos as u64, &mut ev(*s), |_, e| {
                if refuse.contains(&e.source_seq) {
                    Err("rule")
                } else {
                    applied.push(e.source_seq);
                    Ok(())
                }
            });
        }
    }

    #[test]
    fn in_order_stays_active() {
        let mut link = Link::default();
        let mut applied = vec![];
        run(&mut link, &[1, 2, 3], &[], &mut applied);
        assert_eq!(applied, vec![1, 2, 3]);
        assert!(link.is_active());
        assert_eq!((link.applied_seq(), link.received_seq(), link.backlog_len()), (3, 3, 0));
    }

    #[test]
    fn a_gap_suspends_and_the_backlog_drains_in_order_but_stays_suspended() {
        let mut link = Link::default();
        let mut applied = vec![];
        run(&mut link, &[1, 3, 4], &[], &mut applied);
        assert_eq!(link.state(), MunicipalityState::Suspended);
        assert_eq!(link.reason(), "data link gap: waiting for source_seq 2");
        assert_eq!(link.check_lift(), Err(LiftRefusal::Gap { waiting_for: 2, backlog: 2 }));
        link.set_maintenance(false, "");
        assert_eq!(link.state(), MunicipalityState::Suspended, "premature lift is ignored");
        link.receive(9, &mut ev(2), |_, e| {
            applied.push(e.source_seq);
            Ok::<_, &str>(())
        });
        assert_eq!(applied, vec![1, 2, 3, 4]);
        assert_eq!(link.state(), MunicipalityState::Suspended);
        assert_eq!(link.check_lift(), Ok(()));
        link.set_maintenance(false, "");
        assert!(link.is_active());
    }

    #[test]
    fn an_unappliable_event_is_held_at_the_head() {
        let mut link = Link::default();
        let mut applied = vec![];
        run(&mut link, &[1, 2, 3], &[2], &mut applied);
        assert_eq!(applied, vec![1]);
        assert_eq!(link.reason(), "source_seq 2 cannot be applied: rule");
        assert_eq!(link.held(), Some((2, "rule")));
        assert_eq!((link.applied_seq(), link.received_seq(), link.backlog_len()), (1, 3, 2));
        assert!(matches!(link.check_lift(), Err(LiftRefusal::Held { source_seq: 2, .. })));
    }

    #[test]
    fn maintenance_does_not_mask_suspension() {
        let mut link = Link::default();
        link.set_maintenance(true, "printer paper change");
        assert_eq!(link.state(), MunicipalityState::Maintenance);
        assert_eq!(link.reason(), "printer paper change");
        link.suspend("conflicting re-send of source_seq 1".into());
        link.set_maintenance(true, "other");
        assert_eq!(link.state(), MunicipalityState::Suspended);
        link.set_maintenance(false, "");
        assert!(link.is_active());
    }
}
