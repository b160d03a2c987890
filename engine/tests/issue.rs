//! Issuance of 住民票の写し through the real server: the PDF passes real tools and shows the right data,
//! every refusal reason, idempotency.

mod common;

use bcl_fixtures::Expect;
use bcl_proto::{change_event::Body, ChangeEvent, SetIssuanceBlockRequest, SetMaintenanceRequest};
use common::*;
use std::collections::HashMap;

/// The latest printed fields of a resident, folded naively from the fixture's events (independently of the
/// engine's fold, so the test does not trust the code it checks).
fn latest_fields(events: &[ChangeEvent]) -> HashMap<String, (String, String, String)> {
    let mut people: HashMap<String, (String, String, String)> = HashMap::new();
    for ev in events {
        match &ev.body {
            Some(Body::ResidentRegistered(r)) => {
                people.insert(r.resident_id.clone(), (r.family_name.clone(), r.given_name.clone(), r.address.clone()));
            }
            Some(Body::ResidentChanged(c)) => {
                if let Some(p) = people.get_mut(&c.resident_id) {
                    if let Some(v) = &c.family_name {
                        p.0 = v.clone();
                    }
                    if let Some(v) = &c.given_name {
                        p.1 = v.clone();
                    }
                    if let Some(v) = &c.address {
                        p.2 = v.clone();
                    }
                }
            }
            _ => {}
        }
    }
    people
}

/// pdftotext keeps base characters; variation selectors are not text.
fn strip_vs(s: &str) -> String {
    s.chars().filter(|c| !matches!(*c as u32, 0xFE00..=0xFE0F | 0xE0100..=0xE01EF)).collect()
}

fn squeeze(s: &str) -> String {
    s.chars().filter(|c| !c.is_whitespace() && *c != '　').collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_fixture_case_is_issued_or_refused_as_expected() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), NOW);
    let municipality = fixture(30);
    append_all(&server, &municipality.events).await;
    configure(&server, CODE).await;
    let people = latest_fields(&municipality.events);
    let mut client = server.issuance().await;
    let mut issued = 0;
    let resident_record_cases =
        municipality.cases.iter().filter(|c| c.certificate_type == bcl_proto::CertificateType::ResidentRecord);
    for (i, case) in resident_record_cases.enumerate() {
        let req = resident_record(&format!("case-{i}"), &case.card_serial, &case.subject_resident_ids);
        let result = client.issue(req).await;
        match (&case.expect, result) {
            (Expect::Issue { persons }, Ok(resp)) => {
                let resp = resp.into_inner();
                assert!(!resp.replayed);
                assert_eq!(resp.sheets as usize, persons.div_ceil(4), "{}: sheets", case.name);
                assert_eq!(resp.content_sha256, hex::encode(sha2::Sha256::digest(&resp.pdf)), "{}", case.name);
                let path = dir.path().join(format!("{}.pdf", case.name));
                std::fs::write(&path, &resp.pdf).unwrap();
                let p = path.to_str().unwrap();
                tool("qpdf", &["--check", p]);
                let text = squeeze(&String::from_utf8(tool("pdftotext", &["-layout", p, "-"])).unwrap());
                let (family, given, address) = &people[&case.requester_resident_id];
                for (what, value) in [("family name", family), ("given name", given), ("address", address)] {
                    assert!(
                        text.contains(&squeeze(&strip_vs(value))),
                        "{}: {what} missing from the PDF text",
                        case.name
                    );
                }
                assert!(text.contains("令和8年4月1日"), "{}: date of issue in era form", case.name);
                assert!(text.contains(&resp.certificate_id), "{}: certificate id printed", case.name);
                let pages = String::from_utf8(tool("qpdf", &["--show-npages", p])).unwrap();
                assert_eq!(pages.trim(), (2 * resp.sheets).to_string(), "{}: a front and a back per sheet", case.name);
                issued += 1;
            }
            (Expect::Refuse(expected), Err(status)) => {
                assert_eq!(reason(&status), *expected, "{}: {status:?}", case.name);
                let (family, given, _) = people.get(&case.requester_resident_id).cloned().unwrap_or_default();
                for secret in [family, given] {
                    if !secret.is_empty() {
                        assert!(!status.message().contains(&secret), "{}: personal data in the refusal", case.name);
                    }
                }
            }
            (expect, result) => {
                panic!("{}: expected {expect:?}, got {:?}", case.name, result.map(|r| r.into_inner().certificate_id))
            }
        }
    }
    assert!(issued >= 4, "the fixture has several issuable households");
}

