//! Ingest: structural validation of the data link's change events, before anything is written.
//!
//! Sequencing, idempotency and conflicts are decided by the writer against the projection; here we only
//! make sure that every event of a request is well-formed, so that a bad request writes nothing at all.
//!
//! On top of the pure checks of `bcl_projections::validate_event` and `validate_admission` (which read a
//! seal image's PNG header only), a seal image is decoded here with the renderer's own bounded decoder: the log is append-only, so
//! a seal that could not be printed would otherwise sit there and fail every 印鑑登録証明書 of that resident.
//! The header check has already bounded the decoder's memory by then. Limits: `docs/limits.md`.

use crate::engine::MAX_EVENTS_PER_APPEND;
use crate::error::EngineError;
use bcl_proto::change_event::Body;
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
        bcl_projections::validate_event(ev)
            .and_then(|()| bcl_projections::validate_admission(ev))
            .map_err(|e| EngineError::Invalid(format!("events[{i}].{e}")))?;
        if let Some(Body::SealRegistered(seal)) = &ev.body {
            // The reason is a fixed phrase of the decoder ("not a readable PNG"...), never image content.
            crate::render::bitmap::decode_png(&seal.seal_image_png, "sealImagePng").map_err(|e| match e {
                crate::render::RenderError::ImageUnreadable { reason, .. } => {
                    EngineError::Invalid(format!("events[{i}].sealRegistered.sealImagePng: {reason}"))
                }
                _ => EngineError::Invalid(format!("events[{i}].sealRegistered.sealImagePng: not a readable PNG")),
            })?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use bcl_proto::SealRegistered;

    fn seal(png: Vec<u8>) -> ChangeEvent {
        ChangeEvent {
            municipality_code: "131016".into(),
            source_seq: 1,
            event_id: "00000000-0000-4000-8000-000000000001".into(),
            effective_date: "2026-04-01".into(),
            body: Some(Body::SealRegistered(SealRegistered {
                resident_id: "R1".into(),
                registration_number: "S1".into(),
                seal_image_png: png,
            })),
        }
    }

    fn message(events: &[ChangeEvent]) -> String {
        match validate_batch(events) {
            Err(EngineError::Invalid(m)) => m,
            other => panic!("expected INVALID_ARGUMENT, got {other:?}"),
        }
    }

    #[test]
    fn a_real_seal_is_accepted() {
        assert!(validate_batch(&[seal(bcl_fixtures::seal::seal_png("佐藤"))]).is_ok());
    }

    #[test]
    fn a_seal_with_a_valid_header_but_broken_data_is_refused() {
        let mut png = bcl_fixtures::seal::seal_png("佐藤");
        png.truncate(png.len() / 2);
        let m = message(&[seal(png)]);
        assert!(m.starts_with("events[0].sealRegistered.sealImagePng: "), "{m}");
    }

    #[test]
    fn batch_bounds() {
        assert!(message(&[]).contains("at least one"));
        let many = vec![seal(bcl_fixtures::seal::seal_png("佐藤")); MAX_EVENTS_PER_APPEND + 1];
        assert!(message(&many).contains("at most 10000"));
    }
}
