//! The fold: how each log leaf changes the state.
//!
//! `State::apply` is total: it never panics and never refuses a leaf, because the log is the truth and a
//! rebuild must reach the same state whatever the log holds. A change event that cannot be applied is not
//! dropped: it stays at the head of its municipality's backlog and the municipality is suspended (see
//! `link.rs`). Applying one event is all-or-nothing: every check happens before the first mutation.

use bcl_proto::admin_action::Action;
use bcl_proto::change_event::Body;
use bcl_proto::log_leaf::Kind;
use bcl_proto::{
    AdminAction, ChangeEvent, DamageGrade, Forgotten, IssuanceRecord, LinkAnomaly, LogLeaf, RemovalReason,
};
use prost::Message;
use thiserror::Error;

use crate::record::{Date, Sex};
use crate::state::{
    Card, DamageRecord, EventRef, FamilyRegister, IssuedRef, Municipality, Registry, Resident, ResidentStatus, Seal,
    State, TaxAssessment,
};
use crate::validate::{check_municipality_code, event_digest, validate_event, ValidationError};

/// Why a change event cannot be applied to the current data. Names the rule, never the data.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum ApplyError {
    #[error("invalid event: {0}")]
    Invalid(ValidationError),
    #[error("resident is not registered")]
    UnknownResident,
    #[error("resident is already registered")]
    ResidentExists,
    #[error("resident record is removed")]
    ResidentRemoved,
    #[error("card serial is bound to another resident")]
    CardBoundElsewhere,
    #[error("card serial is revoked")]
    CardRevoked,
    #[error("card serial is not issued")]
    UnknownCard,
    #[error("no seal registration to abolish")]
    NoSeal,
    #[error("household is not known")]
    UnknownHousehold,
}

impl State {
    /// Folds the leaf at `position`. Leaves must be applied in log order, each exactly once.
    pub fn apply(&mut self, position: u64, leaf: &LogLeaf) {
        self.leaves = self.leaves.max(position.saturating_add(1));
        match &leaf.kind {
            Some(Kind::ChangeEvent(ev)) => self.apply_change(position, ev),
            Some(Kind::Issuance(rec)) => self.apply_issuance(position, rec),
            Some(Kind::Admin(action)) => self.apply_admin(action),
            Some(Kind::LinkAnomaly(anomaly)) => self.apply_anomaly(anomaly),
            Some(Kind::Refusal(refusal)) => self.apply_refusal(position, refusal),
            // Without the key store the personal part stays sealed: the event is folded as for a forgotten
            // resident. The engine's projection unseals first and calls `apply_sealed_change` itself.
            Some(Kind::SealedChangeEvent(sealed)) => match ChangeEvent::decode(sealed.event.as_slice()) {
                Ok(mut ev) => {
                    self.apply_change_with_digest(position, &mut ev, sealed_digest(&sealed.digest), false, None)
                }
                Err(_) => self.ignored_leaves += 1,
            },
            Some(Kind::Forgotten(f)) => self.apply_forgotten(f),
            // Which centre sequences the log changes nothing a certificate shows or whether it may be issued.
            Some(Kind::Leadership(_)) => {}
            None => self.ignored_leaves += 1,
        }
    }

    /// Folds the event of a `SealedChangeEvent` leaf: `readable` = the personal part was unsealed and merged
    /// into `ev`; otherwise `ev` lacks its personal fields (the resident's key was erased or is not at hand)
    /// and the resident is marked forgotten, which is the state a live fold reaches at the `Forgotten` leaf.
    pub fn apply_sealed_change(&mut self, position: u64, ev: &ChangeEvent, digest: [u8; 32], readable: bool) {
        self.apply_owned_change(position, &mut ev.clone(), digest, readable, None);
    }

    /// The rebuild's hot path: [`State::apply_sealed_change`] (or, `readable`, [`State::apply_change_event`])
    /// on an event the caller gives up. The fold moves the strings it keeps out of `ev` instead of copying
    /// them (the event id too, once recorded), so afterwards only `ev`'s municipality and sequence number are
    /// left as they were. `checked` is [`validate_event`] of `ev` if the caller already ran it (a rebuild
    /// does, on its decoding threads); it must be exactly that, the fold uses it in place of validating
    /// again.
    pub fn apply_owned_change(
        &mut self,
        position: u64,
        ev: &mut ChangeEvent,
        digest: [u8; 32],
        readable: bool,
        checked: Option<Result<(), ValidationError>>,
    ) {
        self.leaves = self.leaves.max(position.saturating_add(1));
        self.apply_change_with_digest(position, ev, digest, readable, checked);
    }

