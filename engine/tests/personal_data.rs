//! Personal data at rest, through the real server and the real CLI: nothing personal is readable in the data
//! directory, and crypto-shredding (`bcl admin forget`) makes one resident's data unreadable while the log,
//! its checkpoints and every other certificate still verify and reproduce byte for byte.

mod common;

use bcl_engine::audit::export::Export;
use bcl_fixtures::Expect;
use bcl_proto::change_event::Body;
use bcl_proto::log_leaf::Kind;
use bcl_proto::{CertificateType, LogLeaf, ReproduceRequest};
use common::*;
use prost::Message;
use std::path::Path;
use std::process::Command;

/// Every file under `dir`, recursively, as bytes.
fn all_bytes(dir: &Path) -> Vec<(String, Vec<u8>)> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            out.extend(all_bytes(&path));
        } else {
            out.push((path.display().to_string(), std::fs::read(&path).unwrap()));
        }
    }
    out
}

fn contains(haystack: &[u8], needle: &str) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle.as_bytes())
}

fn bcl(args: &[&str]) -> (bool, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_bcl")).args(args).env("RUST_LOG", "warn").output().expect("run bcl");
    (out.status.success(), String::from_utf8_lossy(&out.stdout).into(), String::from_utf8_lossy(&out.stderr).into())
}

fn verify_json(args: &[&str]) -> serde_json::Value {
    let (ok, stdout, stderr) = bcl(&[&["audit", "verify", "--json"], args].concat());
    let report: serde_json::Value = serde_json::from_str(&stdout).unwrap_or(serde_json::Value::Null);
    assert!(ok, "verify failed: {report} {stderr}");
    report
}

