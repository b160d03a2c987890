//! What an operator watches: the Prometheus metrics (names and meaning in `docs/operations.md`), the endpoint
//! that serves them, and the gauges refreshed from the engine's state.
//!
//! Metric calls elsewhere (`writer.rs`, `issuance.rs`, `certificate.rs`) are single lines that use the names
//! defined here; without `--metrics-listen` no recorder is installed and they cost next to nothing.

use super::tls::BoxError;
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use std::net::SocketAddr;
use std::sync::{Arc, OnceLock};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

pub const ISSUE_REQUESTS: &str = "bcl_issue_requests_total";
pub const ISSUE_DURATION: &str = "bcl_issue_duration_seconds";
pub const REFUSALS: &str = "bcl_refusals_total";
pub const REPLAYS: &str = "bcl_replays_total";
pub const GUARD_REFUSALS: &str = "bcl_guard_refusals_total";
pub const APPEND_EVENTS: &str = "bcl_append_events_total";
pub const WRITER_BATCH_LEAVES: &str = "bcl_writer_batch_leaves";
pub const WRITER_FSYNC: &str = "bcl_writer_fsync_seconds";
pub const WRITER_QUEUE_DEPTH: &str = "bcl_writer_queue_depth";
pub const MUNICIPALITIES: &str = "bcl_municipalities";
pub const MUNICIPALITY_STATE: &str = "bcl_municipality_state";
pub const LOG_LEAVES: &str = "bcl_log_leaves";
pub const CHECKPOINT_AGE: &str = "bcl_checkpoint_age_seconds";
pub const STORAGE_HEALTHY: &str = "bcl_storage_healthy";
pub const RENDER_DURATION: &str = "bcl_render_seconds";
pub const BACK_IMAGE_DURATION: &str = "bcl_back_image_seconds";

const SECONDS_BUCKETS: &[f64] = &[0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0];
const BATCH_BUCKETS: &[f64] = &[1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0, 256.0, 1024.0, 4096.0, 16384.0, 65536.0];

static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();

/// Installs the process-wide Prometheus recorder (once; later calls return the same handle).
pub fn install() -> Result<PrometheusHandle, BoxError> {
    if let Some(h) = HANDLE.get() {
        return Ok(h.clone());
    }
    let handle = PrometheusBuilder::new()
        .set_buckets(SECONDS_BUCKETS)?
        .set_buckets_for_metric(Matcher::Full(WRITER_BATCH_LEAVES.into()), BATCH_BUCKETS)?
        .install_recorder()?;
    describe();
    let _ = HANDLE.set(handle);
    Ok(HANDLE.get().expect("set above").clone())
}

fn describe() {
    use metrics::{describe_counter, describe_gauge, describe_histogram, Unit};
    describe_counter!(
        ISSUE_REQUESTS,
        "Issue calls by centre, certificate type and outcome (issued, replayed or the refusal reason)"
    );
    describe_histogram!(ISSUE_DURATION, Unit::Seconds, "Issue latency in the server, by centre, type and outcome");
    describe_counter!(REFUSALS, "Refused Issue calls by ErrorInfo reason");
    describe_counter!(
        REPLAYS,
        "Retries answered with the certificate issued before, by where its bytes came from: cache, \
         current_state (re-rendered from today's data, digest equal) or history (the log prefix refolded)"
    );
    describe_counter!(
        GUARD_REFUSALS,
        "Calls refused before their handler: unauthenticated, permission_denied, outside_scope, rate_limited"
    );
    describe_counter!(APPEND_EVENTS, "Change events received by Ingest.Append, by outcome");
    describe_histogram!(WRITER_BATCH_LEAVES, "Leaves made durable by one flush of the writer (group commit size)");
    describe_histogram!(WRITER_FSYNC, Unit::Seconds, "Time of the writer's durable append (write and flush) per batch");
    describe_gauge!(WRITER_QUEUE_DEPTH, "Commands the writer took for its latest batch (backlog at that moment)");
    describe_gauge!(MUNICIPALITIES, "Municipalities by state (ACTIVE, MAINTENANCE, SUSPENDED)");
    describe_gauge!(MUNICIPALITY_STATE, "State per municipality: 0 ACTIVE, 1 MAINTENANCE, 2 SUSPENDED");
    describe_gauge!(LOG_LEAVES, "Durable leaves in the log (the tree size of the latest checkpoint)");
    describe_gauge!(
        CHECKPOINT_AGE,
        Unit::Seconds,
        "Seconds since the latest checkpoint was published (or the server started)"
    );
    describe_gauge!(STORAGE_HEALTHY, "1 while the log accepts writes, 0 once a flush failed (restart needed)");
    describe_histogram!(RENDER_DURATION, Unit::Seconds, "Rendering one certificate: layout, fronts, backs and PDF");
    describe_histogram!(
        BACK_IMAGE_DURATION,
        Unit::Seconds,
        "Rasterising one front and scrambling it into its back image"
    );
}

