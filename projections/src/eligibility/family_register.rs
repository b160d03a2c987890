//! 戸籍全部事項証明書 (FAMILY_REGISTER), 戸籍個人事項証明書 (FAMILY_REGISTER_PERSONAL) and 戸籍の附票の写し
//! (FAMILY_REGISTER_ANNEX): only a municipality that keeps the register (its 本籍地) may certify it, and only
//! for a card holder recorded in it.
//!
//! The register's persons are the municipality's current resident records carrying the register id; records
//! that were removed (転出, 死亡) are left out rather than printed without their 除籍 entry, which this data
//! link does not carry.

use bcl_proto::{CertificateType, IssueRequest};

use super::person::{check_household_bars, check_person_request, check_printed_persons, lookup, stale};
use super::{full_name, non_empty, refuse, PersonPlan, Refusal, RefusalReason};
use crate::date::JstDateTime;
use crate::record::{Date, FamilyRegisterCertificate, FamilyRegisterKind, RegisterPerson};
use crate::state::{FamilyRegister, Municipality, Resident, State};

fn kind_of(t: CertificateType) -> FamilyRegisterKind {
    match t {
        CertificateType::FamilyRegisterPersonal => FamilyRegisterKind::Personal,
        CertificateType::FamilyRegisterAnnex => FamilyRegisterKind::Annex,
        _ => FamilyRegisterKind::Full,
    }
}

/// The register the resident is recorded in, when this municipality keeps it.
fn local_register<'a>(m: &Municipality, r: &'a Resident) -> Option<&'a FamilyRegister> {
    let name = &m.settings().municipality_name;
    r.family_register.as_ref().filter(|f| !name.is_empty() && f.domicile.starts_with(name.as_str()))
}

/// Current persons of the register: the 筆頭者 first, then in the municipality's record order.
fn register_persons<'a>(m: &'a Municipality, register: &FamilyRegister) -> Vec<&'a Resident> {
    let mut persons: Vec<&Resident> = m
        .residents()
        .filter(|r| !r.is_removed())
        .filter(|r| r.family_register.as_ref().is_some_and(|f| f.register_id == register.register_id))
        .collect();
    persons.sort_by_key(|r| full_name(r) != register.head);
    persons
}

pub(super) fn check(
    state: &State,
    req: &IssueRequest,
    t: CertificateType,
    now: JstDateTime,
) -> Result<PersonPlan, Refusal> {
    let (m, requester) = check_person_request(state, req, t, now)?;
    let Some(register) = local_register(m, requester) else {
        return refuse(RefusalReason::NotInRegister, "the card holder is not in a family register kept here");
    };
    let persons = register_persons(m, register);
    for id in &req.subject_resident_ids {
        if !persons.iter().any(|p| p.id == *id) {
            return refuse(RefusalReason::NotInRegister, "a subject is not in the card holder's family register");
        }
    }
    let listed = |p: &&Resident| req.subject_resident_ids.contains(&p.id);
    let printed: Vec<&Resident> = match kind_of(t) {
        FamilyRegisterKind::Full => persons,
        FamilyRegisterKind::Personal if req.subject_resident_ids.is_empty() => vec![requester],
        FamilyRegisterKind::Annex if req.subject_resident_ids.is_empty() => persons,
        FamilyRegisterKind::Personal | FamilyRegisterKind::Annex => persons.into_iter().filter(listed).collect(),
    };
    for p in &printed {
        check_household_bars(m, &p.household_id)?;
    }
    check_printed_persons(m, requester, &printed, now.date)?;
    let subject_ids = printed.iter().map(|r| r.id.clone()).collect();
    Ok(PersonPlan::new(m, req, t, requester, subject_ids, 0))
}

pub(super) fn build(
    state: &State,
    plan: &PersonPlan,
    certificate_id: &str,
    issued_on: Date,
) -> Result<(FamilyRegisterCertificate, Vec<u64>), Refusal> {
    let (m, requester) = lookup(state, plan, &plan.requester_id)?;
    let register = local_register(m, requester).ok_or_else(stale)?;
    let kind = kind_of(plan.certificate_type);
    let mut positions = requester.provenance.clone();
    let mut persons = Vec::with_capacity(plan.subject_ids.len());
    for id in &plan.subject_ids {
        let r = m.resident(id).ok_or_else(stale)?;
        positions.extend(&r.provenance);
        let annex = kind == FamilyRegisterKind::Annex;
        persons.push(RegisterPerson {
            family_name: r.family_name.clone(),
            given_name: r.given_name.clone(),
            birth_date: r.birth_date,
            sex: r.sex,
            address: annex.then(|| (r.address.clone(), r.address_since)),
            previous_address: annex.then(|| non_empty(&r.previous_address)).flatten(),
        });
    }
    positions.sort_unstable();
    positions.dedup();
    let record = FamilyRegisterCertificate {
        kind,
        municipality: m.settings().header(&plan.municipality_code),
        certificate_id: certificate_id.to_owned(),
        issued_on,
        domicile: register.domicile.clone(),
        head: register.head.clone(),
        persons,
        copies: plan.copies,
    };
    Ok((record, positions))
}
