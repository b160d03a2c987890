//! The subcommands of the `bcl` binary.

pub mod admin;
pub mod audit;
pub mod demo;
pub mod descramble;
pub mod ingest_file;
pub mod serve;
pub mod verify;

use std::path::Path;

pub type CliResult = Result<(), Box<dyn std::error::Error + Send + Sync>>;

/// Logs go to stderr; `RUST_LOG` selects the level (default `info`). Nothing personal is ever logged.
pub fn init_tracing() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let _ = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr).try_init();
}

pub fn write_fixtures(seed: u64, households: usize, code: &str, out: &Path) -> CliResult {
    let spec = bcl_fixtures::Spec { municipality_code: code.to_string(), seed, households, ..Default::default() };
    let municipality = bcl_fixtures::generate(&spec);
    let file = std::fs::File::create(out)?;
    let mut w = std::io::BufWriter::new(file);
    bcl_fixtures::write_jsonl(&municipality.events, &mut w)?;
    std::io::Write::flush(&mut w)?;
    println!("wrote {} events to {}", municipality.events.len(), out.display());
    Ok(())
}
