//! Pure domain of bcl: validation of change events, the fold of the log into the state certificates are
//! issued from, and the eligibility rules. No I/O, no async: everything here is a function of its inputs,
//! so the engine, the tests and an auditor's replay all get the same answers.
pub mod date;
pub mod eligibility;
pub mod fold;
pub mod link;
pub mod personal;
pub mod record;
pub mod settings;
pub mod state;
pub mod validate;

#[cfg(test)]
mod testkit;

pub use date::{DateError, Era, JstDateTime, Wareki};
pub use eligibility::{
    build_certificate, build_resident_record, check_request, check_resident_record, eligibility_today, fiscal_year_of, grade_wording,
    is_year_end_closure, resident_fee, CodeFamily, PersonPlan, Plan, Refusal, RefusalReason, ResidentRecordPlan,
};
pub use fold::ApplyError;
pub use link::{LiftRefusal, Link, Mode};
pub use record::{
    format_yen, CertificateDocument, Date, DamageEntry, DisasterDamageCertificate, FamilyRegisterCertificate,
    FamilyRegisterKind, ItemsPerson, MunicipalityHeader, PersonEntry, RegisterPerson, ResidentRecordCertificate,
    ResidentRecordItemsCertificate, SealCertificate, Sex, TaxCertificate, TaxCertificateKind,
};
pub use settings::Settings;
pub use state::{
    Admission, Card, ConflictKind, DamageRecord, FamilyRegister, Household, IssuedRef, Municipality, Resident,
    ResidentStatus, Seal, State, TaxAssessment,
};
pub use validate::{event_digest, validate_admission, validate_event, validate_settings, Rule, ValidationError};
