//! What operators and tools see of the server: per-service health and reflection.

mod common;

use common::*;
use tonic_health::pb::{health_client::HealthClient, health_check_response::ServingStatus, HealthCheckRequest};
use tonic_reflection::pb::v1::{
    server_reflection_client::ServerReflectionClient, server_reflection_request::MessageRequest,
    server_reflection_response::MessageResponse, ServerReflectionRequest,
};

#[tokio::test]
async fn every_service_reports_serving() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), NOW);
    let mut health = HealthClient::new(server.channel().await);
    for service in ["bcl.v1.Ingest", "bcl.v1.Issuance", "bcl.v1.Audit", "bcl.v1.Admin"] {
        let resp = health.check(HealthCheckRequest { service: service.into() }).await.unwrap().into_inner();
        assert_eq!(resp.status(), ServingStatus::Serving, "{service}");
    }
    let err = health.check(HealthCheckRequest { service: "bcl.v1.Nope".into() }).await.unwrap_err();
    assert_eq!(err.code(), tonic::Code::NotFound);
}

#[tokio::test]
async fn reflection_lists_the_contract() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), NOW);
    let mut client = ServerReflectionClient::new(server.channel().await);
    let request = ServerReflectionRequest { host: String::new(), message_request: Some(MessageRequest::ListServices(String::new())) };
    let mut stream = client.server_reflection_info(tokio_stream::iter([request])).await.unwrap().into_inner();
    let response = stream.message().await.unwrap().expect("one response");
    let Some(MessageResponse::ListServicesResponse(list)) = response.message_response else { panic!("not a service list") };
    let names: Vec<_> = list.service.iter().map(|s| s.name.as_str()).collect();
    for expected in ["bcl.v1.Ingest", "bcl.v1.Issuance", "bcl.v1.Audit", "bcl.v1.Admin", "grpc.health.v1.Health"] {
        assert!(names.contains(&expected), "{expected} missing from {names:?}");
    }
}
