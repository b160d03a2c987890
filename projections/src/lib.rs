//! Pure domain of bcl: no I/O, no async.
pub mod record;
