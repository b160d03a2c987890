//! `bcl verify`: decides whether a scan of a certificate's back carries that certificate's front.
//!
//! The front is re-rendered from the log (the same reproduction path auditors use), the key is
//! derived from the master secret in the data directory, and the scan goes through
//! [`crate::verify`]: locate the finder marks, read, descramble, compare block by block. Every
//! sheet of the certificate is tried, since the scan may show the back of any of them.
//!
//! Exit status: 0 for a match, 1 for no match or any error, so scripts can rely on it.

use super::CliResult;
use crate::clock::Clock;
use crate::engine::{Engine, EngineConfig};
use crate::verify::{self, Verdict, Verification};
use std::path::PathBuf;

#[derive(clap::Args)]
pub struct Args {
    /// The scan of the back (PNG or JPEG), any resolution.
    pub scan: PathBuf,
    /// Certificate id printed under the back image.
    #[arg(long)]
    pub certificate_id: String,
    /// The issuing server's data directory (log and scramble master secret). The server must not
    /// be running on it: the log store is opened for reading here.
    #[arg(long, default_value = "./bcl-data")]
    pub data_dir: PathBuf,
    /// Where to write the descrambled front (grayscale PNG).
    #[arg(long, short)]
    pub out: Option<PathBuf>,
}

#[derive(Debug, thiserror::Error)]
#[error("the scan does not match certificate {0}")]
pub struct NoMatch(String);

pub fn run(args: Args) -> CliResult {
    let bytes = std::fs::read(&args.scan)?;
    if bytes.len() > verify::MAX_SCAN_BYTES {
        return Err(verify::VerifyError::TooLarge.into());
    }
    let scan = verify::decode_scan(&bytes)?;
    let engine = Engine::open(EngineConfig {
        data_dir: args.data_dir.clone(),
        clock: Clock::System,
        fonts: None,
        render: Default::default(),
    })?;
    let fronts = engine.front_images(&args.certificate_id)?;
    let key = crate::certificate::scramble_key(&engine.secret, &args.certificate_id);

    let mut best: Option<(usize, Verification)> = None;
    let mut last_error = None;
    for (sheet, front) in fronts.iter().enumerate() {
        match verify::verify_scan(&scan, front, &key) {
            Ok(v) => {
                if best
                    .as_ref()
                    .is_none_or(|(_, b)| v.blocks.score > b.blocks.score)
                {
                    best = Some((sheet, v));
                }
            }
            Err(e) => last_error = Some(e),
        }
    }
    let Some((sheet, v)) = best else {
        return Err(last_error
            .map(Into::into)
            .unwrap_or_else(|| "the certificate has no sheets".into()));
    };
    println!(
        "sheet {} of {}: verdict {}, score {:.3} (threshold {}), {} block(s) differ, back found at {:.2} scan px per back px",
        sheet + 1,
        fronts.len(),
        match v.verdict {
            Verdict::Match => "MATCH",
            Verdict::NoMatch => "NO MATCH",
        },
        v.blocks.score,
        verify::MATCH_THRESHOLD,
        v.blocks.tampered.len(),
        v.location.scale,
    );
    if !v.blocks.tampered.is_empty() {
        let shown: Vec<String> = v
            .blocks
            .tampered
            .iter()
            .take(20)
            .map(|(c, r)| format!("({c},{r})"))
            .collect();
        println!(
            "differing 16-px blocks of the front (column,row){}: {}",
            if v.blocks.tampered.len() > 20 {
                ", first 20"
            } else {
                ""
            },
            shown.join(" ")
        );
    }
    if let Some(out) = &args.out {
        let r = &v.restored;
        std::fs::write(
            out,
            crate::scramble::gray_to_png(r.width, r.height, &r.pixels)?,
        )?;
        println!("descrambled front written to {}", out.display());
    }
    match v.verdict {
        Verdict::Match => Ok(()),
        Verdict::NoMatch => Err(NoMatch(args.certificate_id).into()),
    }
}
