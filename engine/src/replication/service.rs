//! The `bcl.v1.Replication` gRPC service every replicated centre serves.

use super::{primary, Replication, Role};
use crate::audit::log::StoreNodes;
use crate::audit::merkle;
use crate::commit_gate::GateMode;
use crate::engine::Engine;
use crate::error::EngineError;
use crate::writer::{Command, IssueCommit};
use bcl_proto::{
    centre_status, follower_message, leadership::Mode, replication_server::Replication as ReplicationApi,
    sequence_request, sequence_response, CentreStatus, FollowerMessage, PrimaryMessage, RootAtRequest, RootAtResponse,
    SequenceRequest, SequenceResponse, StatusRequest,
};
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Instant;
use tokio_stream::Stream;
use tonic::{Request, Response, Status, Streaming};

/// Marks a follower-prepared issuance whose data changed at the primary.
const CHANGED: &str = "changed since the follower's snapshot";

#[derive(Clone)]
pub struct ReplicationService {
    pub engine: Arc<Engine>,
}

impl ReplicationService {
    fn replication(&self) -> Result<Arc<Replication>, Status> {
        self.engine.replication.clone().ok_or_else(|| Status::failed_precondition("this engine is not replicated"))
    }
}

fn diverged(message: String) -> Status {
    crate::server::status::to_status(EngineError::Diverged(message))
}

#[tonic::async_trait]
impl ReplicationApi for ReplicationService {
    type FollowStream = Pin<Box<dyn Stream<Item = Result<PrimaryMessage, Status>> + Send + 'static>>;

    async fn follow(
        &self,
        request: Request<Streaming<FollowerMessage>>,
    ) -> Result<Response<Self::FollowStream>, Status> {
        let r = self.replication()?;
        if !r.is_sequencing() {
            return Err(Status::failed_precondition("this centre is not the primary"));
        }
        let mut inbound = request.into_inner();
        let hello = match tokio::time::timeout(r.config.stale_after, inbound.message()).await {
            Ok(Ok(Some(FollowerMessage { kind: Some(follower_message::Kind::Hello(h)) }))) => h,
            _ => return Err(Status::invalid_argument("a follow stream starts with Hello")),
        };
        let engine = self.engine.clone();
        let len = engine.store.len();
        if hello.from > len {
            return Err(diverged(format!(
                "the follower holds {} leaves, more than this primary's {len}: it must rejoin from the start",
                hello.from
            )));
        }
        let root = merkle::root(&StoreNodes(engine.store.as_ref()), hello.from)
            .map_err(|e| Status::internal(format!("tree root: {e}")))?;
        if root.as_slice() != hello.root.as_slice() {
            return Err(diverged(format!("the follower's first {} leaves differ from this primary's", hello.from)));
        }
        tracing::info!(follower = %hello.centre, from = hello.from, "follower connected");
        let verified = Arc::new(AtomicU64::new(0));
        // Acknowledgements release the primary's callers (SYNC mode).
        {
            let (r, verified) = (r.clone(), verified.clone());
            tokio::spawn(async move {
                while let Ok(Some(msg)) = inbound.message().await {
                    if let Some(follower_message::Kind::Ack(ack)) = msg.kind {
                        r.link.lock().expect("link lock").last_ack = Some(Instant::now());
                        verified.fetch_max(ack.verified_size, Ordering::AcqRel);
                        r.gate.acked(ack.durable_size);
                    }
                }
            });
        }
        let (tx, rx) = tokio::sync::mpsc::channel(64);
        tokio::spawn(primary::stream_to_follower(engine, r, hello.from, verified, tx));
        Ok(Response::new(Box::pin(tokio_stream::wrappers::ReceiverStream::new(rx))))
    }

    async fn sequence(&self, request: Request<SequenceRequest>) -> Result<Response<SequenceResponse>, Status> {
        let r = self.replication()?;
        if !r.is_sequencing() {
            return Err(Status::failed_precondition("this centre is not the primary"));
        }
        let req = request.into_inner();
        let engine = &self.engine;
        let outcome = match req.kind {
            Some(sequence_request::Kind::Issuance(record)) => {
                let issued =
                    record.request.clone().ok_or_else(|| Status::invalid_argument("issuance without request"))?;
                let now = bcl_projections::date::JstDateTime::parse_rfc3339(&record.issued_at)
                    .map_err(|_| Status::invalid_argument("issued_at is not RFC 3339"))?;
                let (certificate_id, digest) = (record.certificate_id.clone(), req.document_digest.clone());
                // Runs only if the municipality changed after the follower's snapshot: the certificate must
                // still be allowed and show exactly what the follower rendered.
                let still_valid: crate::writer::Check = Box::new(move |proj| {
                    match crate::issuance::document_digest(&proj.state, &issued, now, &certificate_id) {
                        Ok(d) if d.as_slice() == digest.as_slice() => Ok(()),
                        _ => Err(EngineError::Internal(CHANGED.into())),
                    }
                });
                match engine.writer.submit(|reply| Command::Issue { record, still_valid, reply }).await {
                    Ok(IssueCommit::Committed { position }) => sequence_response::Outcome::Committed(position),
                    Ok(IssueCommit::Existing { position, request_digest, certificate_id }) => {
                        sequence_response::Outcome::Existing(sequence_response::Existing {
                            position,
                            request_digest,
                            certificate_id,
                        })
                    }
                    Err(EngineError::Internal(m)) if m == CHANGED => {
                        sequence_response::Outcome::Changed(engine.store.len())
                    }
                    Err(e) => return Err(crate::server::status::to_status(e)),
                }
            }
            Some(sequence_request::Kind::Refusal(record)) => {
                let position = engine
                    .writer
                    .submit(|reply| Command::Refusal { record, reply })
                    .await
                    .map_err(crate::server::status::to_status)?;
                sequence_response::Outcome::Committed(position)
            }
            None => return Err(Status::invalid_argument("nothing to sequence")),
        };
        Ok(Response::new(SequenceResponse { outcome: Some(outcome) }))
    }

