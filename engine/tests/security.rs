//! Who may call what, through the real `bcl serve` with mutual TLS and the certificates of `bcl certs init`:
//! every role against every service, municipality and centre scopes, callers without (or with foreign)
//! certificates, the admin's identity in the log, and per-caller rate limits.

mod common;

use bcl_proto::{
    admin_client::AdminClient, audit_client::AuditClient, ingest_client::IngestClient, issuance_client::IssuanceClient,
    log_leaf::Kind, verify_client::VerifyClient, AppendRequest, Centre, GetCheckpointRequest, LogLeaf, MunicipalityRef,
    ReadLogRequest, SetMaintenanceRequest, VerifyBackRequest,
};
use common::*;
use prost::Message;
use tonic::Code;

/// Another valid municipality code (Minato, 131032) that the `link-131016` and `admin-131016` certificates
/// do not cover.
const OTHER: &str = "131032";

/// A server with the fixture municipality appended and configured (as its own link and admin).
async fn populated(dir: &std::path::Path, extra: &[&str]) -> (Server, bcl_fixtures::Municipality) {
    let server = Server::start_with(dir, NOW, extra);
    let m = fixture(10);
    let mut link = IngestClient::new(server.channel_as("link-131016").await).max_encoding_message_size(64 << 20);
    link.append(AppendRequest { events: m.events.clone() }).await.expect("the link appends its municipality");
    AdminClient::new(server.channel_as("admin-131016").await)
        .update_settings(bcl_fixtures::municipality_settings(CODE))
        .await
        .expect("the admin configures its municipality");
    (server, m)
}

fn issuable(m: &bcl_fixtures::Municipality) -> &bcl_fixtures::Case {
    m.cases
        .iter()
        .find(|c| {
            c.certificate_type == bcl_proto::CertificateType::ResidentRecord
                && matches!(c.expect, bcl_fixtures::Expect::Issue { .. })
        })
        .expect("an issuable resident record case")
}

fn assert_denied<T: std::fmt::Debug>(result: Result<T, tonic::Status>, what: &str) {
    let status = result.expect_err(what);
    assert_eq!(status.code(), Code::PermissionDenied, "{what}: {status:?}");
    assert_eq!(reason(&status), "PERMISSION_DENIED", "{what}");
}

fn assert_not_denied<T: std::fmt::Debug>(result: Result<T, tonic::Status>, what: &str) {
    if let Err(status) = result {
        assert!(
            !matches!(status.code(), Code::PermissionDenied | Code::Unauthenticated),
            "{what} was refused: {status:?}"
        );
    }
}

#[tokio::test]
async fn each_role_is_allowed_its_services_and_denied_the_others() {
    let dir = tempfile::tempdir().unwrap();
    let (server, m) = populated(dir.path(), &[]).await;
    let case = issuable(&m);
    // (identity, Ingest, Issuance, Admin, Audit, Verify)
    let table = [
        ("centre-east", false, true, false, false, false),
        ("centre-west", false, true, false, false, false),
        ("link-131016", true, false, false, false, false),
        ("admin-131016", false, false, true, false, false),
        ("auditor", false, false, false, true, true),
        ("peer-west", true, true, true, true, false),
        ("monitor", false, false, false, false, false),
    ];
    for (n, (identity, ingest, issuance, admin, audit, verify)) in table.into_iter().enumerate() {
        let channel = server.channel_as(identity).await;
        let check = |allowed: bool, result: Result<(), tonic::Status>, service: &str| {
            let what = format!("{identity} calling {service}");
            if allowed {
                assert_not_denied(result, &what)
            } else {
                assert_denied(result, &what)
            }
        };
        let r = IngestClient::new(channel.clone())
            .get_municipality_status(MunicipalityRef { municipality_code: CODE.into() })
            .await
            .map(drop);
        check(ingest, r, "Ingest");
        let mut req = resident_record(&format!("security-{n}"), &case.card_serial, &case.subject_resident_ids);
        req.centre = if identity == "centre-west" { Centre::West } else { Centre::East } as i32;
        let r = IssuanceClient::new(channel.clone()).max_decoding_message_size(64 << 20).issue(req).await.map(drop);
        check(issuance, r, "Issuance");
        let r = AdminClient::new(channel.clone())
            .get_settings(MunicipalityRef { municipality_code: CODE.into() })
            .await
            .map(drop);
        check(admin, r, "Admin");
        let r = AuditClient::new(channel.clone()).get_checkpoint(GetCheckpointRequest {}).await.map(drop);
        check(audit, r, "Audit");
        let r = VerifyClient::new(channel.clone())
            .verify_back(VerifyBackRequest { scan: vec![], certificate_id: "x".into() })
            .await
            .map(drop);
        check(verify, r, "Verify");
    }
}

