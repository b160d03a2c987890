//! The connection to the other centre, and telling "it is gone" from "it is slow".

use crate::error::EngineError;
use bcl_proto::{
    admin_client::AdminClient, ingest_client::IngestClient, replication_client::ReplicationClient, CentreStatus,
    StatusRequest,
};
use std::time::Duration;
use tonic::transport::{Channel, Endpoint};

/// How long a unary call to the other centre may take before it counts as unreachable.
pub const CALL_TIMEOUT: Duration = Duration::from_millis(500);

pub struct Peer {
    channel: Channel,
}

impl Peer {
    pub fn new(config: &super::ReplicationConfig) -> Result<Self, EngineError> {
        let mut endpoint = Endpoint::from_shared(config.peer.clone())
            .map_err(|e| EngineError::Invalid(format!("peer address: {e}")))?
            .connect_timeout(Duration::from_millis(300))
            .tcp_nodelay(true)
            .http2_keep_alive_interval(Duration::from_millis(500))
            .keep_alive_timeout(Duration::from_millis(1000));
        if let Some(dir) = &config.tls_dir {
            let identity = format!("peer-{}", config.centre.as_str());
            let tls = crate::server::tls::client_tls(dir, &identity)
                .map_err(|e| EngineError::Invalid(format!("peer TLS ({identity}): {e}")))?;
            endpoint = endpoint.tls_config(tls).map_err(|e| EngineError::Invalid(format!("peer TLS: {e}")))?;
        }
        // Lazy: the channel (re)connects on use, so a centre can start before the other one.
        Ok(Self { channel: endpoint.connect_lazy() })
    }

    pub fn replication(&self) -> ReplicationClient<Channel> {
        ReplicationClient::new(self.channel.clone()).max_decoding_message_size(256 * 1024 * 1024)
    }

    pub fn ingest(&self) -> IngestClient<Channel> {
        IngestClient::new(self.channel.clone()).max_encoding_message_size(64 * 1024 * 1024)
    }

    pub fn admin(&self) -> AdminClient<Channel> {
        AdminClient::new(self.channel.clone())
    }

    /// The other centre's status, or why it could not be had.
    pub async fn status(&self) -> Result<CentreStatus, tonic::Status> {
        match tokio::time::timeout(CALL_TIMEOUT, self.replication().status(StatusRequest {})).await {
            Ok(r) => r.map(|r| r.into_inner()),
            Err(_) => Err(tonic::Status::deadline_exceeded("the other centre did not answer in time")),
        }
    }
}

/// Whether a failed call means the other centre's host actively refused the connection: its process is
/// not running (a killed engine's port answers with RST at once). Only this counts as evidence that the
/// primary is gone; a timeout may be a paused or partitioned centre that is still issuing.
pub fn is_refused(status: &tonic::Status) -> bool {
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(status);
    while let Some(e) = source {
        if let Some(io) = e.downcast_ref::<std::io::Error>() {
            if io.kind() == std::io::ErrorKind::ConnectionRefused {
                return true;
            }
        }
        source = e.source();
    }
    // hyper-util reports connect errors as text in some versions; the OS message is stable.
    let text = format!("{status:?}");
    text.contains("Connection refused") || text.contains("os error 111")
}

/// Whether the call failed for want of a connection (refused, reset, timed out) rather than by an answer
/// of the other centre: tonic gives transport failures a source error; answers never have one.
pub fn is_unreachable(status: &tonic::Status) -> bool {
    is_refused(status) || std::error::Error::source(status).is_some() || status.code() == tonic::Code::DeadlineExceeded
}
