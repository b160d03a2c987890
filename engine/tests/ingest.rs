//! The data link through the real server and real storage: idempotent append, fail-closed sequencing,
//! conflicts, bad input, isolation between municipalities.

mod common;

use bcl_proto::{
    change_event::Body, AppendRequest, ChangeEvent, MunicipalityState, ResidentChanged, ResidentRegistered,
    SetMaintenanceRequest, Sex,
};
use common::*;

const OTHER: &str = "011002"; // Sapporo: a second municipality on the same engine

fn uuid(n: u64, salt: u8) -> String {
    format!("{:08x}-0000-4000-8{:03x}-{:012x}", n, salt, n)
}

fn registered(code: &str, seq: u64, resident: &str) -> ChangeEvent {
    ChangeEvent {
        municipality_code: code.into(),
        source_seq: seq,
        event_id: uuid(seq, if code == CODE { 1 } else { 2 }),
        effective_date: "2020-04-01".into(),
        body: Some(Body::ResidentRegistered(ResidentRegistered {
            resident_id: resident.into(),
            household_id: format!("H-{resident}"),
            family_name: "山田".into(),
            given_name: "花子".into(),
            family_name_kana: "ヤマダ".into(),
            given_name_kana: "ハナコ".into(),
            birth_date: "1980-05-05".into(),
            sex: Sex::Female as i32,
            address: "東京都千代田区神田神保町二丁目１番地".into(),
            household_head: true,
            relationship: "世帯主".into(),
            resident_since: "2020-04-01".into(),
            address_since: "2020-04-01".into(),
            previous_address: "大阪府大阪市北区梅田一丁目１番".into(),
            registered_domicile: "東京都千代田区千代田一番".into(),
            domicile_head: "山田　花子".into(),
            personal_number: String::new(),
            gaiji_pending: false,
        })),
    }
}

fn state(s: &bcl_proto::MunicipalityStatus) -> MunicipalityState {
    MunicipalityState::try_from(s.state).unwrap()
}

#[tokio::test]
async fn identical_resend_returns_original_positions_and_adds_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), NOW);
    let mut client = server.ingest().await;
    let events: Vec<_> = (1..=3).map(|s| registered(CODE, s, &format!("R{s}"))).collect();
    let first = client.append(AppendRequest { events: events.clone() }).await.unwrap().into_inner();
    assert_eq!(first.positions, vec![0, 1, 2]);
    let again = client.append(AppendRequest { events: events.clone() }).await.unwrap().into_inner();
    assert_eq!(again.positions, first.positions);
    // Mixed: two known, one new.
    let mut mixed = events[1..].to_vec();
    mixed.push(registered(CODE, 4, "R4"));
    let mixed = client.append(AppendRequest { events: mixed }).await.unwrap().into_inner();
    assert_eq!(mixed.positions, vec![1, 2, 3]);
    let st = status(&server, CODE).await;
    assert_eq!((st.applied_seq, st.received_seq, state(&st)), (4, 4, MunicipalityState::Active));
}

#[tokio::test]
async fn gap_suspends_until_filled_and_lifted() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), NOW);
    let mut client = server.ingest().await;
    client.append(AppendRequest { events: vec![registered(CODE, 1, "R1")] }).await.unwrap();
    client.append(AppendRequest { events: vec![registered(OTHER, 1, "S1")] }).await.unwrap();
    // seq 2 is missing.
    client.append(AppendRequest { events: vec![registered(CODE, 3, "R3"), registered(CODE, 4, "R4")] }).await.unwrap();
    let st = status(&server, CODE).await;
    assert_eq!(state(&st), MunicipalityState::Suspended);
    assert_eq!((st.applied_seq, st.received_seq, st.backlog), (1, 4, 2));
    assert!(st.reason.contains('2'), "the reason names the missing sequence number: {}", st.reason);
    // Another municipality is unaffected.
    let other = status(&server, OTHER).await;
    assert_eq!(state(&other), MunicipalityState::Active);

    // Lifting is refused while the backlog remains.
    let mut admin = server.admin().await;
    let lift = SetMaintenanceRequest { municipality_code: CODE.into(), on: false, reason: String::new() };
    let err = admin.set_maintenance(lift.clone()).await.unwrap_err();
    assert_eq!(err.code(), tonic::Code::FailedPrecondition);
    assert_eq!(reason(&err), "BACKLOG_REMAINS");

    // The gap is filled: everything applies in order, but the municipality stays suspended...
    client.append(AppendRequest { events: vec![registered(CODE, 2, "R2")] }).await.unwrap();
    let st = status(&server, CODE).await;
    assert_eq!((st.applied_seq, st.received_seq, st.backlog), (4, 4, 0));
    assert_eq!(state(&st), MunicipalityState::Suspended);
    // ...until maintenance is lifted.
    let st = admin.set_maintenance(lift).await.unwrap().into_inner();
    assert_eq!(state(&st), MunicipalityState::Active);
}

