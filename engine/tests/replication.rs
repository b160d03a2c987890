//! East and West as two real `bcl serve` processes with their own data directories on loopback: one
//! history, failover under load without a lost or doubled certificate, rejoin, STALE_REPLICA while cut off,
//! and a data-link gap suspending the municipality at both centres.

mod common;

use bcl_engine::replication::CentreName;
use bcl_engine::router::CentreRouter;
use bcl_proto::{
    audit_client::AuditClient, ingest_client::IngestClient, issuance_client::IssuanceClient, log_leaf::Kind,
    AppendRequest, GetCheckpointRequest, IssueRequest, LogLeaf, ReadLogRequest,
};
use common::*;
use prost::Message;
use std::collections::HashMap;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tonic::transport::Channel;

/// A free loopback port (both centres must know each other's address before either starts).
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// East and West share the scramble master secret (provisioned by the operator).
fn shared_secret() -> PathBuf {
    static SECRET: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();
    SECRET
        .get_or_init(|| {
            let path = std::env::temp_dir().join(format!("bcl-replication-test-{}.key", std::process::id()));
            let bytes: Vec<u8> = (0..32u8).map(|i| i.wrapping_mul(37).wrapping_add(11)).collect();
            std::fs::write(&path, bytes).unwrap();
            path
        })
        .clone()
}

struct Centre {
    child: Option<Child>,
    name: &'static str,
    port: u16,
    peer: String,
    dir: PathBuf,
    /// Mutual TLS (the test harness's `bcl certs init` directory), or plaintext (`--insecure-dev`).
    tls: Option<PathBuf>,
}

impl Centre {
    fn start(name: &'static str, port: u16, peer: &str, dir: &Path) -> Centre {
        let mut c = Centre { child: None, name, port, peer: peer.to_string(), dir: dir.to_path_buf(), tls: None };
        c.spawn();
        c
    }

    fn start_tls(name: &'static str, port: u16, peer: &str, dir: &Path, tls: &Path) -> Centre {
        let (peer, dir, tls) = (peer.to_string(), dir.to_path_buf(), Some(tls.to_path_buf()));
        let mut c = Centre { child: None, name, port, peer, dir, tls };
        c.spawn();
        c
    }

    fn spawn(&mut self) {
        let mut child = Command::new(env!("CARGO_BIN_EXE_bcl"))
            // Plaintext: replication runs only with --insecure-dev for now (docs/operations.md).
            .args(["serve", "--centre", self.name, "--listen", &format!("127.0.0.1:{}", self.port), "--now", NOW])
            .args(match &self.tls {
                Some(dir) => vec!["--tls-dir".to_string(), dir.display().to_string()],
                None => vec!["--insecure-dev".to_string()],
            })
            .args(["--peer", &self.peer, "--data-dir"])
            .arg(&self.dir)
            .arg("--master-secret")
            .arg(shared_secret())
            .env("RUST_LOG", "warn,bcl_engine::replication=info")
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start bcl serve");
        let stdout = child.stdout.take().expect("stdout");
        let mut line = String::new();
        BufReader::new(stdout).read_line(&mut line).expect("read listening line");
        assert!(line.starts_with("bcl listening on "), "{} did not start: {line:?}", self.name);
        self.child = Some(child);
    }

    fn url(&self) -> String {
        let scheme = if self.tls.is_some() { "https" } else { "http" };
        format!("{scheme}://127.0.0.1:{}", self.port)
    }

    fn channel(&self) -> Channel {
        match &self.tls {
            // The harness talks to the centres as their peer (Ingest, Issue, Audit, Admin, health).
            Some(dir) => bcl_engine::server::tls::ClientAuth::tls(dir, "peer-east")
                .endpoint(&self.url())
                .unwrap()
                .connect_lazy(),
            None => Channel::from_shared(self.url()).unwrap().connect_lazy(),
        }
    }

    fn ingest(&self) -> IngestClient<Channel> {
        IngestClient::new(self.channel()).max_encoding_message_size(64 << 20)
    }

    fn issuance(&self) -> IssuanceClient<Channel> {
        IssuanceClient::new(self.channel()).max_decoding_message_size(64 << 20)
    }

    fn audit(&self) -> AuditClient<Channel> {
        AuditClient::new(self.channel()).max_decoding_message_size(256 << 20)
    }

    fn kill9(&mut self) {
        let mut child = self.child.take().expect("running");
        child.kill().unwrap();
        child.wait().unwrap();
    }

    #[allow(dead_code)]
    fn signal(&self, sig: &str) {
        let pid = self.child.as_ref().expect("running").id().to_string();
        assert!(Command::new("kill").args([sig, &pid]).status().unwrap().success());
    }
}

