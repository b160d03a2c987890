//! The bcl issuance engine.
pub mod storage;
pub mod scramble;
pub mod render;
