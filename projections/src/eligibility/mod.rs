//! Who may obtain what (交付可否): the rules that stand between a kiosk request and 誤交付.
//!
//! The check runs against the folded state and the issuance clock and returns either a plan (exactly which
//! records to print, in which order, for what fee) or one refusal with its contract reason. Building the
//! record from the plan is a separate step so the engine can log the plan's inputs before rendering.
//! Refusal messages name the rule, never any personal data.

use std::collections::BTreeSet;

use bcl_proto::{CertificateType, IssueRequest};
use thiserror::Error;

use crate::date::JstDateTime;
use crate::record::{Date, PersonEntry, ResidentRecordCertificate};
use crate::settings::Settings;
use crate::state::{Municipality, Resident, ResidentStatus, State};
use crate::validate::check_municipality_code;

mod catalogue;
mod disaster;
mod family_register;
mod items;
mod lookup;
mod person;
mod seal;
mod tax;
#[cfg(test)]
mod catalogue_tests;

pub use catalogue::{build_certificate, check_request, PersonPlan, Plan};
pub use disaster::grade_wording;
pub use lookup::{eligibility_today, ALL_TYPES};
pub use tax::fiscal_year_of;

/// Kiosks print at most this many copies per request.
pub const MAX_COPIES: u32 = 10;
/// Kiosk issuance is for residents aged 15 or more.
pub const MIN_AGE: i32 = 15;
const MAX_REQUEST_ID_BYTES: usize = 128;
const MAX_SUBJECTS: usize = 64;

/// The contract's refusal reasons (`google.rpc.ErrorInfo.reason`), plus two the renderer raises.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RefusalReason {
    UnknownCard,
    CardRevoked,
    UnderAge,
    SupportMeasure,
    MovingOut,
    NotResident,
    MovedInToday,
    GaijiPending,
    NotSameHousehold,
    NoSealRegistration,
    NoTaxAssessment,
    NotInRegister,
    NoDamageRecord,
    TypeDisabled,
    IssuanceBlocked,
    OutOfHours,
    MunicipalitySuspended,
    StaleReplica,
    InvalidRequest,
    RequestIdReused,
    /// A name or address does not fit the kiosk layout.
    LayoutOverflow,
    /// A character the certificate fonts cannot draw.
    UndrawableCharacter,
    /// A resident the certificate is about had their personal data erased (`bcl admin forget`).
    PersonalDataErased,
}

/// The gRPC status code a refusal maps to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CodeFamily {
    FailedPrecondition,
    Unavailable,
    InvalidArgument,
    AlreadyExists,
}

impl RefusalReason {
    pub const ALL: [RefusalReason; 23] = [
        RefusalReason::UnknownCard,
        RefusalReason::CardRevoked,
        RefusalReason::UnderAge,
        RefusalReason::SupportMeasure,
        RefusalReason::MovingOut,
        RefusalReason::NotResident,
        RefusalReason::MovedInToday,
        RefusalReason::GaijiPending,
        RefusalReason::NotSameHousehold,
        RefusalReason::NoSealRegistration,
        RefusalReason::NoTaxAssessment,
        RefusalReason::NotInRegister,
        RefusalReason::NoDamageRecord,
        RefusalReason::TypeDisabled,
        RefusalReason::IssuanceBlocked,
        RefusalReason::OutOfHours,
        RefusalReason::MunicipalitySuspended,
        RefusalReason::StaleReplica,
        RefusalReason::InvalidRequest,
        RefusalReason::RequestIdReused,
        RefusalReason::LayoutOverflow,
        RefusalReason::UndrawableCharacter,
        RefusalReason::PersonalDataErased,
    ];

