//! Pure domain of bcl: no I/O, no async.
pub mod date;
pub mod record;
pub mod validate;
