//! `bcl`: the issuance engine's command line.

use bcl_engine::cli;
use clap::{Parser, Subcommand};
use std::path::PathBuf;

#[derive(Parser)]
#[command(name = "bcl", version, about = "Resident certificate issuance engine for convenience-store kiosks")]
struct Cli {
    /// Log line format on stderr.
    #[arg(long, value_enum, default_value = "text", global = true)]
    log_format: cli::LogFormat,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Serve the gRPC API (Ingest, Issuance, Audit, Admin, health, reflection).
    Serve(cli::serve::Args),
    /// Append a JSON Lines file of change events to a running server.
    Ingest(cli::ingest_file::Args),
    /// Generate a fixture municipality, ingest it, serve, issue certificates and write the PDFs.
    Demo(cli::demo::Args),
    /// Administer a municipality: transactions, settlement, settings, maintenance, issuance blocks.
    Admin(cli::admin::Args),
    /// Audit the transparency log: verifier key, export, verification, inclusion proofs.
    Audit(cli::audit::Args),
    /// Restore the front of a certificate from an image of its back.
    Descramble(cli::descramble::Args),
    /// Create a private CA and certificates for every role (mutual TLS), or issue one more.
    Certs(cli::certs::Args),
    /// Verify a scan of a certificate's back against the certificate re-rendered from the log.
    Verify(cli::verify::Args),
    /// Write a synthetic municipality as JSON Lines (see the bcl-fixtures crate).
    Fixtures {
        #[arg(long, default_value_t = 42)]
        seed: u64,
        #[arg(long, default_value_t = 100)]
        households: usize,
        #[arg(long, default_value = "131016")]
        code: String,
        #[arg(long, short)]
        out: PathBuf,
    },
}

fn main() -> std::process::ExitCode {
    let args = Cli::parse();
    cli::init_tracing(args.log_format);
    let result = match args.command {
        Command::Serve(a) => cli::serve::run(a),
        Command::Ingest(a) => cli::ingest_file::run(a),
        Command::Demo(a) => cli::demo::run(a),
        Command::Descramble(a) => cli::descramble::run(a),
        Command::Verify(a) => cli::verify::run(a),
        Command::Audit(a) => cli::audit::run(a),
        Command::Admin(a) => cli::admin::run(a),
        Command::Certs(a) => cli::certs::run(a),
        Command::Fixtures { seed, households, code, out } => cli::write_fixtures(seed, households, &code, &out),
    };
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("bcl: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}