    /// The `ErrorInfo.reason` string, e.g. `UNKNOWN_CARD`.
    pub fn as_str(self) -> &'static str {
        match self {
            RefusalReason::UnknownCard => "UNKNOWN_CARD",
            RefusalReason::CardRevoked => "CARD_REVOKED",
            RefusalReason::UnderAge => "UNDER_AGE",
            RefusalReason::SupportMeasure => "SUPPORT_MEASURE",
            RefusalReason::MovingOut => "MOVING_OUT",
            RefusalReason::NotResident => "NOT_RESIDENT",
            RefusalReason::MovedInToday => "MOVED_IN_TODAY",
            RefusalReason::GaijiPending => "GAIJI_PENDING",
            RefusalReason::NotSameHousehold => "NOT_SAME_HOUSEHOLD",
            RefusalReason::NoSealRegistration => "NO_SEAL_REGISTRATION",
            RefusalReason::NoTaxAssessment => "NO_TAX_ASSESSMENT",
            RefusalReason::NotInRegister => "NOT_IN_REGISTER",
            RefusalReason::NoDamageRecord => "NO_DAMAGE_RECORD",
            RefusalReason::TypeDisabled => "TYPE_DISABLED",
            RefusalReason::IssuanceBlocked => "ISSUANCE_BLOCKED",
            RefusalReason::OutOfHours => "OUT_OF_HOURS",
            RefusalReason::MunicipalitySuspended => "MUNICIPALITY_SUSPENDED",
            RefusalReason::StaleReplica => "STALE_REPLICA",
            RefusalReason::InvalidRequest => "INVALID_REQUEST",
            RefusalReason::RequestIdReused => "REQUEST_ID_REUSED",
            RefusalReason::LayoutOverflow => "LAYOUT_OVERFLOW",
            RefusalReason::UndrawableCharacter => "UNDRAWABLE_CHARACTER",
            RefusalReason::PersonalDataErased => "PERSONAL_DATA_ERASED",
        }
    }

    pub fn code_family(self) -> CodeFamily {
        match self {
            RefusalReason::MunicipalitySuspended | RefusalReason::StaleReplica => CodeFamily::Unavailable,
            RefusalReason::InvalidRequest => CodeFamily::InvalidArgument,
            RefusalReason::RequestIdReused => CodeFamily::AlreadyExists,
            _ => CodeFamily::FailedPrecondition,
        }
    }
}

/// A refused request: the contract reason and a human-readable message free of personal data.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error("{}: {message}", reason.as_str())]
pub struct Refusal {
    pub reason: RefusalReason,
    pub message: String,
}

impl Refusal {
    pub fn new(reason: RefusalReason, message: impl Into<String>) -> Refusal {
        Refusal { reason, message: message.into() }
    }
}

fn refuse<T>(reason: RefusalReason, message: &str) -> Result<T, Refusal> {
    Err(Refusal::new(reason, message))
}

/// What a 住民票の写し request will print, decided by [`check_resident_record`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResidentRecordPlan {
    pub municipality_code: String,
    pub requester_id: String,
    pub household_id: String,
    /// The persons to print, in household order (head first, then registration order).
    pub subject_ids: Vec<String>,
    /// Every current member is printed (世帯全員).
    pub whole_household: bool,
    pub include_relationship: bool,
    pub include_domicile: bool,
    pub include_personal_number: bool,
    /// Normalised: a request's 0 means 1.
    pub copies: u32,
    /// Resident fee for all copies.
    pub fee_yen: u32,
}

/// The resident's fee: the municipality's fee for the type per copy × copies (0 copies counts as 1).
pub fn resident_fee(settings: &Settings, certificate_type: CertificateType, copies: u32) -> u32 {
    settings.fee_per_copy(certificate_type).saturating_mul(copies.max(1))
}

/// 29 December to 3 January: no kiosk service (年末年始).
pub fn is_year_end_closure(date: Date) -> bool {
    (date.month == 12 && date.day >= 29) || (date.month == 1 && date.day <= 3)
}

/// Checks the request shape (INVALID_REQUEST) before looking at any data.
fn check_request_shape(req: &IssueRequest, expected: CertificateType) -> Result<(), Refusal> {
    use RefusalReason::InvalidRequest;
    if req.request_id.is_empty()
        || req.request_id.len() > MAX_REQUEST_ID_BYTES
        || !req.request_id.bytes().all(|c| c.is_ascii_graphic())
    {
        return refuse(InvalidRequest, "request_id must be 1 to 128 printable ASCII characters");
    }
    if check_municipality_code(&req.municipality_code).is_err() {
        return refuse(InvalidRequest, "municipality_code is not a valid 6-digit local government code");
    }
    if req.r#type != expected as i32 {
        return refuse(InvalidRequest, "certificate type does not match this check");
    }
    if req.copies > MAX_COPIES {
        return refuse(InvalidRequest, "copies must be at most 10");
    }
    let distinct: BTreeSet<&String> = req.subject_resident_ids.iter().collect();
    if req.subject_resident_ids.len() > MAX_SUBJECTS || distinct.len() != req.subject_resident_ids.len() {
        return refuse(InvalidRequest, "subject_resident_ids must be distinct and at most 64");
    }
    Ok(())
}

