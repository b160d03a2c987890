//! Hostile input through the real server: malformed and oversize protobuf, field values built to hurt
//! (control characters, invalid UTF-8, unknown enums, negative and huge numbers, oversize strings and
//! images, decompression bombs) and a flood from one caller. Each gets a clear error naming the field or
//! the limit and never echoing what was sent; afterwards the server still serves and every event it had
//! acknowledged is still in the log at its position, also after a restart. Limits: `docs/limits.md`.

mod common;

use bcl_proto::change_event::Body;
use bcl_proto::verify_client::VerifyClient;
use bcl_proto::{
    AppendRequest, CertificateType, ChangeEvent, ConsistencyProofRequest, InclusionProofRequest, IssueRequest, LogLeaf,
    MunicipalitySettings, ReadLogRequest, ResidentRegistered, SealRegistered, SetMaintenanceRequest, SettlementRequest,
    TaxAssessed, TypeFee, VerifyBackRequest,
};
use common::*;
use prost::Message;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use tonic::Code;

/// Planted in every personal field of hostile input: it must never come back in an error message.
const MARKER: &str = "ZZSECRETZZ";

/// What the server acknowledged before the hostile traffic: each event with the position it was given.
struct Acknowledged(Vec<(u64, ChangeEvent)>);

async fn load(server: &Server) -> Acknowledged {
    let events = fixture(5).events;
    let mut client = server.ingest().await;
    let mut acked = Vec::new();
    for chunk in events.chunks(40) {
        let resp = client.append(AppendRequest { events: chunk.to_vec() }).await.expect("append").into_inner();
        assert_eq!(resp.positions.len(), chunk.len());
        acked.extend(resp.positions.into_iter().zip(chunk.iter().cloned()));
    }
    configure(server, CODE).await;
    Acknowledged(acked)
}

impl Acknowledged {
    /// The server answers, and every acknowledged event is the leaf at its acknowledged position.
    async fn assert_intact(&self, server: &Server) {
        let mut stream = server
            .audit()
            .await
            .read_log(ReadLogRequest { from_position: 0, limit: 0, follow: false })
            .await
            .expect("ReadLog")
            .into_inner();
        let mut leaves = Vec::new();
        while let Some(entry) = stream.message().await.expect("ReadLog entry") {
            assert_eq!(entry.position, leaves.len() as u64, "positions are dense");
            leaves.push(entry.leaf);
        }
        for (position, event) in &self.0 {
            let leaf = LogLeaf::decode(leaves[*position as usize].as_slice()).expect("leaf decodes");
            match leaf.kind {
                Some(bcl_proto::log_leaf::Kind::ChangeEvent(stored)) => assert_eq!(&stored, event, "leaf {position}"),
                // Personal fields are sealed in the log: the rest of the event is stored as sent.
                Some(bcl_proto::log_leaf::Kind::SealedChangeEvent(sealed)) => {
                    let stored = ChangeEvent::decode(sealed.event.as_slice()).expect("sealed leaf's event decodes");
                    let key = |e: &ChangeEvent| (e.municipality_code.clone(), e.source_seq, e.event_id.clone());
                    assert_eq!(key(&stored), key(event), "leaf {position}");
                }
                other => panic!("leaf {position} is not the acknowledged event: {other:?}"),
            }
        }
        let st = status(server, CODE).await;
        let last_seq = self.0.iter().map(|(_, e)| e.source_seq).max().unwrap();
        assert_eq!((st.applied_seq, st.received_seq), (last_seq, last_seq), "municipality status");
    }
}

fn registered(seq: u64) -> ChangeEvent {
    ChangeEvent {
        municipality_code: CODE.into(),
        source_seq: seq,
        event_id: format!("ffffffff-0000-4000-8000-{seq:012x}"),
        effective_date: "2026-03-01".into(),
        body: Some(Body::ResidentRegistered(ResidentRegistered {
            resident_id: "HOSTILE-1".into(),
            household_id: "HOSTILE-H".into(),
            family_name: format!("山{MARKER}"),
            given_name: "花子".into(),
            birth_date: "1980-05-05".into(),
            sex: bcl_proto::Sex::Female as i32,
            address: format!("東京都千代田区{MARKER}"),
            household_head: true,
            relationship: "世帯主".into(),
            resident_since: "2026-03-01".into(),
            address_since: "2026-03-01".into(),
            ..Default::default()
        })),
    }
}

