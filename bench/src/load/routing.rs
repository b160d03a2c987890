//! Kiosk vendors and the two exchange centres. Each vendor's kiosks send through a preferred centre (East
//! or West); when it answers `UNAVAILABLE` or misses the deadline (see [`fails_over`]), the vendor sends the *same* request —
//! same request_id, byte-identical body — through the other centre. The body keeps the centre field of the
//! first attempt, so a retry that lands on an engine which already issued it is a replay, never a second
//! issuance (the engine's request digest covers every field).

use bcl_proto::{issuance_client::IssuanceClient, Centre, IssueRequest, IssueResponse};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;
use tonic::transport::Channel;
use tonic::{Code, Status};

/// One exchange centre (one engine endpoint).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum CentreId {
    East,
    West,
}

impl CentreId {
    pub fn name(self) -> &'static str {
        match self {
            CentreId::East => "east",
            CentreId::West => "west",
        }
    }

    pub fn proto(self) -> Centre {
        match self {
            CentreId::East => Centre::East,
            CentreId::West => Centre::West,
        }
    }

    pub fn other(self) -> CentreId {
        match self {
            CentreId::East => CentreId::West,
            CentreId::West => CentreId::East,
        }
    }

    pub fn parse(name: &str) -> Option<CentreId> {
        match name {
            "east" => Some(CentreId::East),
            "west" => Some(CentreId::West),
            _ => None,
        }
    }
}

/// Kiosk vendors and the centre each prefers: two per centre, so half the kiosks prefer each.
pub const VENDORS: [(&str, CentreId); 4] =
    [("VENDOR-A", CentreId::East), ("VENDOR-B", CentreId::West), ("VENDOR-C", CentreId::East), ("VENDOR-D", CentreId::West)];

/// The vendor of kiosk number `kiosk`: kiosks are dealt round-robin to vendors.
pub fn vendor_of(kiosk: usize) -> (&'static str, CentreId) {
    VENDORS[kiosk % VENDORS.len()]
}

/// The kiosk id as sent to the engine.
pub fn kiosk_id(kiosk: usize) -> String {
    format!("{}-{:05}", vendor_of(kiosk).0, kiosk)
}

/// Whether a vendor tries the other centre after this answer: UNAVAILABLE, or the deadline passed. A tonic
/// server whose `grpc-timeout` expires answers CANCELLED ("Timeout expired") rather than DEADLINE_EXCEEDED,
/// and this client never cancels a request itself, so CANCELLED is the deadline seen from the server side.
pub fn fails_over(status: &Status) -> bool {
    matches!(status.code(), Code::Unavailable | Code::DeadlineExceeded | Code::Cancelled)
}

/// A connection that drops mid-request (the engine died) surfaces from the client as `UNKNOWN` with the
/// transport error as its source; for the vendor it is the centre being unavailable. Statuses that came
/// over the wire have no source and keep their code.
fn lost_connection_as_unavailable(status: Status) -> Status {
    use std::error::Error as _;
    if status.code() == Code::Unknown && status.source().is_some() {
        Status::unavailable(format!("connection lost mid-request: {}", status.message()))
    } else {
        status
    }
}

/// The final answer to one kiosk transaction and how it was reached.
#[derive(Debug)]
pub struct Delivery {
    pub result: Result<IssueResponse, Status>,
    /// The centre whose answer is `result`.
    pub served_by: CentreId,
    /// The preferred centre failed (UNAVAILABLE or deadline) and the other one was asked.
    pub failed_over: bool,
}

/// gRPC connections to each configured centre. Several HTTP/2 connections per centre, used round-robin,
/// so thousands of concurrent kiosks are not all multiplexed onto one TCP stream.
pub struct Centres {
    pools: Vec<(CentreId, Vec<IssuanceClient<Channel>>)>,
    next: AtomicUsize,
    deadline: Duration,
}

/// Why the centres cannot be reached as configured.
#[derive(Debug, thiserror::Error)]
pub enum RoutingError {
    #[error("target URL for centre {centre} is not a valid URI")]
    Url { centre: &'static str },
}

impl Centres {
    /// Connects lazily, so a centre that is down at start shows up as fail-overs rather than a start error.
    pub fn new(targets: &[(CentreId, String)], connections: usize, deadline: Duration) -> Result<Centres, RoutingError> {
        let mut pools = Vec::new();
        for (centre, url) in targets {
            let endpoint = Channel::from_shared(url.clone()).map_err(|_| RoutingError::Url { centre: centre.name() })?.tcp_nodelay(true).max_frame_size(bcl_engine::router::MAX_FRAME_SIZE);
            let clients = (0..connections.max(1))
                .map(|_| IssuanceClient::new(endpoint.connect_lazy()).max_decoding_message_size(64 << 20))
                .collect();
            pools.push((*centre, clients));
        }
        Ok(Centres { pools, next: AtomicUsize::new(0), deadline })
    }