/// Municipality-level gates shared by every certificate type: known, active, open, type enabled.
fn check_municipality<'a>(
    state: &'a State,
    req: &IssueRequest,
    certificate_type: CertificateType,
    now: JstDateTime,
) -> Result<&'a Municipality, Refusal> {
    let Some(m) = state.municipality(&req.municipality_code) else {
        return refuse(RefusalReason::InvalidRequest, "municipality is not served by this engine");
    };
    if !m.link().is_active() {
        return refuse(RefusalReason::MunicipalitySuspended, "issuance for this municipality is stopped");
    }
    if m.settings().year_end_closure && is_year_end_closure(now.date) {
        return refuse(RefusalReason::OutOfHours, "no kiosk service from 29 December to 3 January");
    }
    if !m.settings().in_service_hours(now.minute_of_day()) {
        return refuse(RefusalReason::OutOfHours, "outside the municipality's service hours");
    }
    if !m.settings().type_enabled(certificate_type) {
        return refuse(RefusalReason::TypeDisabled, "the municipality does not issue this certificate at kiosks");
    }
    Ok(m)
}

/// The requesting resident, identified by card: valid card, current record, 15 or older.
fn check_requester<'a>(m: &'a Municipality, card_serial: &str, today: Date) -> Result<&'a Resident, Refusal> {
    let Some(card) = m.card(card_serial) else {
        return refuse(RefusalReason::UnknownCard, "the card is not registered with this municipality");
    };
    if card.revoked {
        return refuse(RefusalReason::CardRevoked, "the card's certificate is revoked");
    }
    let Some(requester) = m.resident(&card.resident_id) else {
        return refuse(RefusalReason::UnknownCard, "the card is not registered with this municipality");
    };
    if m.is_forgotten(&requester.id) {
        return refuse(RefusalReason::PersonalDataErased, "the requester's personal data was erased");
    }
    if requester.is_removed() {
        return refuse(RefusalReason::NotResident, "the requester's resident record is removed");
    }
    if requester.birth_date.age_on(today) < MIN_AGE {
        return refuse(RefusalReason::UnderAge, "kiosk issuance requires the requester to be 15 or older");
    }
    Ok(requester)
}

fn moved_in_on(r: &Resident, today: Date) -> bool {
    r.resident_since == today || r.address_since == today
}

/// Decides a 住民票の写し (RESIDENT_RECORD) request. Checks run in a fixed order so a request with several
/// problems always gets the same reason: request shape, municipality (known, active, open, type enabled,
/// personal number allowed), card, requester, household-wide bars, subjects, per-person bars, blocks.
pub fn check_resident_record(
    state: &State,
    req: &IssueRequest,
    now: JstDateTime,
) -> Result<ResidentRecordPlan, Refusal> {
    check_household_request(state, req, CertificateType::ResidentRecord, now)
}

