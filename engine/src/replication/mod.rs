//! East and West: two engines that keep one history (docs/replication.md).
//!
//! One centre, the **primary**, sequences the log: every change event, issuance, refusal and admin action
//! of both centres gets its position there. The other, the **follower**, streams the primary's leaves
//! into its own log (same bytes, same positions) and checks after every heartbeat that its Merkle root
//! equals the primary's signed checkpoint. Both render certificates from their own replica; a follower
//! sends its prepared issuance to the primary, which decides idempotency (one certificate and one charge
//! per request id, whichever centre was asked) and re-checks the data against its own state.
//!
//! In SYNC mode the primary acknowledges a write only once the follower holds it durably
//! ([`CommitGate`]), so losing either centre loses nothing acknowledged. When the follower stops
//! acknowledging, the primary records a SOLO marker in the log and carries on alone (縮退運転). When the
//! primary dies (its port refuses connections) a follower that was in sync moments before takes over with a
//! new epoch. Timeouts alone never promote: a centre that is merely unreachable may still be issuing, so
//! the follower refuses with `STALE_REPLICA` rather than risk two primaries.

mod follower;
mod peer;
mod primary;
pub mod rejoin;
pub(crate) mod service;

pub use service::ReplicationService;

use crate::commit_gate::{CommitGate, GateMode};
use crate::engine::Engine;
use crate::error::EngineError;
use bcl_projections::RefusalReason;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CentreName {
    East,
    West,
}

impl CentreName {
    pub fn as_str(self) -> &'static str {
        match self {
            CentreName::East => "east",
            CentreName::West => "west",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "east" => Some(CentreName::East),
            "west" => Some(CentreName::West),
            _ => None,
        }
    }
}

/// How a centre replicates (`bcl serve --centre … --peer …`).
#[derive(Clone)]
pub struct ReplicationConfig {
    pub centre: CentreName,
    /// The other centre's gRPC address, e.g. `http://127.0.0.1:50052`.
    pub peer: String,
    /// Which centre sequences a brand-new log.
    pub first_primary: CentreName,
    /// How often the primary sends a heartbeat (with its signed checkpoint) to the follower.
    pub heartbeat: Duration,
    /// A follower that heard nothing from the primary for this long refuses issuance (`STALE_REPLICA`),
    /// and may take over only if it heard from the primary more recently than this.
    pub stale_after: Duration,
    /// A primary whose follower has not acknowledged a write for this long continues alone (SOLO).
    pub solo_after: Duration,
    /// At start, how long to look for the other centre before deciding alone.
    pub peer_wait: Duration,
    /// Mutual TLS to the other centre (`bcl certs init` directory): this centre connects as
    /// `peer-<centre>` and serves its start-up status with the server certificate. `None` = plaintext
    /// (`--insecure-dev`).
    pub tls_dir: Option<std::path::PathBuf>,
}

