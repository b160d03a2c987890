//! Test harness: starts the real `bcl` binary on a free port with its own data directory and talks gRPC
//! to it over mutual TLS, as the exchange centre and the municipalities do.
//!
//! Certificates: `bcl certs init` runs once per test process into a directory under the target's tmp dir
//! ([`certs_dir`]), and `BCL_TLS_DIR` points the `bcl` subcommands a test runs (`bcl admin`, `bcl ingest`,
//! `bcl audit`) at it, so they use their default identities (admin-131016, link-131016, auditor).
//! The service helpers ([`Server::ingest`], [`Server::issuance`], [`Server::admin`], [`Server::audit`])
//! connect as `peer-east`, which may call those services for every municipality and both centres, and
//! [`Server::channel`] as `harness` (peer and auditor grants: every service, Verify included). Tests of
//! who may call what use [`Server::channel_as`] with a role identity (`centre-east`, `link-131016`, ...).
#![allow(dead_code)]

use bcl_proto::{
    admin_client::AdminClient, audit_client::AuditClient, ingest_client::IngestClient, issuance_client::IssuanceClient,
    AppendRequest, Centre, CertificateType, ChangeEvent, IssueRequest, MunicipalityRef, MunicipalitySettings,
    MunicipalityStatus,
};
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use tonic::transport::Channel;

pub const NOW: &str = "2026-04-01T10:00:00+09:00";
pub const CODE: &str = "131016";

/// The identity of [`Server::channel`]: may call every service (peer and auditor grants).
pub const HARNESS: &str = "harness";
/// The identity of the service helpers.
pub const PEER: &str = "peer-east";

/// The test process's CA and certificates, made once by `bcl certs init` (plus the `harness` identity), and
/// exported as `BCL_TLS_DIR` for the `bcl` subcommands the tests run.
pub fn certs_dir() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let dir = tempfile::Builder::new()
            .prefix("bcl-certs-")
            .tempdir_in(env!("CARGO_TARGET_TMPDIR"))
            .expect("certs dir")
            .keep();
        let d = dir.to_str().expect("utf-8 path");
        tool(env!("CARGO_BIN_EXE_bcl"), &["certs", "init", "--dir", d]);
        tool(
            env!("CARGO_BIN_EXE_bcl"),
            &[
                "certs",
                "issue",
                "--dir",
                d,
                "--name",
                HARNESS,
                "--grant",
                "bcl://peer/east",
                "--grant",
                "bcl://auditor",
            ],
        );
        // Set once, before any server of this process exists; std serialises environment access with
        // spawning children.
        std::env::set_var("BCL_TLS_DIR", &dir);
        dir
    })
}

pub struct Server {
    child: Child,
    pub addr: String,
    pub data_dir: PathBuf,
    /// `bcl metrics on ADDR`, when started with `--metrics-listen`.
    pub metrics_addr: Option<String>,
    tls: bool,
}

impl Server {
    /// `bcl serve` with mutual TLS and the process's certificates.
    pub fn start(data_dir: &Path, now: &str) -> Server {
        Server::start_with(data_dir, now, &[])
    }

    /// Like [`Server::start`] with extra `bcl serve` arguments (e.g. `--rate-limit 5`). With
    /// `--insecure-dev` among them the server is plaintext and the clients connect without certificates.
    pub fn start_with(data_dir: &Path, now: &str, extra: &[&str]) -> Server {
        Server::spawn(data_dir, now, extra, "warn", Stdio::inherit())
    }

    /// Starts the server and returns it with its stderr (piped), for tests that read the server's logs.
    pub fn start_logging(
        data_dir: &Path,
        now: &str,
        extra: &[&str],
        rust_log: &str,
    ) -> (Server, std::process::ChildStderr) {
        let mut server = Server::spawn(data_dir, now, extra, rust_log, Stdio::piped());
        let stderr = server.child.stderr.take().expect("stderr is piped");
        (server, stderr)
    }

