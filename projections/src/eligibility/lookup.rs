//! 中間DB参照: for a resident, what each certificate type would answer right now if the resident put their
//! own card into a kiosk — the same rules as a real request, so staff see exactly the refusal the kiosk
//! would show.

use bcl_proto::{CertificateType, Centre, IssueRequest};

use super::{check_request, Plan, Refusal, RefusalReason};
use crate::date::JstDateTime;
use crate::state::State;

/// Every certificate type, in enum order.
pub const ALL_TYPES: [CertificateType; 9] = [
    CertificateType::ResidentRecord,
    CertificateType::ResidentRecordItems,
    CertificateType::SealRegistration,
    CertificateType::TaxAssessment,
    CertificateType::Income,
    CertificateType::FamilyRegister,
    CertificateType::FamilyRegisterPersonal,
    CertificateType::FamilyRegisterAnnex,
    CertificateType::DisasterDamage,
];

/// The answer of every type to a self-request with the resident's card (a valid one if they have one),
/// whole household / self, current fiscal year, one copy.
pub fn eligibility_today(
    state: &State,
    municipality_code: &str,
    resident_id: &str,
    now: JstDateTime,
) -> Vec<(CertificateType, Result<Plan, Refusal>)> {
    let card = state.municipality(municipality_code).and_then(|m| {
        let mut cards: Vec<(&str, bool)> =
            m.cards().filter(|(_, c)| c.resident_id == resident_id).map(|(s, c)| (s, c.revoked)).collect();
        cards.sort_by_key(|(_, revoked)| *revoked); // a valid card first
        cards.first().map(|(serial, _)| serial.to_string())
    });
    ALL_TYPES
        .iter()
        .map(|&t| {
            let answer = match &card {
                None => Err(Refusal::new(RefusalReason::UnknownCard, "the resident holds no card")),
                Some(serial) => {
                    let req = IssueRequest {
                        request_id: "admin-lookup".into(),
                        centre: Centre::East as i32,
                        kiosk_id: "ADMIN-LOOKUP".into(),
                        municipality_code: municipality_code.to_owned(),
                        card_serial: serial.clone(),
                        r#type: t as i32,
                        copies: 1,
                        ..Default::default()
                    };
                    check_request(state, &req, now)
                }
            };
            (t, answer)
        })
        .collect()
}