    /// Crypto-shredding reached the projection: the resident's personal fields are dropped exactly as the
    /// fold of their sealed events without a key would have left them (see `personal::split`), so a
    /// restarted engine, which can no longer read those events, rebuilds the same state. Events of theirs
    /// still waiting in the backlog lose their personal fields too.
    fn apply_forgotten(&mut self, f: &Forgotten) {
        let Some(m) = self.municipality_mut(&f.municipality_code) else { return };
        m.registry.forgotten.insert(f.resident_id.clone());
        m.link.redact_backlog(|ev| {
            if crate::personal::sealed_subject(ev) == Some(f.resident_id.as_str()) {
                *ev = crate::personal::redact(ev);
            }
        });
        if let Some(res) = m.registry.residents.get_mut(&f.resident_id) {
            erase_personal_fields(res);
        }
    }

    /// Folds a sequence of leaves starting at `first_position`.
    pub fn apply_all<'a>(&mut self, first_position: u64, leaves: impl IntoIterator<Item = &'a LogLeaf>) {
        for (i, leaf) in leaves.into_iter().enumerate() {
            self.apply(first_position + i as u64, leaf);
        }
    }

    fn municipality_mut(&mut self, code: &str) -> Option<&mut Municipality> {
        if check_municipality_code(code).is_err() {
            self.ignored_leaves += 1;
            return None;
        }
        // Look up before inserting: `entry` would allocate the key for every leaf.
        if !self.municipalities.contains_key(code) {
            self.municipalities.insert(code.to_owned(), Municipality::default());
        }
        self.municipalities.get_mut(code)
    }

    /// Folds a change event whose digest the caller already computed: the same as [`State::apply`] on a
    /// `LogLeaf` holding it.
    pub fn apply_change_event(&mut self, position: u64, ev: &ChangeEvent, digest: [u8; 32]) {
        self.apply_owned_change(position, &mut ev.clone(), digest, true, None);
    }

    fn apply_change(&mut self, position: u64, ev: &ChangeEvent) {
        self.apply_change_with_digest(position, &mut ev.clone(), event_digest(ev), true, None);
    }

    fn apply_change_with_digest(
        &mut self,
        position: u64,
        ev: &mut ChangeEvent,
        digest: [u8; 32],
        readable: bool,
        checked: Option<Result<(), ValidationError>>,
    ) {
        let known = self.events.get(&ev.event_id).map(|k| k.digest);
        let Some(m) = self.municipality_mut(&ev.municipality_code) else { return };
        if !readable {
            if let Some(resident) = crate::personal::sealed_subject(ev) {
                if !m.registry.forgotten.contains(resident) {
                    m.registry.forgotten.insert(resident.to_owned());
                }
            }
        }
        let seq = ev.source_seq;
        match known {
            // The same event twice in the log (the engine never does this): the second copy adds nothing.
            Some(d) if d == digest => return,
            Some(_) => return m.link.suspend(format!("conflicting re-send of source_seq {seq}")),
            None => {}
        }
        if seq == 0 {
            return m.link.suspend("source_seq 0 cannot be applied: sourceSeq must be at least 1".into());
        }
        if m.received.contains(&seq) {
            return m.link.suspend(format!("conflicting re-send of source_seq {seq}"));
        }
        m.received.insert(seq);
        let Municipality { link, registry, .. } = m;
        // The caller's validation belongs to this event only, on its first (and, within this call, only)
        // attempt; events drained from the backlog behind it are validated here.
        let mut checked = checked;
        link.receive(position, ev, |pos, e| {
            let checked = if pos == position { checked.take() } else { None };
            registry.apply_event(pos, e, checked)
        });
        // Nothing reads the id after this (an event left waiting in the backlog was copied there), so the
        // map takes the event's own string instead of a copy: one allocation less per event.
        self.events.insert(std::mem::take(&mut ev.event_id), EventRef { position, digest });
    }

    /// A refused request joins its municipality's transaction log; it changes nothing else.
    fn apply_refusal(&mut self, position: u64, refusal: &bcl_proto::RefusalRecord) {
        let code = refusal.request.as_ref().map(|r| r.municipality_code.as_str()).unwrap_or_default();
        if let Some(m) = self.municipalities.get_mut(code) {
            m.refusals.push((position, refusal.clone()));
        }
    }

    fn apply_issuance(&mut self, position: u64, rec: &IssuanceRecord) {
        let request = rec.request.clone().unwrap_or_default();
        // First record wins: the engine never records a request id twice, and a replay must keep answering
        // with the original certificate.
        self.issued.entry(request.request_id.clone()).or_insert_with(|| IssuedRef {
            position,
            request_digest: rec.request_digest.clone(),
            certificate_id: rec.certificate_id.clone(),
        });
        self.certificates.entry(rec.certificate_id.clone()).or_insert(position);
        if let Some(m) = self.municipality_mut(&request.municipality_code) {
            m.transactions.push((position, rec.clone()));
        }
    }

    fn apply_admin(&mut self, action: &AdminAction) {
        let Some(m) = self.municipality_mut(&action.municipality_code) else { return };
        match &action.action {
            Some(Action::SetMaintenance(req)) => m.link.set_maintenance(req.on, &req.reason),
            Some(Action::SetIssuanceBlock(req)) => {
                if req.blocked {
                    m.blocked.insert(req.resident_id.clone());
                } else {
                    m.blocked.remove(&req.resident_id);
                }
            }
            Some(Action::UpdateSettings(update)) => m.settings.merge(update),
            None => {}
        }
    }

    fn apply_anomaly(&mut self, anomaly: &LinkAnomaly) {
        let Some(m) = self.municipality_mut(&anomaly.municipality_code) else { return };
        let seq = anomaly.source_seq;
        m.link.suspend(if anomaly.kind == "conflict" {
            format!("conflicting re-send of source_seq {seq}")
        } else {
            format!("data link anomaly at source_seq {seq}")
        });
    }
}