    fn spawn(data_dir: &Path, now: &str, extra: &[&str], rust_log: &str, stderr: Stdio) -> Server {
        let tls = !extra.contains(&"--insecure-dev");
        let mut command = Command::new(env!("CARGO_BIN_EXE_bcl"));
        command.args(["serve", "--listen", "127.0.0.1:0", "--now", now, "--data-dir"]).arg(data_dir);
        if tls {
            command.arg("--tls-dir").arg(certs_dir());
        }
        let mut child = command
            .args(extra)
            .env("RUST_LOG", rust_log)
            .stdout(Stdio::piped())
            .stderr(stderr)
            .spawn()
            .expect("start bcl serve");
        // The server prints its bound address once it listens (after the metrics address, if any): no
        // polling, no sleeps.
        let mut stdout = BufReader::new(child.stdout.take().expect("stdout"));
        let mut metrics_addr = None;
        let addr = loop {
            let mut line = String::new();
            stdout.read_line(&mut line).expect("read listening line");
            if let Some(m) = line.trim().strip_prefix("bcl metrics on ") {
                metrics_addr = Some(m.to_string());
                continue;
            }
            break line
                .trim()
                .strip_prefix("bcl listening on ")
                .unwrap_or_else(|| panic!("unexpected line {line:?}"))
                .to_string();
        };
        Server { child, addr, data_dir: data_dir.to_path_buf(), metrics_addr, tls }
    }

    /// The server's process id (for tests that look at its threads in /proc).
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub fn url(&self) -> String {
        format!("{}://{}", if self.tls { "https" } else { "http" }, self.addr)
    }

    /// How a client of `identity` reaches this server (plaintext for an `--insecure-dev` server).
    pub fn auth_as(&self, identity: &str) -> bcl_engine::server::tls::ClientAuth {
        if self.tls {
            bcl_engine::server::tls::ClientAuth::tls(certs_dir(), identity)
        } else {
            bcl_engine::server::tls::ClientAuth::Plaintext
        }
    }

    /// A channel presenting the certificate of `identity` (a file name in [`certs_dir`]).
    pub async fn channel_as(&self, identity: &str) -> Channel {
        self.auth_as(identity).connect(&self.url()).await.expect("connect")
    }

    pub async fn channel(&self) -> Channel {
        self.channel_as(HARNESS).await
    }

    pub async fn ingest(&self) -> IngestClient<Channel> {
        IngestClient::new(self.channel_as(PEER).await)
            .max_decoding_message_size(64 << 20)
            .max_encoding_message_size(64 << 20)
    }

    pub async fn issuance(&self) -> IssuanceClient<Channel> {
        IssuanceClient::new(self.channel_as(PEER).await).max_decoding_message_size(64 << 20)
    }

    pub async fn admin(&self) -> AdminClient<Channel> {
        AdminClient::new(self.channel_as(PEER).await)
    }

    pub async fn audit(&self) -> AuditClient<Channel> {
        AuditClient::new(self.channel_as(PEER).await).max_decoding_message_size(64 << 20)
    }

    /// SIGTERM, then waits: the graceful path (in-flight calls finish). Returns whether it exited cleanly.
    pub fn terminate(mut self) -> bool {
        let _ = Command::new("kill").arg("-TERM").arg(self.child.id().to_string()).status();
        self.child.wait().expect("wait").success()
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
            personal_number_allowed: Some(true),
            ..bcl_fixtures::municipality_settings(code)
        })
        .await
        .expect("update settings");
}

pub async fn status(server: &Server, code: &str) -> MunicipalityStatus {
    server
        .ingest()
        .await
        .get_municipality_status(MunicipalityRef { municipality_code: code.into() })
        .await
        .expect("status")
        .into_inner()
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
    let out = Command::new(program)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("{program} is required by this test ({e}); run scripts/setup.sh"));
    assert!(out.status.success(), "{program} {args:?} failed: {}", String::from_utf8_lossy(&out.stderr));
    out.stdout
}

