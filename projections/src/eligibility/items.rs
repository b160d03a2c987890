//! 住民票記載事項証明書 (RESIDENT_RECORD_ITEMS): the same persons and rules as 住民票の写し, certifying only the
//! items selected (氏名・生年月日・性別・住所 always; 世帯主・続柄, 本籍・筆頭者, 個人番号 on request).

use super::person::stale;
use super::{full_name, non_empty, Refusal, ResidentRecordPlan};
use crate::record::{Date, ItemsPerson, ResidentRecordItemsCertificate};
use crate::state::State;

pub(super) fn build(
    state: &State,
    plan: &ResidentRecordPlan,
    certificate_id: &str,
    issued_on: Date,
) -> Result<(ResidentRecordItemsCertificate, Vec<u64>), Refusal> {
    let m = state.municipality(&plan.municipality_code).ok_or_else(stale)?;
    let requester = m.resident(&plan.requester_id).ok_or_else(stale)?;
    let head = m.household_head(&plan.household_id).filter(|_| plan.include_relationship);
    let number_allowed = plan.include_personal_number && m.settings().personal_number_allowed;
    let mut positions = requester.provenance.clone();
    if let Some(h) = head {
        positions.extend(&h.provenance);
    }
    let mut persons = Vec::with_capacity(plan.subject_ids.len());
    for id in &plan.subject_ids {
        let r = m.resident(id).ok_or_else(stale)?;
        positions.extend(&r.provenance);
        persons.push(ItemsPerson {
            family_name: r.family_name.clone(),
            given_name: r.given_name.clone(),
            birth_date: r.birth_date,
            sex: r.sex,
            relationship: plan.include_relationship.then(|| r.relationship.clone()),
            registered_domicile: plan.include_domicile.then(|| non_empty(&r.registered_domicile)).flatten(),
            domicile_head: plan.include_domicile.then(|| non_empty(&r.domicile_head)).flatten(),
            personal_number: number_allowed.then(|| non_empty(&r.personal_number)).flatten(),
        });
    }
    positions.sort_unstable();
    positions.dedup();
    let record = ResidentRecordItemsCertificate {
        municipality: m.settings().header(&plan.municipality_code),
        certificate_id: certificate_id.to_owned(),
        issued_on,
        address: requester.address.clone(),
        household_head_name: head.map(full_name),
        persons,
        copies: plan.copies,
    };
    Ok((record, positions))
}
