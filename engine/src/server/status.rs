//! The one place where engine errors become gRPC statuses with a `google.rpc.ErrorInfo` (domain `bcl.v1`).

use crate::error::EngineError;
use bcl_projections::{CodeFamily, RefusalReason};
use tonic::{Code, Status};
use tonic_types::{ErrorDetails, StatusExt};

pub const DOMAIN: &str = "bcl.v1";

fn with_reason(code: Code, reason: &str, message: String) -> Status {
    Status::with_error_details(code, message, ErrorDetails::with_error_info(reason, DOMAIN, []))
}

fn code_of(reason: RefusalReason) -> Code {
    match reason.code_family() {
        CodeFamily::FailedPrecondition => Code::FailedPrecondition,
        CodeFamily::Unavailable => Code::Unavailable,
        CodeFamily::InvalidArgument => Code::InvalidArgument,
        CodeFamily::AlreadyExists => Code::AlreadyExists,
    }
}

pub fn to_status(err: EngineError) -> Status {
    match err {
        EngineError::Invalid(m) => with_reason(Code::InvalidArgument, "INVALID_REQUEST", format!("invalid request: {m}")),
        EngineError::Refused(r) => with_reason(code_of(r.reason), r.reason.as_str(), r.message),
        e @ EngineError::SequenceConflict { .. } => with_reason(Code::FailedPrecondition, "SOURCE_SEQ_CONFLICT", e.to_string()),
        EngineError::BacklogRemains(m) => with_reason(Code::FailedPrecondition, "BACKLOG_REMAINS", m),
        EngineError::NotFound(what) => Status::not_found(format!("{what} not found")),
        EngineError::RequestIdReused => with_reason(
            Code::AlreadyExists,
            "REQUEST_ID_REUSED",
            "request_id was already used with other parameters".into(),
        ),
        e @ EngineError::Overloaded(cause) => Status::with_error_details(
            Code::Unavailable,
            e.to_string(),
            ErrorDetails::with_error_info("ENGINE_OVERLOADED", DOMAIN, [("cause".to_string(), cause.to_string())]),
        ),
        EngineError::Forwarded(status) => status,
        EngineError::Unavailable(m) => with_reason(Code::Unavailable, "CENTRE_UNAVAILABLE", m),
        e @ EngineError::Diverged(_) => {
            tracing::error!(error = %e, "replication stopped");
            with_reason(Code::Unavailable, "REPLICAS_DIVERGED", e.to_string())
        }
        e @ EngineError::Poisoned => with_reason(Code::Unavailable, "ENGINE_STOPPED", e.to_string()),
        e @ (EngineError::Storage(_) | EngineError::Internal(_)) => {
            tracing::error!(error = %e, "internal error");
            Status::internal(e.to_string())
        }
    }
}
