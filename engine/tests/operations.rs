//! What an operator sees, through the real `bcl serve`: the Prometheus endpoint (over mutual TLS) moving with
//! issuance, health following a municipality's suspension, the `--insecure-dev` warning, and a graceful stop
//! that loses nothing acknowledged, and deadlines: the caller's honoured, the server's cap enforced; and
//! the render threads, apart and at a lower priority.

mod common;

use bcl_proto::{AppendRequest, GetCheckpointRequest};
use common::*;
use std::io::Read;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tonic_health::pb::{health_check_response::ServingStatus, health_client::HealthClient, HealthCheckRequest};

#[tokio::test]
async fn metrics_move_with_issuance_and_need_a_client_certificate() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start_with(dir.path(), NOW, &["--metrics-listen", "127.0.0.1:0"]);
    let metrics = server.metrics_addr.clone().expect("bcl metrics on ADDR");
    let m = fixture(10);
    append_all(&server, &m.events).await;
    configure(&server, CODE).await;
    let before = scrape(&metrics, Some("monitor")).await.expect("scrape as monitor");
    let issued = |text: &str| {
        sample(text, "bcl_issue_requests_total", &["centre=\"east\"", "type=\"RESIDENT_RECORD\"", "outcome=\"issued\""])
    };

    let mut client = server.issuance().await;
    let cases: Vec<_> = m
        .cases
        .iter()
        .filter(|c| c.certificate_type == bcl_proto::CertificateType::ResidentRecord)
        .filter(|c| matches!(c.expect, bcl_fixtures::Expect::Issue { .. }))
        .take(2)
        .collect();
    assert_eq!(cases.len(), 2);
    for (i, case) in cases.iter().enumerate() {
        client
            .issue(resident_record(&format!("metrics-{i}"), &case.card_serial, &case.subject_resident_ids))
            .await
            .unwrap();
    }
    let unknown = client.issue(resident_record("metrics-unknown", "NO-SUCH-CARD", &[])).await.unwrap_err();
    let refused = reason(&unknown);

    let after = scrape(&metrics, Some("monitor")).await.expect("scrape again");
    assert_eq!(issued(&after) - issued(&before), 2.0, "issued counter");
    let by_reason = |text: &str| sample(text, "bcl_refusals_total", &[&format!("reason=\"{refused}\"")]);
    assert_eq!(by_reason(&after) - by_reason(&before), 1.0, "refusals by reason {refused}");
    let refused_issue = format!("outcome=\"{refused}\"");
    assert!(sample(&after, "bcl_issue_requests_total", &[&refused_issue]) >= 1.0);
    assert!(sample(&after, "bcl_issue_duration_seconds_count", &["outcome=\"issued\""]) >= 2.0);
    assert!(sample(&after, "bcl_render_seconds_count", &[]) >= 2.0);
    assert!(sample(&after, "bcl_back_image_seconds_count", &[]) >= 2.0);
    assert!(
        sample(&after, "bcl_writer_batch_leaves_count", &[]) > sample(&before, "bcl_writer_batch_leaves_count", &[])
    );
    assert!(sample(&after, "bcl_writer_fsync_seconds_count", &[]) >= 1.0);
    assert!(after.contains("bcl_writer_queue_depth"));
    // Gauges are refreshed in the background: present, and never going backwards.
    assert!(sample(&after, "bcl_log_leaves", &[]) >= sample(&before, "bcl_log_leaves", &[]));
    assert!(sample(&after, "bcl_log_leaves", &[]) >= m.events.len() as f64);
    assert_eq!(sample(&after, "bcl_storage_healthy", &[]), 1.0);
    assert!(after.contains("bcl_municipalities{state=\"ACTIVE\"}"));
    assert!(after.contains("bcl_checkpoint_age_seconds"));
    // Without a client certificate of the CA, or in plaintext, nothing is served.
    assert!(scrape(&metrics, None).await.is_err(), "scraped without a client certificate");
    let mut plain = tokio::net::TcpStream::connect(&metrics).await.unwrap();
    plain.write_all(b"GET /metrics HTTP/1.1\r\nHost: localhost\r\n\r\n").await.unwrap();
    let mut answer = Vec::new();
    let _ = plain.read_to_end(&mut answer).await;
    assert!(!String::from_utf8_lossy(&answer).contains("bcl_issue"), "plaintext scrape was answered");
}

