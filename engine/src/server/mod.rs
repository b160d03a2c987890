//! The gRPC server: bcl.v1 services, `grpc.health.v1.Health` per service, and server reflection.

mod read_log;
mod services;
pub mod status;

use crate::engine::Engine;
use bcl_proto::{admin_server::AdminServer, audit_server::AuditServer, ingest_server::IngestServer, issuance_server::IssuanceServer};
use bcl_proto::verify_server::VerifyServer;
pub use services::Services;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;

/// Largest gRPC message accepted (an Append of 10,000 events with seal images fits).
const MAX_MESSAGE_BYTES: usize = 64 * 1024 * 1024;
/// Largest Issue request: its fields are bounded far below this (`docs/limits.md`), so anything bigger is
/// refused by the framing before it is decoded.
const MAX_ISSUE_REQUEST_BYTES: usize = 64 * 1024;

/// Serves until `shutdown` resolves, with the default load shedding for Issue.
pub async fn serve(
    engine: Arc<Engine>,
    listener: tokio::net::TcpListener,
    shutdown: impl Future<Output = ()> + Send,
) -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
    serve_with_shedding(engine, listener, shutdown, Some(crate::shed::Config::default())).await
}

/// [`serve`] with the given admission limits for Issue; `None` admits everything (comparison runs).
pub async fn serve_with_shedding(
    engine: Arc<Engine>,
    listener: tokio::net::TcpListener,
    shutdown: impl Future<Output = ()> + Send,
    shedding: Option<crate::shed::Config>,
) -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
    let services = Services { engine, admission: shedding.map(|c| Arc::new(crate::shed::Admission::new(c))) };
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
    let reflection = tonic_reflection::server::Builder::configure()
        .register_encoded_file_descriptor_set(bcl_proto::FILE_DESCRIPTOR_SET)
        .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
        .build_v1()?;
    // TCP_NODELAY: an Issue is one small request and one response; with Nagle's algorithm and delayed
    // ACKs a response can sit for ~40 ms waiting to be coalesced.
    let incoming = tonic::transport::server::TcpIncoming::from(listener).with_nodelay(Some(true));
    tonic::transport::Server::builder()
        .add_service(health_service)
        .add_service(reflection)
        .add_service(IngestServer::new(services.clone()).max_decoding_message_size(MAX_MESSAGE_BYTES))
        .add_service(IssuanceServer::new(services.clone()).max_decoding_message_size(MAX_ISSUE_REQUEST_BYTES))
        .add_service(AuditServer::new(services.clone()).max_encoding_message_size(MAX_MESSAGE_BYTES))
        .add_service(AdminServer::new(services.clone()))
        .add_service(VerifyServer::new(services).max_decoding_message_size(crate::verify::MAX_VERIFY_REQUEST_BYTES))
        .add_optional_service(replication)
        .serve_with_incoming_shutdown(incoming, shutdown)
        .await?;
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
            let status = if serving {
                tonic_health::ServingStatus::Serving
            } else {
                tonic_health::ServingStatus::NotServing
            };
            health.set_service_status("", status).await;
            health.set_service_status("bcl.v1.Issuance", status).await;
            last = Some(serving);
        }
    }
}

pub fn local_addr(listener: &tokio::net::TcpListener) -> std::io::Result<SocketAddr> {
    listener.local_addr()
}