/// The digest recorded in a sealed leaf; a malformed one never equals a real digest, so a re-send conflicts.
fn sealed_digest(bytes: &[u8]) -> [u8; 32] {
    bytes.try_into().unwrap_or([0; 32])
}

/// What the fold of a resident's sealed events leaves when none can be unsealed: every field that
/// `personal::split` seals at its default (an empty date parses to the fallback below).
fn erase_personal_fields(res: &mut Resident) {
    for field in [
        &mut res.family_name,
        &mut res.given_name,
        &mut res.family_name_kana,
        &mut res.given_name_kana,
        &mut res.address,
        &mut res.previous_address,
        &mut res.registered_domicile,
        &mut res.domicile_head,
        &mut res.personal_number,
    ] {
        field.clear();
    }
    res.birth_date = parse_date("");
    if let ResidentStatus::MoveOutFiled { destination, .. } = &mut res.status {
        destination.clear();
    }
    if let Some(seal) = &mut res.seal {
        seal.image_png.clear();
    }
    for t in res.tax.values_mut() {
        (t.total_income, t.taxable_income, t.municipal_tax, t.prefectural_tax) = (0, 0, 0, 0);
    }
    if let Some(f) = &mut res.family_register {
        f.domicile.clear();
        f.head.clear();
    }
}

/// A new resident's provenance: most residents have several events, so start with room for four rather
/// than one and skip the first regrowth.
fn first_provenance(position: u64) -> Vec<u64> {
    let mut provenance = Vec::with_capacity(4);
    provenance.push(position);
    provenance
}

fn parse_date(s: &str) -> Date {
    // Only reached after validate_event, which checked every date.
    Date::parse(s).unwrap_or(Date { year: 1, month: 1, day: 1 })
}

impl Registry {
    fn resident_mut(&mut self, id: &str) -> Result<&mut Resident, ApplyError> {
        self.residents.get_mut(id).ok_or(ApplyError::UnknownResident)
    }

    fn active_resident_mut(&mut self, id: &str) -> Result<&mut Resident, ApplyError> {
        let r = self.resident_mut(id)?;
        if r.is_removed() {
            Err(ApplyError::ResidentRemoved)
        } else {
            Ok(r)
        }
    }

