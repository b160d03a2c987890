//! The gates shared by the certificates about a person rather than a household listing (印鑑登録, 税, 戸籍,
//! 罹災): the same shape, municipality, card and household checks as 住民票, in the same order, so a request
//! with several problems gets the same reason whatever its type.

use bcl_proto::{CertificateType, IssueRequest};

use super::{
    check_municipality, check_request_shape, check_requester, moved_in_on, refuse, resident_fee, PersonPlan,
    Refusal, RefusalReason,
};
use crate::date::JstDateTime;
use crate::record::Date;
use crate::state::{Municipality, Resident, ResidentStatus, State};

/// Shape, municipality, card, requester and the requester's household bars.
pub(super) fn check_person_request<'a>(
    state: &'a State,
    req: &IssueRequest,
    certificate_type: CertificateType,
    now: JstDateTime,
) -> Result<(&'a Municipality, &'a Resident), Refusal> {
    check_request_shape(req, certificate_type)?;
    let m = check_municipality(state, req, certificate_type, now)?;
    let requester = check_requester(m, &req.card_serial, now.date)?;
    check_household_bars(m, &requester.household_id)?;
    Ok((m, requester))
}

/// A support measure (支援措置) or a filed move-out (転出予定) anywhere in the household bars kiosk issuance
/// about any of its members.
pub(super) fn check_household_bars(m: &Municipality, household_id: &str) -> Result<(), Refusal> {
    let members = m.household_members(household_id);
    if members.iter().any(|r| r.support_measure) {
        return refuse(RefusalReason::SupportMeasure, "a support measure is in force in the household");
    }
    if members.iter().any(|r| matches!(r.status, ResidentStatus::MoveOutFiled { .. })) {
        return refuse(RefusalReason::MovingOut, "a move-out is filed in the household");
    }
    Ok(())
}

/// Per-person bars for the requester and everyone printed: moved in today, a pending non-standard
/// character, a municipality block (発行禁止).
pub(super) fn check_printed_persons(
    m: &Municipality,
    requester: &Resident,
    printed: &[&Resident],
    today: Date,
) -> Result<(), Refusal> {
    let everyone = || std::iter::once(requester).chain(printed.iter().copied());
    if everyone().any(|r| m.is_forgotten(&r.id)) {
        return refuse(RefusalReason::PersonalDataErased, "the personal data of a printed record was erased");
    }
    if everyone().any(|r| moved_in_on(r, today)) {
        return refuse(RefusalReason::MovedInToday, "no kiosk issuance on the day of moving in");
    }
    if everyone().any(|r| r.gaiji_pending) {
        return refuse(RefusalReason::GaijiPending, "a record awaits registration of a non-standard character");
    }
    if everyone().any(|r| m.is_blocked(&r.id)) {
        return refuse(RefusalReason::IssuanceBlocked, "the municipality has blocked kiosk issuance for a record");
    }
    Ok(())
}

/// Certificates the registered person alone may obtain: no subject, or exactly the requester.
pub(super) fn check_self_only(req: &IssueRequest, requester: &Resident) -> Result<(), Refusal> {
    match req.subject_resident_ids.as_slice() {
        [] => Ok(()),
        [only] if *only == requester.id => Ok(()),
        _ => refuse(RefusalReason::InvalidRequest, "this certificate is issued to the card holder only"),
    }
}

impl PersonPlan {
    pub(super) fn new(
        m: &Municipality,
        req: &IssueRequest,
        certificate_type: CertificateType,
        requester: &Resident,
        subject_ids: Vec<String>,
        fiscal_year: u32,
    ) -> PersonPlan {
        let copies = req.copies.max(1);
        PersonPlan {
            certificate_type,
            municipality_code: req.municipality_code.clone(),
            requester_id: requester.id.clone(),
            subject_ids,
            fiscal_year,
            copies,
            fee_yen: resident_fee(m.settings(), certificate_type, copies),
        }
    }
}

/// The state no longer matches a plan made against it: the caller prepared against another snapshot.
pub(super) fn stale() -> Refusal {
    Refusal::new(RefusalReason::StaleReplica, "the data changed between the check and the build")
}

/// The municipality and a resident of a plan, or [`stale`].
pub(super) fn lookup<'a>(
    state: &'a State,
    plan: &PersonPlan,
    resident_id: &str,
) -> Result<(&'a Municipality, &'a Resident), Refusal> {
    let m = state.municipality(&plan.municipality_code).ok_or_else(stale)?;
    let r = m.resident(resident_id).ok_or_else(stale)?;
    Ok((m, r))
}