/// The rules of [`check_resident_record`] for any certificate of the resident record that a household member
/// may obtain for the household (住民票の写し and 住民票記載事項証明書).
pub(crate) fn check_household_request(
    state: &State,
    req: &IssueRequest,
    certificate_type: CertificateType,
    now: JstDateTime,
) -> Result<ResidentRecordPlan, Refusal> {
    check_request_shape(req, certificate_type)?;
    let m = check_municipality(state, req, certificate_type, now)?;
    if req.include_personal_number && !m.settings().personal_number_allowed {
        return refuse(
            RefusalReason::TypeDisabled,
            "the municipality does not allow the personal number on kiosk certificates",
        );
    }
    let today = now.date;
    let requester = check_requester(m, &req.card_serial, today)?;
    let members = m.household_members(&requester.household_id);
    if members.iter().any(|r| r.support_measure) {
        return refuse(RefusalReason::SupportMeasure, "a support measure is in force in the household");
    }
    if members.iter().any(|r| matches!(r.status, ResidentStatus::MoveOutFiled { .. })) {
        return refuse(RefusalReason::MovingOut, "a move-out is filed in the household");
    }

    let whole_household = req.subject_resident_ids.is_empty();
    let subjects: Vec<&Resident> = if whole_household {
        members.clone()
    } else {
        let mut listed = Vec::with_capacity(req.subject_resident_ids.len());
        for id in &req.subject_resident_ids {
            match m.resident(id) {
                Some(r) if r.household_id == requester.household_id => listed.push(r),
                _ => return refuse(RefusalReason::NotSameHousehold, "a subject is not in the requester's household"),
            }
        }
        if listed.iter().any(|r| r.is_removed()) {
            return refuse(RefusalReason::NotResident, "a subject's resident record is removed");
        }
        // Household order, whatever order the kiosk listed them in.
        members.iter().copied().filter(|r| listed.iter().any(|l| l.id == r.id)).collect()
    };
    let head = m.household_head(&requester.household_id);
    let printed_head = head.filter(|_| req.include_relationship);

    // The head is printed with the relationship option; a listing that would print an erased record is refused
    // rather than printed with a member missing.
    if subjects.iter().copied().chain(printed_head).any(|r| m.is_forgotten(&r.id)) {
        return refuse(RefusalReason::PersonalDataErased, "the personal data of a printed record was erased");
    }
    if std::iter::once(requester).chain(subjects.iter().copied()).any(|r| moved_in_on(r, today)) {
        return refuse(RefusalReason::MovedInToday, "no kiosk issuance on the day of moving in");
    }
    // The requester too, printed or not, as for every other certificate type (`person.rs`): the brief bars
    // kiosk issuance for a record awaiting a non-standard character, and the kiosk reads the requester's.
    if std::iter::once(requester).chain(subjects.iter().copied()).chain(printed_head).any(|r| r.gaiji_pending) {
        return refuse(RefusalReason::GaijiPending, "a record awaits registration of a non-standard character");
    }
    if std::iter::once(requester).chain(subjects.iter().copied()).any(|r| m.is_blocked(&r.id)) {
        return refuse(RefusalReason::IssuanceBlocked, "the municipality has blocked kiosk issuance for a record");
    }

    let copies = req.copies.max(1);
    Ok(ResidentRecordPlan {
        municipality_code: req.municipality_code.clone(),
        requester_id: requester.id.clone(),
        household_id: requester.household_id.clone(),
        whole_household: whole_household || subjects.len() == members.len(),
        subject_ids: subjects.iter().map(|r| r.id.clone()).collect(),
        include_relationship: req.include_relationship,
        include_domicile: req.include_domicile,
        include_personal_number: req.include_personal_number,
        copies,
        fee_yen: resident_fee(m.settings(), certificate_type, copies),
    })
}

/// Full name as printed: family and given name separated by an ideographic space.
pub fn full_name(r: &Resident) -> String {
    if r.given_name.is_empty() {
        r.family_name.clone()
    } else {
        format!("{}\u{3000}{}", r.family_name, r.given_name)
    }
}

fn non_empty(s: &str) -> Option<String> {
    (!s.is_empty()).then(|| s.to_owned())
}

