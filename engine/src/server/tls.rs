//! The files of a TLS directory (as written by `bcl certs init`) and the TLS configurations built from them,
//! for the server and for every client (CLI, demo, tests, benchmarks, the replication peer).
//!
//! Layout: `ca.pem` (the private CA that signs everything; `ca.key` stays with whoever issues
//! certificates), `server.pem`/`server.key`, and one `<identity>.pem`/`<identity>.key` per client identity
//! (`centre-east`, `link-131016`, `admin-131016`, `auditor`, `peer-west`, `monitor`, ...).

use std::path::{Path, PathBuf};
use tonic::transport::{Certificate, Channel, ClientTlsConfig, Endpoint, Identity, ServerTlsConfig};

pub const CA_CERT: &str = "ca.pem";
pub const CA_KEY: &str = "ca.key";
pub const SERVER: &str = "server";

pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

pub fn cert_path(dir: &Path, identity: &str) -> PathBuf {
    dir.join(format!("{identity}.pem"))
}

pub fn key_path(dir: &Path, identity: &str) -> PathBuf {
    dir.join(format!("{identity}.key"))
}

fn read(path: &Path) -> Result<Vec<u8>, BoxError> {
    std::fs::read(path).map_err(|e| format!("{}: {e}", path.display()).into())
}

fn identity(dir: &Path, name: &str) -> Result<Identity, BoxError> {
    Ok(Identity::from_pem(read(&cert_path(dir, name))?, read(&key_path(dir, name))?))
}

/// The server side: its own certificate, and client certificates REQUIRED and checked against `ca.pem`
/// (mutual TLS): a connection without a certificate of this CA fails in the handshake.
pub fn server_tls(dir: &Path) -> Result<ServerTlsConfig, BoxError> {
    Ok(ServerTlsConfig::new()
        .identity(identity(dir, SERVER)?)
        .client_ca_root(Certificate::from_pem(read(&dir.join(CA_CERT))?))
        .client_auth_optional(false))
}

/// A client presenting `identity` (e.g. `centre-east`) and trusting only the CA of `dir`. The server name
/// checked is the URL's host (the server certificate of `bcl certs init` holds `localhost` and `127.0.0.1`).
pub fn client_tls(dir: &Path, identity_name: &str) -> Result<ClientTlsConfig, BoxError> {
    Ok(ClientTlsConfig::new()
        .ca_certificate(Certificate::from_pem(read(&dir.join(CA_CERT))?))
        .identity(identity(dir, identity_name)?))
}

/// How a client reaches a server: plaintext (`--insecure-dev` servers) or mutual TLS as one identity.
#[derive(Clone, Debug)]
pub enum ClientAuth {
    Plaintext,
    Tls { dir: PathBuf, identity: String },
}

impl ClientAuth {
    pub fn tls(dir: impl Into<PathBuf>, identity: impl Into<String>) -> ClientAuth {
        ClientAuth::Tls { dir: dir.into(), identity: identity.into() }
    }

    /// The URL scheme a server of this kind is reached with.
    pub fn scheme(&self) -> &'static str {
        match self {
            ClientAuth::Plaintext => "http",
            ClientAuth::Tls { .. } => "https",
        }
    }

    pub fn endpoint(&self, url: &str) -> Result<Endpoint, BoxError> {
        let endpoint = Endpoint::from_shared(url.to_string())?;
        Ok(match self {
            ClientAuth::Plaintext => endpoint,
            ClientAuth::Tls { dir, identity } => endpoint.tls_config(client_tls(dir, identity)?)?,
        })
    }

    pub async fn connect(&self, url: &str) -> Result<Channel, BoxError> {
        Ok(self.endpoint(url)?.connect().await?)
    }
}

/// The CLI's view: an `https://` URL needs a TLS directory (`--tls-dir` or `BCL_TLS_DIR`) and uses the given
/// identity; an `http://` URL is plaintext, for servers started with `--insecure-dev`.
pub fn for_url(url: &str, tls_dir: Option<&Path>, identity: &str) -> Result<ClientAuth, BoxError> {
    if url.starts_with("https://") {
        let dir = tls_dir
            .ok_or("an https:// server needs --tls-dir (or BCL_TLS_DIR) with ca.pem and the client certificate")?;
        Ok(ClientAuth::tls(dir, identity))
    } else {
        Ok(ClientAuth::Plaintext)
    }
}

/// The rustls server configuration of the metrics listener: the same server certificate and the same client
/// CA as the gRPC listener, so Prometheus scrapes with a certificate of this CA (e.g. `monitor`).
pub fn metrics_server_config(dir: &Path) -> Result<std::sync::Arc<rustls::ServerConfig>, BoxError> {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};
    let ca = CertificateDer::from_pem_file(dir.join(CA_CERT)).map_err(|e| format!("{CA_CERT}: {e}"))?;
    let mut roots = rustls::RootCertStore::empty();
    roots.add(ca)?;
    let verifier = rustls::server::WebPkiClientVerifier::builder(std::sync::Arc::new(roots)).build()?;
    let chain = CertificateDer::pem_file_iter(cert_path(dir, SERVER))
        .map_err(|e| format!("server.pem: {e}"))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| format!("server.pem: {e}"))?;
    let key = PrivateKeyDer::from_pem_file(key_path(dir, SERVER)).map_err(|e| format!("server.key: {e}"))?;
    let mut config =
        rustls::ServerConfig::builder().with_client_cert_verifier(verifier).with_single_cert(chain, key)?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(std::sync::Arc::new(config))
}