#[tokio::test]
async fn conflicting_resend_suspends_and_writes_nothing_of_the_request() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), NOW);
    let mut client = server.ingest().await;
    client.append(AppendRequest { events: vec![registered(CODE, 1, "R1")] }).await.unwrap();
    let mut other_content = registered(CODE, 1, "R1");
    other_content.event_id = uuid(99, 9);
    let err =
        client.append(AppendRequest { events: vec![registered(CODE, 2, "R2"), other_content] }).await.unwrap_err();
    assert_eq!(err.code(), tonic::Code::FailedPrecondition);
    assert_eq!(reason(&err), "SOURCE_SEQ_CONFLICT");
    assert!(!err.message().contains("山田"), "no personal data in errors");
    let st = status(&server, CODE).await;
    assert_eq!(state(&st), MunicipalityState::Suspended);
    assert_eq!((st.applied_seq, st.received_seq), (1, 1), "seq 2 of the refused request was not written");
    // The suspension is durable: it is a leaf of the log, so a restart keeps it.
    drop(server);
    let server = Server::start(dir.path(), NOW);
    assert_eq!(state(&status(&server, CODE).await), MunicipalityState::Suspended);
}

#[tokio::test]
async fn event_that_cannot_be_applied_suspends_fail_closed() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), NOW);
    let mut client = server.ingest().await;
    client.append(AppendRequest { events: vec![registered(CODE, 1, "R1")] }).await.unwrap();
    let change_unknown = ChangeEvent {
        municipality_code: CODE.into(),
        source_seq: 2,
        event_id: uuid(2, 1),
        effective_date: "2026-03-01".into(),
        body: Some(Body::ResidentChanged(ResidentChanged {
            resident_id: "NOBODY".into(),
            address: Some("東京都千代田区一番町１番".into()),
            ..Default::default()
        })),
    };
    client.append(AppendRequest { events: vec![change_unknown, registered(CODE, 3, "R3")] }).await.unwrap();
    let st = status(&server, CODE).await;
    assert_eq!(state(&st), MunicipalityState::Suspended);
    assert_eq!((st.applied_seq, st.received_seq), (1, 3));
    assert!(!st.reason.is_empty());
}

#[tokio::test]
async fn bad_input_is_invalid_argument_and_writes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), NOW);
    let mut client = server.ingest().await;
    let good = registered(CODE, 1, "R1");
    let mut cases: Vec<(&str, ChangeEvent)> = Vec::new();
    let mut e = good.clone();
    e.municipality_code = "131017".into(); // wrong check digit
    cases.push(("wrong municipality code", e));
    let mut e = good.clone();
    e.event_id = String::new();
    cases.push(("missing event id", e));
    let mut e = good.clone();
    if let Some(Body::ResidentRegistered(r)) = &mut e.body {
        r.sex = 7;
    }
    cases.push(("unknown enum", e));
    let mut e = good.clone();
    if let Some(Body::ResidentRegistered(r)) = &mut e.body {
        r.address = "長".repeat(5000);
    }
    cases.push(("oversize field", e));
    let mut e = good.clone();
    if let Some(Body::ResidentRegistered(r)) = &mut e.body {
        r.birth_date = "2026-02-30".into();
    }
    cases.push(("invalid date", e));
    let mut e = good.clone();
    e.body = None;
    cases.push(("no body", e));
    for (what, bad) in cases {
        // The bad event comes second: the good first one must not be written either.
        let err = client.append(AppendRequest { events: vec![good.clone(), bad] }).await.unwrap_err();
        assert_eq!(err.code(), tonic::Code::InvalidArgument, "{what}: {err:?}");
        assert!(err.message().contains("events[1]"), "{what}: the message points at the event: {}", err.message());
        assert!(!err.message().contains("長長") && !err.message().contains("山田"), "{what}: no personal data");
    }
    let err = client
        .get_municipality_status(bcl_proto::MunicipalityRef { municipality_code: CODE.into() })
        .await
        .unwrap_err();
    assert_eq!(err.code(), tonic::Code::NotFound, "nothing was written for the municipality");
}