/// Builds the ready-to-render 住民票の写し from a plan made against the same state, and the log positions of
/// the change events it was made from (ascending, distinct). Fails only if the state no longer matches the
/// plan (a programming error in the caller), never with personal data in the message.
pub fn build_resident_record(
    state: &State,
    plan: &ResidentRecordPlan,
    certificate_id: &str,
    issued_on: Date,
    copies: u32,
) -> Result<(ResidentRecordCertificate, Vec<u64>), Refusal> {
    let stale = || Refusal::new(RefusalReason::StaleReplica, "the data changed between the check and the build");
    let m = state.municipality(&plan.municipality_code).ok_or_else(stale)?;
    let requester = m.resident(&plan.requester_id).ok_or_else(stale)?;
    let head = m.household_head(&plan.household_id).filter(|_| plan.include_relationship);
    let mut positions: Vec<u64> = Vec::new();
    let mut persons = Vec::with_capacity(plan.subject_ids.len());
    for id in &plan.subject_ids {
        let r = m.resident(id).ok_or_else(stale)?;
        positions.extend(&r.provenance);
        persons.push(PersonEntry {
            family_name: r.family_name.clone(),
            given_name: r.given_name.clone(),
            family_name_kana: r.family_name_kana.clone(),
            given_name_kana: r.given_name_kana.clone(),
            birth_date: r.birth_date,
            sex: r.sex,
            relationship: plan.include_relationship.then(|| r.relationship.clone()),
            resident_since: r.resident_since,
            address_since: r.address_since,
            previous_address: non_empty(&r.previous_address),
            registered_domicile: plan.include_domicile.then(|| non_empty(&r.registered_domicile)).flatten(),
            domicile_head: plan.include_domicile.then(|| non_empty(&r.domicile_head)).flatten(),
            personal_number: (plan.include_personal_number && m.settings().personal_number_allowed)
                .then(|| non_empty(&r.personal_number))
                .flatten(),
        });
    }
    positions.extend(&requester.provenance);
    if let Some(h) = head {
        positions.extend(&h.provenance);
    }
    positions.sort_unstable();
    positions.dedup();
    let record = ResidentRecordCertificate {
        municipality: m.settings().header(&plan.municipality_code),
        certificate_id: certificate_id.to_owned(),
        issued_on,
        address: requester.address.clone(),
        household_head_name: head.map(full_name),
        whole_household: plan.whole_household,
        persons,
        copies: copies.max(1),
    };
    Ok((record, positions))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testkit::*;
    use bcl_proto::admin_action::Action;
    use bcl_proto::change_event::Body;
    use bcl_proto::{
        LogLeaf, MoveOutFiled, MunicipalitySettings, ResidentChanged, ResidentRemoved, SetIssuanceBlockRequest,
        SetMaintenanceRequest, SupportMeasureChanged,
    };

    fn now(s: &str) -> JstDateTime {
        JstDateTime::parse_rfc3339(s).unwrap()
    }

    const NOON: &str = "2026-04-01T12:00:00+09:00";

    fn request(card: &str, subjects: &[&str]) -> IssueRequest {
        IssueRequest {
            request_id: "req-1".into(),
            centre: bcl_proto::Centre::East as i32,
            kiosk_id: "kiosk-1".into(),
            municipality_code: CODE.into(),
            card_serial: card.into(),
            r#type: CertificateType::ResidentRecord as i32,
            subject_resident_ids: subjects.iter().map(|s| s.to_string()).collect(),
            copies: 1,
            ..Default::default()
        }
    }

    /// The household log plus `more` change events (numbered after it) and admin leaves.
    fn state_with(more: Vec<Body>, admin_leaves: Vec<LogLeaf>) -> State {
        let mut log = household_log();
        let base = 10;
        log.extend(more.into_iter().enumerate().map(|(i, b)| leaf(event(base + 1 + i as u64, b))));
        log.extend(admin_leaves);
        fold(&log)
    }

    fn reason(state: &State, req: &IssueRequest, at: &str) -> RefusalReason {
        check_resident_record(state, req, now(at)).expect_err("expected a refusal").reason
    }

    #[test]
    fn reason_names_and_code_families() {
        let names: BTreeSet<&str> = RefusalReason::ALL.iter().map(|r| r.as_str()).collect();
        assert_eq!(names.len(), RefusalReason::ALL.len());
        assert_eq!(RefusalReason::MunicipalitySuspended.code_family(), CodeFamily::Unavailable);
        assert_eq!(RefusalReason::StaleReplica.code_family(), CodeFamily::Unavailable);
        assert_eq!(RefusalReason::InvalidRequest.code_family(), CodeFamily::InvalidArgument);
        assert_eq!(RefusalReason::RequestIdReused.code_family(), CodeFamily::AlreadyExists);
        assert_eq!(RefusalReason::UnderAge.code_family(), CodeFamily::FailedPrecondition);
        assert!(names.iter().all(|n| n.bytes().all(|c| c.is_ascii_uppercase() || c == b'_')));
    }

    #[test]
    fn whole_household_plan_is_in_household_order() {
        let state = state_with(vec![], vec![]);
        let plan = check_resident_record(&state, &request("K-S", &[]), now(NOON)).unwrap();
        assert_eq!(plan.subject_ids, vec!["H", "S", "C", "T"]);
        assert!(plan.whole_household);
        assert_eq!(plan.fee_yen, 300);
        // Listing members in another order prints them in household order; all of them = 世帯全員.
        let plan = check_resident_record(&state, &request("K-S", &["T", "S"]), now(NOON)).unwrap();
        assert_eq!(plan.subject_ids, vec!["S", "T"]);
        assert!(!plan.whole_household);
    }

    #[test]
    fn head_first_even_when_registered_later() {
        let state = state_with(
            vec![
                Body::ResidentChanged(ResidentChanged { resident_id: "H".into(), household_head: Some(false), ..Default::default() }),
                Body::ResidentChanged(ResidentChanged { resident_id: "T".into(), household_head: Some(true), ..Default::default() }),
            ],
            vec![],
        );
        let plan = check_resident_record(&state, &request("K-S", &[]), now(NOON)).unwrap();
        assert_eq!(plan.subject_ids, vec!["T", "H", "S", "C"]);
    }

    #[test]
    fn malformed_requests() {
        let state = state_with(vec![], vec![]);
        let mut r = request("K-H", &[]);
        r.request_id.clear();
        assert_eq!(reason(&state, &r, NOON), RefusalReason::InvalidRequest);
        let mut r = request("K-H", &[]);
        r.copies = 11;
        assert_eq!(reason(&state, &r, NOON), RefusalReason::InvalidRequest);
        r.copies = 10;
        assert_eq!(check_resident_record(&state, &r, now(NOON)).unwrap().fee_yen, 3000);
        let mut r = request("K-H", &[]);
        r.r#type = CertificateType::SealRegistration as i32;
        assert_eq!(reason(&state, &r, NOON), RefusalReason::InvalidRequest);
        let mut r = request("K-H", &[]);
        r.municipality_code = "131017".into();
        assert_eq!(reason(&state, &r, NOON), RefusalReason::InvalidRequest);
        let mut r = request("K-H", &[]);
        r.municipality_code = "011002".into(); // valid code, not served
        assert_eq!(reason(&state, &r, NOON), RefusalReason::InvalidRequest);
        assert_eq!(reason(&state, &request("K-H", &["S", "S"]), NOON), RefusalReason::InvalidRequest);
    }

    #[test]
    fn municipality_gates() {
        let maint = admin(Action::SetMaintenance(SetMaintenanceRequest { municipality_code: CODE.into(), on: true, reason: "x".into() }));
        assert_eq!(reason(&state_with(vec![], vec![maint]), &request("K-H", &[]), NOON), RefusalReason::MunicipalitySuspended);
        // A gap: seq 12 arrives without 11.
        let mut log = household_log();
        log.push(leaf(event(12, card("H", "K-H2"))));
        assert_eq!(reason(&fold(&log), &request("K-H", &[]), NOON), RefusalReason::MunicipalitySuspended);

        let state = state_with(vec![], vec![]);
        for at in ["2026-12-29T12:00:00+09:00", "2027-01-03T12:00:00+09:00", "2026-04-01T06:29:59+09:00",
            "2026-04-01T23:00:00+09:00", "2026-04-01T03:00:00Z" /* 12:00 JST is fine */] {
            let expected = if at.ends_with('Z') { None } else { Some(RefusalReason::OutOfHours) };
            assert_eq!(check_resident_record(&state, &request("K-H", &[]), now(at)).err().map(|r| r.reason), expected, "{at}");
        }
        assert!(check_resident_record(&state, &request("K-H", &[]), now("2026-12-28T22:59:59+09:00")).is_ok());
        assert!(check_resident_record(&state, &request("K-H", &[]), now("2027-01-04T06:30:00+09:00")).is_ok());

        let unconfigured = fold(&household_log()[1..]);
        assert_eq!(reason(&unconfigured, &request("K-H", &[]), NOON), RefusalReason::TypeDisabled);
        let other_type = admin(Action::UpdateSettings(MunicipalitySettings {
            enabled_types: vec![CertificateType::SealRegistration as i32],
            ..Default::default()
        }));
        assert_eq!(reason(&state_with(vec![], vec![other_type]), &request("K-H", &[]), NOON), RefusalReason::TypeDisabled);

        let mut r = request("K-H", &[]);
        r.include_personal_number = true;
        let refusal = check_resident_record(&state, &r, now(NOON)).unwrap_err();
        assert_eq!(refusal.reason, RefusalReason::TypeDisabled);
        assert!(refusal.message.contains("personal number"));
        let allow = admin(Action::UpdateSettings(MunicipalitySettings { personal_number_allowed: Some(true), ..Default::default() }));
        assert!(check_resident_record(&state_with(vec![], vec![allow]), &r, now(NOON)).is_ok());
    }

    #[test]
    fn card_and_requester() {
        let state = state_with(vec![Body::CardRevoked(bcl_proto::CardRevoked { card_serial: "K-S".into() })], vec![]);
        assert_eq!(reason(&state, &request("K-NONE", &[]), NOON), RefusalReason::UnknownCard);
        assert_eq!(reason(&state, &request("K-S", &[]), NOON), RefusalReason::CardRevoked);
        let removed = Body::ResidentRemoved(ResidentRemoved { resident_id: "S".into(), reason: 2 });
        assert_eq!(reason(&state_with(vec![removed], vec![]), &request("K-S", &[]), NOON), RefusalReason::NotResident);
        let state = state_with(vec![], vec![]);
        assert_eq!(reason(&state, &request("K-C", &[]), NOON), RefusalReason::UnderAge);
        // T was born 2010-06-01: 14 the day before the 15th birthday, 15 on it.
        assert_eq!(reason(&state, &request("K-T", &[]), "2025-05-31T12:00:00+09:00"), RefusalReason::UnderAge);
        assert!(check_resident_record(&state, &request("K-T", &[]), now("2025-06-01T12:00:00+09:00")).is_ok());
    }

    #[test]
    fn household_bars() {
        let support = Body::SupportMeasureChanged(SupportMeasureChanged { resident_id: "C".into(), in_force: true });
        assert_eq!(reason(&state_with(vec![support], vec![]), &request("K-H", &["H"]), NOON), RefusalReason::SupportMeasure);
        let lifted = vec![
            Body::SupportMeasureChanged(SupportMeasureChanged { resident_id: "C".into(), in_force: true }),
            Body::SupportMeasureChanged(SupportMeasureChanged { resident_id: "C".into(), in_force: false }),
        ];
        assert!(check_resident_record(&state_with(lifted, vec![]), &request("K-H", &["H"]), now(NOON)).is_ok());
        let moving = Body::MoveOutFiled(MoveOutFiled { resident_id: "S".into(), planned_date: "2026-04-10".into(), destination: "大阪府".into() });
        assert_eq!(reason(&state_with(vec![moving], vec![]), &request("K-H", &["H"]), NOON), RefusalReason::MovingOut);
        // Another household's support measure does not matter.
        let other = Body::SupportMeasureChanged(SupportMeasureChanged { resident_id: "X".into(), in_force: true });
        assert!(check_resident_record(&state_with(vec![other], vec![]), &request("K-H", &[]), now(NOON)).is_ok());
    }

    #[test]
    fn subjects() {
        let state = state_with(vec![Body::ResidentRemoved(ResidentRemoved { resident_id: "C".into(), reason: 2 })], vec![]);
        assert_eq!(reason(&state, &request("K-H", &["X"]), NOON), RefusalReason::NotSameHousehold);
        assert_eq!(reason(&state, &request("K-H", &["nobody"]), NOON), RefusalReason::NotSameHousehold);
        assert_eq!(reason(&state, &request("K-H", &["H", "C"]), NOON), RefusalReason::NotResident);
        // The deceased child has left the household: 世帯全員 is the three remaining members.
        let plan = check_resident_record(&state, &request("K-H", &[]), now(NOON)).unwrap();
        assert_eq!(plan.subject_ids, vec!["H", "S", "T"]);
    }

    #[test]
    fn per_person_bars() {
        let moved = Body::ResidentChanged(ResidentChanged { resident_id: "S".into(), address_since: Some("2026-04-01".into()), ..Default::default() });
        let state = state_with(vec![moved], vec![]);
        assert_eq!(reason(&state, &request("K-H", &[]), NOON), RefusalReason::MovedInToday);
        assert!(check_resident_record(&state, &request("K-H", &["H"]), now(NOON)).is_ok());
        assert!(check_resident_record(&state, &request("K-H", &[]), now("2026-04-02T12:00:00+09:00")).is_ok());

        let gaiji = Body::ResidentChanged(ResidentChanged { resident_id: "C".into(), gaiji_pending: Some(true), ..Default::default() });
        let state = state_with(vec![gaiji], vec![]);
        assert_eq!(reason(&state, &request("K-H", &[]), NOON), RefusalReason::GaijiPending);
        assert!(check_resident_record(&state, &request("K-H", &["H", "S"]), now(NOON)).is_ok());
        // The requester's own pending character bars the kiosk even when only another member is printed.
        let gaiji = Body::ResidentChanged(ResidentChanged { resident_id: "S".into(), gaiji_pending: Some(true), ..Default::default() });
        let state = state_with(vec![gaiji], vec![]);
        assert_eq!(reason(&state, &request("K-S", &["H"]), NOON), RefusalReason::GaijiPending);

        let block = |on: bool| admin(Action::SetIssuanceBlock(SetIssuanceBlockRequest { municipality_code: CODE.into(), resident_id: "S".into(), blocked: on }));
        let state = state_with(vec![], vec![block(true)]);
        assert_eq!(reason(&state, &request("K-H", &[]), NOON), RefusalReason::IssuanceBlocked);
        assert_eq!(reason(&state, &request("K-S", &["H"]), NOON), RefusalReason::IssuanceBlocked);
        assert!(check_resident_record(&state, &request("K-H", &["H", "C"]), now(NOON)).is_ok());
        assert!(check_resident_record(&state_with(vec![], vec![block(true), block(false)]), &request("K-H", &[]), now(NOON)).is_ok());
    }

    #[test]
    fn build_fills_optional_items_only_when_requested() {
        let allow = admin(Action::UpdateSettings(MunicipalitySettings { personal_number_allowed: Some(true), ..Default::default() }));
        let state = state_with(vec![], vec![allow]);
        let today = Date::parse("2026-04-01").unwrap();

        let plain = check_resident_record(&state, &request("K-S", &["S", "C"]), now(NOON)).unwrap();
        let (rec, positions) = build_resident_record(&state, &plain, "CERT-1", today, 2).unwrap();
        assert_eq!(rec.persons.len(), 2);
        assert_eq!(rec.household_head_name, None);
        assert!(rec.persons.iter().all(|p| p.relationship.is_none() && p.registered_domicile.is_none() && p.personal_number.is_none()));
        assert_eq!(rec.municipality.name, "東京都千代田区");
        assert_eq!(rec.copies, 2);
        assert!(!rec.whole_household);
        // S registered at position 2 (seq 2), C at 3, S's card at 7, C's card at 8: H's are not included.
        assert_eq!(positions, vec![2, 3, 7, 8]);

        let mut full = request("K-S", &[]);
        full.include_relationship = true;
        full.include_domicile = true;
        full.include_personal_number = true;
        let plan = check_resident_record(&state, &full, now(NOON)).unwrap();
        let (rec, positions) = build_resident_record(&state, &plan, "CERT-2", today, 1).unwrap();
        assert_eq!(rec.household_head_name.as_deref(), Some("山田\u{3000}名H"));
        assert_eq!(rec.persons[0].given_name, "名H");
        assert_eq!(rec.persons[0].relationship.as_deref(), Some("世帯主"));
        assert!(rec.persons.iter().all(|p| p.registered_domicile.is_some() && p.domicile_head.is_some()));
        assert!(rec.persons.iter().all(|p| p.personal_number.as_deref() == Some("123456789018")));
        assert!(rec.whole_household);
        assert_eq!(positions, vec![1, 2, 3, 4, 6, 7, 8, 9]);
    }

    #[test]
    fn refusal_messages_hold_no_personal_data() {
        // Exercise several refusals and check none mentions a name, address, id or date of the data.
        let state = state_with(vec![Body::SupportMeasureChanged(SupportMeasureChanged { resident_id: "C".into(), in_force: true })], vec![]);
        for (card, subjects) in [("K-H", vec![]), ("K-C", vec![]), ("K-NONE", vec![]), ("K-X", vec!["H"])] {
            let msg = check_resident_record(&state, &request(card, &subjects), now(NOON)).unwrap_err().to_string();
            for secret in ["山田", "千代田区千代田", "K-", "1980", "名"] {
                assert!(!msg.contains(secret), "{msg}");
            }
        }
    }
}