/// Reads `service`'s health stream until `want` (the server sends the current status, then every change).
async fn until_status(health: &mut HealthClient<tonic::transport::Channel>, service: &str, want: ServingStatus) {
    let mut stream = health.watch(HealthCheckRequest { service: service.into() }).await.unwrap().into_inner();
    let wait = async {
        while let Some(update) = stream.message().await.unwrap() {
            if update.status() == want {
                return;
            }
        }
        panic!("health stream of {service} ended");
    };
    tokio::time::timeout(std::time::Duration::from_secs(30), wait)
        .await
        .unwrap_or_else(|_| panic!("{service} never became {want:?}"));
}

#[tokio::test]
async fn health_follows_a_municipality_suspension() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), NOW);
    let m = fixture(5);
    append_all(&server, &m.events).await;
    let mut health = HealthClient::new(server.channel_as("monitor").await);
    let issuance = format!("bcl.v1.Issuance/{CODE}");
    until_status(&mut health, &issuance, ServingStatus::Serving).await;
    // A gap in sourceSeq: the municipality is suspended (fail closed).
    let mut gap = m.events.last().unwrap().clone();
    gap.source_seq += 2;
    gap.event_id = "00000000-0000-4000-8000-00000000gap1".replace("gap1", "0abc");
    let _ = server.ingest().await.append(AppendRequest { events: vec![gap] }).await;
    assert_eq!(
        bcl_proto::MunicipalityState::try_from(status(&server, CODE).await.state).unwrap(),
        bcl_proto::MunicipalityState::Suspended
    );
    until_status(&mut health, &issuance, ServingStatus::NotServing).await;
    // The engine as a whole still serves (only that municipality stopped).
    let overall = health.check(HealthCheckRequest { service: "bcl.v1.Issuance".into() }).await.unwrap().into_inner();
    assert_eq!(overall.status(), ServingStatus::Serving);
}

