//! `bcl serve`.

use super::CliResult;
use crate::clock::Clock;
use crate::engine::{Engine, EngineConfig};
use std::path::PathBuf;

#[derive(clap::Args)]
pub struct Args {
    /// Directory holding the log and the server's secrets.
    #[arg(long, default_value = "./bcl-data")]
    pub data_dir: PathBuf,
    /// Address to listen on (port 0 picks a free port; the bound address is printed).
    #[arg(long, default_value = "127.0.0.1:50051")]
    pub listen: String,
    /// Which exchange centre site this server runs in.
    #[arg(long, value_enum, default_value = "east")]
    pub centre: Centre,
    /// Fixed clock (RFC 3339), e.g. 2026-04-01T10:00:00+09:00; default: the system clock.
    #[arg(long)]
    pub now: Option<String>,
    /// Issue load shedding: issuances running at once (default: cores + 1).
    #[arg(long)]
    pub max_in_flight: Option<usize>,
    /// Issue load shedding: requests waiting for a slot before new ones are shed (default: 4 × in flight).
    #[arg(long)]
    pub max_queue: Option<usize>,
    /// Issue load shedding: longest wait for a slot, ms, before the request is shed with UNAVAILABLE.
    #[arg(long)]
    pub max_queue_wait_ms: Option<u64>,
    /// No load shedding: every Issue is admitted at once, however many wait (for comparison runs).
    #[arg(long, conflicts_with_all = ["max_in_flight", "max_queue", "max_queue_wait_ms"])]
    pub no_shed: bool,
}

#[derive(Clone, Copy, clap::ValueEnum)]
pub enum Centre {
    East,
    West,
}

pub fn run(args: Args) -> CliResult {
    let clock = match &args.now {
        Some(t) => Clock::fixed(t)?,
        None => Clock::System,
    };
    let engine = Engine::open(EngineConfig { data_dir: args.data_dir.clone(), clock, fonts: None })?;
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    runtime.block_on(async move {
        let listener = tokio::net::TcpListener::bind(&args.listen).await?;
        let addr = listener.local_addr()?;
        let centre = match args.centre {
            Centre::East => "east",
            Centre::West => "west",
        };
        tracing::info!(%addr, centre, log_len = engine.log_len(), "serving");
        // Tests and scripts read this line to find the port.
        println!("bcl listening on {addr}");
        crate::server::serve_with_shedding(engine, listener, shutdown_signal(), shedding(&args)).await
    })
}

fn shedding(args: &Args) -> Option<crate::shed::Config> {
    if args.no_shed {
        return None;
    }
    let mut c = crate::shed::Config::default();
    if let Some(n) = args.max_in_flight {
        c.max_in_flight = n.max(1);
        c.max_queue = 4 * c.max_in_flight;
    }
    c.max_queue = args.max_queue.unwrap_or(c.max_queue);
    c.max_queue_wait = args.max_queue_wait_ms.map_or(c.max_queue_wait, std::time::Duration::from_millis);
    Some(c)
}

async fn shutdown_signal() {
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).expect("SIGTERM handler");
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {},
        _ = term.recv() => {},
    }
    tracing::info!("shutting down");
}
