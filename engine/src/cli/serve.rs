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
    /// Also serve the scan verification web page (plain HTTP) on this address, e.g. 127.0.0.1:8080.
    #[arg(long, value_name = "ADDR")]
    pub verify_http: Option<String>,
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
        // One signal stops both servers.
        let (stop, stopped) = tokio::sync::watch::channel(());
        tokio::spawn(async move {
            shutdown_signal().await;
            let _ = stop.send(());
        });
        let until_stopped = |mut rx: tokio::sync::watch::Receiver<()>| async move {
            let _ = rx.changed().await;
        };
        let page = match &args.verify_http {
            Some(page_addr) => {
                let page_listener = tokio::net::TcpListener::bind(page_addr).await?;
                let page_addr = page_listener.local_addr()?;
                tracing::info!(addr = %page_addr, "serving the verification page");
                println!("bcl verify page on http://{page_addr}/");
                let serve = crate::verify::http::serve(engine.clone(), page_listener, until_stopped(stopped.clone()));
                Some(tokio::spawn(serve))
            }
            None => None,
        };
        crate::server::serve(engine, listener, until_stopped(stopped)).await?;
        if let Some(page) = page {
            page.await??;
        }
        Ok(())
    })
}

async fn shutdown_signal() {
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).expect("SIGTERM handler");
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {},
        _ = term.recv() => {},
    }
    tracing::info!("shutting down");
}