#[tokio::test]
async fn insecure_dev_is_plaintext_and_says_so_loudly() {
    let dir = tempfile::tempdir().unwrap();
    let (server, mut stderr) = Server::start_logging(dir.path(), NOW, &["--insecure-dev"], "warn");
    assert!(server.url().starts_with("http://"));
    let mut audit = server.audit().await;
    audit.get_checkpoint(GetCheckpointRequest {}).await.expect("plaintext call");
    drop(audit);
    drop(server); // kills it, so the pipe reaches its end
    let mut logs = String::new();
    stderr.read_to_string(&mut logs).unwrap();
    assert!(logs.contains("INSECURE") && logs.contains("--insecure-dev"), "{logs}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_graceful_stop_keeps_every_acknowledged_issuance() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), NOW);
    let m = fixture(10);
    append_all(&server, &m.events).await;
    configure(&server, CODE).await;
    let case = issuable_resident_record(&m);
    // Issues in flight while SIGTERM arrives: each one either completes or is refused as unavailable.
    let client = server.issuance().await;
    let (first_tx, first_rx) = tokio::sync::oneshot::channel::<()>();
    let mut first_tx = Some(first_tx);
    let mut tasks = Vec::new();
    for i in 0..8 {
        let mut c = client.clone();
        let req = resident_record(&format!("shutdown-{i}"), &case.card_serial, &case.subject_resident_ids);
        tasks.push(tokio::spawn(async move { c.issue(req).await.map(|r| r.into_inner()) }));
    }
    let watcher = tokio::spawn(async move {
        let mut results = Vec::new();
        for t in tasks {
            let r = t.await.unwrap();
            if let Some(tx) = first_tx.take() {
                let _ = tx.send(());
            }
            results.push(r);
        }
        results
    });
    first_rx.await.unwrap();
    // Waiting for the process must not block the runtime that reads the in-flight responses.
    let exited = tokio::task::spawn_blocking(move || server.terminate()).await.unwrap();
    assert!(exited, "bcl serve exits cleanly on SIGTERM");
    let results = watcher.await.unwrap();
    let acknowledged: Vec<_> = results.iter().filter_map(|r| r.as_ref().ok()).collect();
    assert!(!acknowledged.is_empty());
    for r in &results {
        if let Err(status) = r {
            assert!(
                matches!(status.code(), tonic::Code::Unavailable | tonic::Code::Cancelled | tonic::Code::Unknown),
                "{status:?}"
            );
        }
    }
    // After a restart every acknowledged certificate is in the log: the same request is a replay.
    let server = Server::start(dir.path(), NOW);
    let mut client = server.issuance().await;
    for (i, r) in results.iter().enumerate() {
        if let Ok(resp) = r {
            let req = resident_record(&format!("shutdown-{i}"), &case.card_serial, &case.subject_resident_ids);
            let again = client.issue(req).await.unwrap().into_inner();
            assert!(again.replayed, "shutdown-{i} was acknowledged but is not in the log");
            assert_eq!(again.certificate_id, resp.certificate_id);
        }
    }
}

/// A fixture case that must be issued a 住民票の写し.
fn issuable_resident_record(m: &bcl_fixtures::Municipality) -> bcl_fixtures::Case {
    m.cases
        .iter()
        .find(|c| {
            c.certificate_type == bcl_proto::CertificateType::ResidentRecord
                && matches!(c.expect, bcl_fixtures::Expect::Issue { .. })
        })
        .expect("the fixture has an issuable 住民票 case")
        .clone()
}

/// Transactions recorded for `request_id` (every outcome).
async fn transactions_of(server: &Server, request_id: &str) -> Vec<bcl_proto::Transaction> {
    let mut admin = server.admin().await;
    let mut stream = admin
        .list_transactions(bcl_proto::ListTransactionsRequest { municipality_code: CODE.into(), ..Default::default() })
        .await
        .unwrap()
        .into_inner();
    let mut found = Vec::new();
    while let Some(t) = stream.message().await.unwrap() {
        if t.request_id == request_id {
            found.push(t);
        }
    }
    found
}

fn is_deadline(status: &tonic::Status) -> bool {
    matches!(status.code(), tonic::Code::DeadlineExceeded | tonic::Code::Cancelled)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_call_has_a_deadline_and_an_expired_issue_is_charged_once_on_retry() {
    let dir = tempfile::tempdir().unwrap();
    let m = fixture(10);
    let case = issuable_resident_record(&m);
    let request = |id: &str| resident_record(id, &case.card_serial, &case.subject_resident_ids);
    {
        let server = Server::start(dir.path(), NOW);
        append_all(&server, &m.events).await;
        configure(&server, CODE).await;
        // The caller's own deadline (grpc-timeout) is honoured by the server: 100 µs is less than eligibility,
        // rendering and a durable append take, so the call ends as expired, not with a certificate.
        let mut client = server.issuance().await;
        let mut call = tonic::Request::new(request("deadline-client"));
        call.set_timeout(std::time::Duration::from_micros(100));
        let status = client.issue(call).await.expect_err("an Issue cannot finish in 100 µs");
        assert!(is_deadline(&status), "{status:?}");
        // The work the server had started may still have been recorded; the retry with the same request id
        // gets that certificate, or the first one if nothing was: one certificate either way.
        let first = client.issue(request("deadline-client")).await.unwrap().into_inner();
        let again = client.issue(request("deadline-client")).await.unwrap().into_inner();
        assert!(again.replayed);
        assert_eq!(again.certificate_id, first.certificate_id);
        let recorded = transactions_of(&server, "deadline-client").await;
        assert_eq!(recorded.len(), 1, "one transaction for one request id: {recorded:?}");
        assert!(server.terminate());
    }
    {
        // The server's cap (--max-deadline) holds even when the caller asks for longer, or for no deadline.
        let server = Server::start_with(dir.path(), NOW, &["--max-deadline", "0.0001"]);
        let mut client = server.issuance().await;
        let status = client.issue(request("deadline-capped")).await.expect_err("capped at 100 µs");
        assert!(is_deadline(&status), "{status:?}");
        let mut call = tonic::Request::new(request("deadline-capped"));
        call.set_timeout(std::time::Duration::from_secs(60));
        let status = client.issue(call).await.expect_err("a longer client deadline is capped");
        assert!(is_deadline(&status), "{status:?}");
        assert!(server.terminate());
    }
    // Back with the default cap: the capped request is issued once, whatever the cut-off calls left behind.
    let server = Server::start(dir.path(), NOW);
    let mut client = server.issuance().await;
    let resp = client.issue(request("deadline-capped")).await.unwrap().into_inner();
    let recorded = transactions_of(&server, "deadline-capped").await;
    assert_eq!(recorded.len(), 1, "{recorded:?}");
    assert_eq!(recorded[0].certificate_id, resp.certificate_id);
}

/// One thread of a process, as /proc shows it: name, niceness and CPU time (user + system, clock ticks).
#[cfg(target_os = "linux")]
fn threads_of(pid: u32) -> Vec<(String, i64, u64)> {
    let mut threads = Vec::new();
    for task in std::fs::read_dir(format!("/proc/{pid}/task")).unwrap() {
        let stat = std::fs::read_to_string(task.unwrap().path().join("stat")).unwrap();
        // "tid (name) state ..." and the name may hold spaces: the fields after it are counted from ')'.
        let (name, rest) = stat.split_once(" (").unwrap().1.rsplit_once(") ").unwrap();
        let fields: Vec<&str> = rest.split(' ').collect();
        // From field 3 (state) on: utime is field 14, stime 15, nice 19.
        let ticks = fields[11].parse::<u64>().unwrap() + fields[12].parse::<u64>().unwrap();
        threads.push((name.to_string(), fields[16].parse().unwrap(), ticks));
    }
    threads
}

#[cfg(target_os = "linux")]
#[tokio::test]
async fn certificates_are_rendered_on_their_own_threads_at_a_lower_priority() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start_with(dir.path(), NOW, &["--render-nice", "7", "--max-in-flight", "4"]);
    let m = fixture(10);
    append_all(&server, &m.events).await;
    configure(&server, CODE).await;
    let mut client = server.issuance().await;
    let case = m
        .cases
        .iter()
        .find(|c| {
            c.certificate_type == bcl_proto::CertificateType::ResidentRecord
                && matches!(c.expect, bcl_fixtures::Expect::Issue { .. })
        })
        .unwrap();
    for i in 0..60 {
        let issued = client
            .issue(resident_record(&format!("render-thread-{i}"), &case.card_serial, &case.subject_resident_ids))
            .await
            .unwrap()
            .into_inner();
        assert!(issued.pdf.starts_with(b"%PDF-"));
    }

    let threads = threads_of(server.pid());
    let main_nice = threads.iter().find(|t| t.0 == "bcl").expect("the main thread").1;
    let render: Vec<_> = threads.iter().filter(|t| t.0.starts_with("bcl-render-")).collect();
    assert_eq!(render.len(), 4, "one render thread per admitted issuance: {threads:?}");
    assert!(render.iter().all(|t| t.1 == (main_nice + 7).min(19)), "render threads' niceness: {threads:?}");
    // Sixty certificates take ~100 ms of rendering, about ten clock ticks: they ran here.
    assert!(render.iter().map(|t| t.2).sum::<u64>() > 0, "no CPU time on the render threads: {threads:?}");
    // Everything else keeps the engine's priority: the writer and the async workers preempt renders.
    let writer = threads.iter().find(|t| t.0 == "bcl-writer").expect("the writer thread");
    assert_eq!(writer.1, main_nice);
    assert!(threads.iter().filter(|t| t.0.starts_with("tokio-rt-worker")).all(|t| t.1 == main_nice));
}