/// The personal strings of the fixture (names, kana, addresses, domiciles, personal numbers), minus those
/// that also occur in the clear settings the test configures (the municipality's and mayor's names).
fn personal_needles(events: &[bcl_proto::ChangeEvent]) -> Vec<String> {
    let clear = "東京都千代田区 千代田区長 千代田　太郎";
    let mut needles = Vec::new();
    for ev in events {
        if let Some(Body::ResidentRegistered(r)) = &ev.body {
            for s in [
                &r.family_name,
                &r.given_name,
                &r.family_name_kana,
                &r.given_name_kana,
                &r.address,
                &r.registered_domicile,
                &r.personal_number,
            ] {
                if s.chars().count() >= 2 && !clear.contains(s.as_str()) {
                    needles.push(s.clone());
                }
            }
        }
    }
    needles.sort();
    needles.dedup();
    needles
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_personal_data_in_the_data_directory_and_forget_shreds_one_resident_only() {
    let dir = tempfile::tempdir().unwrap();
    let work = tempfile::tempdir().unwrap();
    let data = dir.path().to_str().unwrap().to_string();
    let vkey = dir.path().join("checkpoint.vkey").to_str().unwrap().to_string();
    let municipality = fixture(12);
    let server = Server::start(dir.path(), NOW);
    append_all(&server, &municipality.events).await;
    // A re-send of the whole history is idempotent: sealed afresh, compared on the keyed digest.
    append_all(&server, &municipality.events).await;
    assert_eq!(status(&server, CODE).await.state, bcl_proto::MunicipalityState::Active as i32);
    configure(&server, CODE).await;

    // Two certificates for two different households.
    let cases: Vec<_> = municipality
        .cases
        .iter()
        .filter(|c| c.certificate_type == CertificateType::ResidentRecord && matches!(c.expect, Expect::Issue { .. }))
        .collect();
    let first = cases[0];
    let household_of = |id: &str| {
        municipality.events.iter().find_map(|e| match &e.body {
            Some(Body::ResidentRegistered(r)) if r.resident_id == id => Some(r.household_id.clone()),
            _ => None,
        })
    };
    let second = cases
        .iter()
        .find(|c| household_of(&c.requester_resident_id) != household_of(&first.requester_resident_id))
        .expect("two households with an issuable case");
    let mut issuance = server.issuance().await;
    let mut issued = Vec::new();
    for (i, case) in [first, *second].iter().enumerate() {
        let resp = issuance
            .issue(resident_record(&format!("pd-{i}"), &case.card_serial, &case.subject_resident_ids))
            .await
            .expect("issue")
            .into_inner();
        issued.push((resp.certificate_id, resp.pdf));
    }

    // Nothing personal in any file of the data directory (log, tree, checkpoints, keys), while the clear
    // identifiers are there: the search would find the names if they were stored.
    server.kill9();
    let files = all_bytes(dir.path());
    assert!(files.iter().any(|(_, b)| contains(b, &first.requester_resident_id)), "the search sees the log");
    let needles = personal_needles(&municipality.events);
    assert!(needles.len() > 50, "the fixture has personal data to look for");
    for (path, bytes) in &files {
        for needle in &needles {
            assert!(!contains(bytes, needle), "a personal field of the fixture is readable in {path}");
        }
    }

    // Forget the first requester, offline, as the operator would.
    let forgotten = first.requester_resident_id.clone();
    let (ok, stdout, stderr) = bcl(&[
        "admin",
        "forget",
        "--data-dir",
        &data,
        "--municipality",
        CODE,
        "--resident",
        &forgotten,
        "--actor",
        "dpo@131016",
        "--now",
        NOW,
    ]);
    assert!(ok, "forget failed: {stdout} {stderr}");
    // Forgetting someone unknown is refused and records nothing.
    let (ok, _, _) = bcl(&["admin", "forget", "--data-dir", &data, "--municipality", CODE, "--resident", "NOBODY"]);
    assert!(!ok);

    // Restarted: the forgotten resident's certificates are refused and not reproducible, clearly as
    // "erased"; the other one reproduces byte for byte.
    let server = Server::start(dir.path(), NOW);
    let mut issuance = server.issuance().await;
    let refused = issuance
        .issue(resident_record("pd-after", &first.card_serial, &first.subject_resident_ids))
        .await
        .expect_err("a forgotten resident gets no certificate");
    assert_eq!(reason(&refused), "PERSONAL_DATA_ERASED");
    let mut audit = server.audit().await;
    let err = audit
        .reproduce(ReproduceRequest { certificate_id: issued[0].0.clone() })
        .await
        .expect_err("printed from erased data");
    assert_eq!(reason(&err), "PERSONAL_DATA_ERASED");
    let again = audit.reproduce(ReproduceRequest { certificate_id: issued[1].0.clone() }).await.expect("reproduce");
    assert_eq!(again.into_inner().pdf, issued[1].1, "the other certificate reproduces byte for byte");
    // The municipality is still served, and the replayed retry of the other certificate is unchanged.
    assert_eq!(status(&server, CODE).await.state, bcl_proto::MunicipalityState::Active as i32);

    // The auditor: tree and checkpoint verify, one certificate reproduced, one reported forgotten.
    let report = verify_json(&["--server", &server.url(), "--vkey", &vkey, "--data-dir", &data]);
    assert_eq!(report["reproduced"].as_u64(), Some(1), "{report}");
    assert_eq!(report["forgotten_residents"].as_u64(), Some(1), "{report}");
    let listed: Vec<&str> = report["forgotten_certificates"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["certificate_id"].as_str().unwrap())
        .collect();
    assert_eq!(listed, vec![issued[0].0.as_str()]);

    // An export with a key-store snapshot verifies offline the same way; without keys only the log is judged.
    server.kill9();
    let export = work.path().join("log.export");
    let keys = work.path().join("keys.snapshot");
    let (ok, _, stderr) = bcl(&[
        "audit",
        "export",
        "--data-dir",
        &data,
        "--out",
        export.to_str().unwrap(),
        "--keys-out",
        keys.to_str().unwrap(),
    ]);
    assert!(ok, "export failed: {stderr}");
    let secret = dir.path().join("scramble-master.key");
    let secret_arg =
        if secret.exists() { vec!["--scramble-secret", secret.to_str().unwrap()] } else { vec!["--data-dir", &data] };
    let report = verify_json(
        &[&["--export", export.to_str().unwrap(), "--vkey", &vkey, "--keys", keys.to_str().unwrap()], &secret_arg[..]]
            .concat(),
    );
    assert_eq!(report["reproduced"].as_u64(), Some(1), "{report}");
    assert_eq!(report["forgotten_certificates"].as_array().unwrap().len(), 1, "{report}");
    let report = verify_json(&["--export", export.to_str().unwrap(), "--vkey", &vkey, "--skip-reproduction"]);
    assert!(report["sealed_unreadable"].as_u64().unwrap() > 0, "{report}");
    assert!(report["failures"].as_array().unwrap().is_empty(), "{report}");

    // One flipped ciphertext byte of a resident who was not forgotten: the tree names the leaf, the key
    // names the sealed data, both at its position.
    let snapshot = bcl_engine::keystore::KeyStore::load_snapshot(&keys).unwrap();
    let honest = Export::read(&mut std::fs::File::open(&export).unwrap()).unwrap();
    let (position, mut sealed) = honest
        .leaves
        .iter()
        .enumerate()
        .find_map(|(p, bytes)| match LogLeaf::decode(bytes.as_slice()).unwrap().kind {
            Some(Kind::SealedChangeEvent(s)) if snapshot.key(&s.key_id.as_slice().try_into().unwrap()).is_some() => {
                Some((p, s))
            }
            _ => None,
        })
        .unwrap();
    sealed.sealed[3] ^= 0x01;
    let damaged_leaf = LogLeaf { kind: Some(Kind::SealedChangeEvent(sealed)) }.encode_to_vec();
    let mut damaged = honest.clone();
    damaged.leaves[position] = damaged_leaf.clone();
    let damaged_path = work.path().join("damaged.export");
    damaged.write(&mut std::fs::File::create(&damaged_path).unwrap()).unwrap();
    let (ok, stdout, _) = bcl(&[
        "audit",
        "verify",
        "--json",
        "--export",
        damaged_path.to_str().unwrap(),
        "--vkey",
        &vkey,
        "--keys",
        keys.to_str().unwrap(),
        "--skip-reproduction",
    ]);
    assert!(!ok);
    let report: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    let failures: Vec<(String, Option<u64>)> = report["failures"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| (f["check"].as_str().unwrap().to_string(), f["position"].as_u64()))
        .collect();
    assert!(failures.contains(&("leaf".into(), Some(position as u64))), "{report}");
    assert!(failures.contains(&("sealed".into(), Some(position as u64))), "{report}");

    // The same damage in the data directory: the server refuses to start and names the position.
    {
        bcl_engine::storage::rewrite_leaf_unchecked(&dir.path().join("log"), position as u64, damaged_leaf).unwrap();
    }
    let out = Command::new(env!("CARGO_BIN_EXE_bcl"))
        .args(["serve", "--insecure-dev", "--listen", "127.0.0.1:0", "--now", NOW, "--data-dir", &data])
        .output()
        .unwrap();
    assert!(!out.status.success(), "a server must not start on damaged sealed data");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains(&format!("position {position}")), "{stderr}");
}