impl Drop for Centre {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// Starts East (the first primary) and West, each knowing the other's address.
fn pair(east_dir: &Path, west_dir: &Path) -> (Centre, Centre) {
    let (e, w) = (free_port(), free_port());
    // Started together: each answers the other's status question while deciding.
    let east_peer = format!("127.0.0.1:{w}");
    let west_peer = format!("127.0.0.1:{e}");
    let (east_dir2, west_dir2) = (east_dir.to_path_buf(), west_dir.to_path_buf());
    let east = std::thread::spawn(move || Centre::start("east", e, &east_peer, &east_dir2));
    let west = std::thread::spawn(move || Centre::start("west", w, &west_peer, &west_dir2));
    (east.join().unwrap(), west.join().unwrap())
}

/// Waits (by polling the health stream's unary twin, bounded) until `centre` reports `serving`.
async fn wait_health(centre: &Centre, serving: bool) {
    use tonic_health::pb::{health_check_response::ServingStatus, health_client::HealthClient, HealthCheckRequest};
    let mut client = HealthClient::new(centre.channel());
    let want = if serving { ServingStatus::Serving } else { ServingStatus::NotServing } as i32;
    let mut stream = client
        .watch(HealthCheckRequest { service: "bcl.v1.Issuance".into() })
        .await
        .expect("health watch")
        .into_inner();
    let deadline = tokio::time::timeout(Duration::from_secs(20), async {
        while let Some(update) = stream.message().await.expect("health stream") {
            if update.status == want {
                return;
            }
        }
    });
    deadline.await.unwrap_or_else(|_| panic!("{} never became serving={serving}", centre.name));
}

async fn checkpoint(centre: &Centre) -> (u64, Vec<u8>) {
    let c = centre.audit().get_checkpoint(GetCheckpointRequest {}).await.expect("checkpoint").into_inner();
    (c.tree_size, c.root_hash)
}

/// Waits until both centres publish a checkpoint of the same size and checks their roots are equal.
async fn same_history(a: &Centre, b: &Centre) -> u64 {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let (ca, cb) = (checkpoint(a).await, checkpoint(b).await);
        if ca.0 == cb.0 {
            assert_eq!(ca.1, cb.1, "same size {} but different roots: the histories diverge", ca.0);
            return ca.0;
        }
        assert!(Instant::now() < deadline, "checkpoints never met: {} at {}, {} at {}", a.name, ca.0, b.name, cb.0);
        // Wait (event-driven) until the shorter log holds the longer one's last leaf; a primary's checkpoint
        // may also trail its follower's by the batch awaiting acknowledgement, so bound each wait.
        let (shorter, target) = if ca.0 < cb.0 { (a, cb.0) } else { (b, ca.0) };
        let mut audit = shorter.audit();
        let wait = async {
            let mut s = audit
                .read_log(ReadLogRequest { from_position: target - 1, limit: 1, follow: true })
                .await
                .ok()?
                .into_inner();
            s.message().await.ok()
        };
        let _ = tokio::time::timeout(Duration::from_millis(200), wait).await;
    }
}

/// Every leaf of a centre's log, decoded.
async fn leaves(centre: &Centre) -> Vec<LogLeaf> {
    let mut stream = centre
        .audit()
        .read_log(ReadLogRequest { from_position: 0, limit: 0, follow: false })
        .await
        .expect("read log")
        .into_inner();
    let mut out = Vec::new();
    while let Some(entry) = stream.message().await.expect("log entry") {
        out.push(LogLeaf::decode(entry.leaf.as_slice()).unwrap());
    }
    out
}

fn issuances_per_request(leaves: &[LogLeaf]) -> HashMap<String, usize> {
    let mut n = HashMap::new();
    for leaf in leaves {
        if let Some(Kind::Issuance(r)) = &leaf.kind {
            *n.entry(r.request.as_ref().unwrap().request_id.clone()).or_default() += 1;
        }
    }
    n
}

/// Issues at a follower that has just caught up. Its health turns SERVING once it holds the primary's log,
/// and then the primary records its return to SYNC mode (a Leadership leaf): until that leaf arrives the
/// follower refuses as catching up (STALE_REPLICA), rightly. So the same request (same request_id, as a
/// kiosk router retries) is sent again each time the follower's log has grown, within a bound.
async fn issue_once_current(centre: &Centre, req: IssueRequest) -> bcl_proto::IssueResponse {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let size = checkpoint(centre).await.0;
        match centre.issuance().issue(req.clone()).await {
            Ok(answer) => return answer.into_inner(),
            Err(status) if reason(&status) == "STALE_REPLICA" && Instant::now() < deadline => {
                let mut audit = centre.audit();
                let grown = async {
                    let request = ReadLogRequest { from_position: size, limit: 1, follow: true };
                    audit.read_log(request).await.ok()?.into_inner().message().await.ok()
                };
                let _ = tokio::time::timeout(Duration::from_millis(500), grown).await;
            }
            Err(status) => panic!("{} does not issue after catching up: {status:?}", centre.name),
        }
    }
}