use sha2::Digest;

fn first_issuable(m: &bcl_fixtures::Municipality) -> &bcl_fixtures::Case {
    m.cases
        .iter()
        .find(|c| {
            c.certificate_type == bcl_proto::CertificateType::ResidentRecord && matches!(c.expect, Expect::Issue { .. })
        })
        .expect("an issuable case")
}

#[tokio::test]
async fn retried_request_returns_the_same_certificate_once_and_reuse_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let start = || Server::start_with(dir.path(), NOW, &["--metrics-listen", "127.0.0.1:0"]);
    // Where each replay's bytes came from (the engine's `bcl_replays_total{source}`).
    let replays = |server: &Server, source: &'static str| {
        let addr = server.metrics_addr.clone().expect("metrics address");
        async move {
            let text = scrape(&addr, Some("monitor")).await.expect("scrape");
            sample(&text, "bcl_replays_total", &[&format!("source=\"{source}\"")])
        }
    };
    let server = start();
    let municipality = fixture(10);
    append_all(&server, &municipality.events).await;
    configure(&server, CODE).await;
    let case = first_issuable(&municipality);
    let mut client = server.issuance().await;
    let req = resident_record("retry-1", &case.card_serial, &case.subject_resident_ids);
    let first = client.issue(req.clone()).await.unwrap().into_inner();
    let (mut c1, mut c2) = (client.clone(), client.clone());
    let (a, b) = tokio::join!(c1.issue(req.clone()), c2.issue(req.clone()));
    for again in [a.unwrap().into_inner(), b.unwrap().into_inner()] {
        assert!(again.replayed);
        assert_eq!(
            (&again.certificate_id, &again.pdf, again.log_position),
            (&first.certificate_id, &first.pdf, first.log_position)
        );
    }
    assert_eq!(replays(&server, "cache").await, 2.0);
    // After a restart nothing is cached: the data has not changed, so the retry is re-rendered from today's
    // state, and its digest equals the recorded one: still the same bytes.
    drop(client);
    drop(server);
    let server = start();
    let mut client = server.issuance().await;
    let again = client.issue(req.clone()).await.unwrap().into_inner();
    assert!(again.replayed);
    assert_eq!(again.pdf, first.pdf);
    assert_eq!((replays(&server, "current_state").await, replays(&server, "history").await), (1.0, 0.0));
    // The subject moves; after another restart (nothing cached) the retry must still get the certificate
    // issued before the move, which today's state can no longer print: it comes from history.
    let moved = ChangeEvent {
        municipality_code: CODE.into(),
        source_seq: municipality.events.iter().map(|e| e.source_seq).max().unwrap() + 1,
        event_id: "0000beef-0000-4000-8000-00000000beef".into(),
        effective_date: "2026-03-31".into(),
        body: Some(Body::ResidentChanged(bcl_proto::ResidentChanged {
            resident_id: case.subject_resident_ids[0].clone(),
            address: Some("東京都千代田区一番町９９番".into()),
            ..Default::default()
        })),
    };
    append_all(&server, &[moved]).await;
    let fresh = client.issue(resident_record("after-move", &case.card_serial, &case.subject_resident_ids)).await;
    let fresh = fresh.unwrap().into_inner();
    assert_ne!(fresh.content_sha256, first.content_sha256, "the move changes what a new certificate shows");
    drop(client);
    drop(server);
    let server = start();
    let mut client = server.issuance().await;
    let again = client.issue(req.clone()).await.unwrap().into_inner();
    assert!(again.replayed);
    assert_eq!(again.pdf, first.pdf);
    assert_eq!((replays(&server, "current_state").await, replays(&server, "history").await), (0.0, 1.0));
    // Same id, other parameters.
    let mut other = req.clone();
    other.include_domicile = !other.include_domicile;
    let err = client.issue(other).await.unwrap_err();
    assert_eq!(err.code(), tonic::Code::AlreadyExists);
    assert_eq!(reason(&err), "REQUEST_ID_REUSED");
    // Auditors reproduce it from the log, byte for byte.
    let mut audit = server.audit().await;
    let reproduced = audit
        .reproduce(bcl_proto::ReproduceRequest { certificate_id: first.certificate_id.clone() })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(reproduced.pdf, first.pdf);
    // Charged once: exactly one issuance leaf for the request id in the log.
    let mut stream = audit
        .read_log(bcl_proto::ReadLogRequest { from_position: 0, limit: 0, follow: false })
        .await
        .unwrap()
        .into_inner();
    let mut issuances = 0;
    while let Some(entry) = stream.message().await.unwrap() {
        let leaf = <bcl_proto::LogLeaf as prost::Message>::decode(entry.leaf.as_slice()).unwrap();
        if let Some(bcl_proto::log_leaf::Kind::Issuance(r)) = leaf.kind {
            if r.request.unwrap().request_id == "retry-1" {
                assert_eq!(r.content_sha256, first.content_sha256);
                issuances += 1;
            }
        }
    }
    assert_eq!(issuances, 1);
}

