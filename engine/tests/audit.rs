//! The transparency log through the real server and the real `bcl audit` CLI: proofs verify against the
//! signed checkpoint, the auditor's verification passes on an honest log and fails, naming the position, on
//! a tampered data directory or export file or a forged checkpoint; reproduction survives a restart.

mod common;

use bcl_engine::audit::checkpoint::Checkpoint;
use bcl_engine::audit::export::Export;
use bcl_engine::audit::merkle::{leaf_hash, verify_consistency, verify_inclusion, Hash};
use bcl_engine::audit::note::{NoteSigner, NoteVerifier};
use bcl_fixtures::Expect;
use bcl_proto::{
    ConsistencyProofRequest, GetCheckpointRequest, InclusionProofRequest, LogLeaf, ReadLogRequest,
    ReproduceRequest,
};
use common::*;
use prost::Message;
use std::path::Path;
use std::process::Command;

fn vkey_path(dir: &Path) -> String {
    dir.join("checkpoint.vkey").to_str().unwrap().to_string()
}

fn verifier(dir: &Path) -> NoteVerifier {
    NoteVerifier::parse(&std::fs::read_to_string(dir.join("checkpoint.vkey")).unwrap()).unwrap()
}

fn hashes(proof: bcl_proto::Proof) -> Vec<Hash> {
    proof
        .hashes
        .iter()
        .map(|h| h.as_slice().try_into().unwrap())
        .collect()
}

/// Ingests a fixture municipality and issues two certificates; returns their ids and PDFs.
async fn populate(server: &Server) -> Vec<(String, Vec<u8>)> {
    let municipality = fixture(12);
    append_all(server, &municipality.events).await;
    configure(server, CODE).await;
    let mut client = server.issuance().await;
    let mut issued = Vec::new();
    let issuable = municipality.cases.iter().filter(|c| {
        c.certificate_type == bcl_proto::CertificateType::ResidentRecord
            && matches!(c.expect, Expect::Issue { .. })
    });
    for (i, case) in issuable.take(2).enumerate() {
        let resp = client
            .issue(resident_record(
                &format!("audit-{i}"),
                &case.card_serial,
                &case.subject_resident_ids,
            ))
            .await
            .expect("issue")
            .into_inner();
        issued.push((resp.certificate_id, resp.pdf));
    }
    assert_eq!(issued.len(), 2, "the fixture offers two issuable cases");
    issued
}

/// Runs `bcl audit ...`; returns (success, stdout JSON if any, stderr).
fn bcl_audit(args: &[&str]) -> (bool, serde_json::Value, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_bcl"))
        .arg("audit")
        .args(args)
        .env("RUST_LOG", "warn")
        .output()
        .expect("run bcl audit");
    let stdout = String::from_utf8_lossy(&out.stdout).to_string();
    let json = serde_json::from_str(&stdout).unwrap_or(serde_json::Value::Null);
    (
        out.status.success(),
        json,
        String::from_utf8_lossy(&out.stderr).to_string(),
    )
}

