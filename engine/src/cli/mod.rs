//! The subcommands of the `bcl` binary.

pub mod admin;
pub mod audit;
pub mod certs;
pub mod demo;
pub mod descramble;
pub mod ingest_file;
pub mod serve;
pub mod verify;

use std::path::Path;

pub type CliResult = Result<(), Box<dyn std::error::Error + Send + Sync>>;

#[derive(Clone, Copy, Default, clap::ValueEnum)]
pub enum LogFormat {
    #[default]
    Text,
    /// One JSON object per line, with the request's span (request id, method, caller) on every line.
    Json,
}

/// Logs go to stderr; `RUST_LOG` selects the level (default `info`). Nothing personal is ever logged: events
/// name fields, rules, identifiers and caller identities, never a resident's data.
pub fn init_tracing(format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    // Colours only for a person at a terminal: log files and collectors get plain text.
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr).with_ansi(ansi);
    let _ = match format {
        LogFormat::Text => builder.try_init(),
        LogFormat::Json => builder.json().with_current_span(true).with_span_list(false).try_init(),
    };
}

/// How a client subcommand reaches the server: `https://` URLs use mutual TLS with a certificate from the
/// TLS directory, `http://` URLs are for `--insecure-dev` servers.
#[derive(clap::Args, Clone, Debug)]
pub struct ClientTlsArgs {
    /// Directory with ca.pem and the client certificates (`bcl certs init`).
    #[arg(long, env = "BCL_TLS_DIR", global = true)]
    pub tls_dir: Option<std::path::PathBuf>,
    /// The client identity to present: NAME.pem/NAME.key in the TLS directory (default: per subcommand,
    /// e.g. admin-CODE for `bcl admin`, link-CODE for `bcl ingest`, auditor for `bcl audit`).
    #[arg(long, global = true)]
    pub identity: Option<String>,
}

impl ClientTlsArgs {
    pub async fn connect(
        &self,
        url: &str,
        default_identity: &str,
    ) -> Result<tonic::transport::Channel, Box<dyn std::error::Error + Send + Sync>> {
        let identity = self.identity.as_deref().unwrap_or(default_identity);
        crate::server::tls::for_url(url, self.tls_dir.as_deref(), identity)?.connect(url).await
    }
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