fn request(i: usize, case: &bcl_fixtures::Case) -> IssueRequest {
    resident_record(&format!("REQ-{i:06}"), &case.card_serial, &case.subject_resident_ids)
}

async fn load_fixture(at: &Centre, households: usize) -> bcl_fixtures::Municipality {
    let m = fixture(households);
    let mut ingest = at.ingest();
    for chunk in m.events.chunks(1000) {
        ingest.append(AppendRequest { events: chunk.to_vec() }).await.expect("append");
    }
    let mut admin = bcl_proto::admin_client::AdminClient::new(at.channel());
    admin
        .update_settings(bcl_proto::MunicipalitySettings {
            personal_number_allowed: Some(true),
            ..bcl_fixtures::municipality_settings(CODE)
        })
        .await
        .expect("settings");
    m
}

/// Resident-record requests the fixture expects to be issued.
fn issuable(m: &bcl_fixtures::Municipality) -> Vec<bcl_fixtures::Case> {
    m.cases
        .iter()
        .filter(|c| {
            c.certificate_type == bcl_proto::CertificateType::ResidentRecord
                && matches!(c.expect, bcl_fixtures::Expect::Issue { .. })
        })
        .cloned()
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn both_centres_issue_from_one_history_and_charge_a_request_once() {
    let (ed, wd) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let (east, west) = pair(ed.path(), wd.path());
    // Change data arriving at the follower is sequenced by the primary; the answer comes once West holds it.
    let m = load_fixture(&west, 60).await;
    let residents = issuable(&m);
    assert!(residents.len() >= 4);
    let at_east = east.issuance().issue(request(1, &residents[0])).await.expect("issue at east").into_inner();
    let at_west = west.issuance().issue(request(2, &residents[1])).await.expect("issue at west").into_inner();
    assert!(!at_east.replayed && !at_west.replayed);
    // The same request retried at the other centre is the same certificate, not a second one.
    let retried = west.issuance().issue(request(1, &residents[0])).await.expect("retry at west").into_inner();
    assert!(retried.replayed);
    assert_eq!((retried.certificate_id, retried.content_sha256), (at_east.certificate_id, at_east.content_sha256));
    let size = same_history(&east, &west).await;
    assert!(size > m.events.len() as u64);
    let (le, lw) = (leaves(&east).await, leaves(&west).await);
    assert_eq!(le, lw, "the same leaves in the same order");
    let per_request = issuances_per_request(&lw);
    assert_eq!(per_request.get("REQ-000001"), Some(&1));
    assert_eq!(per_request.get("REQ-000002"), Some(&1));
    // Both centres can reproduce a certificate the other issued.
    let reproduced = east
        .audit()
        .reproduce(bcl_proto::ReproduceRequest { certificate_id: at_west.certificate_id.clone() })
        .await
        .expect("reproduce at east")
        .into_inner();
    assert_eq!(reproduced.pdf, at_west.pdf);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn west_carries_all_traffic_when_east_is_killed_and_east_rejoins() {
    let (ed, wd) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let (mut east, west) = pair(ed.path(), wd.path());
    let m = load_fixture(&east, 60).await;
    let residents = issuable(&m);
    // Kiosks of a vendor that prefers East, issuing steadily through the routing library.
    let router = Arc::new(CentreRouter::new(&east.url(), &west.url(), CentreName::East).unwrap());
    router.watch_health();
    let stop = Arc::new(AtomicBool::new(false));
    let (killed_tx, killed_rx) = tokio::sync::watch::channel(None::<Instant>);
    let mut kiosks = Vec::new();
    for k in 0..4 {
        let (router, residents, stop, killed_rx) = (router.clone(), residents.clone(), stop.clone(), killed_rx.clone());
        kiosks.push(tokio::spawn(async move {
            let mut outcomes = Vec::new();
            let mut i = k;
            while !stop.load(Ordering::Acquire) {
                let req = request(i, &residents[i % residents.len()]);
                let routed = router.issue(req).await;
                let after_kill = killed_rx.borrow().map(|t| t.elapsed());
                outcomes.push((i, routed, after_kill));
                i += 4;
            }
            outcomes
        }));
    }
    // Let some certificates be issued through East, then kill it in the middle of the load.
    let mut east_audit = east.audit();
    let mut grown = east_audit
        .read_log(ReadLogRequest { from_position: m.events.len() as u64 + 30, limit: 1, follow: true })
        .await
        .unwrap()
        .into_inner();
    grown.message().await.unwrap().expect("issuances flowing through east");
    east.kill9();
    killed_tx.send_replace(Some(Instant::now()));
    // West takes over: wait until a transaction that started after the kill succeeded at West.
    let took_over = Instant::now();
    wait_health(&west, true).await;
    let probe = router.issue(request(999_001, &residents[0])).await;
    assert!(probe.result.is_ok(), "west serves after the take-over: {:?}", probe.result.err());
    assert_eq!(probe.centre, CentreName::West);
    let failover_time = took_over.elapsed();
    // Keep the load going a little at West alone, then restart East: it rejoins as follower by itself.
    east.spawn();
    let size = same_history(&east, &west).await;
    stop.store(true, Ordering::Release);
    let mut all = Vec::new();
    for k in kiosks {
        all.extend(k.await.unwrap());
    }
    let failed: Vec<_> = all.iter().filter(|(_, r, _)| r.result.is_err()).collect();
    assert!(
        failed.is_empty(),
        "no failed transaction after retry: {:?}",
        failed.iter().map(|(i, r, _)| (i, r.result.as_ref().err())).collect::<Vec<_>>()
    );
    let retried = all.iter().filter(|(_, r, _)| r.failovers > 0).count();
    // Both logs, taken when neither holds a batch the other has not published. A primary publishes a batch
    // once its follower has acknowledged it, so for a moment the follower can hold one batch more: here the
    // leadership leaf with which West goes from Solo back to Sync once East has caught up, which may land
    // after the load has ended (seen in CI: East 818 leaves, West 817, the last one that leaf).
    let deadline = Instant::now() + Duration::from_secs(20);
    let (lw, le) = loop {
        same_history(&east, &west).await;
        let (lw, le) = (leaves(&west).await, leaves(&east).await);
        let common = lw.len().min(le.len());
        assert_eq!(le[..common], lw[..common], "the rejoined East's history and West's agree leaf for leaf");
        if lw.len() == le.len() {
            break (lw, le);
        }
        assert!(Instant::now() < deadline, "the logs never met: east {} leaves, west {}", le.len(), lw.len());
    };
    // No double charge: each request id has exactly one issuance in the shared history, and it is the
    // certificate the kiosk got.
    let per_request = issuances_per_request(&lw);
    for (i, routed, _) in &all {
        let id = format!("REQ-{i:06}");
        assert_eq!(per_request.get(&id), Some(&1), "{id} issued exactly once");
        let cert = routed.result.as_ref().unwrap();
        let recorded = lw.iter().find_map(|l| match &l.kind {
            Some(Kind::Issuance(r)) if r.request.as_ref().unwrap().request_id == id => Some(r.content_sha256.clone()),
            _ => None,
        });
        assert_eq!(
            recorded.as_deref(),
            Some(cert.content_sha256.as_str()),
            "{id}: the kiosk's certificate is the recorded one"
        );
    }
    assert_eq!(le, lw, "the rejoined East holds exactly West's history");
    // East takes traffic again (as a follower now): the vendor's router fails back to it.
    wait_health(&east, true).await;
    let back = router.issue(request(999_002, &residents[1])).await;
    assert!(back.result.is_ok(), "east serves again: {:?}", back.result.err());
    eprintln!(
        "failover: {} transactions ({} moved to the other centre), west serving {:?} after the kill, history {size} leaves",
        all.len(),
        retried,
        failover_time
    );
}

/// A TCP relay the test can cut (a network partition: connections hang, nothing is refused) and restore.
struct Relay {
    port: u16,
    cut: Arc<AtomicBool>,
    generation: Arc<tokio::sync::watch::Sender<u64>>,
}

impl Relay {
    async fn start(to: u16) -> Relay {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let cut = Arc::new(AtomicBool::new(false));
        let generation = Arc::new(tokio::sync::watch::channel(0u64).0);
        let (c, g) = (cut.clone(), generation.clone());
        tokio::spawn(async move {
            loop {
                let (mut inbound, _) = listener.accept().await.unwrap();
                let (cut, mut changed) = (c.clone(), g.subscribe());
                tokio::spawn(async move {
                    let held = inbound;
                    if cut.load(Ordering::Acquire) {
                        // Partitioned: hold the connection open without a byte, until restored.
                        let _ = changed.changed().await;
                        drop(held);
                        return;
                    }
                    inbound = held;
                    let Ok(mut outbound) = tokio::net::TcpStream::connect(("127.0.0.1", to)).await else { return };
                    tokio::select! {
                        _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound) => {}
                        _ = changed.changed() => {}
                    }
                });
            }
        });
        Relay { port, cut, generation }
    }

    /// Every connection stops (closed at once is not a partition; they are dropped and new ones hang).
    fn cut(&self) {
        self.cut.store(true, Ordering::Release);
        self.generation.send_modify(|g| *g += 1);
    }

    fn restore(&self) {
        self.cut.store(false, Ordering::Release);
        self.generation.send_modify(|g| *g += 1);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cut_off_follower_refuses_stale_replica_and_recovers() {
    let (ed, wd) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let (e, w) = (free_port(), free_port());
    // West reaches East only through a relay the test can cut.
    let relay = Relay::start(e).await;
    let west_peer = format!("127.0.0.1:{}", relay.port);
    let east_peer = format!("127.0.0.1:{w}");
    let (east_dir, west_dir) = (ed.path().to_path_buf(), wd.path().to_path_buf());
    let east = std::thread::spawn(move || Centre::start("east", e, &east_peer, &east_dir));
    let west = Centre::start("west", w, &west_peer, &west_dir);
    let east = east.join().unwrap();
    let m = load_fixture(&east, 40).await;
    let residents = issuable(&m);
    wait_health(&west, true).await;
    west.issuance().issue(request(1, &residents[0])).await.expect("west issues while connected");

    relay.cut();
    // East continues alone (the append is acknowledged once East stops waiting for West).
    let mut more = fixture(40).events;
    more.truncate(0);
    wait_health(&west, false).await;
    let refused = west.issuance().issue(request(2, &residents[1])).await.expect_err("a cut-off follower refuses");
    assert_eq!(reason(&refused), "STALE_REPLICA");
    assert_eq!(refused.code(), tonic::Code::Unavailable, "so that routers fail over");
    // East, the primary, still issues (degraded: alone).
    east.issuance().issue(request(3, &residents[2])).await.expect("east issues alone");

    relay.restore();
    wait_health(&west, true).await;
    let ok = issue_once_current(&west, request(2, &residents[1])).await;
    assert!(!ok.replayed);
    same_history(&east, &west).await;
    drop(more);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_gap_fed_at_one_centre_suspends_the_municipality_at_both() {
    let (ed, wd) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let (east, west) = pair(ed.path(), wd.path());
    let m = fixture(20);
    let (head, tail) = m.events.split_at(m.events.len() - 5);
    west.ingest().append(AppendRequest { events: head.to_vec() }).await.expect("append");
    // Skip one event: a gap in the municipality's sequence, fed at the follower.
    west.ingest().append(AppendRequest { events: tail[1..].to_vec() }).await.expect("a gap is held back, not refused");
    same_history(&east, &west).await;
    for centre in [&east, &west] {
        let st = centre
            .ingest()
            .get_municipality_status(bcl_proto::MunicipalityRef { municipality_code: CODE.into() })
            .await
            .unwrap()
            .into_inner();
        assert_eq!(
            st.state,
            bcl_proto::MunicipalityState::Suspended as i32,
            "{} suspends the municipality",
            centre.name
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn centres_replicate_over_mutual_tls() {
    let (ed, wd) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let certs = certs_dir().to_path_buf();
    let (e, w) = (free_port(), free_port());
    let (east_peer, west_peer) = (format!("127.0.0.1:{w}"), format!("127.0.0.1:{e}"));
    let (east_dir, certs2) = (ed.path().to_path_buf(), certs.clone());
    let east = std::thread::spawn(move || Centre::start_tls("east", e, &east_peer, &east_dir, &certs2));
    let west = Centre::start_tls("west", w, &west_peer, wd.path(), &certs);
    let east = east.join().unwrap();
    // Change data at the follower is forwarded to the primary as `peer-west` over mutual TLS.
    let m = load_fixture(&west, 30).await;
    let residents = issuable(&m);
    let at_west = west.issuance().issue(request(1, &residents[0])).await.expect("issue at west").into_inner();
    let retried = east.issuance().issue(request(1, &residents[0])).await.expect("retry at east").into_inner();
    assert!(retried.replayed && retried.content_sha256 == at_west.content_sha256);
    same_history(&east, &west).await;
    assert_eq!(leaves(&east).await, leaves(&west).await);
}
