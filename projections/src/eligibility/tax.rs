//! 課税/非課税証明書 (TAX_ASSESSMENT) and 所得証明書 (INCOME): the card holder's own assessment of one fiscal
//! year.

use bcl_proto::{CertificateType, IssueRequest};

use super::person::{check_person_request, check_printed_persons, check_self_only, lookup, stale};
use super::{refuse, PersonPlan, Refusal, RefusalReason};
use crate::date::JstDateTime;
use crate::record::{Date, TaxCertificate, TaxCertificateKind};
use crate::state::State;

/// The Japanese fiscal year (年度) a date falls in: it starts on 1 April, so 2027-03-31 is in 2026年度.
pub fn fiscal_year_of(date: Date) -> u32 {
    let year = if date.month >= 4 { date.year } else { date.year - 1 };
    year.max(0) as u32
}

pub(super) fn check(
    state: &State,
    req: &IssueRequest,
    t: CertificateType,
    now: JstDateTime,
) -> Result<PersonPlan, Refusal> {
    let (m, requester) = check_person_request(state, req, t, now)?;
    check_self_only(req, requester)?;
    check_printed_persons(m, requester, &[], now.date)?;
    let fiscal_year = if req.fiscal_year == 0 { fiscal_year_of(now.date) } else { req.fiscal_year };
    if !requester.tax.contains_key(&fiscal_year) {
        return refuse(RefusalReason::NoTaxAssessment, "no assessment exists for the requested fiscal year");
    }
    Ok(PersonPlan::new(m, req, t, requester, vec![requester.id.clone()], fiscal_year))
}

pub(super) fn build(
    state: &State,
    plan: &PersonPlan,
    certificate_id: &str,
    issued_on: Date,
) -> Result<(TaxCertificate, Vec<u64>), Refusal> {
    let (m, r) = lookup(state, plan, &plan.requester_id)?;
    let tax = r.tax.get(&plan.fiscal_year).ok_or_else(stale)?;
    let kind = match plan.certificate_type {
        CertificateType::Income => TaxCertificateKind::Income,
        _ => TaxCertificateKind::Assessment,
    };
    let record = TaxCertificate {
        kind,
        municipality: m.settings().header(&plan.municipality_code),
        certificate_id: certificate_id.to_owned(),
        issued_on,
        fiscal_year: plan.fiscal_year,
        family_name: r.family_name.clone(),
        given_name: r.given_name.clone(),
        birth_date: r.birth_date,
        address: r.address.clone(),
        total_income: tax.total_income,
        taxable_income: tax.taxable_income,
        municipal_tax: tax.municipal_tax,
        prefectural_tax: tax.prefectural_tax,
        exempt: tax.is_exempt(),
        copies: plan.copies,
    };
    Ok((record, r.provenance.clone()))
}