#[tokio::test]
async fn administrative_refusals() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), NOW);
    let municipality = fixture(10);
    append_all(&server, &municipality.events).await;
    let case = first_issuable(&municipality);
    let mut client = server.issuance().await;
    let req = |id: &str| resident_record(id, &case.card_serial, &case.subject_resident_ids);

    // Not configured yet: fail closed.
    let err = client.issue(req("a1")).await.unwrap_err();
    assert_eq!(reason(&err), "TYPE_DISABLED");
    configure(&server, CODE).await;
    client.issue(req("a2")).await.expect("issued once configured");

    // Personal number not allowed by this municipality's settings.
    let mut admin = server.admin().await;
    admin
        .update_settings(bcl_proto::MunicipalitySettings {
            municipality_code: CODE.into(),
            personal_number_allowed: Some(false),
            ..Default::default()
        })
        .await
        .unwrap();
    let mut with_number = req("a3");
    with_number.include_personal_number = true;
    assert_eq!(reason(&client.issue(with_number).await.unwrap_err()), "TYPE_DISABLED");

    // 発行禁止: at once.
    admin
        .set_issuance_block(SetIssuanceBlockRequest {
            municipality_code: CODE.into(),
            resident_id: case.requester_resident_id.clone(),
            blocked: true,
        })
        .await
        .unwrap();
    assert_eq!(reason(&client.issue(req("a4")).await.unwrap_err()), "ISSUANCE_BLOCKED");
    admin
        .set_issuance_block(SetIssuanceBlockRequest {
            municipality_code: CODE.into(),
            resident_id: case.requester_resident_id.clone(),
            blocked: false,
        })
        .await
        .unwrap();

    // Maintenance.
    admin
        .set_maintenance(SetMaintenanceRequest {
            municipality_code: CODE.into(), on: true, reason: "定期保守".into()
        })
        .await
        .unwrap();
    let err = client.issue(req("a5")).await.unwrap_err();
    assert_eq!((err.code(), reason(&err).as_str()), (tonic::Code::Unavailable, "MUNICIPALITY_SUSPENDED"));
    admin
        .set_maintenance(SetMaintenanceRequest { municipality_code: CODE.into(), on: false, reason: String::new() })
        .await
        .unwrap();
    client.issue(req("a6")).await.expect("issued after maintenance");

    // Malformed request.
    let mut bad = req("");
    bad.request_id.clear();
    let err = client.issue(bad).await.unwrap_err();
    assert_eq!((err.code(), reason(&err).as_str()), (tonic::Code::InvalidArgument, "INVALID_REQUEST"));

    // 取引情報: every attempt with its outcome, in order; malformed requests are not transactions.
    let mut stream = admin
        .list_transactions(bcl_proto::ListTransactionsRequest { municipality_code: CODE.into(), ..Default::default() })
        .await
        .unwrap()
        .into_inner();
    let mut outcomes = Vec::new();
    while let Some(t) = stream.message().await.unwrap() {
        assert_eq!(t.fee_yen == 0, t.outcome != "ISSUED", "only issued transactions are charged");
        outcomes.push((t.request_id, t.outcome));
    }
    let expected = [
        ("a1", "TYPE_DISABLED"),
        ("a2", "ISSUED"),
        ("a3", "TYPE_DISABLED"),
        ("a4", "ISSUANCE_BLOCKED"),
        ("a5", "MUNICIPALITY_SUSPENDED"),
        ("a6", "ISSUED"),
    ];
    assert_eq!(outcomes, expected.map(|(a, b)| (a.to_string(), b.to_string())).to_vec());
}

