//! The projected state: what the engine knows after folding the log, and the questions asked of it before
//! appending (admission) and before issuing (status, lookups).
//!
//! Everything here is a pure function of the leaves folded so far (see `fold.rs`), so the engine can rebuild
//! it on start and an auditor can rebuild the state any certificate was issued from.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fmt;

use bcl_proto::{ChangeEvent, DamageGrade, IssuanceRecord, MunicipalityStatus, RemovalReason};

use crate::link::{LiftRefusal, Link};
use crate::record::{Date, Sex};
use crate::settings::Settings;
use crate::validate::event_digest;

/// Lifecycle of a resident record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ResidentStatus {
    Active,
    /// 転出予定 filed.
    MoveOutFiled {
        planned_date: Date,
        destination: String,
    },
    /// 消除 (moved out, deceased, other). The record is kept for history and certificates already issued.
    Removed {
        reason: RemovalReason,
    },
}

#[derive(Clone, PartialEq, Eq)]
pub struct Seal {
    pub registration_number: String,
    pub image_png: Vec<u8>,
    pub abolished: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TaxAssessment {
    pub fiscal_year: u32,
    pub total_income: i64,
    pub taxable_income: i64,
    pub municipal_tax: i64,
    pub prefectural_tax: i64,
    /// Log position of the assessment event.
    pub position: u64,
}

impl TaxAssessment {
    /// 非課税: neither municipal nor prefectural tax.
    pub fn is_exempt(&self) -> bool {
        self.municipal_tax == 0 && self.prefectural_tax == 0
    }
}

#[derive(Clone, PartialEq, Eq)]
pub struct FamilyRegister {
    pub register_id: String,
    pub domicile: String,
    pub head: String,
}

/// One resident record (住民票) as the municipality last sent it.
#[derive(Clone, PartialEq, Eq)]
pub struct Resident {
    pub id: String,
    pub household_id: String,
    pub family_name: String,
    pub given_name: String,
    pub family_name_kana: String,
    pub given_name_kana: String,
    pub birth_date: Date,
    pub sex: Sex,
    pub address: String,
    pub household_head: bool,
    pub relationship: String,
    pub resident_since: Date,
    pub address_since: Date,
    pub previous_address: String,
    pub registered_domicile: String,
    pub domicile_head: String,
    /// Empty when the municipality did not send one.
    pub personal_number: String,
    pub gaiji_pending: bool,
    pub status: ResidentStatus,
    pub support_measure: bool,
    pub seal: Option<Seal>,
    pub tax: BTreeMap<u32, TaxAssessment>,
    pub family_register: Option<FamilyRegister>,
    /// Log positions of every change event that touched this resident, ascending: the provenance of
    /// anything printed about them.
    pub provenance: Vec<u64>,
}

impl Resident {
    pub fn is_removed(&self) -> bool {
        matches!(self.status, ResidentStatus::Removed { .. })
    }
}

/// Personal data stays out of debug output too (it ends up in logs and test failure messages).
impl fmt::Debug for Resident {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Resident")
            .field("id", &self.id)
            .field("household_id", &self.household_id)
            .field("status", &self.status)
            .field("provenance", &self.provenance)
            .finish_non_exhaustive()
    }
}

impl fmt::Debug for Seal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Seal").field("abolished", &self.abolished).finish_non_exhaustive()
    }
}

impl fmt::Debug for FamilyRegister {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FamilyRegister").field("register_id", &self.register_id).finish_non_exhaustive()
    }
}

/// A household (世帯): its current members in order of registration. Removed residents leave it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Household {
    pub members: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Card {
    pub resident_id: String,
    pub revoked: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DamageRecord {
    pub disaster_name: String,
    pub disaster_date: Date,
    pub grade: DamageGrade,
    pub position: u64,
}

/// One recorded issuance, indexed by its request id for idempotent retries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IssuedRef {
    pub position: u64,
    pub request_digest: String,
    pub certificate_id: String,
}

/// The municipality's resident data as folded from its change events (the 中間DB copy).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Registry {
    pub(crate) residents: BTreeMap<String, Resident>,
    pub(crate) households: BTreeMap<String, Household>,
    pub(crate) cards: BTreeMap<String, Card>,
    pub(crate) damage: BTreeMap<String, Vec<DamageRecord>>,
    /// Residents whose key was erased (`Forgotten` leaf) or whose sealed events could not be read: their
    /// personal fields are empty and no certificate printing them is issued or reproduced.
    pub(crate) forgotten: BTreeSet<String>,
}