fn with_reg(seq: u64, f: impl FnOnce(&mut ResidentRegistered)) -> ChangeEvent {
    let mut ev = registered(seq);
    if let Some(Body::ResidentRegistered(r)) = &mut ev.body {
        f(r);
    }
    ev
}

fn with_body(seq: u64, body: Body) -> ChangeEvent {
    ChangeEvent { body: Some(body), ..registered(seq) }
}

/// A PNG whose header declares `width × height` followed by `rest`; the CRCs are right, so a decoder gets
/// as far as the data.
fn png_declaring(width: u32, height: u32, rest: &[u8]) -> Vec<u8> {
    let chunk = |kind: &[u8], data: &[u8]| {
        let mut c = (data.len() as u32).to_be_bytes().to_vec();
        c.extend(kind);
        c.extend(data);
        let crc = crc32(&[kind, data].concat());
        c.extend(crc.to_be_bytes());
        c
    };
    let mut ihdr = width.to_be_bytes().to_vec();
    ihdr.extend(height.to_be_bytes());
    ihdr.extend([8, 0, 0, 0, 0]); // 8-bit grayscale
    let mut png = b"\x89PNG\r\n\x1a\n".to_vec();
    png.extend(chunk(b"IHDR", &ihdr));
    png.extend(chunk(b"IDAT", rest));
    png.extend(chunk(b"IEND", &[]));
    png
}

fn crc32(bytes: &[u8]) -> u32 {
    let mut crc = !0u32;
    for &b in bytes {
        crc ^= u32::from(b);
        for _ in 0..8 {
            crc = if crc & 1 != 0 { (crc >> 1) ^ 0xEDB8_8320 } else { crc >> 1 };
        }
    }
    !crc
}

/// A decompression bomb for a decoder that trusts the header: 1 GiB of zero rows deflated to ~1 MiB
/// is the classic shape; here the header alone (100,000 × 100,000 pixels) must be enough to refuse it.
fn bomb() -> Vec<u8> {
    let zeros = vec![0u8; 1 << 20];
    png_declaring(100_000, 100_000, &miniz_oxide::deflate::compress_to_vec_zlib(&zeros, 10))
}

fn assert_clear(err: &tonic::Status, code: Code, mentions: &str, what: &str) {
    assert_eq!(err.code(), code, "{what}: {err:?}");
    assert!(err.message().contains(mentions), "{what}: message {:?} should mention {mentions:?}", err.message());
    assert!(!err.message().contains(MARKER) && !err.message().contains("花子"), "{what}: personal data echoed");
    if code == Code::InvalidArgument && !err.message().contains("decode") {
        assert_eq!(reason(err), "INVALID_REQUEST", "{what}");
    }
}

