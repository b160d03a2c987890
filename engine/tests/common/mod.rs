//! Test harness: starts the real `bcl` binary on a free port with its own data directory and talks gRPC
//! to it, as the exchange centre and the municipalities do.
#![allow(dead_code)]

use bcl_proto::{
    admin_client::AdminClient, audit_client::AuditClient, ingest_client::IngestClient,
    issuance_client::IssuanceClient, AppendRequest, CertificateType, Centre, ChangeEvent, IssueRequest,
    MunicipalityRef, MunicipalitySettings, MunicipalityStatus,
};
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use tonic::transport::Channel;

pub const NOW: &str = "2026-04-01T10:00:00+09:00";
pub const CODE: &str = "131016";

pub struct Server {
    child: Child,
    pub addr: String,
    pub data_dir: PathBuf,
}

impl Server {
    pub fn start(data_dir: &Path, now: &str) -> Server {
        let mut child = Command::new(env!("CARGO_BIN_EXE_bcl"))
            .args(["serve", "--listen", "127.0.0.1:0", "--now", now, "--data-dir"])
            .arg(data_dir)
            .env("RUST_LOG", "warn")
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start bcl serve");
        // The server prints its bound address once it listens: no polling, no sleeps.
        let stdout = child.stdout.take().expect("stdout");
        let mut line = String::new();
        BufReader::new(stdout).read_line(&mut line).expect("read listening line");
        let addr = line.trim().strip_prefix("bcl listening on ").unwrap_or_else(|| panic!("unexpected first line {line:?}")).to_string();
        Server { child, addr, data_dir: data_dir.to_path_buf() }
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub async fn channel(&self) -> Channel {
        Channel::from_shared(self.url()).unwrap().connect().await.expect("connect")
    }

    pub async fn ingest(&self) -> IngestClient<Channel> {
        IngestClient::new(self.channel().await).max_decoding_message_size(64 << 20).max_encoding_message_size(64 << 20)
    }

    pub async fn issuance(&self) -> IssuanceClient<Channel> {
        IssuanceClient::new(self.channel().await).max_decoding_message_size(64 << 20)
    }

    pub async fn admin(&self) -> AdminClient<Channel> {
        AdminClient::new(self.channel().await)
    }

    pub async fn audit(&self) -> AuditClient<Channel> {
        AuditClient::new(self.channel().await).max_decoding_message_size(64 << 20)
    }

    /// SIGKILL: no chance to flush anything that was not already durable.
    pub fn kill9(mut self) {
        self.child.kill().expect("kill -9");
        self.child.wait().expect("wait");
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub fn fixture(households: usize) -> bcl_fixtures::Municipality {
    bcl_fixtures::generate(&bcl_fixtures::Spec { households, ..Default::default() })
}

pub async fn append_all(server: &Server, events: &[ChangeEvent]) {
    let mut client = server.ingest().await;
    for chunk in events.chunks(1000) {
        client.append(AppendRequest { events: chunk.to_vec() }).await.expect("append");
    }
}

pub async fn configure(server: &Server, code: &str) {
    server
        .admin()
        .await
        .update_settings(MunicipalitySettings {
            municipality_code: code.into(),
            municipality_name: "東京都千代田区".into(),
            mayor_title: "千代田区長".into(),
                enabled_types: vec![bcl_proto::CertificateType::ResidentRecord as i32],
            mayor_name: "千代田　太郎".into(),
            personal_number_allowed: Some(true),
            ..Default::default()
        })
        .await
        .expect("update settings");
}

pub async fn status(server: &Server, code: &str) -> MunicipalityStatus {
    server.ingest().await.get_municipality_status(MunicipalityRef { municipality_code: code.into() }).await.expect("status").into_inner()
}

pub fn resident_record(request_id: &str, card_serial: &str, subjects: &[String]) -> IssueRequest {
    IssueRequest {
        request_id: request_id.into(),
        centre: Centre::East as i32,
        kiosk_id: "KIOSK-00001".into(),
        municipality_code: CODE.into(),
        card_serial: card_serial.into(),
        r#type: CertificateType::ResidentRecord as i32,
        subject_resident_ids: subjects.to_vec(),
        include_relationship: true,
        include_domicile: true,
        include_personal_number: false,
        fiscal_year: 0,
        copies: 1,
    }
}

/// The `google.rpc.ErrorInfo` reason of a refusal.
pub fn reason(status: &tonic::Status) -> String {
    use tonic_types::StatusExt;
    let info = status.get_error_details().error_info().cloned().unwrap_or_else(|| panic!("no ErrorInfo in {status:?}"));
    assert_eq!(info.domain, "bcl.v1");
    info.reason
}

/// Runs a command-line tool and returns its stdout; panics with its stderr when it fails.
pub fn tool(program: &str, args: &[&str]) -> Vec<u8> {
    let out = Command::new(program).args(args).output().unwrap_or_else(|e| panic!("{program} is required by this test ({e}); run scripts/setup.sh"));
    assert!(out.status.success(), "{program} {args:?} failed: {}", String::from_utf8_lossy(&out.stderr));
    out.stdout
}