/// Serves `GET /metrics` on `listener` until the process ends: over TLS with a client certificate of the
/// server's CA (`tls`), or plaintext with `--insecure-dev`. A hand-rolled HTTP/1.1 answer keeps this free of
/// a web framework: the endpoint reads one request head and closes the connection.
pub async fn serve_metrics(
    listener: tokio::net::TcpListener,
    handle: PrometheusHandle,
    tls: Option<Arc<rustls::ServerConfig>>,
) {
    let acceptor = tls.map(tokio_rustls::TlsAcceptor::from);
    loop {
        let Ok((stream, peer)) = listener.accept().await else { continue };
        let handle = handle.clone();
        let acceptor = acceptor.clone();
        tokio::spawn(async move {
            let served = match acceptor {
                Some(a) => match tokio::time::timeout(Duration::from_secs(10), a.accept(stream)).await {
                    Ok(Ok(tls)) => answer(tls, &handle).await,
                    Ok(Err(e)) => Err(e),
                    Err(_) => Err(std::io::ErrorKind::TimedOut.into()),
                },
                None => answer(stream, &handle).await,
            };
            if let Err(e) = served {
                tracing::debug!(%peer, error = %e, "metrics connection ended with an error");
            }
        });
    }
}

async fn answer<S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin>(
    mut stream: S,
    handle: &PrometheusHandle,
) -> std::io::Result<()> {
    let mut head = Vec::with_capacity(512);
    let mut buf = [0u8; 512];
    while !head.windows(4).any(|w| w == b"\r\n\r\n") {
        if head.len() > 8192 {
            return stream
                .write_all(b"HTTP/1.1 431 Request Header Fields Too Large\r\nConnection: close\r\n\r\n")
                .await;
        }
        let n = tokio::time::timeout(Duration::from_secs(10), stream.read(&mut buf))
            .await
            .map_err(|_| std::io::Error::from(std::io::ErrorKind::TimedOut))??;
        if n == 0 {
            return Ok(());
        }
        head.extend_from_slice(&buf[..n]);
    }
    let line = head.split(|&b| b == b'\r').next().unwrap_or_default();
    let ok = line.starts_with(b"GET /metrics ") || line.starts_with(b"GET /metrics?");
    let response = if ok {
        let body = handle.render();
        format!(
            "HTTP/1.1 200 OK\r\nContent-Type: text/plain; version=0.0.4\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        )
    } else {
        "HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n".to_string()
    };
    stream.write_all(response.as_bytes()).await?;
    stream.shutdown().await
}

/// Binds the metrics listener and serves it in the background; returns the bound address.
pub async fn start(addr: &str, tls: Option<Arc<rustls::ServerConfig>>) -> Result<SocketAddr, BoxError> {
    let handle = install()?;
    let listener = tokio::net::TcpListener::bind(addr).await?;
    let bound = listener.local_addr()?;
    // Histograms keep raw samples until upkeep folds them into buckets; render does it too, but an
    // endpoint nobody scrapes must not grow without bound.
    let upkeep = handle.clone();
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(Duration::from_secs(5));
        loop {
            tick.tick().await;
            upkeep.run_upkeep();
        }
    });
    tokio::spawn(serve_metrics(listener, handle, tls));
    Ok(bound)
}

/// One durable batch of the writer: its size (group commit) and the time of its write and flush.
pub fn record_flush(leaves: usize, took: Duration) {
    metrics::histogram!(WRITER_BATCH_LEAVES).record(leaves as f64);
    metrics::histogram!(WRITER_FSYNC).record(took);
}