/// Everything known about one municipality.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Municipality {
    pub(crate) link: Link,
    pub(crate) settings: Settings,
    pub(crate) registry: Registry,
    pub(crate) blocked: BTreeSet<String>,
    pub(crate) transactions: Vec<(u64, IssuanceRecord)>,
    pub(crate) refusals: Vec<(u64, bcl_proto::RefusalRecord)>,
    /// source_seq of every event received (applied or waiting).
    pub(crate) received: foldhash::HashSet<u64>,
}

impl Municipality {
    pub fn link(&self) -> &Link {
        &self.link
    }
    pub fn settings(&self) -> &Settings {
        &self.settings
    }
    pub fn resident(&self, id: &str) -> Option<&Resident> {
        self.registry.residents.get(id)
    }
    pub fn residents(&self) -> impl Iterator<Item = &Resident> {
        self.registry.residents.values()
    }
    pub fn household(&self, id: &str) -> Option<&Household> {
        self.registry.households.get(id)
    }
    pub fn households(&self) -> impl Iterator<Item = (&str, &Household)> {
        self.registry.households.iter().map(|(id, h)| (id.as_str(), h))
    }
    pub fn cards(&self) -> impl Iterator<Item = (&str, &Card)> {
        self.registry.cards.iter().map(|(serial, c)| (serial.as_str(), c))
    }
    pub fn card(&self, serial: &str) -> Option<&Card> {
        self.registry.cards.get(serial)
    }
    /// 罹災証明 records of a household, in log order.
    pub fn damage_records(&self, household_id: &str) -> &[DamageRecord] {
        self.registry.damage.get(household_id).map_or(&[], Vec::as_slice)
    }
    /// The resident's personal data was erased (crypto-shredding) or is not readable with the keys at hand.
    pub fn is_forgotten(&self, resident_id: &str) -> bool {
        self.registry.forgotten.contains(resident_id)
    }
    /// 発行禁止設定 in force for the resident.
    pub fn is_blocked(&self, resident_id: &str) -> bool {
        self.blocked.contains(resident_id)
    }
    /// 取引情報: issuances in log order, with their positions.
    pub fn transactions(&self) -> &[(u64, IssuanceRecord)] {
        &self.transactions
    }

    /// Refused requests, in log order.
    pub fn refusals(&self) -> &[(u64, bcl_proto::RefusalRecord)] {
        &self.refusals
    }

    /// The current head of a household: the first member, in registration order, flagged as head.
    pub fn household_head(&self, household_id: &str) -> Option<&Resident> {
        self.registry
            .households
            .get(household_id)?
            .members
            .iter()
            .filter_map(|id| self.registry.residents.get(id))
            .find(|r| r.household_head)
    }

    /// Current members in household order: the head first, then registration order.
    pub fn household_members(&self, household_id: &str) -> Vec<&Resident> {
        let Some(h) = self.registry.households.get(household_id) else { return Vec::new() };
        let head = self.household_head(household_id).map(|r| r.id.as_str());
        let mut members: Vec<&Resident> = h.members.iter().filter_map(|id| self.registry.residents.get(id)).collect();
        members.sort_by_key(|r| Some(r.id.as_str()) != head); // stable: registration order otherwise
        members
    }
}

/// Where an event stands before it is appended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Admission {
    /// Append it.
    New,
    /// Identical re-send of an event already in the log: answer with its original position.
    Duplicate { position: u64 },
    /// Identical to an earlier event of the same batch (its index in the batch): answer with the position
    /// that earlier event is given, append nothing.
    DuplicateInBatch { index: usize },
    /// Refuse; the engine records a `LinkAnomaly` leaf, which suspends the municipality.
    Conflict { kind: ConflictKind },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConflictKind {
    /// The event_id is known with different content.
    EventIdReused,
    /// The (municipality, source_seq) was already received with another event.
    SourceSeqTaken,
}

impl ConflictKind {
    pub fn as_str(self) -> &'static str {
        match self {
            ConflictKind::EventIdReused => "event_id_reused",
            ConflictKind::SourceSeqTaken => "source_seq_taken",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct EventRef {
    pub(crate) position: u64,
    pub(crate) digest: [u8; 32],
}

/// The whole projection. Build with `State::default()` and [`State::apply`] every leaf in log order.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct State {
    pub(crate) municipalities: BTreeMap<String, Municipality>,
    /// Looked up and inserted once per change event: foldhash (seeded per process) instead of SipHash, which
    /// was an eighth of the fold's instructions.
    pub(crate) events: foldhash::HashMap<String, EventRef>,
    pub(crate) issued: foldhash::HashMap<String, IssuedRef>,
    pub(crate) certificates: foldhash::HashMap<String, u64>,
    /// Number of leaves folded (the next expected position).
    pub(crate) leaves: u64,
    /// Leaves that named no usable municipality and so changed nothing else (kept for diagnostics).
    pub(crate) ignored_leaves: u64,
}

impl State {
    /// Number of leaves folded so far.
    pub fn len(&self) -> u64 {
        self.leaves
    }