    fn leave_household(&mut self, household_id: &str, resident_id: &str) {
        if let Some(h) = self.households.get_mut(household_id) {
            // An emptied household is kept: damage certificates may still refer to it.
            h.members.retain(|m| m != resident_id);
        }
    }

    fn join_household(&mut self, household_id: &str, resident_id: &str) {
        // Look up before inserting: `entry` would allocate the key for every member, not once per household.
        let member = resident_id.to_owned();
        match self.households.get_mut(household_id) {
            Some(h) => h.members.push(member),
            None => self.households.entry(household_id.to_owned()).or_default().members.push(member),
        }
    }

    /// Applies one change event, or changes nothing and says why not. Every check comes before the first
    /// mutation; once applied, the strings the record keeps are moved out of `ev` (the id, municipality and
    /// sequence number stay). `checked`: the result of [`validate_event`] on `ev`, if already computed.
    pub(crate) fn apply_event(
        &mut self,
        position: u64,
        ev: &mut ChangeEvent,
        checked: Option<Result<(), ValidationError>>,
    ) -> Result<(), ApplyError> {
        // A forgotten resident's events may lack their personal fields, so the field rules cannot be checked
        // again; ingest checked them before the event was logged, and the rules that depend on the state
        // (below) still run, so the fold decides the same with or without the keys.
        let forgotten = !self.forgotten.is_empty()
            && crate::personal::event_resident(ev).is_some_and(|r| self.forgotten.contains(r));
        if !forgotten {
            checked.unwrap_or_else(|| validate_event(ev)).map_err(ApplyError::Invalid)?;
        }
        let Some(body) = &mut ev.body else { return Ok(()) }; // unreachable after validation
        use std::mem::take;
        match body {
            Body::ResidentRegistered(r) => {
                if self.residents.contains_key(&r.resident_id) {
                    return Err(ApplyError::ResidentExists);
                }
                self.join_household(&r.household_id, &r.resident_id);
                let resident = Resident {
                    id: r.resident_id.clone(),
                    household_id: take(&mut r.household_id),
                    family_name: take(&mut r.family_name),
                    given_name: take(&mut r.given_name),
                    family_name_kana: take(&mut r.family_name_kana),
                    given_name_kana: take(&mut r.given_name_kana),
                    birth_date: parse_date(&r.birth_date),
                    sex: if r.sex == bcl_proto::Sex::Female as i32 { Sex::Female } else { Sex::Male },
                    address: take(&mut r.address),
                    household_head: r.household_head,
                    relationship: take(&mut r.relationship),
                    resident_since: parse_date(&r.resident_since),
                    address_since: parse_date(&r.address_since),
                    previous_address: take(&mut r.previous_address),
                    registered_domicile: take(&mut r.registered_domicile),
                    domicile_head: take(&mut r.domicile_head),
                    personal_number: take(&mut r.personal_number),
                    gaiji_pending: r.gaiji_pending,
                    status: ResidentStatus::Active,
                    support_measure: false,
                    seal: None,
                    tax: Default::default(),
                    family_register: None,
                    provenance: first_provenance(position),
                };
                self.residents.insert(take(&mut r.resident_id), resident);
            }
            Body::ResidentChanged(c) => {
                let res = self.active_resident_mut(&c.resident_id)?;
                let old_household = res.household_id.clone();
                for (field, value) in [
                    (&mut res.family_name, &mut c.family_name),
                    (&mut res.given_name, &mut c.given_name),
                    (&mut res.family_name_kana, &mut c.family_name_kana),
                    (&mut res.given_name_kana, &mut c.given_name_kana),
                    (&mut res.address, &mut c.address),
                    (&mut res.relationship, &mut c.relationship),
                    (&mut res.registered_domicile, &mut c.registered_domicile),
                    (&mut res.domicile_head, &mut c.domicile_head),
                ] {
                    if let Some(v) = value.take() {
                        *field = v;
                    }
                }
                if let Some(d) = &c.address_since {
                    res.address_since = parse_date(d);
                }
                if let Some(h) = c.household_head {
                    res.household_head = h;
                }
                if let Some(g) = c.gaiji_pending {
                    res.gaiji_pending = g;
                }
                res.provenance.push(position);
                if let Some(new_household) = c.household_id.as_ref().filter(|h| **h != old_household) {
                    res.household_id.clone_from(new_household);
                    self.leave_household(&old_household, &c.resident_id);
                    self.join_household(new_household, &c.resident_id);
                }
            }
            Body::MoveOutFiled(m) => {
                let res = self.active_resident_mut(&m.resident_id)?;
                res.status = ResidentStatus::MoveOutFiled {
                    planned_date: parse_date(&m.planned_date),
                    destination: take(&mut m.destination),
                };
                res.provenance.push(position);
            }
            Body::ResidentRemoved(r) => {
                let res = self.active_resident_mut(&r.resident_id)?;
                res.status = ResidentStatus::Removed {
                    reason: RemovalReason::try_from(r.reason).unwrap_or(RemovalReason::Other),
                };
                res.provenance.push(position);
                let household = res.household_id.clone();
                self.leave_household(&household, &r.resident_id);
            }
            Body::SupportMeasureChanged(s) => {
                let res = self.resident_mut(&s.resident_id)?;
                res.support_measure = s.in_force;
                res.provenance.push(position);
            }
            Body::SealRegistered(s) => {
                let res = self.active_resident_mut(&s.resident_id)?;
                res.seal = Some(Seal {
                    registration_number: take(&mut s.registration_number),
                    image_png: take(&mut s.seal_image_png),
                    abolished: false,
                });
                res.provenance.push(position);
            }
            Body::SealAbolished(s) => {
                let res = self.resident_mut(&s.resident_id)?;
                let seal = res.seal.as_mut().filter(|s| !s.abolished).ok_or(ApplyError::NoSeal)?;
                seal.abolished = true;
                res.provenance.push(position);
            }
            Body::TaxAssessed(t) => {
                let res = self.resident_mut(&t.resident_id)?;
                res.tax.insert(
                    t.fiscal_year,
                    TaxAssessment {
                        fiscal_year: t.fiscal_year,
                        total_income: t.total_income,
                        taxable_income: t.taxable_income,
                        municipal_tax: t.municipal_tax,
                        prefectural_tax: t.prefectural_tax,
                        position,
                    },
                );
                res.provenance.push(position);
            }
            Body::CardIssued(c) => {
                match self.cards.get(&c.card_serial) {
                    Some(card) if card.resident_id != c.resident_id => return Err(ApplyError::CardBoundElsewhere),
                    Some(card) if card.revoked => return Err(ApplyError::CardRevoked),
                    _ => {}
                }
                self.active_resident_mut(&c.resident_id)?.provenance.push(position);
                self.cards
                    .insert(take(&mut c.card_serial), Card { resident_id: take(&mut c.resident_id), revoked: false });
            }
            Body::CardRevoked(c) => {
                let card = self.cards.get_mut(&c.card_serial).ok_or(ApplyError::UnknownCard)?;
                card.revoked = true;
                let holder = card.resident_id.clone();
                if let Some(res) = self.residents.get_mut(&holder) {
                    res.provenance.push(position);
                }
            }
            Body::FamilyRegisterRecorded(f) => {
                let res = self.resident_mut(&f.resident_id)?;
                res.family_register = Some(FamilyRegister {
                    register_id: take(&mut f.register_id),
                    domicile: take(&mut f.domicile),
                    head: take(&mut f.head),
                });
                res.provenance.push(position);
            }
            Body::DamageCertified(d) => {
                if !self.households.contains_key(&d.household_id) {
                    return Err(ApplyError::UnknownHousehold);
                }
                self.damage.entry(take(&mut d.household_id)).or_default().push(DamageRecord {
                    disaster_name: take(&mut d.disaster_name),
                    disaster_date: parse_date(&d.disaster_date),
                    grade: DamageGrade::try_from(d.grade).unwrap_or(DamageGrade::Unspecified),
                    position,
                });
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::state::{Admission, ConflictKind};
    use crate::testkit::*;
    use bcl_proto::{
        IssueRequest, MunicipalityState, ResidentChanged, ResidentRemoved, SealAbolished, SetMaintenanceRequest,
    };

    fn status(state: &State) -> (MunicipalityState, String, u64, u64, u64) {
        let s = state.status(CODE).unwrap();
        (s.state(), s.reason, s.applied_seq, s.received_seq, s.backlog)
    }

    #[test]
    fn every_registration_field_is_folded_and_changes_touch_only_what_is_set() {
        let mut log = household_log();
        log.push(leaf(event(
            11,
            Body::ResidentChanged(ResidentChanged {
                resident_id: "S".into(),
                given_name: Some("花子".into()),
                household_id: Some("HH2".into()),
                ..Default::default()
            }),
        )));
        let state = fold(&log);
        let m = state.municipality(CODE).unwrap();
        let s = m.resident("S").unwrap();
        assert_eq!((s.family_name.as_str(), s.given_name.as_str(), s.household_id.as_str()), ("山田", "花子", "HH2"));
        assert_eq!(s.birth_date, Date::parse("1982-07-07").unwrap());
        assert_eq!(s.personal_number, "123456789018");
        assert_eq!(s.provenance, vec![2, 7, 11]);
        assert_eq!(m.household("HH1").unwrap().members, vec!["H", "C", "T"]);
        assert_eq!(m.household("HH2").unwrap().members, vec!["X", "S"]);
        assert_eq!(m.card("K-S").unwrap().resident_id, "S");
        assert_eq!(status(&state), (MunicipalityState::Active, String::new(), 11, 11, 0));
    }

    #[test]
    fn unappliable_events_are_held_and_suspend() {
        let cases: Vec<(Body, &str)> = vec![
            (
                Body::ResidentChanged(ResidentChanged { resident_id: "nobody".into(), ..Default::default() }),
                "resident is not registered",
            ),
            (registered("H", "HH1", true, "1980-05-05"), "resident is already registered"),
            (card("S", "K-H"), "card serial is bound to another resident"),
            (Body::SealAbolished(SealAbolished { resident_id: "H".into() }), "no seal registration to abolish"),
        ];
        for (body, rule) in cases {
            let mut log = household_log();
            log.push(leaf(event(11, body)));
            log.push(leaf(event(12, card("H", "K-H3"))));
            let state = fold(&log);
            let (st, reason, applied, received, backlog) = status(&state);
            assert_eq!((st, applied, received, backlog), (MunicipalityState::Suspended, 10, 12, 2));
            assert_eq!(reason, format!("source_seq 11 cannot be applied: {rule}"));
            assert!(state.check_lift(CODE).is_err());
            assert!(state.municipality(CODE).unwrap().card("K-H3").is_none(), "nothing after the head is applied");
        }
        // A change to a removed resident.
        let mut log = household_log();
        log.push(leaf(event(11, Body::ResidentRemoved(ResidentRemoved { resident_id: "T".into(), reason: 1 }))));
        log.push(leaf(event(
            12,
            Body::ResidentChanged(ResidentChanged {
                resident_id: "T".into(),
                household_id: Some("HH9".into()),
                ..Default::default()
            }),
        )));
        assert_eq!(status(&fold(&log)).1, "source_seq 12 cannot be applied: resident record is removed");
    }

    #[test]
    fn lift_needs_an_empty_backlog_and_an_admin_leaf() {
        let lift = || {
            admin(Action::SetMaintenance(SetMaintenanceRequest {
                municipality_code: CODE.into(),
                on: false,
                reason: String::new(),
            }))
        };
        let mut log = household_log();
        log.push(leaf(event(12, card("H", "K-H2"))));
        assert_eq!(status(&fold(&log)).1, "data link gap: waiting for source_seq 11");
        log.push(lift()); // premature: ignored by the fold
        let state = fold(&log);
        assert_eq!(status(&state).0, MunicipalityState::Suspended);
        log.push(leaf(event(11, card("S", "K-S2"))));
        let state = fold(&log);
        assert_eq!(status(&state).0, MunicipalityState::Suspended, "drained but not lifted");
        assert_eq!(state.check_lift(CODE), Ok(()));
        log.push(lift());
        assert_eq!(status(&fold(&log)), (MunicipalityState::Active, String::new(), 12, 12, 0));
    }

    #[test]
    fn admission_of_resends_and_conflicts() {
        let log = household_log();
        let state = fold(&log);
        let resend = event(3, registered("C", "HH1", false, "2015-01-01"));
        assert_eq!(state.admit(&resend, &event_digest(&resend)), Admission::Duplicate { position: 3 });
        let mut altered = resend.clone();
        altered.effective_date = "2026-01-02".into();
        assert_eq!(
            state.admit(&altered, &event_digest(&altered)),
            Admission::Conflict { kind: ConflictKind::EventIdReused }
        );
        let mut same_seq = event(3, card("H", "K-Z"));
        same_seq.event_id = uuid(999);
        assert_eq!(
            state.admit(&same_seq, &event_digest(&same_seq)),
            Admission::Conflict { kind: ConflictKind::SourceSeqTaken }
        );
        let fresh = event(11, card("H", "K-Z"));
        assert_eq!(state.admit(&fresh, &event_digest(&fresh)), Admission::New);

        let mut other_seq12 = event(12, card("S", "K-Y"));
        other_seq12.event_id = uuid(1000);
        let batch = vec![fresh.clone(), fresh.clone(), resend, event(12, card("H", "K-W")), other_seq12];
        assert_eq!(
            state.admit_batch(&batch),
            vec![
                Admission::New,
                Admission::DuplicateInBatch { index: 0 },
                Admission::Duplicate { position: 3 },
                Admission::New,
                Admission::Conflict { kind: ConflictKind::SourceSeqTaken },
            ]
        );
    }

    #[test]
    fn anomalies_and_duplicates_in_the_log_suspend_only_their_municipality() {
        let mut log = household_log();
        log.push(LogLeaf {
            kind: Some(Kind::LinkAnomaly(LinkAnomaly {
                municipality_code: "011002".into(),
                source_seq: 4,
                event_id: uuid(4),
                kind: "conflict".into(),
                event_sha256: String::new(),
                at: String::new(),
            })),
        });
        let state = fold(&log);
        assert_eq!(state.status("011002").unwrap().reason, "conflicting re-send of source_seq 4");
        assert_eq!(state.status("011002").unwrap().state(), MunicipalityState::Suspended);
        assert_eq!(status(&state).0, MunicipalityState::Active);

        // An identical event recorded twice changes nothing; a different one at a taken seq suspends.
        let mut log = household_log();
        let before = fold(&log);
        log.push(log[3].clone());
        let mut after = fold(&log);
        after.leaves = before.leaves;
        assert_eq!(after, before);
        let mut conflicting = event(3, card("H", "K-Q"));
        conflicting.event_id = uuid(77);
        log.push(leaf(conflicting));
        assert_eq!(status(&fold(&log)).1, "conflicting re-send of source_seq 3");
    }

    #[test]
    fn junk_leaves_never_panic() {
        let mut state = State::default();
        state.apply(0, &LogLeaf { kind: None });
        state.apply(1, &leaf(ChangeEvent::default()));
        state.apply(2, &leaf(ChangeEvent { municipality_code: CODE.into(), source_seq: 1, ..Default::default() }));
        state.apply(3, &LogLeaf { kind: Some(Kind::Issuance(IssuanceRecord::default())) });
        state.apply(u64::MAX, &LogLeaf { kind: Some(Kind::Admin(AdminAction::default())) });
        assert_eq!(state.status(CODE).unwrap().state(), MunicipalityState::Suspended);
        assert!(state
            .status(CODE)
            .unwrap()
            .reason
            .starts_with("source_seq 1 cannot be applied: invalid event: eventId"));
    }

    #[test]
    fn issuances_are_indexed() {
        let mut log = household_log();
        let rec = |cert: &str, digest: &str| IssuanceRecord {
            certificate_id: cert.into(),
            request: Some(IssueRequest {
                request_id: "req-1".into(),
                municipality_code: CODE.into(),
                ..Default::default()
            }),
            request_digest: digest.into(),
            ..Default::default()
        };
        log.push(LogLeaf { kind: Some(Kind::Issuance(rec("CERT-A", "d1"))) });
        log.push(LogLeaf { kind: Some(Kind::Issuance(rec("CERT-B", "d2"))) });
        let state = fold(&log);
        let first = state.issuance_by_request("req-1").unwrap();
        assert_eq!(
            (first.position, first.request_digest.as_str(), first.certificate_id.as_str()),
            (11, "d1", "CERT-A")
        );
        assert_eq!(state.certificate_position("CERT-B"), Some(12));
        let tx: Vec<u64> = state.municipality(CODE).unwrap().transactions().iter().map(|(p, _)| *p).collect();
        assert_eq!(tx, vec![11, 12]);
        assert_eq!(state.len(), 13);
    }
}
