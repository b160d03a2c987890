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
pub mod http;
mod image_io;
mod locate;
mod score;
mod service;
#[cfg(test)]
mod tests;

pub use image_io::{decode_scan, RgbImage, MAX_SCAN_BYTES, MAX_SCAN_PIXELS, MAX_SCAN_SIDE};
pub use locate::{locate_back, BackLocation};
pub use score::{ssim, BlockScores, MATCH_THRESHOLD, TAMPERED_BLOCK_MISMATCH, WORST_BLOCKS};
pub use service::{BackReport, MAX_VERIFY_REQUEST_BYTES};

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
pub fn verify_scan(scan: &RgbImage, front: &GrayImage, key: &ScrambleKey) -> Result<Verification, VerifyError> {
    if front.width == 0 || front.height == 0 || front.pixels.len() != front.width as usize * front.height as usize {
        return Err(VerifyError::BadFront("size does not match the pixel buffer"));
    }
    let layout =
        scramble::back_layout(front.width, front.height).map_err(|_| VerifyError::BadFront("size out of range"))?;
    let location = locate_back(scan, &layout)?;
    let restored = read_back(scan, &location, front.width, front.height, key)?;
    let blocks = BlockScores::compare(&restored, front);
    let verdict = if blocks.score >= MATCH_THRESHOLD { Verdict::Match } else { Verdict::NoMatch };
    Ok(Verification { restored, location, blocks, verdict })
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
///
/// The rows are read by two threads: reading is most of a verification's time (a million
/// bilinear samples, mostly waiting on the scan's memory), and the rows are independent.
pub fn read_back(
    scan: &RgbImage,
    location: &BackLocation,
    front_width: u32,
    front_height: u32,
    key: &ScrambleKey,
) -> Result<GrayImage, VerifyError> {
    read_back_threads(scan, location, front_width, front_height, key, 2)
}

fn read_back_threads(
    scan: &RgbImage,
    location: &BackLocation,
    front_width: u32,
    front_height: u32,
    key: &ScrambleKey,
    threads: u32,
) -> Result<GrayImage, VerifyError> {
    let bad_front = |_| VerifyError::BadFront("size out of range");
    let classifier = scramble::ObservedClassifier::new(key, front_width, front_height).map_err(bad_front)?;
    let (aw, ah) = classifier.area_size();
    let mut shown = vec![0u8; aw as usize * ah as usize];
    // Where each column of the scrambled area is read, in back pixels (the same on every row).
    let area = location.layout.scramble_area;
    let columns: Vec<f64> = (0..aw).map(|x| (area.x + x) as f64 + 0.5 + edge_nudge(x)).collect();
    let read_rows = |first: u32, rows: &mut [u8]| {
        for (dy, out) in rows.chunks_exact_mut(aw as usize).enumerate() {
            let y = first + dy as u32;
            read_row(scan, location, &columns, y, classifier.row_table(y), out);
        }
    };
    if threads > 1 {
        let half = (ah / 2) as usize * aw as usize;
        let (top, bottom) = shown.split_at_mut(half);
        std::thread::scope(|s| {
            s.spawn(|| read_rows(0, top));
            read_rows(ah / 2, bottom);
        });
    } else {
        read_rows(0, &mut shown);
    }
    scramble::descramble_classified(front_width, front_height, key, &shown).map_err(bad_front)
}

/// Classifies row `y` of the scrambled area into `out`.
fn read_row(scan: &RgbImage, location: &BackLocation, columns: &[f64], y: u32, table: &[u8], out: &mut [u8]) {
    let area = location.layout.scramble_area;
    let norm = &location.normalise;
    let row = location.to_scan.row((area.y + y) as f64 + 0.5 + edge_nudge(y));
    for (class, &u) in out.iter_mut().zip(columns) {
        let (sx, sy) = row.at(u);
        let rgb = norm.apply(sample(scan, sx - 0.5, sy - 0.5));
        *class = scramble::ObservedClassifier::classify(table, rgb);
    }
}

/// [`RgbImage::sample_bilinear`] with its interior path inlined into the reading loop (the same
/// 8-bit fixed-point weights); near the edges it defers to the general sampler.
#[inline(always)]
fn sample(scan: &RgbImage, x: f64, y: f64) -> [u8; 3] {
    if x >= 0.0 && y >= 0.0 {
        let (x0, y0) = (x as usize, y as usize);
        let (w, h) = (scan.width as usize, scan.height as usize);
        if x0 + 1 < w && y0 + 1 < h {
            let wx = ((x - x0 as f64) * 256.0) as u32;
            let wy = ((y - y0 as f64) * 256.0) as u32;
            let stride = w * 3;
            let i = y0 * stride + x0 * 3;
            let (top, bottom) = (&scan.pixels[i..i + 6], &scan.pixels[i + stride..i + stride + 6]);
            return std::array::from_fn(|k| {
                let t = top[k] as u32 * (256 - wx) + top[3 + k] as u32 * wx;
                let b = bottom[k] as u32 * (256 - wx) + bottom[3 + k] as u32 * wx;
                ((t * (256 - wy) + b * wy + (1 << 15)) >> 16) as u8
            });
        }
    }
    scan.sample_bilinear(x, y)
}