    pub fn centres(&self) -> Vec<CentreId> {
        self.pools.iter().map(|p| p.0).collect()
    }

    /// The centre a vendor preferring `preferred` actually uses first: itself when configured, else the
    /// only other one (a single-engine run sends everything to it).
    pub fn first_choice(&self, preferred: CentreId) -> CentreId {
        if self.pools.iter().any(|p| p.0 == preferred) {
            preferred
        } else {
            self.pools[0].0
        }
    }

    fn client(&self, centre: CentreId) -> Option<IssuanceClient<Channel>> {
        let clients = &self.pools.iter().find(|p| p.0 == centre)?.1;
        Some(clients[self.next.fetch_add(1, Ordering::Relaxed) % clients.len()].clone())
    }

    async fn attempt(&self, centre: CentreId, request: &IssueRequest) -> Result<IssueResponse, Status> {
        let mut client = self.client(centre).expect("only configured centres are asked");
        let mut req = tonic::Request::new(request.clone());
        // The deadline travels to the server (grpc-timeout) and is enforced here as well.
        req.set_timeout(self.deadline);
        match tokio::time::timeout(self.deadline, client.issue(req)).await {
            Ok(Ok(answer)) => Ok(answer.into_inner()),
            Ok(Err(status)) => Err(lost_connection_as_unavailable(status)),
            Err(_) => Err(Status::deadline_exceeded("client deadline")),
        }
    }

    /// Sends through `first` and, while the answer is UNAVAILABLE or too slow, alternates with the other
    /// centre (when configured) using the same request until the deadline: the vendor policy of
    /// `bcl_engine::router::route`, over this harness's connection pools.
    pub async fn issue(&self, first: CentreId, request: &IssueRequest) -> Delivery {
        let name = |c: CentreId| match c {
            CentreId::East => bcl_engine::replication::CentreName::East,
            CentreId::West => bcl_engine::replication::CentreName::West,
        };
        let id = |c: bcl_engine::replication::CentreName| match c {
            bcl_engine::replication::CentreName::East => CentreId::East,
            bcl_engine::replication::CentreName::West => CentreId::West,
        };
        let other_configured = self.pools.iter().any(|p| p.0 == first.other());
        let routed = bcl_engine::router::route(name(first), other_configured, self.deadline, |centre| {
            self.attempt(id(centre), request)
        })
        .await;
        Delivery { result: routed.result, served_by: id(routed.centre), failed_over: routed.failovers > 0 }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn half_the_kiosks_prefer_each_centre() {
        let east = (0..1000).filter(|k| vendor_of(*k).1 == CentreId::East).count();
        assert_eq!(east, 500);
        assert!(kiosk_id(7).starts_with("VENDOR-D-"));
    }

    #[test]
    fn only_unavailable_and_deadline_fail_over() {
        assert!(fails_over(&Status::unavailable("down")));
        assert!(fails_over(&Status::deadline_exceeded("slow")));
        assert!(fails_over(&Status::cancelled("Timeout expired")), "tonic's server-side deadline");
        for s in [Status::failed_precondition("refused"), Status::invalid_argument("bad"), Status::already_exists("reused"), Status::internal("bug")] {
            assert!(!fails_over(&s), "{:?}", s.code());
        }
    }

    #[test]
    fn a_dropped_connection_is_unavailable_but_a_server_unknown_is_not() {
        let io = std::io::Error::new(std::io::ErrorKind::ConnectionReset, "reset");
        let mut dropped = Status::unknown("transport error");
        dropped.set_source(std::sync::Arc::new(io));
        assert_eq!(lost_connection_as_unavailable(dropped).code(), Code::Unavailable);
        assert_eq!(lost_connection_as_unavailable(Status::unknown("handler bug")).code(), Code::Unknown);
    }

    #[tokio::test]
    async fn a_dead_centre_fails_over_to_the_other_and_reports_it() {
        // Two ports nobody listens on: every attempt fails to connect (UNAVAILABLE); the vendor keeps
        // alternating until the deadline, and the delivery says the other centre was tried.
        let free = || std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap();
        let (a, b) = (free(), free());
        let deadline = Duration::from_millis(300);
        let centres = Centres::new(
            &[(CentreId::East, format!("http://{a}")), (CentreId::West, format!("http://{b}"))],
            1,
            deadline,
        )
        .unwrap();
        let started = std::time::Instant::now();
        let d = centres.issue(CentreId::East, &IssueRequest::default()).await;
        assert!(d.failed_over);
        assert_eq!(d.result.unwrap_err().code(), Code::Unavailable);
        assert!(started.elapsed() >= deadline, "kept trying until the deadline");

        let single = Centres::new(&[(CentreId::West, format!("http://{b}"))], 1, deadline).unwrap();
        assert_eq!(single.first_choice(CentreId::East), CentreId::West);
        let d = single.issue(CentreId::West, &IssueRequest::default()).await;
        assert!(!d.failed_over, "no other centre to fail over to");
    }
}