#[tokio::test]
async fn a_link_appends_only_for_its_own_municipalities() {
    let dir = tempfile::tempdir().unwrap();
    let (server, m) = populated(dir.path(), &[]).await;
    let mut link = IngestClient::new(server.channel_as("link-131016").await);
    let mut foreign = m.events[0].clone();
    foreign.municipality_code = OTHER.into();
    // Alone, or hidden in a batch with the link's own events: the whole batch is refused.
    assert_denied(link.append(AppendRequest { events: vec![foreign.clone()] }).await, "append for another");
    assert_denied(
        link.append(AppendRequest { events: vec![m.events[0].clone(), foreign.clone()] }).await,
        "mixed batch",
    );
    assert_denied(
        link.get_municipality_status(MunicipalityRef { municipality_code: OTHER.into() }).await,
        "status of another",
    );
    // Nothing of the other municipality was written (a peer may ask about any municipality).
    let err = server
        .ingest()
        .await
        .get_municipality_status(MunicipalityRef { municipality_code: OTHER.into() })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::NotFound, "{err:?}");
    // Its own municipality's re-send is still accepted (idempotent).
    link.append(AppendRequest { events: vec![m.events[0].clone()] }).await.expect("own municipality");
}

#[tokio::test]
async fn an_admin_administers_only_its_own_municipality_and_a_centre_issues_only_as_itself() {
    let dir = tempfile::tempdir().unwrap();
    let (server, m) = populated(dir.path(), &[]).await;
    let mut admin = AdminClient::new(server.channel_as("admin-131016").await);
    assert_denied(
        admin
            .set_maintenance(SetMaintenanceRequest { municipality_code: OTHER.into(), on: true, reason: String::new() })
            .await,
        "maintenance of another",
    );
    assert_denied(admin.get_settings(MunicipalityRef { municipality_code: OTHER.into() }).await, "settings of another");
    let case = issuable(&m);
    let mut east = IssuanceClient::new(server.channel_as("centre-east").await).max_decoding_message_size(64 << 20);
    let mut req = resident_record("as-west", &case.card_serial, &case.subject_resident_ids);
    req.centre = Centre::West as i32;
    assert_denied(east.issue(req.clone()).await, "centre-east issuing as West");
    req.centre = Centre::East as i32;
    let issued = east.issue(req).await.expect("centre-east issuing as East").into_inner();
    assert!(!issued.pdf.is_empty());
}

#[tokio::test]
async fn callers_without_a_certificate_of_the_ca_are_rejected() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), NOW);
    let ca = std::fs::read(certs_dir().join("ca.pem")).unwrap();
    // TLS without a client certificate: the server's handshake requires one.
    let no_cert = tonic::transport::ClientTlsConfig::new().ca_certificate(tonic::transport::Certificate::from_pem(&ca));
    let result = match tonic::transport::Endpoint::from_shared(server.url())
        .unwrap()
        .tls_config(no_cert)
        .unwrap()
        .connect()
        .await
    {
        Ok(channel) => AuditClient::new(channel).get_checkpoint(GetCheckpointRequest {}).await.map(drop),
        Err(e) => Err(tonic::Status::unavailable(e.to_string())),
    };
    assert!(result.is_err(), "a caller without a client certificate was served");
    // Plaintext to a TLS listener.
    let plain = format!("http://{}", server.addr);
    let result = match tonic::transport::Endpoint::from_shared(plain).unwrap().connect().await {
        Ok(channel) => AuditClient::new(channel).get_checkpoint(GetCheckpointRequest {}).await.map(drop),
        Err(e) => Err(tonic::Status::unavailable(e.to_string())),
    };
    assert!(result.is_err(), "a plaintext caller was served");
    // A certificate of another CA, even with a valid-looking grant.
    let foreign = tempfile::tempdir().unwrap();
    tool(env!("CARGO_BIN_EXE_bcl"), &["certs", "init", "--dir", foreign.path().to_str().unwrap()]);
    let mut mixed =
        tonic::transport::ClientTlsConfig::new().ca_certificate(tonic::transport::Certificate::from_pem(&ca));
    mixed = mixed.identity(tonic::transport::Identity::from_pem(
        std::fs::read(foreign.path().join("auditor.pem")).unwrap(),
        std::fs::read(foreign.path().join("auditor.key")).unwrap(),
    ));
    let result =
        match tonic::transport::Endpoint::from_shared(server.url()).unwrap().tls_config(mixed).unwrap().connect().await
        {
            Ok(channel) => AuditClient::new(channel).get_checkpoint(GetCheckpointRequest {}).await.map(drop),
            Err(e) => Err(tonic::Status::unavailable(e.to_string())),
        };
    assert!(result.is_err(), "a certificate of a foreign CA was accepted");
    // The server is still up for a proper caller.
    AuditClient::new(server.channel_as("auditor").await)
        .get_checkpoint(GetCheckpointRequest {})
        .await
        .expect("auditor");
}

