//! 印鑑登録証明書 (SEAL_REGISTRATION): the registered person only, with a registration in force.

use bcl_proto::{CertificateType, IssueRequest};

use super::person::{check_person_request, check_printed_persons, check_self_only, lookup, stale};
use super::{refuse, PersonPlan, Refusal, RefusalReason};
use crate::date::JstDateTime;
use crate::record::{Date, SealCertificate};
use crate::state::State;

pub(super) fn check(state: &State, req: &IssueRequest, now: JstDateTime) -> Result<PersonPlan, Refusal> {
    let t = CertificateType::SealRegistration;
    let (m, requester) = check_person_request(state, req, t, now)?;
    check_self_only(req, requester)?;
    check_printed_persons(m, requester, &[], now.date)?;
    match &requester.seal {
        Some(seal) if !seal.abolished => {}
        Some(_) => return refuse(RefusalReason::NoSealRegistration, "the seal registration is abolished"),
        None => return refuse(RefusalReason::NoSealRegistration, "no seal is registered"),
    }
    Ok(PersonPlan::new(m, req, t, requester, vec![requester.id.clone()], 0))
}

pub(super) fn build(
    state: &State,
    plan: &PersonPlan,
    certificate_id: &str,
    issued_on: Date,
) -> Result<(SealCertificate, Vec<u64>), Refusal> {
    let (m, r) = lookup(state, plan, &plan.requester_id)?;
    let seal = r.seal.as_ref().filter(|s| !s.abolished).ok_or_else(stale)?;
    let record = SealCertificate {
        municipality: m.settings().header(&plan.municipality_code),
        certificate_id: certificate_id.to_owned(),
        issued_on,
        registration_number: seal.registration_number.clone(),
        family_name: r.family_name.clone(),
        given_name: r.given_name.clone(),
        birth_date: r.birth_date,
        sex: r.sex,
        address: r.address.clone(),
        seal_image_png: seal.image_png.clone(),
        copies: plan.copies,
    };
    Ok((record, r.provenance.clone()))
}
