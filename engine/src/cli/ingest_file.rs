//! `bcl ingest FILE.jsonl`: the data link's client side. Reads the JSON Lines interchange format and
//! appends it in batches; a malformed line stops the run before anything after it is sent.

use super::CliResult;
use bcl_proto::{ingest_client::IngestClient, AppendRequest, ChangeEvent};
use std::io::BufRead;
use std::path::{Path, PathBuf};

#[derive(clap::Args)]
pub struct Args {
    /// JSON Lines file, one canonical-JSON ChangeEvent per line.
    pub file: PathBuf,
    #[arg(long, default_value = "http://127.0.0.1:50051")]
    pub server: String,
    /// Events per Append request.
    #[arg(long, default_value_t = 1000)]
    pub batch: usize,
    #[command(flatten)]
    pub tls: super::ClientTlsArgs,
}

/// Parses the whole file first so that a bad line is reported (by line number, never by content) before
/// any event is sent.
pub fn read_events(path: &Path) -> Result<Vec<ChangeEvent>, String> {
    let file = std::fs::File::open(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let mut events = Vec::new();
    for (i, line) in std::io::BufReader::new(file).split(b'\n').enumerate() {
        let line_no = i + 1;
        let bytes = line.map_err(|e| format!("line {line_no}: {e}"))?;
        let text = std::str::from_utf8(&bytes).map_err(|_| format!("line {line_no}: not valid UTF-8"))?;
        if text.trim().is_empty() {
            continue;
        }
        let event: ChangeEvent = serde_json::from_str(text).map_err(|e| {
            // serde's message names the field/enum problem; the column points into the line, not its text.
            format!("line {line_no}: not a canonical-JSON ChangeEvent ({})", redact(&e))
        })?;
        events.push(event);
    }
    Ok(events)
}

/// serde_json echoes string values in some messages ("invalid value: string \"...\""): keep only the
/// category and position, which hold no personal data.
fn redact(e: &serde_json::Error) -> String {
    let msg = e.to_string();
    let kind = if msg.contains("unknown variant") || msg.contains("unknown enum") {
        "unknown enum value"
    } else if msg.contains("unknown field") {
        "unknown field"
    } else if msg.contains("missing field") {
        "missing field"
    } else if e.is_syntax() || e.is_eof() {
        "malformed JSON"
    } else {
        "wrong type or value"
    };
    format!("{kind} at column {}", e.column())
}

pub fn run(args: Args) -> CliResult {
    let events = read_events(&args.file)?;
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    runtime.block_on(async move {
        // An https:// server is reached as the link of the file's (first) municipality unless --identity says
        // otherwise.
        let code = events.first().map_or("", |e| e.municipality_code.as_str());
        let channel = args.tls.connect(&args.server, &format!("link-{code}")).await?;
        let mut client =
            IngestClient::new(channel).max_decoding_message_size(64 << 20).max_encoding_message_size(64 << 20);
        let mut sent = 0usize;
        for chunk in events.chunks(args.batch.max(1)) {
            let resp = client.append(AppendRequest { events: chunk.to_vec() }).await?.into_inner();
            sent += chunk.len();
            tracing::debug!(first = resp.first_position, last = resp.last_position, "appended");
        }
        println!("appended {sent} events from {}", args.file.display());
        Ok(())
    })
}
