//! Uploaded scans (`Verify.VerifyBack`) and back PNGs (`bcl descramble`): arbitrary bytes through the
//! bounded scan decoder and, when an image comes out small enough to keep the fuzzer fast, through the
//! whole verification (finder marks, geometry, descrambling, scoring) against a small front.
//! Invariants: nothing panics; a decoded scan respects the limits and its pixel count.
#![no_main]

use bcl_engine::scramble::{self, BackImage, ScrambleKey};
use bcl_engine::verify::{decode_scan, verify_scan, MAX_SCAN_PIXELS, MAX_SCAN_SIDE};
use libfuzzer_sys::fuzz_target;

/// Above this many pixels the full verification is skipped: it is linear in the scan and would slow the
/// fuzzer down without reaching new code.
const VERIFY_PIXELS: u64 = 1 << 18;

fn check(bytes: &[u8]) {
    if let Ok(scan) = decode_scan(bytes) {
        assert!(scan.width <= MAX_SCAN_SIDE && scan.height <= MAX_SCAN_SIDE);
        assert!(u64::from(scan.width) * u64::from(scan.height) <= MAX_SCAN_PIXELS);
        assert_eq!(scan.pixels.len(), scan.width as usize * scan.height as usize * 3);
        if u64::from(scan.width) * u64::from(scan.height) <= VERIFY_PIXELS {
            let (w, h) = (48u32, 32u32);
            let gray: Vec<u8> = (0..w * h).map(|i| if (i / 7) % 3 == 0 { 0 } else { 255 }).collect();
            let front = scramble::quantise(w, h, &gray).expect("a valid front");
            let _ = verify_scan(&scan, &front, &ScrambleKey::from_bytes([7; 32]));
        }
    }
    if let Ok(back) = BackImage::from_png(bytes) {
        let _ = scramble::descramble(&back, &ScrambleKey::from_bytes([7; 32]));
    }
}

fuzz_target!(|data: &[u8]| {
    check(data);
    if data.starts_with(b"\x89PNG") {
        let repaired = bcl_fuzz::fix_png_crcs(data);
        if repaired != data {
            check(&repaired);
        }
    }
});