#[test]
fn ingest_cli_reports_malformed_lines_by_number_without_content() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("bad.jsonl");
    let good = serde_json::to_string(&registered(CODE, 1, "R1")).unwrap();
    let bad_enum = good.replace("\"FEMALE\"", "\"WOMAN\"");
    std::fs::write(&file, format!("{good}\n{bad_enum}\n")).unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_bcl"))
        .args(["ingest", "--server", "http://127.0.0.1:1"])
        .arg(&file)
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("line 2") && err.contains("unknown enum"), "{err}");
    assert!(!err.contains("山田"), "{err}");
    // Invalid UTF-8 is named as such.
    let mut bytes = good.clone().into_bytes();
    bytes.push(b'\n');
    bytes.extend_from_slice(b"{\"municipalityCode\":\"\xff\xfe\"}\n");
    std::fs::write(&file, bytes).unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_bcl"))
        .args(["ingest", "--server", "http://127.0.0.1:1"])
        .arg(&file)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("line 2") && err.contains("UTF-8"), "{err}");
}

/// Bytes that are not a valid protobuf request (here: a name that is not UTF-8) are the caller's malformed
/// input: INVALID_ARGUMENT naming the field, nothing written, the server stays up.
#[tokio::test]
async fn invalid_utf8_over_grpc_is_invalid_argument() {
    use prost::Message;

    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), NOW);
    let mut event = registered(CODE, 1, "R1");
    if let Some(Body::ResidentRegistered(r)) = &mut event.body {
        r.family_name = "QQ".into();
    }
    let mut bytes = AppendRequest { events: vec![event] }.encode_to_vec();
    let at = bytes.windows(2).position(|w| w == b"QQ").unwrap();
    bytes[at] = 0xff;
    bytes[at + 1] = 0xfe;

    let err = raw::call(server.channel().await, "/bcl.v1.Ingest/Append", bytes).await.unwrap_err();
    assert_eq!(err.code(), tonic::Code::InvalidArgument, "{err:?}");
    assert!(err.message().contains("UTF-8"), "{}", err.message());
    // Nothing was written and the server still serves.
    let err = server
        .ingest()
        .await
        .get_municipality_status(bcl_proto::MunicipalityRef { municipality_code: CODE.into() })
        .await
        .unwrap_err();
    assert_eq!(err.code(), tonic::Code::NotFound);
}

/// The data link's command-line client: a JSON Lines file of canonical-JSON events into a running server.
#[tokio::test]
async fn ingest_cli_appends_a_jsonl_file() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(&dir.path().join("data"), NOW);
    let file = dir.path().join("muni.jsonl");
    tool(env!("CARGO_BIN_EXE_bcl"), &["fixtures", "--households", "20", "--out", file.to_str().unwrap()]);
    let lines = std::fs::read_to_string(&file).unwrap().lines().filter(|l| !l.trim().is_empty()).count();
    assert!(lines > 100);
    tool(env!("CARGO_BIN_EXE_bcl"), &["ingest", file.to_str().unwrap(), "--server", &server.url(), "--batch", "64"]);
    let st = status(&server, CODE).await;
    assert_eq!((st.applied_seq, st.received_seq), (lines as u64, lines as u64));
    assert_eq!(state(&st), MunicipalityState::Active);
    // Running it again is harmless: every event is an idempotent re-send.
    tool(env!("CARGO_BIN_EXE_bcl"), &["ingest", file.to_str().unwrap(), "--server", &server.url()]);
    assert_eq!(status(&server, CODE).await.received_seq, lines as u64);
}
