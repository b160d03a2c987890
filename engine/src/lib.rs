//! The bcl issuance engine.
pub mod storage;
