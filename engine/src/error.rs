//! The engine's error type. Mapped to a gRPC status with a `google.rpc.ErrorInfo` in exactly one place
//! (`server::status`). Messages name fields and rules, never personal data.

use crate::storage::StorageError;
use bcl_projections::{Refusal, RefusalReason};

#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    /// Malformed input: nothing was written.
    #[error("invalid request: {0}")]
    Invalid(String),
    /// An issuance refused by the eligibility rules (or by the renderer, for undrawable text).
    #[error("{0}")]
    Refused(Refusal),
    /// The same (municipality, source_seq) or event_id arrived with different content. The municipality
    /// is suspended and nothing of the request was written.
    #[error("data link conflict in municipality {municipality} at source_seq {source_seq}: {kind}; issuance for the municipality is suspended")]
    SequenceConflict { municipality: String, source_seq: u64, kind: &'static str },
    /// Lifting maintenance while data is still held back.
    #[error("{0}")]
    BacklogRemains(String),
    #[error("{0} not found")]
    NotFound(String),
    #[error("request_id was already used with other parameters")]
    RequestIdReused,
    #[error("storage: {0}")]
    Storage(#[from] StorageError),
    /// A durable write failed earlier; the engine refuses work until it is restarted.
    #[error("the engine stopped accepting work after a storage failure; restart it to recover")]
    Poisoned,
    /// Shed by admission control (`shed.rs`) before anything was done: the caller should try the other
    /// centre. The cause is `queue_full` or `queue_wait`.
    #[error("the engine is overloaded ({0}); try the other centre")]
    Overloaded(&'static str),
    /// This centre cannot take the call now (e.g. it follows the other centre and lost contact with it).
    #[error("{0}")]
    Unavailable(String),
    /// The replicas of East and West disagree about history: replication stopped; an operator must act.
    #[error("the two centres' histories diverge: {0}")]
    Diverged(String),
    /// The other centre's answer to a call this centre forwarded to it, passed on unchanged.
    #[error("{}", .0.message())]
    Forwarded(tonic::Status),
    #[error("internal error: {0}")]
    Internal(String),
}

impl EngineError {
    pub fn refused(reason: RefusalReason, message: impl Into<String>) -> Self {
        EngineError::Refused(Refusal { reason, message: message.into() })
    }
}

impl From<Refusal> for EngineError {
    fn from(r: Refusal) -> Self {
        EngineError::Refused(r)
    }
}
