//! The gRPC server: bcl.v1 services, `grpc.health.v1.Health` per service, and server reflection, behind
//! mutual TLS, the role check, per-caller rate limits and a deadline on every call (`guard.rs`).

pub mod auth;
pub mod guard;
pub mod health;
pub mod ratelimit;
mod read_log;
mod services;
pub mod status;
pub mod telemetry;
pub mod tls;

use crate::engine::Engine;
use bcl_proto::verify_server::VerifyServer;
use bcl_proto::{
    admin_server::AdminServer, audit_server::AuditServer, ingest_server::IngestServer, issuance_server::IssuanceServer,
};
pub use services::Services;
use std::collections::HashMap;
use std::future::Future;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

/// Largest gRPC message accepted (an Append of 10,000 events with seal images fits).
const MAX_MESSAGE_BYTES: usize = 64 * 1024 * 1024;
/// Largest Issue request: its fields are bounded far below this (`docs/limits.md`), so anything bigger is
/// refused by the framing before it is decoded.
const MAX_ISSUE_REQUEST_BYTES: usize = 64 * 1024;

/// How `bcl serve` protects its listener.
pub struct ServeOptions {
    /// The TLS directory (`ca.pem`, `server.pem`, `server.key`); `None` = plaintext (`--insecure-dev`), where
    /// every caller may call everything.
    pub tls_dir: Option<PathBuf>,
    /// Municipalities of `bcl://link` certificates (without a code) by certificate CN.
    pub link_grants: HashMap<String, Vec<String>>,
    /// Requests per second per caller identity (0 = unlimited) and the bucket size.
    pub rate_per_second: f64,
    pub rate_burst: f64,
    /// The longest a call may take; a client's shorter `grpc-timeout` is honoured, a longer one capped.
    pub max_deadline: Duration,
    /// Admission limits for Issue (load shedding, `crate::shed`); `None` admits everything.
    pub shedding: Option<crate::shed::Config>,
    /// After the shutdown signal, how long calls still open may run before they are cut. Unary calls end
    /// within `max_deadline` anyway; this bounds the long-lived streams (the other centre's replication
    /// stream, health watches, followed log reads) that would otherwise hold a graceful shutdown forever.
    pub shutdown_grace: Duration,
}

impl ServeOptions {
    /// Plaintext with every right, for in-process benchmarks and tools that embed the server.
    pub fn insecure_dev() -> ServeOptions {
        ServeOptions { tls_dir: None, ..ServeOptions::default() }
    }
}

impl Default for ServeOptions {
    fn default() -> Self {
        ServeOptions {
            tls_dir: None,
            link_grants: HashMap::new(),
            rate_per_second: DEFAULT_RATE_PER_SECOND,
            rate_burst: DEFAULT_RATE_BURST,
            max_deadline: DEFAULT_MAX_DEADLINE,
            shedding: Some(crate::shed::Config::default()),
            shutdown_grace: DEFAULT_MAX_DEADLINE,
        }
    }
}

/// Per caller identity: far above what one exchange centre sends (~1 certificate/s on average nationwide),
/// low enough that one runaway client cannot take the engine's whole capacity.
pub const DEFAULT_RATE_PER_SECOND: f64 = 1000.0;
pub const DEFAULT_RATE_BURST: f64 = 2000.0;
/// An Issue takes milliseconds; a whole `Audit.Reproduce` of a large certificate well under a second.
pub const DEFAULT_MAX_DEADLINE: Duration = Duration::from_secs(30);

/// Serves plaintext with every right (see [`ServeOptions::insecure_dev`]) and the default load shedding for
/// Issue until `shutdown` resolves.
pub async fn serve(
    engine: Arc<Engine>,
    listener: tokio::net::TcpListener,
    shutdown: impl Future<Output = ()> + Send,
) -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
    serve_with(engine, listener, shutdown, ServeOptions::insecure_dev()).await
}

/// [`serve`] with the given admission limits for Issue; `None` admits everything (comparison runs).
pub async fn serve_with_shedding(
    engine: Arc<Engine>,
    listener: tokio::net::TcpListener,
    shutdown: impl Future<Output = ()> + Send,
    shedding: Option<crate::shed::Config>,
) -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
    serve_with(engine, listener, shutdown, ServeOptions { shedding, ..ServeOptions::insecure_dev() }).await
}

