//! 罹災証明書 (DISASTER_DAMAGE): the damage to the applicant household's dwelling, as the municipality's survey
//! decided it, one sheet per disaster.

use bcl_proto::{CertificateType, DamageGrade, IssueRequest};

use super::person::{check_person_request, check_printed_persons, lookup};
use super::{full_name, refuse, PersonPlan, Refusal, RefusalReason};
use crate::date::JstDateTime;
use crate::record::{Date, DamageEntry, DisasterDamageCertificate};
use crate::state::{DamageRecord, Municipality, State};

/// The printed wording of a damage grade (内閣府「災害に係る住家の被害認定基準」), `None` for a grade the
/// engine does not know (never printed as something else).
pub fn grade_wording(grade: DamageGrade) -> Option<&'static str> {
    Some(match grade {
        DamageGrade::Total => "全壊",
        DamageGrade::LargeScaleHalf => "大規模半壊",
        DamageGrade::MediumScaleHalf => "中規模半壊",
        DamageGrade::Half => "半壊",
        DamageGrade::SemiHalf => "準半壊",
        DamageGrade::Partial => "一部損壊（準半壊に至らない）",
        DamageGrade::Unspecified => return None,
    })
}

/// The latest survey result per disaster (a re-survey replaces the earlier result), in order of the first
/// survey; results with an unknown grade are not certifiable.
fn certifiable<'a>(m: &'a Municipality, household_id: &str) -> Vec<&'a DamageRecord> {
    let mut latest: Vec<&DamageRecord> = Vec::new();
    for record in m.damage_records(household_id) {
        let same = |r: &&DamageRecord| r.disaster_name == record.disaster_name && r.disaster_date == record.disaster_date;
        match latest.iter().position(same) {
            Some(i) => latest[i] = record,
            None => latest.push(record),
        }
    }
    latest.retain(|r| grade_wording(r.grade).is_some());
    latest
}

pub(super) fn check(state: &State, req: &IssueRequest, now: JstDateTime) -> Result<PersonPlan, Refusal> {
    let t = CertificateType::DisasterDamage;
    let (m, requester) = check_person_request(state, req, t, now)?;
    let members = m.household_members(&requester.household_id);
    if !req.subject_resident_ids.iter().all(|id| members.iter().any(|r| r.id == *id)) {
        return refuse(RefusalReason::NotSameHousehold, "a subject is not in the requester's household");
    }
    check_printed_persons(m, requester, &members, now.date)?;
    if certifiable(m, &requester.household_id).is_empty() {
        return refuse(RefusalReason::NoDamageRecord, "no damage survey result is recorded for the household");
    }
    let subject_ids = members.iter().map(|r| r.id.clone()).collect();
    Ok(PersonPlan::new(m, req, t, requester, subject_ids, 0))
}

pub(super) fn build(
    state: &State,
    plan: &PersonPlan,
    certificate_id: &str,
    issued_on: Date,
) -> Result<(DisasterDamageCertificate, Vec<u64>), Refusal> {
    let (m, requester) = lookup(state, plan, &plan.requester_id)?;
    let mut positions = requester.provenance.clone();
    let mut household_names = Vec::with_capacity(plan.subject_ids.len());
    for id in &plan.subject_ids {
        let (_, r) = lookup(state, plan, id)?;
        positions.extend(&r.provenance);
        household_names.push(full_name(r));
    }
    let damages: Vec<DamageEntry> = certifiable(m, &requester.household_id)
        .into_iter()
        .map(|r| {
            positions.push(r.position);
            DamageEntry {
                disaster_name: r.disaster_name.clone(),
                disaster_date: r.disaster_date,
                grade: grade_wording(r.grade).unwrap_or_default().to_owned(),
            }
        })
        .collect();
    positions.sort_unstable();
    positions.dedup();
    let record = DisasterDamageCertificate {
        municipality: m.settings().header(&plan.municipality_code),
        certificate_id: certificate_id.to_owned(),
        issued_on,
        applicant_name: full_name(requester),
        address: requester.address.clone(),
        household_names,
        damages,
        copies: plan.copies,
    };
    Ok((record, positions))
}
