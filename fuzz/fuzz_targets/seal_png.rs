//! Seal impressions (`SealRegistered.sealImagePng`): arbitrary bytes through ingest validation and the
//! renderer's bounded PNG decoder, as sent and with every chunk CRC repaired (so mutations reach the
//! image data). Invariants: nothing panics; whatever ingest accepts, the renderer can decode (a seal in
//! the log never fails at issuance time); a decoded image respects the side limit and its pixel count.
#![no_main]

use bcl_engine::render::bitmap::decode_png;
use bcl_projections::validate::MAX_SEAL_SIDE;
use bcl_proto::{change_event::Body, ChangeEvent, SealRegistered};
use libfuzzer_sys::fuzz_target;

fn check(png: Vec<u8>) {
    let event = ChangeEvent {
        municipality_code: "131016".into(),
        source_seq: 1,
        event_id: "00000000-0000-4000-8000-000000000001".into(),
        effective_date: "2026-04-01".into(),
        body: Some(Body::SealRegistered(SealRegistered {
            resident_id: "R1".into(),
            registration_number: "S1".into(),
            seal_image_png: png,
        })),
    };
    let accepted = bcl_engine::ingest::validate_batch(std::slice::from_ref(&event)).is_ok();
    let Some(Body::SealRegistered(seal)) = &event.body else { unreachable!() };
    match decode_png(&seal.seal_image_png, "seal_image") {
        Ok(img) => {
            let b = &img.bitmap;
            assert!(b.width >= 1 && b.height >= 1 && b.width <= MAX_SEAL_SIDE && b.height <= MAX_SEAL_SIDE);
            assert_eq!(b.pixels.len(), b.width as usize * b.height as usize);
            assert!(img.width_pt.is_finite() && img.height_pt.is_finite());
        }
        Err(_) => assert!(!accepted, "ingest accepted a seal the renderer cannot decode"),
    }
}

fuzz_target!(|data: &[u8]| {
    check(data.to_vec());
    let repaired = bcl_fuzz::fix_png_crcs(data);
    if repaired != data {
        check(repaired);
    }
});