/// `GET /metrics` over TLS, presenting `identity` (None: no client certificate).
pub async fn scrape(addr: &str, identity: Option<&str>) -> std::io::Result<String> {
    use rustls::pki_types::{pem::PemObject, CertificateDer, PrivateKeyDer, ServerName};
    let dir = certs_dir();
    let mut roots = rustls::RootCertStore::empty();
    roots.add(CertificateDer::from_pem_file(dir.join("ca.pem")).unwrap()).unwrap();
    let builder = rustls::ClientConfig::builder().with_root_certificates(roots);
    let config = match identity {
        Some(name) => {
            let chain = vec![CertificateDer::from_pem_file(dir.join(format!("{name}.pem"))).unwrap()];
            let key = PrivateKeyDer::from_pem_file(dir.join(format!("{name}.key"))).unwrap();
            builder.with_client_auth_cert(chain, key).unwrap()
        }
        None => builder.with_no_client_auth(),
    };
    let connector = tokio_rustls::TlsConnector::from(std::sync::Arc::new(config));
    let tcp = tokio::net::TcpStream::connect(addr).await?;
    let mut tls = connector.connect(ServerName::try_from("localhost").unwrap(), tcp).await?;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    tls.write_all(b"GET /metrics HTTP/1.1\r\nHost: localhost\r\n\r\n").await?;
    let mut response = String::new();
    tls.read_to_string(&mut response).await?;
    let (head, body) = response.split_once("\r\n\r\n").unwrap_or((&response, ""));
    if !head.starts_with("HTTP/1.1 200") {
        return Err(std::io::Error::other(format!("not 200: {head}")));
    }
    Ok(body.to_string())
}

/// The sum of the samples of `name` whose labels contain every `label="value"` of `labels`.
pub fn sample(text: &str, name: &str, labels: &[&str]) -> f64 {
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| l.rsplit_once(' '))
        .filter(|(series, _)| {
            let (metric, rest) = series.split_once('{').unwrap_or((series, ""));
            metric == name && labels.iter().all(|want| rest.contains(want))
        })
        .map(|(_, v)| v.parse::<f64>().unwrap())
        .sum()
}

/// Sends pre-encoded request bytes as they are, to any unary method: what a hostile or broken client can
/// put on the wire that the generated clients never would (invalid UTF-8, unknown fields, oversize).
pub mod raw {
    use tonic::codec::{Codec, DecodeBuf, Decoder, EncodeBuf, Encoder};

    #[derive(Default)]
    pub struct RawCodec;
    pub struct RawEncoder;
    pub struct Discard;
    impl Encoder for RawEncoder {
        type Item = Vec<u8>;
        type Error = tonic::Status;
        fn encode(&mut self, item: Vec<u8>, dst: &mut EncodeBuf<'_>) -> Result<(), tonic::Status> {
            use bytes::BufMut;
            dst.put_slice(&item);
            Ok(())
        }
    }
    impl Decoder for Discard {
        type Item = ();
        type Error = tonic::Status;
        fn decode(&mut self, buf: &mut DecodeBuf<'_>) -> Result<Option<()>, tonic::Status> {
            use bytes::Buf;
            buf.advance(buf.remaining());
            Ok(Some(()))
        }
    }
    impl Codec for RawCodec {
        type Encode = Vec<u8>;
        type Decode = ();
        type Encoder = RawEncoder;
        type Decoder = Discard;
        fn encoder(&mut self) -> RawEncoder {
            RawEncoder
        }
        fn decoder(&mut self) -> Discard {
            Discard
        }
    }

    pub async fn call(
        channel: tonic::transport::Channel,
        method: &'static str,
        bytes: Vec<u8>,
    ) -> Result<(), tonic::Status> {
        let mut grpc = tonic::client::Grpc::new(channel).max_encoding_message_size(usize::MAX);
        grpc.ready().await.map_err(|e| tonic::Status::unavailable(e.to_string()))?;
        let path = tonic::codegen::http::uri::PathAndQuery::from_static(method);
        grpc.unary(tonic::Request::new(bytes), path, RawCodec).await.map(|_| ())
    }
}
