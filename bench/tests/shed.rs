//! Load shedding end to end: a real `bcl serve` with one issuance slot and no queue, hit by many
//! concurrent Issues, answers the excess at once with UNAVAILABLE / ENGINE_OVERLOADED (cause
//! `queue_full`) and issues the rest; the same burst against `--no-shed` issues everything. A shed
//! request never entered the engine: retrying its request_id later issues it normally.

use bcl_bench::load::routing::{CentreId, Centres};
use bcl_bench::load::spawn::{self, Spawned};
use bcl_proto::{Centre, CertificateType, IssueRequest};
use std::path::PathBuf;
use std::process::Command;
use std::sync::Arc;
use std::time::Duration;
use tonic_types::StatusExt;

/// The release `bcl` (a debug engine renders too slowly to overlap requests reliably): `BCL_BIN` when
/// set, else built (a no-op when up to date). Same as in smoke.rs.
fn release_bcl() -> PathBuf {
    if let Some(p) = std::env::var_os("BCL_BIN") {
        return PathBuf::from(p);
    }
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let status = Command::new(cargo)
        .args(["build", "--release", "-p", "bcl-engine", "--bin", "bcl"])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .status()
        .expect("run cargo build for the release bcl");
    assert!(status.success(), "building the release bcl failed");
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target"));
    target.join("release").join("bcl")
}

const BURST: usize = 48;

/// Starts an engine with `serve_args`, loads a small municipality, sends BURST Issues at once (each a
/// fresh request_id of an issuable case) and returns (issued, shed, the request_ids that were shed).
fn burst(serve_args: &[&str]) -> (usize, usize, Vec<IssueRequest>, Spawned, Arc<Centres>, tokio::runtime::Runtime) {
    let engine = Spawned::start_with(&release_bcl(), &serve_args.iter().map(|s| s.to_string()).collect::<Vec<_>>())
        .expect("start bcl serve");
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap();
    let specs = spawn::specs(1, 10);
    let m = bcl_fixtures::generate(&specs[0]);
    rt.block_on(spawn::load(&engine.url, &[(specs[0].clone(), m.clone())])).expect("load fixtures");
    let case = m
        .cases
        .iter()
        .find(|c| {
            c.certificate_type == CertificateType::ResidentRecord
                && matches!(c.expect, bcl_fixtures::Expect::Issue { .. })
        })
        .expect("an issuable case");
    let centres = {
        let _runtime = rt.enter();
        Arc::new(Centres::new(&[(CentreId::East, engine.url.clone())], 4, Duration::from_secs(30)).unwrap())
    };
    let requests: Vec<IssueRequest> = (0..BURST)
        .map(|i| IssueRequest {
            request_id: format!("shed-test-{i}"),
            centre: Centre::East as i32,
            kiosk_id: "VENDOR-A-00000".into(),
            municipality_code: specs[0].municipality_code.clone(),
            card_serial: case.card_serial.clone(),
            r#type: CertificateType::ResidentRecord as i32,
            subject_resident_ids: case.subject_resident_ids.clone(),
            copies: 1,
            ..Default::default()
        })
        .collect();
    let results = rt.block_on(async {
        let tasks: Vec<_> = requests
            .iter()
            .cloned()
            .map(|req| {
                let centres = centres.clone();
                tokio::spawn(async move { (req.clone(), centres.issue(CentreId::East, &req).await.result) })
            })
            .collect();
        let mut out = Vec::new();
        for t in tasks {
            out.push(t.await.unwrap());
        }
        out
    });
    let (mut issued, mut shed_requests) = (0, Vec::new());
    for (req, result) in results {
        match result {
            Ok(answer) => {
                assert!(!answer.replayed && !answer.pdf.is_empty());
                issued += 1;
            }
            Err(status) => {
                assert_eq!(status.code(), tonic::Code::Unavailable, "{status:?}");
                let details = status.get_error_details();
                let info = details.error_info().expect("ErrorInfo on a shed answer");
                assert_eq!(info.reason, "ENGINE_OVERLOADED");
                assert_eq!(info.metadata.get("cause").map(String::as_str), Some("queue_full"));
                shed_requests.push(req);
            }
        }
    }
    let shed = shed_requests.len();
    (issued, shed, shed_requests, engine, centres, rt)
}

#[test]
fn an_overloaded_engine_sheds_the_excess_at_once_and_issues_the_rest() {
    let (issued, shed, shed_requests, _engine, centres, rt) = burst(&["--max-in-flight", "1", "--max-queue", "0"]);
    assert_eq!(issued + shed, BURST);
    assert!(issued >= 1, "the first request gets the slot");
    assert!(shed >= 1, "{BURST} simultaneous Issues cannot all fit one slot without a queue");
    // Shed requests were never started: the same request_id, sent again one at a time, is a fresh issuance.
    for req in shed_requests.iter().take(3) {
        let answer = rt.block_on(centres.issue(CentreId::East, req)).result.expect("issued on retry");
        assert!(!answer.replayed, "a shed request left nothing behind to replay");
    }
}

#[test]
fn without_shedding_every_request_of_the_burst_is_issued() {
    let (issued, shed, ..) = burst(&["--no-shed"]);
    assert_eq!((issued, shed), (BURST, 0));
}
