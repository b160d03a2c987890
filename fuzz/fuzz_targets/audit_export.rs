//! Audit exports (`bcl audit verify --export FILE`): arbitrary bytes through the export reader and, when
//! they parse, through the offline verification (checkpoint, Merkle root, difference location, leaf
//! decoding and the fold). The note in the input is re-signed with a fixed key so that fuzzing gets past
//! the signature to the checks behind it. Invariants: nothing panics; a parsed export writes back to
//! bytes that read to the same export.
#![no_main]

use bcl_engine::audit::export::Export;
use bcl_engine::audit::note::{NoteSigner, NoteVerifier};
use bcl_engine::audit::verify::{verify, Options, Source};
use libfuzzer_sys::fuzz_target;
use std::sync::OnceLock;

const ORIGIN: &str = "bcl.fuzz/log";

fn keys() -> &'static (NoteSigner, NoteVerifier) {
    static KEYS: OnceLock<(NoteSigner, NoteVerifier)> = OnceLock::new();
    KEYS.get_or_init(|| {
        let signer = NoteSigner::new(ORIGIN, &[3; 32]).expect("signer");
        let verifier = NoteVerifier::parse(&signer.verifier_key()).expect("verifier");
        (signer, verifier)
    })
}

fuzz_target!(|data: &[u8]| {
    let Ok(export) = Export::read(&mut &data[..]) else { return };
    let mut bytes = Vec::new();
    export.write(&mut bytes).expect("write to memory");
    assert_eq!(Export::read(&mut bytes.as_slice()).expect("written export reads back"), export);

    let (signer, verifier) = keys();
    let mut progress = |_: &str, _: u64, _: u64| {};
    // As sent (almost always a bad signature), then with the note's text signed by the trusted key.
    let mut notes = vec![export.note.clone()];
    let mut body = format!("{ORIGIN}\n{}", export.note);
    if !body.ends_with('\n') {
        body.push('\n');
    }
    if let Ok(signed) = signer.sign(&body) {
        notes.push(signed);
    }
    for note in &notes {
        let source = Source { note, leaves: &export.leaves, recorded_hashes: Some(&export.recorded_hashes) };
        let options =
            Options { previous_note: Some(note), reproducer: None, oracle: None, keys: None, progress: &mut progress };
        let report = verify(verifier, source, options);
        let _ = report.to_json();
    }
});