#[tokio::test]
async fn keys_are_private_and_a_ca_is_never_overwritten() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().to_str().unwrap();
    tool(env!("CARGO_BIN_EXE_bcl"), &["certs", "init", "--dir", d]);
    let mut keys = 0;
    for entry in std::fs::read_dir(dir.path()).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "key") {
            keys += 1;
            let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
            assert_eq!(mode, 0o600, "{}", path.display());
        }
    }
    // ca, server, 2 centres, auditor, 2 peers, monitor, link and admin of the fixture municipality.
    assert_eq!(keys, 10);
    let ca = std::fs::read(dir.path().join("ca.pem")).unwrap();
    let out =
        std::process::Command::new(env!("CARGO_BIN_EXE_bcl")).args(["certs", "init", "--dir", d]).output().unwrap();
    assert!(!out.status.success(), "a second init must not replace the CA");
    assert_eq!(std::fs::read(dir.path().join("ca.pem")).unwrap(), ca);
}

#[tokio::test]
async fn every_admin_change_records_who_made_it() {
    let dir = tempfile::tempdir().unwrap();
    let (server, _) = populated(dir.path(), &[]).await;
    AdminClient::new(server.channel_as("admin-131016").await)
        .set_maintenance(SetMaintenanceRequest { municipality_code: CODE.into(), on: true, reason: "点検".into() })
        .await
        .expect("maintenance on");
    let mut log = AuditClient::new(server.channel_as("auditor").await)
        .max_decoding_message_size(64 << 20)
        .read_log(ReadLogRequest { from_position: 0, limit: 0, follow: false })
        .await
        .unwrap()
        .into_inner();
    let mut actors = Vec::new();
    while let Some(entry) = log.message().await.unwrap() {
        if let Some(Kind::Admin(action)) = LogLeaf::decode(entry.leaf.as_slice()).unwrap().kind {
            actors.push(action.actor);
        }
    }
    // The settings of `populated` and the maintenance, both by the municipality's admin certificate.
    assert_eq!(actors.len(), 2, "{actors:?}");
    for actor in &actors {
        assert_eq!(actor, "admin-131016 (bcl://municipality-admin/131016)");
    }
}

#[tokio::test]
async fn a_flooding_caller_exhausts_only_its_own_rate_limit() {
    let dir = tempfile::tempdir().unwrap();
    // One request per second with a burst of 5: the flood below takes well under a second.
    let server = Server::start_with(dir.path(), NOW, &["--rate-limit", "1", "--rate-burst", "5"]);
    let mut flooder = AuditClient::new(server.channel_as("auditor").await);
    let started = std::time::Instant::now();
    let mut granted = 0;
    let mut exhausted = 0;
    for _ in 0..30 {
        match flooder.get_checkpoint(GetCheckpointRequest {}).await {
            Ok(_) => granted += 1,
            Err(status) => {
                assert_eq!(status.code(), Code::ResourceExhausted, "{status:?}");
                assert_eq!(reason(&status), "RATE_LIMITED");
                exhausted += 1;
            }
        }
    }
    let refill = started.elapsed().as_secs() as usize + 1;
    assert!(granted >= 5 && granted <= 5 + refill, "granted {granted} in {:?}", started.elapsed());
    assert!(exhausted >= 30 - 5 - refill, "exhausted {exhausted}");
    // Another caller is served at once; health checks are never limited.
    AuditClient::new(server.channel_as("peer-west").await)
        .get_checkpoint(GetCheckpointRequest {})
        .await
        .expect("another caller");
    let mut health = tonic_health::pb::health_client::HealthClient::new(server.channel_as("auditor").await);
    health
        .check(tonic_health::pb::HealthCheckRequest { service: "bcl.v1.Audit".into() })
        .await
        .expect("health is not rate limited");
}
