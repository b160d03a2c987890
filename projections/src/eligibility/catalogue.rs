//! Every kiosk certificate behind one entry point: [`check_request`] decides by the request's type which
//! rules apply and returns a [`Plan`]; [`build_certificate`] turns the plan into the ready-to-render
//! [`CertificateDocument`] and the log positions it was made from.

use bcl_proto::{CertificateType, IssueRequest};

use super::{
    build_resident_record, check_household_request, check_resident_record, disaster, family_register, items, refuse,
    seal, tax, Refusal, RefusalReason, ResidentRecordPlan,
};
use crate::date::JstDateTime;
use crate::record::{CertificateDocument, Date};
use crate::state::State;

/// What a request will print, decided against one state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Plan {
    ResidentRecord(ResidentRecordPlan),
    ResidentRecordItems(ResidentRecordPlan),
    /// Seal, tax, family register and disaster certificates.
    Person(PersonPlan),
}

/// The plan of a certificate about the card holder (and, for 戸籍 and 罹災, the persons it lists).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PersonPlan {
    pub certificate_type: CertificateType,
    pub municipality_code: String,
    pub requester_id: String,
    /// The persons printed, in printed order.
    pub subject_ids: Vec<String>,
    /// The fiscal year printed (tax certificates), 0 otherwise.
    pub fiscal_year: u32,
    pub copies: u32,
    /// Resident fee for all copies.
    pub fee_yen: u32,
}

impl Plan {
    pub fn fee_yen(&self) -> u32 {
        match self {
            Plan::ResidentRecord(p) | Plan::ResidentRecordItems(p) => p.fee_yen,
            Plan::Person(p) => p.fee_yen,
        }
    }

    pub fn copies(&self) -> u32 {
        match self {
            Plan::ResidentRecord(p) | Plan::ResidentRecordItems(p) => p.copies,
            Plan::Person(p) => p.copies,
        }
    }
}

/// Decides any kiosk request by its certificate type.
pub fn check_request(state: &State, req: &IssueRequest, now: JstDateTime) -> Result<Plan, Refusal> {
    use CertificateType as T;
    match T::try_from(req.r#type) {
        Ok(T::ResidentRecord) => check_resident_record(state, req, now).map(Plan::ResidentRecord),
        Ok(T::ResidentRecordItems) => {
            check_household_request(state, req, T::ResidentRecordItems, now).map(Plan::ResidentRecordItems)
        }
        Ok(T::SealRegistration) => seal::check(state, req, now).map(Plan::Person),
        Ok(t @ (T::TaxAssessment | T::Income)) => tax::check(state, req, t, now).map(Plan::Person),
        Ok(t @ (T::FamilyRegister | T::FamilyRegisterPersonal | T::FamilyRegisterAnnex)) => {
            family_register::check(state, req, t, now).map(Plan::Person)
        }
        Ok(T::DisasterDamage) => disaster::check(state, req, now).map(Plan::Person),
        Ok(T::Unspecified) | Err(_) => refuse(RefusalReason::InvalidRequest, "unknown certificate type"),
    }
}

/// Builds the ready-to-render certificate from a plan made against the same state, with the ascending,
/// distinct log positions of the change events it prints. Fails (STALE_REPLICA) only if the state no longer
/// matches the plan.
pub fn build_certificate(
    state: &State,
    plan: &Plan,
    certificate_id: &str,
    issued_on: Date,
) -> Result<(CertificateDocument, Vec<u64>), Refusal> {
    use CertificateDocument as D;
    match plan {
        Plan::ResidentRecord(p) => {
            build_resident_record(state, p, certificate_id, issued_on, p.copies).map(|(r, s)| (D::ResidentRecord(r), s))
        }
        Plan::ResidentRecordItems(p) => {
            items::build(state, p, certificate_id, issued_on).map(|(r, s)| (D::ResidentRecordItems(r), s))
        }
        Plan::Person(p) => match p.certificate_type {
            CertificateType::SealRegistration => seal::build(state, p, certificate_id, issued_on).map(|(r, s)| (D::Seal(r), s)),
            CertificateType::TaxAssessment | CertificateType::Income => {
                tax::build(state, p, certificate_id, issued_on).map(|(r, s)| (D::Tax(r), s))
            }
            CertificateType::FamilyRegister
            | CertificateType::FamilyRegisterPersonal
            | CertificateType::FamilyRegisterAnnex => {
                family_register::build(state, p, certificate_id, issued_on).map(|(r, s)| (D::FamilyRegister(r), s))
            }
            CertificateType::DisasterDamage => {
                disaster::build(state, p, certificate_id, issued_on).map(|(r, s)| (D::DisasterDamage(r), s))
            }
            CertificateType::ResidentRecord | CertificateType::ResidentRecordItems | CertificateType::Unspecified => {
                refuse(RefusalReason::InvalidRequest, "certificate type does not match the plan")
            }
        },
    }
}
