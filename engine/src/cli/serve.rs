//! `bcl serve`.

use super::CliResult;
use crate::clock::Clock;
use crate::engine::{Engine, EngineConfig};
use crate::replication::{CentreName, ReplicationConfig};
use crate::server::ServeOptions;
use std::collections::HashMap;
use std::path::PathBuf;
use std::time::Duration;

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
    /// Mutual TLS (the default): ca.pem, server.pem and server.key; every client presents a certificate of
    /// this CA whose bcl:// URI names its role (`bcl certs init --dir DIR` makes a set; docs/operations.md).
    #[arg(long, default_value = "./bcl-tls")]
    pub tls_dir: PathBuf,
    /// Plaintext without client certificates: anyone who can connect may call everything. Development
    /// only; never the default, and the server warns at start.
    #[arg(long, conflicts_with = "tls_dir")]
    pub insecure_dev: bool,
    /// Municipalities of a `bcl://link` certificate without codes, by its CN: `link-prefecture=131016,131024`.
    #[arg(long = "link-grant", value_name = "CN=CODE,...")]
    pub link_grants: Vec<String>,
    /// Requests per second per caller identity (token bucket); 0 = unlimited.
    #[arg(long, default_value_t = crate::server::DEFAULT_RATE_PER_SECOND)]
    pub rate_limit: f64,
    /// Burst size of each caller's bucket.
    #[arg(long, default_value_t = crate::server::DEFAULT_RATE_BURST)]
    pub rate_burst: f64,
    /// Longest duration of any call in seconds; a client's shorter grpc-timeout is honoured.
    #[arg(long, default_value_t = crate::server::DEFAULT_MAX_DEADLINE.as_secs_f64())]
    pub max_deadline: f64,
    /// Serve Prometheus metrics at http(s)://ADDR/metrics (TLS with a client certificate of the CA unless
    /// --insecure-dev); the bound address is printed as `bcl metrics on ADDR`.
    #[arg(long)]
    pub metrics_listen: Option<String>,
    /// Issue load shedding: issuances checking eligibility and rendering at once; one waiting for its durable
    /// append no longer counts (default: cores + 1).
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
    /// Niceness added to the render threads, so that the short steps of an Issue (reading it, the durable
    /// append, the answer) preempt renders instead of queueing behind them (e.g. 10). The default, 0, renders
    /// at the engine's own priority: above 0 a flood of cheap requests can hold renders back (see
    /// docs/operations.md).
    #[arg(long, default_value_t = crate::render_pool::DEFAULT_NICE, value_parser = clap::value_parser!(i32).range(0..=19))]
    pub render_nice: i32,
    /// The other centre's address (e.g. 127.0.0.1:50052): run as one of two replicated centres
    /// (docs/replication.md). Without it the engine runs alone.
    #[arg(long)]
    pub peer: Option<String>,
    /// The scramble master secret (32 bytes) to use; East and West must share one. Copied into a new data
    /// directory; refused if the directory already holds another.
    #[arg(long)]
    pub master_secret: Option<PathBuf>,
    /// Which centre sequences a brand-new pair's log.
    #[arg(long, value_enum, default_value = "east")]
    pub first_primary: Centre,
    /// A follower that hears nothing from the primary for this long refuses issuance (STALE_REPLICA).
    #[arg(long, default_value_t = 1000)]
    pub stale_after_ms: u64,
    /// A primary whose follower does not acknowledge for this long continues alone (degraded operation).
    #[arg(long, default_value_t = 300)]
    pub solo_after_ms: u64,
    /// Also serve the scan verification web page (plain HTTP) on this address, e.g. 127.0.0.1:8080.
    #[arg(long, value_name = "ADDR")]
    pub verify_http: Option<String>,
}

fn parse_link_grants(specs: &[String]) -> Result<HashMap<String, Vec<String>>, String> {
    let mut grants: HashMap<String, Vec<String>> = HashMap::new();
    for spec in specs {
        let (name, codes) = spec.split_once('=').ok_or_else(|| format!("--link-grant {spec}: expected CN=CODE,..."))?;
        for code in codes.split(',') {
            bcl_projections::validate::check_municipality_code(code)
                .map_err(|_| format!("--link-grant {spec}: {code} is not a municipality code"))?;
            grants.entry(name.to_string()).or_default().push(code.to_string());
        }
    }
    Ok(grants)
}

#[derive(Clone, Copy, clap::ValueEnum)]
pub enum Centre {
    East,
    West,
}

fn name(centre: Centre) -> &'static str {
    match centre {
        Centre::East => "east",
        Centre::West => "west",
    }
}