    async fn status(&self, _: Request<StatusRequest>) -> Result<Response<CentreStatus>, Status> {
        let r = self.replication()?;
        Ok(Response::new(status_of(&self.engine, &r)))
    }

    async fn root_at(&self, request: Request<RootAtRequest>) -> Result<Response<RootAtResponse>, Status> {
        let size = request.into_inner().size;
        let len = self.engine.store.len();
        if size > len {
            return Err(Status::out_of_range(format!("the log holds {len} leaves")));
        }
        let root = merkle::root(&StoreNodes(self.engine.store.as_ref()), size)
            .map_err(|e| Status::internal(format!("tree root: {e}")))?;
        Ok(Response::new(RootAtResponse { root: root.to_vec() }))
    }
}

pub(crate) fn status_of(engine: &Engine, r: &Replication) -> CentreStatus {
    let (role, mode) = match r.role() {
        Role::Primary { mode: GateMode::Sync, .. } => (centre_status::Role::Primary, Mode::Sync),
        Role::Primary { mode: GateMode::Solo, .. } => (centre_status::Role::Primary, Mode::Solo),
        Role::Follower => (centre_status::Role::Follower, Mode::Unspecified),
        Role::Stopped { .. } => (centre_status::Role::Diverged, Mode::Unspecified),
    };
    let (leader, leader_epoch, epoch_start) = leader_of(engine, r);
    CentreStatus {
        centre: r.config.centre.as_str().to_string(),
        role: role as i32,
        epoch: r.epoch(),
        log_size: engine.store.len(),
        mode: mode as i32,
        epoch_start,
        leader,
        leader_epoch,
        secret_fingerprint: engine.secret.fingerprint(),
    }
}

/// The centre this log's newest Leadership leaf names, its epoch and where that epoch began.
pub(crate) fn leader_of(engine: &Engine, r: &Replication) -> (String, u64, u64) {
    let proj = engine.projection.read().expect("projection lock");
    match &proj.leadership {
        Some((_, l)) => {
            let start = proj.epoch_start.unwrap_or(l.log_size);
            (l.centre.clone(), l.epoch, start)
        }
        None => (r.config.first_primary.as_str().to_string(), 0, 0),
    }
}

/// What a replicated centre answers while it is still deciding its role at start-up: its identity and
/// the leader its log names, so that two centres starting at the same time can agree instead of waiting
/// for each other. Everything else is refused as UNAVAILABLE (retried by the other centre).
pub struct StartingService {
    pub status: CentreStatus,
}

#[tonic::async_trait]
impl ReplicationApi for StartingService {
    type FollowStream = Pin<Box<dyn Stream<Item = Result<PrimaryMessage, Status>> + Send + 'static>>;

    async fn follow(&self, _: Request<Streaming<FollowerMessage>>) -> Result<Response<Self::FollowStream>, Status> {
        Err(Status::unavailable("this centre is starting"))
    }

    async fn sequence(&self, _: Request<SequenceRequest>) -> Result<Response<SequenceResponse>, Status> {
        Err(Status::unavailable("this centre is starting"))
    }

    async fn status(&self, _: Request<StatusRequest>) -> Result<Response<CentreStatus>, Status> {
        Ok(Response::new(self.status.clone()))
    }

    async fn root_at(&self, _: Request<RootAtRequest>) -> Result<Response<RootAtResponse>, Status> {
        Err(Status::unavailable("this centre is starting"))
    }
}

/// The start-up status of a centre whose log is `projection`.
pub fn starting_status(
    config: &super::ReplicationConfig,
    projection: &crate::projection::Projection,
    secret_fingerprint: String,
) -> CentreStatus {
    let (leader, leader_epoch) = match &projection.leadership {
        Some((_, l)) => (l.centre.clone(), l.epoch),
        None => (config.first_primary.as_str().to_string(), 0),
    };
    CentreStatus {
        centre: config.centre.as_str().to_string(),
        role: centre_status::Role::Follower as i32,
        epoch: leader_epoch,
        log_size: projection.leaf_count,
        mode: Mode::Unspecified as i32,
        epoch_start: projection.epoch_start.unwrap_or(0),
        leader,
        leader_epoch,
        secret_fingerprint,
    }
}
