//! Ingest: structural validation of the data link's change events, before anything is written.
//!
//! Sequencing, idempotency and conflicts are decided by the writer against the projection; here we only
//! make sure that every event of a request is well-formed, so that a bad request writes nothing at all.

use crate::engine::MAX_EVENTS_PER_APPEND;
use crate::error::EngineError;
use bcl_proto::ChangeEvent;

pub fn validate_batch(events: &[ChangeEvent]) -> Result<(), EngineError> {
    if events.is_empty() {
        return Err(EngineError::Invalid("events: at least one event is required".into()));
    }
    if events.len() > MAX_EVENTS_PER_APPEND {
        return Err(EngineError::Invalid(format!(
            "events: {} events in one request, at most {MAX_EVENTS_PER_APPEND} allowed",
            events.len()
        )));
    }
    for (i, ev) in events.iter().enumerate() {
        bcl_projections::validate_event(ev).map_err(|e| EngineError::Invalid(format!("events[{i}].{e}")))?;
    }
    Ok(())
}
