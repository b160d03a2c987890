//! Client-side routing for a kiosk vendor: send each Issue to the vendor's preferred centre, fail over to
//! the other centre on `UNAVAILABLE` or a missed deadline with the *same* request (same request id, same
//! bytes, so the engines answer a retry with the certificate already issued, never a second one), and fail
//! back as soon as the preferred centre's `grpc.health.v1` says it serves again.
//!
//! Used by the demo, the kiosk load harness and the replication tests. It is deliberately small: what a
//! vendor's router must do, nothing it must not (it never invents a new request id).

use crate::replication::CentreName;
use crate::server::tls::{BoxError, ClientAuth};
use bcl_proto::{issuance_client::IssuanceClient, IssueRequest, IssueResponse};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tonic::transport::Channel;
use tonic::{Code, Status};

/// The largest HTTP/2 frame a vendor's client accepts (its SETTINGS_MAX_FRAME_SIZE; the protocol's default
/// is 16 KiB). A certificate is a 100–200 kB PDF: at 16 KiB a frame the engine writes it in ~9 frames, one
/// `writev` each (8.5 per Issue under `strace -c` at 100/s), at 1 MiB in one or two (1.9 per Issue), and
/// the client is woken fewer times to read it.
pub const MAX_FRAME_SIZE: u32 = 1 << 20;

/// Whether the other centre should be tried with the same request.
pub fn fails_over(status: &Status) -> bool {
    use std::error::Error as _;
    matches!(status.code(), Code::Unavailable | Code::DeadlineExceeded | Code::Cancelled)
        // A connection that died mid-request surfaces as UNKNOWN with the transport error as its source.
        || (status.code() == Code::Unknown && status.source().is_some())
}

struct Site {
    name: CentreName,
    channel: Channel,
    /// Last health reported by the centre (true until told otherwise).
    serving: Arc<AtomicBool>,
}

pub struct CentreRouter {
    sites: [Site; 2],
    preferred: usize,
    /// One attempt at one centre.
    pub attempt_timeout: Duration,
    /// The whole transaction, failovers included.
    pub deadline: Duration,
}

/// The answer to one transaction and how it was reached.
#[derive(Debug)]
pub struct Routed {
    pub result: Result<IssueResponse, Status>,
    /// The centre that gave `result`.
    pub centre: CentreName,
    /// How many times the request moved to the other centre.
    pub failovers: u32,
    pub attempts: u32,
}

impl CentreRouter {
    /// `east` and `west` are plaintext URLs (`http://host:port`, servers run with `--insecure-dev`).
    /// Connections are made lazily and re-made as needed.
    pub fn new(east: &str, west: &str, preferred: CentreName) -> Result<Self, BoxError> {
        Self::with_auth(east, west, preferred, &ClientAuth::Plaintext)
    }

    /// Like [`CentreRouter::new`], reaching both centres as `auth` (mutual TLS as the vendor's exchange
    /// centre identity, e.g. `centre-east`, with `https://` URLs). The identity stays the same when a
    /// request moves to the other centre: it is still the same caller asking.
    pub fn with_auth(east: &str, west: &str, preferred: CentreName, auth: &ClientAuth) -> Result<Self, BoxError> {
        let site = |name, url: &str| -> Result<Site, BoxError> {
            let channel = auth
                .endpoint(url)?
                .connect_timeout(Duration::from_millis(300))
                .tcp_nodelay(true)
                .max_frame_size(MAX_FRAME_SIZE)
                .connect_lazy();
            Ok(Site { name, channel, serving: Arc::new(AtomicBool::new(true)) })
        };
        Ok(Self {
            sites: [site(CentreName::East, east)?, site(CentreName::West, west)?],
            preferred: match preferred {
                CentreName::East => 0,
                CentreName::West => 1,
            },
            attempt_timeout: Duration::from_secs(2),
            deadline: Duration::from_secs(10),
        })
    }

    /// Follows each centre's `grpc.health.v1` status of `bcl.v1.Issuance` (a server stream), so the router
    /// leaves a centre that reports NOT_SERVING and comes back when it serves again. Needs a Tokio runtime.
    pub fn watch_health(&self) {
        for site in &self.sites {
            let (channel, serving) = (site.channel.clone(), site.serving.clone());
            tokio::spawn(async move {
                use tonic_health::pb::{
                    health_check_response::ServingStatus, health_client::HealthClient, HealthCheckRequest,
                };
                loop {
                    let mut client = HealthClient::new(channel.clone());
                    let request = HealthCheckRequest { service: "bcl.v1.Issuance".into() };
                    if let Ok(stream) = client.watch(request).await {
                        let mut stream = stream.into_inner();
                        while let Ok(Some(update)) = stream.message().await {
                            serving.store(update.status == ServingStatus::Serving as i32, Ordering::Release);
                        }
                    }
                    serving.store(false, Ordering::Release);
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            });
        }
    }

    /// Whether the router currently believes `centre` serves.
    pub fn is_serving(&self, centre: CentreName) -> bool {
        self.sites.iter().find(|s| s.name == centre).is_some_and(|s| s.serving.load(Ordering::Acquire))
    }

    /// Issues `request` at the preferred centre (or the other one while the preferred does not serve),
    /// moving between them with the same request until an answer that is not a failover, or the deadline.
    pub async fn issue(&self, request: IssueRequest) -> Routed {
        let first = if self.sites[self.preferred].serving.load(Ordering::Acquire)
            || !self.sites[1 - self.preferred].serving.load(Ordering::Acquire)
        {
            self.sites[self.preferred].name
        } else {
            self.sites[1 - self.preferred].name
        };
        let attempt_timeout = self.attempt_timeout;
        route(first, true, self.deadline, |centre| {
            let site = self.sites.iter().find(|s| s.name == centre).expect("both centres are configured");
            let mut client = IssuanceClient::new(site.channel.clone()).max_decoding_message_size(64 << 20);
            let mut call = tonic::Request::new(request.clone());
            call.set_timeout(attempt_timeout);
            async move {
                match tokio::time::timeout(attempt_timeout, client.issue(call)).await {
                    Ok(r) => r.map(|r| r.into_inner()),
                    Err(_) => Err(Status::deadline_exceeded("no answer within the attempt timeout")),
                }
            }
        })
        .await
    }
}

/// The vendor's retry policy, for any transport: ask `first`; on an answer that [`fails_over`], ask the
/// other centre (when `other_configured`) with the same request, and keep alternating (with a short pause
/// after both failed: a take-over takes tens of milliseconds) until an answer that is not a failover or
/// `deadline` has passed. The kiosk load harness uses it with its own connection pools.
pub async fn route<F, Fut>(first: CentreName, other_configured: bool, deadline: Duration, mut attempt: F) -> Routed
where
    F: FnMut(CentreName) -> Fut,
    Fut: std::future::Future<Output = Result<IssueResponse, Status>>,
{
    let started = Instant::now();
    let other = |c| match c {
        CentreName::East => CentreName::West,
        CentreName::West => CentreName::East,
    };
    let (mut at, mut failovers, mut attempts) = (first, 0u32, 0u32);
    loop {
        attempts += 1;
        let result = attempt(at).await;
        match result {
            // With one centre there is nowhere to go: its answer (e.g. "overloaded") is the answer.
            Err(status) if fails_over(&status) && other_configured && started.elapsed() < deadline => {
                at = other(at);
                failovers += 1;
                if attempts % 2 == 0 {
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
            }
            result => return Routed { result, centre: at, failovers, attempts },
        }
    }
}