impl ReplicationConfig {
    pub fn new(centre: CentreName, peer: String) -> Self {
        Self {
            centre,
            peer,
            first_primary: CentreName::East,
            heartbeat: Duration::from_millis(50),
            stale_after: Duration::from_millis(1000),
            solo_after: Duration::from_millis(300),
            peer_wait: Duration::from_millis(1500),
            tls_dir: None,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Role {
    /// This centre sequences the log.
    Primary { epoch: u64, mode: GateMode },
    /// This centre applies what the primary sends.
    Follower,
    /// Replication stopped because the histories disagree or another centre took over; an operator acts.
    Stopped { reason: String },
}

/// What a follower knows about the primary from its last message.
#[derive(Debug, Clone, Default)]
pub(crate) struct Link {
    pub last_contact: Option<Instant>,
    pub primary_size: u64,
    pub primary_sync: bool,
    pub epoch: u64,
    pub verified_size: u64,
    /// Primary side: when the follower last acknowledged.
    pub last_ack: Option<Instant>,
}

pub struct Replication {
    pub config: ReplicationConfig,
    role: Mutex<Role>,
    pub(crate) sequencing: Arc<AtomicBool>,
    pub(crate) gate: Arc<CommitGate>,
    pub(crate) link: Mutex<Link>,
    pub(crate) peer: peer::Peer,
    /// The epoch this centre knows (its newest Leadership leaf, or the primary's heartbeat).
    epoch: std::sync::atomic::AtomicU64,
    durable: std::sync::OnceLock<tokio::sync::watch::Receiver<u64>>,
}

impl Replication {
    pub(crate) fn new(
        config: ReplicationConfig,
        gate: Arc<CommitGate>,
        role: Role,
        epoch: u64,
    ) -> Result<Self, EngineError> {
        let sequencing = Arc::new(AtomicBool::new(matches!(role, Role::Primary { .. })));
        let peer = peer::Peer::new(&config)?;
        Ok(Self {
            config,
            role: Mutex::new(role),
            sequencing,
            gate,
            link: Mutex::new(Link::default()),
            peer,
            epoch: std::sync::atomic::AtomicU64::new(epoch),
            durable: std::sync::OnceLock::new(),
        })
    }

    pub fn role(&self) -> Role {
        self.role.lock().expect("role lock").clone()
    }

    pub(crate) fn set_role(&self, role: Role) {
        tracing::info!(centre = self.config.centre.as_str(), role = ?role, "replication role");
        *self.role.lock().expect("role lock") = role;
    }

    pub fn is_sequencing(&self) -> bool {
        self.sequencing.load(Ordering::Acquire)
    }

    pub fn epoch(&self) -> u64 {
        self.epoch.load(Ordering::Acquire)
    }

    pub(crate) fn set_epoch(&self, epoch: u64) {
        self.epoch.fetch_max(epoch, Ordering::AcqRel);
    }

    /// Whether this centre may issue now: a primary always; a follower only while it hears from the primary.
    pub fn issuing_state(&self) -> Result<(), EngineError> {
        match self.role() {
            Role::Primary { .. } => Ok(()),
            Role::Stopped { reason } => Err(EngineError::refused(
                RefusalReason::StaleReplica,
                format!("replication stopped ({reason}); this centre cannot show its data is current"),
            )),
            Role::Follower => {
                let link = self.link.lock().expect("link lock");
                match link.last_contact {
                    Some(t) if t.elapsed() > self.config.stale_after => Err(EngineError::refused(
                        RefusalReason::StaleReplica,
                        "this centre lost contact with the centre that sequences the log; use the other centre",
                    )),
                    None => Err(EngineError::refused(
                        RefusalReason::StaleReplica,
                        "this centre has not yet reached the centre that sequences the log; use the other centre",
                    )),
                    // In SYNC mode the primary acknowledged nothing this centre does not hold; in SOLO mode
                    // (after this centre was away) it is current only once it has caught up.
                    Some(_) if !link.primary_sync && self.durable_size() < link.primary_size => {
                        Err(EngineError::refused(
                            RefusalReason::StaleReplica,
                            "this centre is catching up with the centre that sequences the log; use the other centre",
                        ))
                    }
                    Some(_) => Ok(()),
                }
            }
        }
    }

    /// This centre's durable log size (set by the engine once it exists).
    fn durable_size(&self) -> u64 {
        self.durable.get().map_or(0, |rx| *rx.borrow())
    }

    /// Gives the replication state a view of this centre's durable log size.
    pub(crate) fn observe_durable(&self, rx: tokio::sync::watch::Receiver<u64>) {
        let _ = self.durable.set(rx);
    }

    /// A short, personal-data-free description for health and status output.
    pub fn describe(&self) -> String {
        match self.role() {
            Role::Primary { epoch, mode: GateMode::Sync } => format!("primary (epoch {epoch}, in sync)"),
            Role::Primary { epoch, mode: GateMode::Solo } => format!("primary (epoch {epoch}, degraded: alone)"),
            Role::Follower => match self.issuing_state() {
                Ok(()) => "follower (current)".into(),
                Err(e) => format!("follower (not issuing: {e})"),
            },
            Role::Stopped { reason } => format!("stopped: {reason}"),
        }
    }
}

/// Starts the background work of a replicated engine: following the primary, or watching the follower.
pub fn spawn(engine: Arc<Engine>) {
    let Some(r) = engine.replication.clone() else { return };
    tokio::spawn(async move {
        loop {
            match r.role() {
                Role::Primary { .. } => primary::watch(&engine, &r).await,
                Role::Follower => follower::run(&engine, &r).await,
                Role::Stopped { reason } => {
                    tracing::error!(%reason, "replication stopped; restart this centre after resolving it");
                    return;
                }
            }
        }
    });
}

/// A forwarded call's answer from the primary: its status passes through unchanged (reasons included).
pub(crate) fn forwarded(status: tonic::Status) -> EngineError {
    if peer::is_unreachable(&status) {
        EngineError::Unavailable("the centre that sequences the log cannot be reached; use the other centre".into())
    } else {
        EngineError::Forwarded(status)
    }
}

/// Writes the Leadership marker a start-up decided on (a new primary, or a changed mode).
pub(crate) async fn record_start(
    engine: &Engine,
    r: &Replication,
    epoch: u64,
    mode: GateMode,
) -> Result<(), EngineError> {
    primary::write_leadership(engine, r, epoch, mode).await.map(|_| ())
}

/// The answer of the primary to a follower's prepared issuance.
pub(crate) enum Sequenced {
    Committed {
        position: u64,
    },
    Existing {
        position: u64,
        request_digest: String,
        certificate_id: String,
    },
    /// The data changed after the snapshot; the primary's log had this size.
    Changed {
        size: u64,
    },
}

impl Replication {
    /// `Ingest.Append` at a follower: the primary sequences it. In SYNC mode its answer arrives only once
    /// this centre holds the events too.
    pub(crate) async fn forward_append(
        &self,
        events: Vec<bcl_proto::ChangeEvent>,
    ) -> Result<crate::writer::AppendOutcome, EngineError> {
        let response =
            self.peer.ingest().append(bcl_proto::AppendRequest { events }).await.map_err(forwarded)?.into_inner();
        Ok(crate::writer::AppendOutcome { positions: response.positions })
    }

    pub(crate) fn admin_client(&self) -> bcl_proto::admin_client::AdminClient<tonic::transport::Channel> {
        self.peer.admin()
    }

    /// Sends an issuance prepared from this replica to the primary.
    pub(crate) async fn sequence_issuance(
        &self,
        record: bcl_proto::IssuanceRecord,
        document_digest: [u8; 32],
    ) -> Result<Sequenced, EngineError> {
        use bcl_proto::sequence_response::Outcome;
        let request = bcl_proto::SequenceRequest {
            kind: Some(bcl_proto::sequence_request::Kind::Issuance(record)),
            document_digest: document_digest.to_vec(),
        };
        let response = self.peer.replication().sequence(request).await.map_err(forwarded)?.into_inner();
        match response.outcome {
            Some(Outcome::Committed(position)) => Ok(Sequenced::Committed { position }),
            Some(Outcome::Existing(e)) => Ok(Sequenced::Existing {
                position: e.position,
                request_digest: e.request_digest,
                certificate_id: e.certificate_id,
            }),
            Some(Outcome::Changed(size)) => Ok(Sequenced::Changed { size }),
            None => Err(EngineError::Internal("the primary answered without an outcome".into())),
        }
    }

    /// Records a refusal decided at this follower in the shared log (best effort when the primary is gone:
    /// the kiosk still gets its answer).
    pub(crate) async fn sequence_refusal(&self, record: bcl_proto::RefusalRecord) -> Result<(), EngineError> {
        let request = bcl_proto::SequenceRequest {
            kind: Some(bcl_proto::sequence_request::Kind::Refusal(record)),
            document_digest: Vec::new(),
        };
        self.peer.replication().sequence(request).await.map_err(forwarded)?;
        Ok(())
    }
}

impl Engine {
    /// Waits until this centre's log holds `size` leaves (a follower catching up to something the primary
    /// told it about), at most `timeout`.
    pub(crate) async fn wait_for_size(&self, size: u64, timeout: Duration) -> Result<(), EngineError> {
        let mut durable = self.subscribe_durable();
        let reached = tokio::time::timeout(timeout, async { durable.wait_for(|&len| len >= size).await.is_ok() }).await;
        match reached {
            Ok(true) => Ok(()),
            _ => Err(EngineError::refused(
                RefusalReason::StaleReplica,
                "this centre has not yet received the latest data of the municipality; use the other centre",
            )),
        }
    }
}