const APPEND: &str = "/bcl.v1.Ingest/Append";
const ISSUE: &str = "/bcl.v1.Issuance/Issue";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_and_oversize_protobuf_is_refused_and_nothing_is_lost() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), NOW);
    let acked = load(&server).await;
    let channel = server.channel().await;
    let valid = AppendRequest { events: vec![registered(1000)] }.encode_to_vec();

    // Truncated in the middle of the event: a length prefix pointing past the end.
    let err = raw::call(channel.clone(), APPEND, valid[..valid.len() / 2].to_vec()).await.unwrap_err();
    assert_clear(&err, Code::InvalidArgument, "decode", "truncated");

    // 100,000 nested groups of an unknown field (the only unbounded nesting protobuf allows here).
    let mut nested = Vec::new();
    for _ in 0..100_000 {
        nested.extend([0x9b, 0x06]); // varint tag (99 << 3) | 3: field 99, START_GROUP
    }
    let err = raw::call(channel.clone(), APPEND, nested).await.unwrap_err();
    assert_clear(&err, Code::InvalidArgument, "recursion limit", "deeply nested");

    // A length prefix of 2^32 - 1 for the events field.
    let mut huge_len = vec![0x0a, 0xff, 0xff, 0xff, 0xff, 0x0f];
    huge_len.extend([0u8; 16]);
    let err = raw::call(channel.clone(), APPEND, huge_len).await.unwrap_err();
    assert_clear(&err, Code::InvalidArgument, "decode", "huge length prefix");

    // Wire type 7 does not exist.
    let err = raw::call(channel.clone(), APPEND, vec![0x0f, 0x01]).await.unwrap_err();
    assert_clear(&err, Code::InvalidArgument, "decode", "invalid wire type");

    // A name that is not UTF-8.
    let mut bytes = AppendRequest { events: vec![with_reg(1000, |r| r.given_name = "QQ".into())] }.encode_to_vec();
    let at = bytes.windows(2).position(|w| w == b"QQ").unwrap();
    bytes[at..at + 2].copy_from_slice(&[0xff, 0xfe]);
    let err = raw::call(channel.clone(), APPEND, bytes).await.unwrap_err();
    assert_clear(&err, Code::InvalidArgument, "UTF-8", "invalid UTF-8 in a name");

    // Over the transport limit: refused by the framing before anything is decoded.
    let err = raw::call(channel.clone(), APPEND, vec![0u8; 64 * 1024 * 1024 + 1]).await.unwrap_err();
    assert_clear(&err, Code::OutOfRange, "too large", "oversize Append");
    let err = raw::call(channel.clone(), ISSUE, vec![0u8; 1024 * 1024]).await.unwrap_err();
    assert_clear(&err, Code::OutOfRange, "too large", "oversize Issue");

    acked.assert_intact(&server).await;
    drop(server);
    let server = Server::start(dir.path(), NOW);
    acked.assert_intact(&server).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_event_fields_are_invalid_argument_naming_the_field() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), NOW);
    let acked = load(&server).await;
    let mut client = server.ingest().await;
    let seal = |png: Vec<u8>| {
        with_body(
            1000,
            Body::SealRegistered(SealRegistered {
                resident_id: "HOSTILE-1".into(),
                registration_number: "S-1".into(),
                seal_image_png: png,
            }),
        )
    };
    let tax = |f: fn(&mut TaxAssessed)| {
        let mut t =
            TaxAssessed { resident_id: "HOSTILE-1".into(), fiscal_year: 2026, total_income: 1, ..Default::default() };
        f(&mut t);
        with_body(1000, Body::TaxAssessed(t))
    };
    let cases: Vec<(&str, ChangeEvent, &str)> = vec![
        (
            "bell character",
            with_reg(1000, |r| r.family_name = format!("{MARKER}\u{7}")),
            "familyName: contains a control character",
        ),
        ("newline", with_reg(1000, |r| r.address = format!("{MARKER}\n1")), "address: contains a control character"),
        (
            "bidi override",
            with_reg(1000, |r| r.given_name = format!("\u{202E}{MARKER}")),
            "givenName: contains a control character",
        ),
        ("1 MB name", with_reg(1000, |r| r.family_name = MARKER.repeat(100_000)), "familyName: longer than 32"),
        ("unknown sex", with_reg(1000, |r| r.sex = 99), "sex: unknown or unspecified enum"),
        ("negative enum", with_reg(1000, |r| r.sex = -5), "sex: unknown or unspecified enum"),
        ("source_seq 0", ChangeEvent { source_seq: 0, ..registered(1000) }, "sourceSeq"),
        (
            "date 2026-02-30",
            with_reg(1000, |r| r.birth_date = "2026-02-30".into()),
            "birthDate: must be a calendar date",
        ),
        ("negative tax", tax(|t| t.municipal_tax = -1), "municipalTax: must not be negative"),
        ("i64::MIN income", tax(|t| t.total_income = i64::MIN), "totalIncome: must not be negative"),
        ("i64::MAX income", tax(|t| t.total_income = i64::MAX), "totalIncome: must be at most"),
        ("fiscal year u32::MAX", tax(|t| t.fiscal_year = u32::MAX), "fiscalYear: must be between"),
        (
            "10 MB seal image",
            seal(png_declaring(96, 96, &vec![0u8; 10 << 20])),
            "sealImagePng: larger than 524288 bytes",
        ),
        ("decompression bomb", seal(bomb()), "sealImagePng: image must be 1 to 2048 pixels a side"),
        ("not a PNG", seal(format!("GIF89a{MARKER}").into_bytes()), "sealImagePng: is not a PNG image"),
        (
            "header only, garbage data",
            seal(png_declaring(96, 96, MARKER.as_bytes())),
            "sealImagePng: not a readable PNG",
        ),
    ];
    for (what, bad, mentions) in cases {
        // The hostile event comes second: the good first one must not be written either.
        let err = client.append(AppendRequest { events: vec![registered(999), bad] }).await.unwrap_err();
        assert_clear(&err, Code::InvalidArgument, mentions, what);
        assert!(err.message().contains("events[1]"), "{what}: names the event: {}", err.message());
    }
    let err = client.append(AppendRequest { events: vec![] }).await.unwrap_err();
    assert_clear(&err, Code::InvalidArgument, "at least one event", "empty batch");
    let err = client.append(AppendRequest { events: vec![registered(999); 10_001] }).await.unwrap_err();
    assert_clear(&err, Code::InvalidArgument, "at most 10000", "10,001 events");
    let err = client
        .get_municipality_status(bcl_proto::MunicipalityRef { municipality_code: format!("{MARKER}\u{0}") })
        .await
        .unwrap_err();
    assert_clear(&err, Code::InvalidArgument, "municipality_code", "malformed municipality code");

    acked.assert_intact(&server).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_issue_admin_audit_and_verify_requests_get_clear_errors() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), NOW);
    let acked = load(&server).await;
    let before = acked.0.len();
    let mut issuance = server.issuance().await;
    let good = || resident_record("hostile-1", "K-NONE", &[]);
    let cases: Vec<(&str, IssueRequest, &str)> = vec![
        ("copies u32::MAX", IssueRequest { copies: u32::MAX, ..good() }, "copies"),
        ("unknown centre", IssueRequest { centre: 99, ..good() }, "centre"),
        ("negative type", IssueRequest { r#type: -1, ..good() }, "type"),
        ("1 KB kiosk id", IssueRequest { kiosk_id: MARKER.repeat(100), ..good() }, "kiosk_id"),
        ("control character in kiosk id", IssueRequest { kiosk_id: "K\r\nX".into(), ..good() }, "kiosk_id"),
        ("1 KB card serial", IssueRequest { card_serial: MARKER.repeat(100), ..good() }, "card_serial"),
        (
            "33 subjects",
            IssueRequest { subject_resident_ids: (0..33).map(|i| format!("R{i}")).collect(), ..good() },
            "subject_resident_ids",
        ),
        (
            "1 KB subject id",
            IssueRequest { subject_resident_ids: vec![MARKER.repeat(100)], ..good() },
            "subject_resident_ids",
        ),
        ("empty request id", IssueRequest { request_id: String::new(), ..good() }, "request_id"),
    ];
    for (what, req, mentions) in cases {
        let err = issuance.issue(req).await.unwrap_err();
        assert_clear(&err, Code::InvalidArgument, mentions, what);
    }
    let mut admin = server.admin().await;
    let err = admin
        .set_maintenance(SetMaintenanceRequest {
            municipality_code: CODE.into(),
            on: true,
            reason: MARKER.repeat(100_000),
        })
        .await
        .unwrap_err();
    assert_clear(&err, Code::InvalidArgument, "reason", "1 MB maintenance reason");
    let err = admin
        .update_settings(MunicipalitySettings {
            municipality_code: CODE.into(),
            fees: vec![TypeFee { r#type: CertificateType::ResidentRecord as i32, fee_yen: u32::MAX }],
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_clear(&err, Code::InvalidArgument, "feeYen", "fee u32::MAX");
    let err = admin
        .get_settlement(SettlementRequest { municipality_code: CODE.into(), month: "99999-99".into() })
        .await
        .unwrap_err();
    assert_clear(&err, Code::InvalidArgument, "month", "month 99999-99");

    let mut audit = server.audit().await;
    let err = audit
        .get_inclusion_proof(InclusionProofRequest { leaf_index: u64::MAX, tree_size: u64::MAX })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument, "{err:?}");
    let err = audit
        .get_consistency_proof(ConsistencyProofRequest { first_size: u64::MAX, second_size: 1 })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument, "{err:?}");
    let mut beyond = audit
        .read_log(ReadLogRequest { from_position: u64::MAX, limit: u64::MAX, follow: false })
        .await
        .unwrap()
        .into_inner();
    assert!(beyond.message().await.unwrap().is_none(), "nothing beyond the end of the log");

    let mut verify = VerifyClient::new(server.channel().await).max_encoding_message_size(usize::MAX);
    let scan = |scan: Vec<u8>| VerifyBackRequest { scan, certificate_id: "131016-0000".into() };
    let err = verify.verify_back(scan(bomb())).await.unwrap_err();
    assert_clear(&err, Code::InvalidArgument, "100000x100000", "scan decompression bomb");
    let err = verify.verify_back(scan(format!("not an image {MARKER}").into_bytes())).await.unwrap_err();
    assert_clear(&err, Code::InvalidArgument, "not a readable PNG or JPEG", "garbage scan");
    let err = verify.verify_back(scan(vec![0u8; 41 << 20])).await.unwrap_err();
    assert_clear(&err, Code::OutOfRange, "too large", "41 MB scan");

    // Malformed requests are not transactions: nothing was appended.
    let mut log =
        audit.read_log(ReadLogRequest { from_position: 0, limit: 0, follow: false }).await.unwrap().into_inner();
    let mut leaves = 0;
    while log.message().await.unwrap().is_some() {
        leaves += 1;
    }
    let admin_leaves = 1; // `configure`
    assert_eq!(leaves, before + admin_leaves, "hostile requests wrote nothing");

    // A fiscal year far off is a refusal by the rules (recorded as a transaction), not a crash.
    let err = issuance
        .issue(IssueRequest { r#type: CertificateType::TaxAssessment as i32, fiscal_year: u32::MAX, ..good() })
        .await
        .unwrap_err();
    assert!(matches!(err.code(), Code::InvalidArgument | Code::FailedPrecondition), "{err:?}");
    acked.assert_intact(&server).await;
}

/// One caller floods the engine on several connections (a misbehaving vendor) while another caller on its
/// own connection keeps being answered: its every request succeeds while the flood is still running.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flood_from_one_caller_leaves_another_served_and_loses_nothing() {
    const FLOOD_CONNECTIONS: usize = 4;
    const FLOOD_REQUESTS: usize = 400;
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), NOW);
    let acked = load(&server).await;
    let resend: Vec<ChangeEvent> = acked.0.iter().take(20).map(|(_, e)| e.clone()).collect();

    // Flood requests not yet answered: the other caller's answers count only while some remain.
    let pending = Arc::new(AtomicUsize::new(FLOOD_CONNECTIONS * FLOOD_REQUESTS));
    let mut flood = tokio::task::JoinSet::new();
    for c in 0..FLOOD_CONNECTIONS {
        let mut ingest = server.ingest().await;
        let mut issuance = server.issuance().await;
        let resend = resend.clone();
        let pending = pending.clone();
        flood.spawn(async move {
            let mut answered = 0usize;
            for i in 0..FLOOD_REQUESTS {
                // Idempotent re-sends (writer work), malformed issues and invalid events, interleaved.
                let result = match i % 3 {
                    0 => ingest.append(AppendRequest { events: resend.clone() }).await.map(|_| ()),
                    1 => issuance
                        .issue(IssueRequest { copies: 99, ..resident_record(&format!("f{c}-{i}"), "K", &[]) })
                        .await
                        .map(|_| ()),
                    _ => ingest.append(AppendRequest { events: vec![with_reg(1, |r| r.sex = 42)] }).await.map(|_| ()),
                };
                pending.fetch_sub(1, Ordering::SeqCst);
                match result {
                    Ok(()) => answered += 1,
                    // Refused as invalid, or shed by a per-caller limit: both are answers, not failures.
                    Err(e)
                        if matches!(e.code(), Code::InvalidArgument | Code::ResourceExhausted | Code::Unavailable) =>
                    {
                        answered += 1
                    }
                    Err(e) => panic!("flood request {i}: unexpected {e:?}"),
                }
            }
            answered
        });
    }

    // The other caller: a real issuance and status reads, each answered while the flood still runs.
    let municipality = fixture(5);
    let case = municipality
        .cases
        .iter()
        .find(|c| {
            c.certificate_type == CertificateType::ResidentRecord
                && matches!(c.expect, bcl_fixtures::Expect::Issue { .. })
        })
        .expect("an issuable case");
    let mut issuance = server.issuance().await;
    let mut ingest = server.ingest().await;
    let mut served_during_flood = 0;
    for i in 0..5 {
        let resp = issuance
            .issue(resident_record(&format!("other-{i}"), &case.card_serial, &case.subject_resident_ids))
            .await
            .expect("the other caller is served");
        assert!(resp.into_inner().pdf.starts_with(b"%PDF"));
        ingest
            .get_municipality_status(bcl_proto::MunicipalityRef { municipality_code: CODE.into() })
            .await
            .expect("status");
        if pending.load(Ordering::SeqCst) > 0 {
            served_during_flood += 1;
        }
    }
    let mut total = 0;
    while let Some(answered) = flood.join_next().await {
        total += answered.expect("flood task");
    }
    assert_eq!(total, FLOOD_CONNECTIONS * FLOOD_REQUESTS, "every flood request got an answer");
    assert!(served_during_flood > 0, "the other caller was only served after the flood");

    acked.assert_intact(&server).await;
    // Nothing acknowledged is lost across a crash either.
    server.kill9();
    let server = Server::start(dir.path(), NOW);
    acked.assert_intact(&server).await;
}
