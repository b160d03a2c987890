//! The gRPC data link: arbitrary bytes decoded as an `AppendRequest` (what tonic hands the Ingest
//! service), validated as the engine does, appended and folded; the same bytes decoded as a stored
//! `LogLeaf` are folded too (a damaged or hostile log). Invariants: nothing panics; the decoded request
//! re-encodes to bytes that decode to the same request; an accepted batch re-sent changes nothing; the
//! live projection equals the rebuilt one.
#![no_main]

use bcl_proto::{AppendRequest, LogLeaf};
use libfuzzer_sys::fuzz_target;
use prost::Message;

fuzz_target!(|data: &[u8]| {
    if let Ok(leaf) = LogLeaf::decode(data) {
        let mut p = bcl_engine::projection::Projection::default();
        p.apply(&leaf);
        p.apply(&leaf);
    }
    let Ok(request) = AppendRequest::decode(data) else { return };
    let reencoded = request.encode_to_vec();
    assert_eq!(AppendRequest::decode(reencoded.as_slice()).expect("re-encoding decodes"), request);
    let mut log = bcl_fuzz::Log::default();
    if let Some(first) = log.append(&request.events) {
        let leaves = log.leaves.len();
        assert_eq!(log.append(&request.events), Some(first), "a re-sent batch answers its original positions");
        assert_eq!(log.leaves.len(), leaves, "a re-sent batch writes nothing");
    }
    log.check_replay();
});