pub fn run(args: Args) -> CliResult {
    let clock = match &args.now {
        Some(t) => Clock::fixed(t)?,
        None => Clock::System,
    };
    let max_deadline = std::time::Duration::try_from_secs_f64(args.max_deadline)
        .ok()
        .filter(|d| !d.is_zero())
        .ok_or("--max-deadline: a positive number of seconds")?;
    let options = ServeOptions {
        tls_dir: (!args.insecure_dev).then(|| args.tls_dir.clone()),
        link_grants: parse_link_grants(&args.link_grants)?,
        rate_per_second: args.rate_limit,
        rate_burst: args.rate_burst,
        max_deadline,
        shedding: shedding(&args),
        // A unary call in flight ends within its deadline; streams are cut after that.
        shutdown_grace: max_deadline,
    };
    if let Some(dir) = &options.tls_dir {
        // Fail before opening the log: a missing certificate is a configuration error, not a runtime one.
        crate::server::tls::server_tls(dir).map_err(|e| {
            format!("mutual TLS needs {}/{{ca.pem,server.pem,server.key}} ({e}); create them with `bcl certs init --dir {}` or run with --insecure-dev", dir.display(), dir.display())
        })?;
    }
    if let Some(file) = &args.master_secret {
        std::fs::create_dir_all(&args.data_dir)?;
        crate::secrets::MasterSecret::provision(&args.data_dir, file)?;
    }
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    runtime.block_on(async move {
        // Bind first: the other centre may already be looking for this one while it decides its role.
        let mut listener = tokio::net::TcpListener::bind(&args.listen).await?;
        let addr = listener.local_addr()?;
        let centre = name(args.centre);
        let render = render_pool(args.render_nice, options.shedding);
        let config = EngineConfig { data_dir: args.data_dir.clone(), clock, fonts: None, render };
        let engine = match &args.peer {
            None => Engine::open(config)?,
            Some(peer) => {
                let scheme = if options.tls_dir.is_some() { "https" } else { "http" };
                let mut replication = ReplicationConfig::new(
                    CentreName::parse(centre).expect("a centre name"),
                    if peer.contains("://") { peer.clone() } else { format!("{scheme}://{peer}") },
                );
                // Mutual TLS between the centres: this centre presents its `peer-<centre>` certificate.
                replication.tls_dir = options.tls_dir.clone();
                replication.first_primary = CentreName::parse(name(args.first_primary)).expect("a centre name");
                replication.stale_after = Duration::from_millis(args.stale_after_ms);
                replication.solo_after = Duration::from_millis(args.solo_after_ms);
                if replication.solo_after >= replication.stale_after {
                    return Err(
                        "--solo-after-ms must be shorter than --stale-after-ms (a follower may take over only \
                                while the primary cannot have continued alone)"
                            .into(),
                    );
                }
                let std_listener = listener.into_std()?;
                let engine = Engine::open_replicated(config, replication, Some(&std_listener)).await?;
                listener = tokio::net::TcpListener::from_std(std_listener)?;
                engine
            }
        };
        if options.tls_dir.is_none() {
            let banner = "INSECURE: --insecure-dev serves plaintext gRPC without client certificates; anyone who can \
                          connect may read and change everything. Never use it outside development.";
            eprintln!("\n!!! {banner}\n");
            tracing::warn!("{banner}");
        }
        if let Some(metrics_addr) = &args.metrics_listen {
            let tls = match &options.tls_dir {
                Some(dir) => Some(crate::server::tls::metrics_server_config(dir)?),
                None => None,
            };
            let bound = crate::server::telemetry::start(metrics_addr, tls).await?;
            tracing::info!(%bound, "metrics");
            // Printed before the listening line, which tells a reader that the server is ready.
            println!("bcl metrics on {bound}");
        }
        tracing::info!(%addr, centre, log_len = engine.log_len(), mtls = options.tls_dir.is_some(), "serving");
        crate::replication::spawn(engine.clone());
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
        crate::server::serve_with(engine, listener, until_stopped(stopped), options).await?;
        if let Some(page) = page {
            page.await??;
        }
        Ok(())
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

/// One render thread per issuance the shedder admits at once, so an admitted render never waits for a
/// thread; without shedding, the default count (renders beyond it wait their turn in the pool).
fn render_pool(nice: i32, shedding: Option<crate::shed::Config>) -> crate::render_pool::Config {
    let mut c = crate::render_pool::Config { nice, ..Default::default() };
    if let Some(s) = shedding {
        c.threads = s.max_in_flight;
    }
    c
}

async fn shutdown_signal() {
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).expect("SIGTERM handler");
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {},
        _ = term.recv() => {},
    }
    tracing::info!("shutting down");
}
