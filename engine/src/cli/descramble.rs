//! `bcl descramble`: restores the front of a certificate from an image of its back, e.g. the image
//! `pdfimages -png cert.pdf back` extracts from the issued PDF. The key is derived from the server's master
//! secret (in its data directory) and the certificate id printed on the back.

use super::CliResult;
use crate::secrets::MasterSecret;
use std::path::PathBuf;

#[derive(clap::Args)]
pub struct Args {
    /// PNG image of the back (indexed or RGB).
    pub back: PathBuf,
    /// Certificate id printed under the back image.
    #[arg(long)]
    pub certificate_id: String,
    /// The issuing server's data directory (holds the scramble master secret).
    #[arg(long, default_value = "./bcl-data")]
    pub data_dir: PathBuf,
    /// Where to write the restored front (grayscale PNG).
    #[arg(long, short)]
    pub out: PathBuf,
}

pub fn run(args: Args) -> CliResult {
    let secret_path = args.data_dir.join(crate::secrets::MASTER_SECRET_FILE);
    if !secret_path.exists() {
        return Err(format!("no scramble master secret in {}", args.data_dir.display()).into());
    }
    let secret = MasterSecret::load_or_create(&args.data_dir)?;
    let key = crate::certificate::scramble_key(&secret, &args.certificate_id);
    let png = std::fs::read(&args.back)?;
    let (width, height, gray) = crate::scramble::descramble_png(&png, &key)?;
    std::fs::write(&args.out, crate::scramble::gray_to_png(width, height, &gray)?)?;
    println!("restored front {width}x{height} written to {}", args.out.display());
    Ok(())
}