#[tokio::test]
async fn outside_service_hours_and_year_end_are_refused() {
    let municipality = fixture(5);
    let case = first_issuable(&municipality).clone();
    for now in [
        "2026-04-01T06:00:00+09:00",
        "2026-04-01T23:30:00+09:00",
        "2026-12-30T10:00:00+09:00",
        "2027-01-03T12:00:00+09:00",
    ] {
        let dir = tempfile::tempdir().unwrap();
        let server = Server::start(dir.path(), now);
        append_all(&server, &municipality.events).await;
        configure(&server, CODE).await;
        let err = server
            .issuance()
            .await
            .issue(resident_record("h", &case.card_serial, &case.subject_resident_ids))
            .await
            .unwrap_err();
        assert_eq!(reason(&err), "OUT_OF_HOURS", "at {now}");
        // A municipality may open over the year end; the service hours still apply.
        server
            .admin()
            .await
            .update_settings(bcl_proto::MunicipalitySettings {
                municipality_code: CODE.into(),
                year_end_closure: Some(false),
                ..Default::default()
            })
            .await
            .unwrap();
        let again =
            server.issuance().await.issue(resident_record("h2", &case.card_serial, &case.subject_resident_ids)).await;
        if now.contains("T10:00") || now.contains("T12:00") {
            again.unwrap_or_else(|e| panic!("year-end closure switched off, at {now}: {e:?}"));
        } else {
            assert_eq!(reason(&again.unwrap_err()), "OUT_OF_HOURS", "at {now}");
        }
    }
}

/// A character no embedded font can draw refuses the issuance with a reason; no certificate with a blank
/// box is ever produced, and the refusal does not echo the name.
#[tokio::test]
async fn undrawable_character_is_refused_not_printed() {
    use bcl_proto::{CardIssued, ResidentRegistered, Sex};
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), NOW);
    let ev = |seq: u64, body: Body| ChangeEvent {
        municipality_code: CODE.into(),
        source_seq: seq,
        event_id: format!("00000000-0000-4000-8000-{seq:012x}"),
        effective_date: "2020-04-01".into(),
        body: Some(body),
    };
    let events = vec![
        ev(
            1,
            Body::ResidentRegistered(ResidentRegistered {
                resident_id: "R1".into(),
                household_id: "H1".into(),
                family_name: "\u{10FFFD}田".into(), // a private-use character: no font has a glyph for it
                given_name: "一郎".into(),
                family_name_kana: "タダ".into(),
                given_name_kana: "イチロウ".into(),
                birth_date: "1970-01-01".into(),
                sex: Sex::Male as i32,
                address: "東京都千代田区一番町１番".into(),
                household_head: true,
                relationship: "世帯主".into(),
                resident_since: "2020-04-01".into(),
                address_since: "2020-04-01".into(),
                ..Default::default()
            }),
        ),
        ev(2, Body::CardIssued(CardIssued { resident_id: "R1".into(), card_serial: "CARD00000001".into() })),
    ];
    append_all(&server, &events).await;
    configure(&server, CODE).await;
    let err = server.issuance().await.issue(resident_record("u1", "CARD00000001", &[])).await.unwrap_err();
    assert_eq!(err.code(), tonic::Code::FailedPrecondition);
    assert_eq!(reason(&err), "UNDRAWABLE_CHARACTER");
    assert!(err.message().contains("field ") && !err.message().contains('田'), "{}", err.message());
}
