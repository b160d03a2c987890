//! The bcl issuance engine.
pub mod storage;
pub mod scramble;