    pub fn is_empty(&self) -> bool {
        self.leaves == 0
    }

    pub fn ignored_leaves(&self) -> u64 {
        self.ignored_leaves
    }

    pub fn municipality(&self, code: &str) -> Option<&Municipality> {
        self.municipalities.get(code)
    }

    pub fn municipality_codes(&self) -> impl Iterator<Item = &str> {
        self.municipalities.keys().map(String::as_str)
    }

    /// The status as `Ingest.GetMunicipalityStatus` and `Admin.SetMaintenance` return it.
    pub fn status(&self, code: &str) -> Option<MunicipalityStatus> {
        let link = &self.municipalities.get(code)?.link;
        Some(MunicipalityStatus {
            municipality_code: code.to_owned(),
            state: link.state() as i32,
            reason: link.reason().to_owned(),
            applied_seq: link.applied_seq(),
            received_seq: link.received_seq(),
            backlog: link.backlog_len(),
        })
    }

    /// May `SetMaintenance(on=false)` be appended? Only when every received event has been applied. An
    /// unknown municipality has nothing pending.
    pub fn check_lift(&self, code: &str) -> Result<(), LiftRefusal> {
        self.municipalities.get(code).map_or(Ok(()), |m| m.link.check_lift())
    }

    /// Decides what to do with one event before appending it (the event is assumed to pass
    /// [`crate::validate_event`]). For several events appended together use [`State::admit_batch`], which
    /// also sees the earlier events of the batch.
    pub fn admit(&self, ev: &ChangeEvent, digest: &[u8; 32]) -> Admission {
        if let Some(known) = self.events.get(&ev.event_id) {
            return if known.digest == *digest {
                Admission::Duplicate { position: known.position }
            } else {
                Admission::Conflict { kind: ConflictKind::EventIdReused }
            };
        }
        let taken = self.municipalities.get(&ev.municipality_code).is_some_and(|m| m.received.contains(&ev.source_seq));
        if taken {
            Admission::Conflict { kind: ConflictKind::SourceSeqTaken }
        } else {
            Admission::New
        }
    }

    /// [`State::admit`] for a batch, in order: an event identical to an earlier one of the batch is
    /// `DuplicateInBatch`, one that reuses an earlier event's id or (municipality, source_seq) with other
    /// content is a `Conflict`. The engine appends exactly the `New` events, in batch order, and then folds
    /// them with [`State::apply`]; no scratch copy of the state is needed.
    pub fn admit_batch(&self, events: &[ChangeEvent]) -> Vec<Admission> {
        let digests: Vec<[u8; 32]> = events.iter().map(event_digest).collect();
        self.admit_batch_with_digests(events, &digests)
    }

    /// [`State::admit_batch`] with the events' digests already computed (the writer hashes each event once
    /// for admission, the fold and the leaf).
    pub fn admit_batch_with_digests(&self, events: &[ChangeEvent], digests: &[[u8; 32]]) -> Vec<Admission> {
        let mut by_id: HashMap<&str, (usize, [u8; 32])> = HashMap::new();
        let mut by_seq: HashMap<(&str, u64), usize> = HashMap::new();
        events
            .iter()
            .enumerate()
            .map(|(index, ev)| {
                let digest = digests[index];
                let admission = match self.admit(ev, &digest) {
                    Admission::New => match by_id.get(ev.event_id.as_str()) {
                        Some((earlier, d)) if *d == digest => Admission::DuplicateInBatch { index: *earlier },
                        Some(_) => Admission::Conflict { kind: ConflictKind::EventIdReused },
                        None if by_seq.contains_key(&(ev.municipality_code.as_str(), ev.source_seq)) => {
                            Admission::Conflict { kind: ConflictKind::SourceSeqTaken }
                        }
                        None => Admission::New,
                    },
                    other => other,
                };
                if admission == Admission::New {
                    by_id.insert(&ev.event_id, (index, digest));
                    by_seq.insert((&ev.municipality_code, ev.source_seq), index);
                }
                admission
            })
            .collect()
    }

    /// Idempotency index of `Issuance.Issue`.
    pub fn issuance_by_request(&self, request_id: &str) -> Option<&IssuedRef> {
        self.issued.get(request_id)
    }

    /// Log position of the issuance leaf of a certificate (for `Audit.Reproduce`).
    pub fn certificate_position(&self, certificate_id: &str) -> Option<u64> {
        self.certificates.get(certificate_id).copied()
    }

    /// Log position of a change event, by event id.
    pub fn event_position(&self, event_id: &str) -> Option<u64> {
        self.events.get(event_id).map(|e| e.position)
    }
}
