//! The bcl issuance engine.
