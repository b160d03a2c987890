//! The JSON Lines interchange format (`bcl ingest FILE.jsonl`): arbitrary bytes split into lines, each
//! parsed as canonical-JSON `ChangeEvent`, validated, and the valid ones appended and folded.
//! Invariants: nothing panics; a valid event survives a canonical-JSON round trip unchanged; an accepted
//! batch sent again changes nothing and answers the same positions; the live projection equals the
//! rebuilt one.
#![no_main]

use bcl_proto::ChangeEvent;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let mut valid = Vec::new();
    for line in data.split(|&b| b == b'\n') {
        let Ok(text) = std::str::from_utf8(line) else { continue };
        let Ok(event) = serde_json::from_str::<ChangeEvent>(text) else { continue };
        if bcl_projections::validate_event(&event).is_err() {
            continue;
        }
        let json = serde_json::to_string(&event).expect("a valid event serialises");
        let back: ChangeEvent = serde_json::from_str(&json).expect("canonical JSON parses back");
        assert_eq!(back, event, "canonical JSON round trip changed the event");
        valid.push(event);
    }
    if valid.is_empty() {
        return;
    }
    let mut log = bcl_fuzz::Log::default();
    if let Some(first) = log.append(&valid) {
        let leaves = log.leaves.len();
        let again = log.append(&valid).expect("an accepted batch is accepted again");
        assert_eq!(again, first, "a re-sent batch answers its original positions");
        assert_eq!(log.leaves.len(), leaves, "a re-sent batch writes nothing");
    }
    log.check_replay();
});