fn failures(report: &serde_json::Value) -> Vec<(String, Option<u64>)> {
    report["failures"]
        .as_array()
        .unwrap_or_else(|| panic!("no report: {report}"))
        .iter()
        .map(|f| {
            (
                f["check"].as_str().unwrap().to_string(),
                f["position"].as_u64(),
            )
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn proofs_verify_against_the_signed_checkpoint_and_reproduction_survives_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), NOW);
    let mut audit = server.audit().await;
    let empty = audit
        .get_checkpoint(GetCheckpointRequest {})
        .await
        .unwrap()
        .into_inner();
    assert_eq!(empty.tree_size, 0);
    let issued = populate(&server).await;
    let early = Checkpoint::open(
        &verifier(dir.path()),
        &audit
            .get_checkpoint(GetCheckpointRequest {})
            .await
            .unwrap()
            .into_inner()
            .note,
    )
    .unwrap();
    // Admin changes are leaves too.
    configure(&server, CODE).await;
    configure(&server, CODE).await;

    let cp = audit
        .get_checkpoint(GetCheckpointRequest {})
        .await
        .unwrap()
        .into_inner();
    let opened = Checkpoint::open(&verifier(dir.path()), &cp.note)
        .expect("the note verifies with the vkey written next to the data");
    assert_eq!(
        (opened.size, opened.root.to_vec()),
        (cp.tree_size, cp.root_hash.clone())
    );
    let mut leaves = Vec::new();
    let mut stream = audit
        .read_log(ReadLogRequest {
            from_position: 0,
            limit: 0,
            follow: false,
        })
        .await
        .unwrap()
        .into_inner();
    while let Some(e) = stream.message().await.unwrap() {
        leaves.push(e.leaf);
    }
    assert_eq!(leaves.len() as u64, opened.size);
    for index in [0, 1, opened.size / 2, opened.size - 2, opened.size - 1] {
        let proof = audit
            .get_inclusion_proof(InclusionProofRequest {
                leaf_index: index,
                tree_size: opened.size,
            })
            .await
            .unwrap()
            .into_inner();
        verify_inclusion(
            &leaf_hash(&leaves[index as usize]),
            index,
            opened.size,
            &hashes(proof),
            &opened.root,
        )
        .unwrap_or_else(|e| panic!("inclusion of {index}: {e}"));
    }
    let proof = audit
        .get_consistency_proof(ConsistencyProofRequest {
            first_size: early.size,
            second_size: opened.size,
        })
        .await
        .unwrap()
        .into_inner();
    verify_consistency(
        early.size,
        opened.size,
        &early.root,
        &opened.root,
        &hashes(proof),
    )
    .unwrap();

    for (req, what) in [
        (
            InclusionProofRequest {
                leaf_index: 0,
                tree_size: opened.size + 1,
            },
            "tree_size",
        ),
        (
            InclusionProofRequest {
                leaf_index: opened.size,
                tree_size: opened.size,
            },
            "leaf_index",
        ),
    ] {
        let status = audit.get_inclusion_proof(req).await.unwrap_err();
        assert_eq!(status.code(), tonic::Code::InvalidArgument);
        assert!(status.message().contains(what), "{}", status.message());
    }
    let status = audit
        .get_consistency_proof(ConsistencyProofRequest {
            first_size: 3,
            second_size: opened.size + 5,
        })
        .await
        .unwrap_err();
    assert_eq!(status.code(), tonic::Code::InvalidArgument);
    let status = audit
        .get_consistency_proof(ConsistencyProofRequest {
            first_size: 5,
            second_size: 3,
        })
        .await
        .unwrap_err();
    assert_eq!(status.code(), tonic::Code::InvalidArgument);

    // Restart: same checkpoint note (same key, tree restored from stored nodes), same certificate bytes.
    drop(audit);
    server.kill9();
    let server = Server::start(dir.path(), NOW);
    let mut audit = server.audit().await;
    assert_eq!(
        audit
            .get_checkpoint(GetCheckpointRequest {})
            .await
            .unwrap()
            .into_inner()
            .note,
        cp.note
    );
    for (id, pdf) in &issued {
        let again = audit
            .reproduce(ReproduceRequest {
                certificate_id: id.clone(),
            })
            .await
            .unwrap()
            .into_inner();
        assert!(
            again.pdf == *pdf,
            "certificate {id} reproduced with other bytes after a restart"
        );
    }
    // Appending after the restart extends the same tree.
    configure(&server, CODE).await;
    let later = Checkpoint::open(
        &verifier(dir.path()),
        &audit
            .get_checkpoint(GetCheckpointRequest {})
            .await
            .unwrap()
            .into_inner()
            .note,
    )
    .unwrap();
    assert_eq!(later.size, opened.size + 1);
    let proof = audit
        .get_consistency_proof(ConsistencyProofRequest {
            first_size: opened.size,
            second_size: later.size,
        })
        .await
        .unwrap()
        .into_inner();
    verify_consistency(
        opened.size,
        later.size,
        &opened.root,
        &later.root,
        &hashes(proof),
    )
    .unwrap();
    let (ok, report, stderr) = bcl_audit(&[
        "prove",
        &issued[0].0,
        "--server",
        &server.url(),
        "--vkey",
        &vkey_path(dir.path()),
        "--json",
    ]);
    assert!(ok, "prove failed: {stderr}");
    // An unknown certificate: Reproduce refuses, the log scan finds nothing, the command fails.
    let (ok, _, stderr) = bcl_audit(&[
        "prove",
        "131016-00000000000000000000",
        "--server",
        &server.url(),
        "--vkey",
        &vkey_path(dir.path()),
    ]);
    assert!(!ok && stderr.contains("no issuance"), "{stderr}");
    let entries = report["entries"].as_array().unwrap();
    assert_eq!(entries[0]["role"], "issuance");
    assert!(
        entries.len() > 1,
        "the issuance cites the events it was rendered from"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn verify_passes_on_the_honest_log_and_names_every_kind_of_tampering() {
    let dir = tempfile::tempdir().unwrap();
    let work = tempfile::tempdir().unwrap();
    let data = dir.path().to_str().unwrap().to_string();
    let server = Server::start(dir.path(), NOW);
    let issued = populate(&server).await;
    let url = server.url();
    let vkey = vkey_path(dir.path());
    let saved = work.path().join("saved.checkpoint");
    let saved = saved.to_str().unwrap();

    // Honest: the whole check, certificates re-rendered byte for byte.
    let (ok, report, stderr) = bcl_audit(&[
        "verify",
        "--server",
        &url,
        "--vkey",
        &vkey,
        "--data-dir",
        &data,
        "--previous",
        saved,
        "--json",
    ]);
    assert!(ok, "honest verify failed: {report} {stderr}");
    assert_eq!(report["reproduced"].as_u64(), Some(issued.len() as u64));
    assert!(std::fs::read_to_string(saved)
        .unwrap()
        .contains(&report["tree_size"].to_string()));
    let size = report["tree_size"].as_u64().unwrap();

    // The export verifies offline.
    let export_path = work.path().join("log.export");
    let export_file = export_path.to_str().unwrap();
    let (ok, _, stderr) = bcl_audit(&["export", "--server", &url, "--out", export_file]);
    assert!(ok, "export failed: {stderr}");
    let (ok, report, _) = bcl_audit(&[
        "verify",
        "--export",
        export_file,
        "--vkey",
        &vkey,
        "--skip-reproduction",
        "--previous",
        saved,
        "--json",
    ]);
    assert!(ok, "export verify failed: {report}");
    let honest = Export::read(&mut std::fs::File::open(&export_path).unwrap()).unwrap();

    // Tampered export files.
    let tampered_path = work.path().join("tampered.export");
    let tampered_file = tampered_path.to_str().unwrap();
    let check = |export: &Export| {
        export
            .write(&mut std::fs::File::create(&tampered_path).unwrap())
            .unwrap();
        let (ok, report, _) = bcl_audit(&[
            "verify",
            "--export",
            tampered_file,
            "--vkey",
            &vkey,
            "--skip-reproduction",
            "--json",
        ]);
        assert!(!ok, "tampering went unnoticed");
        failures(&report)
    };
    let k = 17usize;
    let mut flipped = honest.clone();
    let last = flipped.leaves[k].len() - 1;
    flipped.leaves[k][last] ^= 0x20;
    assert!(check(&flipped).contains(&("leaf".into(), Some(k as u64))));
    let mut dropped = honest.clone();
    dropped.leaves.remove(k);
    let f = check(&dropped);
    assert!(f.contains(&("size".into(), Some(size - 1))), "{f:?}");
    assert_eq!(
        f.iter().find(|(c, _)| c == "leaf").map(|x| x.1),
        Some(Some(k as u64)),
        "{f:?}"
    );
    let mut reordered = honest.clone();
    reordered.leaves.swap(k, k + 1);
    let f = check(&reordered);
    assert!(
        f.contains(&("leaf".into(), Some(k as u64)))
            && f.contains(&("leaf".into(), Some(k as u64 + 1))),
        "{f:?}"
    );
    // A forged checkpoint over the honest leaves: same name, another key.
    let mut forged = honest.clone();
    let name = verifier(dir.path()).name().to_string();
    let body = Checkpoint::open(&verifier(dir.path()), &honest.note)
        .unwrap()
        .body();
    forged.note = NoteSigner::new(&name, &[42u8; 32])
        .unwrap()
        .sign(&body)
        .unwrap();
    assert_eq!(check(&forged), vec![("checkpoint".to_string(), None)]);

    // Tamper with the data directory itself: stop the server, change one stored event in the log (a digit of
    // its event id, so it still decodes and the server starts again), restart.
    server.kill9();
    let target = {
        let store = bcl_engine::storage::open(&dir.path().join("log")).unwrap();
        // A plain (unsealed) change event from position k on: the server must still start on the changed
        // log (a sealed one would fail authentication and the server would refuse to start, as intended;
        // tests/personal_data.rs covers that case).
        let (k, mut leaf, event_id) = (k as u64..)
            .find_map(|p| {
                let leaf = store.read(p, 1).unwrap().remove(0).1;
                match LogLeaf::decode(leaf.as_slice()).unwrap().kind {
                    Some(bcl_proto::log_leaf::Kind::ChangeEvent(e)) => Some((p as usize, leaf, e.event_id)),
                    _ => None,
                }
            })
            .unwrap();
        let at = leaf
            .windows(event_id.len())
            .position(|w| w == event_id.as_bytes())
            .unwrap();
        leaf[at] = if leaf[at] == b'0' { b'1' } else { b'0' };
        drop(store);
        bcl_engine::storage::rewrite_leaf_unchecked(&dir.path().join("log"), k as u64, leaf).unwrap();
        k as u64
    };
    // Offline export of the stopped data directory: the stored tree still records the original leaf.
    let dir_export = work.path().join("dir.export");
    let (ok, _, stderr) = bcl_audit(&[
        "export",
        "--data-dir",
        &data,
        "--out",
        dir_export.to_str().unwrap(),
    ]);
    assert!(ok, "data-dir export failed: {stderr}");
    let (ok, report, _) = bcl_audit(&[
        "verify",
        "--export",
        dir_export.to_str().unwrap(),
        "--vkey",
        &vkey,
        "--skip-reproduction",
        "--json",
    ]);
    assert!(!ok);
    assert!(
        failures(&report).contains(&("leaf".into(), Some(target))),
        "{report}"
    );
    // Online: the restarted server serves the changed leaf; bisection with consistency proofs finds it.
    let server = Server::start(dir.path(), NOW);
    let (ok, report, _) = bcl_audit(&[
        "verify",
        "--server",
        &server.url(),
        "--vkey",
        &vkey,
        "--skip-reproduction",
        "--previous",
        saved,
        "--json",
    ]);
    assert!(!ok);
    let f = failures(&report);
    assert!(f.contains(&("root".into(), None)), "{f:?}");
    assert!(f.contains(&("leaf".into(), Some(target))), "{f:?}");
}
