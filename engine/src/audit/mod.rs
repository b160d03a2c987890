//! Audit: the tamper-evident log. The RFC 6962/9162 Merkle tree over every leaf (`merkle`), the C2SP
//! signed-note and tlog-checkpoint formats (`note`, `checkpoint`), the live tree the writer extends after
//! each batch (`log`), and the auditor's offline verification (`verify`).

pub mod checkpoint;
pub mod export;
pub mod log;
pub mod merkle;
pub mod note;
pub mod proofs;
pub mod verify;
