//! Verification of a scanned certificate back: find the back in the scan, read it, descramble it
//! and decide whether it carries the front of the certificate it claims to be.
//!
//! The pipeline (each step its own module):
//!
//! 1. **Decode** the uploaded image with hard bounds on size and memory ([`decode_scan`],
//!    `image_io.rs`): a scan is untrusted input.
//! 2. **Locate** the four finder marks in the ring around the scrambled area and estimate the
//!    projective transform from back pixels to scan pixels (`locate.rs`). Any resolution, a few
//!    degrees of rotation, scaling, translation, cropped margins and the certificate-id text line
//!    under the back are all fine; the orientation mark even tells a scan turned upside down.
//! 3. **Read** every back pixel of the scrambled area through that transform, after mapping the
//!    scan's paper white and mark black to the nominal white and black (brightness and contrast),
//!    and descramble by nearest keyed colour ([`crate::scramble::descramble_observed`]).
//! 4. **Decide** (`score.rs`): compare the restored front with the re-rendered front block by block,
//!    on ink, and flag the blocks that disagree. The verdict is a match only when the worst blocks
//!    still agree, so a small pasted-over region fails it and is localised.
//!
//! What the verifier needs besides the scan: the certificate's scramble key and its quantised
//! front (re-rendered from the log, [`crate::certificate::front_images`]).

#[cfg(test)]
mod degrade;
mod image_io;
mod locate;
mod score;
mod service;
#[cfg(test)]
mod tests;

pub use image_io::{decode_scan, RgbImage, MAX_SCAN_BYTES, MAX_SCAN_PIXELS, MAX_SCAN_SIDE};
pub use locate::{locate_back, BackLocation};
pub use score::{ssim, BlockScores, MATCH_THRESHOLD, TAMPERED_BLOCK_MISMATCH, WORST_BLOCKS};
pub use service::MAX_VERIFY_REQUEST_BYTES;

use crate::scramble::{self, GrayImage, ScrambleKey};

/// Why a scan could not be verified. None of these carries image data.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum VerifyError {
    #[error("the upload is larger than {MAX_SCAN_BYTES} bytes")]
    TooLarge,
    #[error("the image is {width}x{height}; at most {MAX_SCAN_SIDE} pixels a side and {MAX_SCAN_PIXELS} pixels in all are accepted")]
    TooManyPixels { width: u32, height: u32 },
    #[error("not a readable PNG or JPEG image")]
    Undecodable,
    #[error("no certificate back found in the image: {0}")]
    BackNotFound(&'static str),
    #[error("the front to compare with is invalid: {0}")]
    BadFront(&'static str),
}

/// The verdict on one scan.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// The back carries this certificate's front, everywhere.
    Match,
    /// The back is another certificate's, not a back at all, or altered (see the flagged blocks).
    NoMatch,
}

/// Everything the verifier learned from one scan.
#[derive(Clone, Debug)]
pub struct Verification {
    /// The descrambled front as read from the scan (levels 0/85/170/255; 128 where unreadable).
    pub restored: GrayImage,
    /// Where the back was found in the scan.
    pub location: BackLocation,
    /// Per-block agreement with the expected front, the decision score and the flagged blocks.
    pub blocks: BlockScores,
    pub verdict: Verdict,
}

/// Verifies a decoded scan against the expected (quantised) front and the certificate's key.
///
/// A scan in which no back can be found is an error, not a verdict, so that the caller can tell
/// "this is not a back" apart from "this back is not that certificate".
pub fn verify_scan(
    scan: &RgbImage,
    front: &GrayImage,
    key: &ScrambleKey,
) -> Result<Verification, VerifyError> {
    if front.width == 0
        || front.height == 0
        || front.pixels.len() != front.width as usize * front.height as usize
    {
        return Err(VerifyError::BadFront(
            "size does not match the pixel buffer",
        ));
    }
    let layout = scramble::back_layout(front.width, front.height)
        .map_err(|_| VerifyError::BadFront("size out of range"))?;
    let location = locate_back(scan, &layout)?;
    let restored = read_back(scan, &location, front.width, front.height, key)?;
    let blocks = BlockScores::compare(&restored, front);
    let verdict = if blocks.score >= MATCH_THRESHOLD {
        Verdict::Match
    } else {
        Verdict::NoMatch
    };
    Ok(Verification {
        restored,
        location,
        blocks,
        verdict,
    })
}

/// Back pixels on the edge of a 16-px block are read this far (in back pixels) towards the block's
/// interior: neighbouring blocks carry unrelated colours, and a blurred scan mixes them into the
/// edge pixels, which then classify as a third colour.
const EDGE_NUDGE: f64 = 0.3;

fn edge_nudge(i: u32) -> f64 {
    match i as usize % scramble::BLOCK {
        0 => EDGE_NUDGE,
        r if r == scramble::BLOCK - 1 => -EDGE_NUDGE,
        _ => 0.0,
    }
}

/// Reads and descrambles the scrambled area of a located back.
pub fn read_back(
    scan: &RgbImage,
    location: &BackLocation,
    front_width: u32,
    front_height: u32,
    key: &ScrambleKey,
) -> Result<GrayImage, VerifyError> {
    let area = location.layout.scramble_area;
    let norm = &location.normalise;
    // Rows are read in order: keep the current row's restriction of the transform.
    let mut row = (u32::MAX, location.to_scan.row(0.0));
    scramble::descramble_observed(front_width, front_height, key, |x, y| {
        if row.0 != y {
            row = (
                y,
                location
                    .to_scan
                    .row((area.y + y) as f64 + 0.5 + edge_nudge(y)),
            );
        }
        let (sx, sy) = row.1.at((area.x + x) as f64 + 0.5 + edge_nudge(x));
        norm.apply(scan.sample_bilinear(sx - 0.5, sy - 0.5))
    })
    .map_err(|_| VerifyError::BadFront("size out of range"))
}
