//! Judging one answer against what the fixture case calls for. A refusal counts as a refusal only when it
//! carries the reason the case expects; any other decision by the engine is a mismatch, and transport
//! failures (no `google.rpc.ErrorInfo`) are plain errors.

use super::mix::Expected;
use super::recorder::Outcome;
use bcl_proto::IssueResponse;
use tonic::Status;
use tonic_types::StatusExt;

/// An earlier issuance that a kiosk retry must get back unchanged.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Issued {
    pub certificate_id: String,
    pub content_sha256: String,
}

/// The reason an overloaded engine sheds a request with (`engine/src/shed.rs`).
pub const SHED_REASON: &str = "ENGINE_OVERLOADED";

/// The CONTRACT reason of a status, when the engine gave one.
pub fn reason_of(status: &Status) -> Option<String> {
    status.get_error_details().error_info().map(|info| info.reason.clone())
}

/// The outcome of a transaction, and why it is not what the case calls for (if it is not).
///
/// `retry_of`: the issuance a retry repeats. `failed_over`: the answer came from the other centre, which
/// keeps its own log, so a fresh issuance there is not a fault of either engine (the recorder counts it
/// as a cross-centre duplicate).
pub fn judge(
    expected: Expected,
    retry_of: Option<&Issued>,
    failed_over: bool,
    result: &Result<IssueResponse, Status>,
) -> (Outcome, Option<String>) {
    match result {
        Ok(r) => match (retry_of, expected) {
            (Some(first), _) if r.replayed => {
                let same = r.certificate_id == first.certificate_id && r.content_sha256 == first.content_sha256;
                (Outcome::Replayed, (!same).then(|| "retry replayed a different certificate".to_string()))
            }
            (Some(_), _) => (Outcome::Issued, (!failed_over).then(|| "retry issued anew instead of replaying".to_string())),
            (None, _) if r.pdf.is_empty() => (Outcome::Issued, Some("issued without a PDF".to_string())),
            (None, _) if r.replayed => (Outcome::Replayed, Some("fresh request_id answered as a replay".to_string())),
            (None, Expected::Issue) => (Outcome::Issued, None),
            (None, Expected::Refuse(want)) => (Outcome::Issued, Some(format!("expected refusal {want}, issued"))),
        },
        Err(status) => {
            let code = format!("{:?}", status.code());
            match (reason_of(status), expected) {
                (Some(got), Expected::Refuse(want)) if got == want => (Outcome::Refused(got), None),
                // Shed by the engine's admission control before it looked at the request: no decision about
                // the case, only "ask the other centre".
                (Some(got), _) if got == SHED_REASON => (Outcome::Error { code, reason: got }, None),
                (Some(got), Expected::Refuse(want)) => {
                    let m = format!("expected refusal {want}, got {code}/{got}");
                    (Outcome::Error { code, reason: got }, Some(m))
                }
                (Some(got), Expected::Issue) => {
                    let m = format!("expected issue, got {code}/{got}");
                    (Outcome::Error { code, reason: got }, Some(m))
                }
                (None, _) => (Outcome::Error { code, reason: "-".to_string() }, None),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tonic::Code;
    use tonic_types::ErrorDetails;

    fn refusal(reason: &str) -> Status {
        Status::with_error_details(Code::FailedPrecondition, "refused", ErrorDetails::with_error_info(reason, "bcl.v1", []))
    }

    fn issued(replayed: bool) -> IssueResponse {
        IssueResponse { certificate_id: "C1".into(), pdf: vec![1], content_sha256: "ab".into(), replayed, ..Default::default() }
    }

    #[test]
    fn a_shed_request_is_an_error_but_no_mismatch() {
        let info = ErrorDetails::with_error_info(SHED_REASON, "bcl.v1", []);
        let shed = Status::with_error_details(Code::Unavailable, "overloaded", info);
        for expected in [Expected::Issue, Expected::Refuse("UNDER_AGE")] {
            let (o, m) = judge(expected, None, false, &Err(shed.clone()));
            assert_eq!(o, Outcome::Error { code: "Unavailable".into(), reason: SHED_REASON.into() });
            assert_eq!(m, None);
        }
        // Another UNAVAILABLE reason is still a decision that has to match the case.
        let (_, m) = judge(Expected::Issue, None, false, &Err(refusal("MUNICIPALITY_SUSPENDED")));
        assert!(m.is_some());
    }

    #[test]
    fn a_refusal_counts_only_with_the_expected_reason() {
        let (o, m) = judge(Expected::Refuse("UNDER_AGE"), None, false, &Err(refusal("UNDER_AGE")));
        assert_eq!((o, m), (Outcome::Refused("UNDER_AGE".into()), None));
        let (o, m) = judge(Expected::Refuse("UNDER_AGE"), None, false, &Err(refusal("CARD_REVOKED")));
        assert_eq!(o, Outcome::Error { code: "FailedPrecondition".into(), reason: "CARD_REVOKED".into() });
        assert_eq!(m.unwrap(), "expected refusal UNDER_AGE, got FailedPrecondition/CARD_REVOKED");
        let (_, m) = judge(Expected::Issue, None, false, &Err(refusal("UNDER_AGE")));
        assert!(m.is_some());
    }

    #[test]
    fn transport_failures_are_errors_not_mismatches() {
        let (o, m) = judge(Expected::Issue, None, true, &Err(Status::unavailable("connection refused")));
        assert_eq!((o, m), (Outcome::Error { code: "Unavailable".into(), reason: "-".into() }, None));
    }

    #[test]
    fn issuing_what_must_be_refused_is_a_mismatch() {
        let (o, m) = judge(Expected::Refuse("NO_SEAL_REGISTRATION"), None, false, &Ok(issued(false)));
        assert_eq!(o, Outcome::Issued);
        assert!(m.unwrap().contains("NO_SEAL_REGISTRATION"));
        assert_eq!(judge(Expected::Issue, None, false, &Ok(issued(false))), (Outcome::Issued, None));
    }

    #[test]
    fn a_retry_must_replay_the_same_certificate() {
        let first = Issued { certificate_id: "C1".into(), content_sha256: "ab".into() };
        assert_eq!(judge(Expected::Issue, Some(&first), false, &Ok(issued(true))), (Outcome::Replayed, None));
        let other = Issued { certificate_id: "C1".into(), content_sha256: "cd".into() };
        assert!(judge(Expected::Issue, Some(&other), false, &Ok(issued(true))).1.is_some());
        assert!(judge(Expected::Issue, Some(&first), false, &Ok(issued(false))).1.is_some());
        // Through the other centre, a fresh issuance is expected (separate logs), not a mismatch.
        assert_eq!(judge(Expected::Issue, Some(&first), true, &Ok(issued(false))), (Outcome::Issued, None));
    }
}