/// Serves until `shutdown` resolves, then stops accepting and lets in-flight calls finish. Every answered
/// write was made durable by the writer before its answer, so nothing is left to flush.
pub async fn serve_with(
    engine: Arc<Engine>,
    listener: tokio::net::TcpListener,
    shutdown: impl Future<Output = ()> + Send,
    options: ServeOptions,
) -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
    let admission = options.shedding.map(|c| Arc::new(crate::shed::Admission::new(c)));
    let services = Services { engine, admission };
    let (health, health_service) = tonic_health::server::health_reporter();
    health.set_serving::<IngestServer<Services>>().await;
    health.set_serving::<IssuanceServer<Services>>().await;
    health.set_serving::<AuditServer<Services>>().await;
    health.set_serving::<AdminServer<Services>>().await;
    health.set_serving::<VerifyServer<Services>>().await;
    if let Some(r) = engine_replication(&services) {
        tokio::spawn(report_centre_health(r, health.clone()));
    }
    let replication = services.engine.replication().is_some().then(|| {
        bcl_proto::replication_server::ReplicationServer::new(crate::replication::ReplicationService {
            engine: services.engine.clone(),
        })
        .max_encoding_message_size(256 * 1024 * 1024)
        .max_decoding_message_size(MAX_MESSAGE_BYTES)
    });
    // With replication, `report_centre_health` owns "" and "bcl.v1.Issuance" (this centre can issue or not);
    // the watcher reports storage for the other services and each municipality.
    let watcher = tokio::spawn(health::watch(services.engine.clone(), health, engine_replication(&services).is_none()));
    let reflection = tonic_reflection::server::Builder::configure()
        .register_encoded_file_descriptor_set(bcl_proto::FILE_DESCRIPTOR_SET)
        .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
        .build_v1()?;
    let limiter = if options.rate_per_second > 0.0 {
        ratelimit::RateLimiter::new(options.rate_per_second, options.rate_burst)
    } else {
        ratelimit::RateLimiter::disabled()
    };
    let guard = guard::GuardLayer(Arc::new(guard::GuardConfig {
        tls: options.tls_dir.is_some(),
        link_grants: options.link_grants,
        limiter,
    }));
    // TCP_NODELAY: an Issue is one small request and one response; with Nagle's algorithm and delayed
    // ACKs a response can sit for ~40 ms waiting to be coalesced.
    let incoming = tonic::transport::server::TcpIncoming::from(listener).with_nodelay(Some(true));
    let mut builder = tonic::transport::Server::builder().timeout(options.max_deadline);
    if let Some(dir) = &options.tls_dir {
        builder = builder.tls_config(tls::server_tls(dir)?)?;
    }
    let grace = options.shutdown_grace;
    let (signalled, on_signal) = tokio::sync::oneshot::channel::<()>();
    let shutdown = async move {
        shutdown.await;
        tracing::info!("shutting down: no new connections; finishing the calls in flight");
        let _ = signalled.send(());
    };
    let serve = builder
        .layer(guard)
        .add_service(health_service)
        .add_service(reflection)
        .add_service(IngestServer::new(services.clone()).max_decoding_message_size(MAX_MESSAGE_BYTES))
        .add_service(IssuanceServer::new(services.clone()).max_decoding_message_size(MAX_ISSUE_REQUEST_BYTES))
        .add_service(AuditServer::new(services.clone()).max_encoding_message_size(MAX_MESSAGE_BYTES))
        .add_service(AdminServer::new(services.clone()))
        .add_service(VerifyServer::new(services).max_decoding_message_size(crate::verify::MAX_VERIFY_REQUEST_BYTES))
        .add_optional_service(replication)
        .serve_with_incoming_shutdown(incoming, shutdown);
    tokio::pin!(serve);
    let result = tokio::select! {
        result = &mut serve => result,
        () = async {
            match on_signal.await {
                Ok(()) => tokio::time::sleep(grace).await,
                // The server ended without a signal: the other branch has its result.
                Err(_) => std::future::pending().await,
            }
        } => {
            tracing::warn!(grace_ms = grace.as_millis() as u64, "calls still open after the shutdown grace period (streams); closing them");
            Ok(())
        }
    };
    watcher.abort();
    result?;
    Ok(())
}

fn engine_replication(services: &Services) -> Option<Arc<crate::replication::Replication>> {
    services.engine.replication().cloned()
}

/// Keeps `grpc.health.v1` truthful for a kiosk vendor's router: `bcl.v1.Issuance` (and the overall
/// status, service "") is SERVING while this centre can issue (a primary, or a follower in contact with
/// the primary) and NOT_SERVING while it would refuse everything as STALE_REPLICA or replication stopped.
async fn report_centre_health(r: Arc<crate::replication::Replication>, health: tonic_health::server::HealthReporter) {
    let mut last = None;
    let mut tick = tokio::time::interval(std::time::Duration::from_millis(50));
    loop {
        tick.tick().await;
        let serving = r.issuing_state().is_ok();
        if last != Some(serving) {
            tracing::info!(state = %r.describe(), "centre health");
            let status =
                if serving { tonic_health::ServingStatus::Serving } else { tonic_health::ServingStatus::NotServing };
            health.set_service_status("", status).await;
            health.set_service_status("bcl.v1.Issuance", status).await;
            last = Some(serving);
        }
    }
}

pub fn local_addr(listener: &tokio::net::TcpListener) -> std::io::Result<SocketAddr> {
    listener.local_addr()
}
