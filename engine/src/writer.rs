//! The single writer: every leaf enters the log through this one thread.
//!
//! Callers queue commands; the writer takes everything queued (up to a cap), decides each command against
//! the projection (idempotency, sequencing, conflicts), folds the accepted leaves into the projection, makes
//! the whole batch durable with ONE flush, and only then answers every caller of the batch (group commit).
//! Folding before the flush lets later commands of the same batch see earlier ones; readers that observe a
//! not-yet-durable leaf can only produce leaves that come after it, and no caller is answered before its
//! batch is durable. If a flush fails the projection is ahead of the log, so the writer poisons the engine:
//! everything is refused until a restart rebuilds the projection from the durable log (fail-stop, like a
//! database that cannot trust its fsync any more).

use crate::audit::log::AuditLog;
use crate::commit_gate::CommitGate;
use crate::error::EngineError;
use crate::keystore::seal::PreparedEvent;
use crate::projection::Projection;
use crate::storage::LogStore;
use bcl_projections::Admission;
use bcl_proto::{log_leaf::Kind, AdminAction, ChangeEvent, IssuanceRecord, LinkAnomaly, LogLeaf};
use prost::Message;
use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, RwLock};
use tokio::sync::{mpsc, oneshot, watch};

/// Upper bound of commands folded into one durable batch.
const MAX_COMMANDS_PER_BATCH: usize = 4096;
/// Upper bound of leaves in one durable batch (keeps a flush's latency bounded).
const MAX_LEAVES_PER_BATCH: usize = 65_536;

pub type Check = Box<dyn FnOnce(&Projection) -> Result<(), EngineError> + Send>;

pub enum Command {
    /// `prepared[i]` is the leaf and digest of `events[i]` (personal fields already sealed, see `keystore`).
    Append {
        events: Vec<ChangeEvent>,
        prepared: Vec<PreparedEvent>,
        at: String,
        reply: oneshot::Sender<Result<AppendOutcome, EngineError>>,
    },
    Issue { record: IssuanceRecord, still_valid: Check, reply: oneshot::Sender<Result<IssueCommit, EngineError>> },
    Admin { action: AdminAction, precondition: Check, reply: oneshot::Sender<Result<u64, EngineError>> },
    /// A refused issuance request, for the municipality's transaction log.
    Refusal { record: bcl_proto::RefusalRecord, reply: oneshot::Sender<Result<u64, EngineError>> },
    /// Crypto-shredding: the fold of this leaf erases the resident's keys.
    Forget { forgotten: bcl_proto::Forgotten, reply: oneshot::Sender<Result<u64, EngineError>> },
    /// Replication (follower only): leaves exactly as the primary stored them, at the primary's positions.
    /// Answered as soon as they are durable here (the primary is waiting for exactly that).
    Replicate { first_position: u64, leaves: Vec<Vec<u8>>, reply: oneshot::Sender<Result<u64, EngineError>> },
    /// A change of primary or of its mode (primary only). Answered as soon as it is durable, never held
    /// by the commit gate: the gate's mode changes only once this marker is durable.
    Leadership { leadership: bcl_proto::Leadership, reply: oneshot::Sender<Result<u64, EngineError>> },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AppendOutcome {
    /// Per event in request order: its position (original position for an idempotent re-send).
    pub positions: Vec<u64>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum IssueCommit {
    /// The issuance leaf is durable at this position.
    Committed { position: u64 },
    /// The request id was already issued (possibly moments ago by a concurrent retry).
    Existing { position: u64, request_digest: String, certificate_id: String },
}

/// Handle to the writer thread.
#[derive(Clone)]
pub struct Writer {
    tx: mpsc::Sender<Command>,
    poisoned: Arc<AtomicBool>,
}

/// How the writer acknowledges: alone (a single engine), or through a commit gate with the other centre.
#[derive(Clone)]
pub struct Replicated {
    pub gate: Arc<CommitGate>,
    /// `true` while this centre sequences the log (primary); a follower takes only `Replicate`.
    pub sequencing: Arc<AtomicBool>,
}

impl Writer {
    /// Starts the writer thread. `durable_len` is advanced after every durable batch, for followers, and
    /// `audit` publishes a signed checkpoint for it.
    pub fn start(
        store: Arc<dyn LogStore>,
        projection: Arc<RwLock<Projection>>,
        audit: Arc<AuditLog>,
        durable_len: watch::Sender<u64>,
        replicated: Option<Replicated>,
    ) -> Self {
        let (tx, rx) = mpsc::channel(16_384);
        let poisoned = Arc::new(AtomicBool::new(false));
        let flag = poisoned.clone();
        std::thread::Builder::new()
            .name("bcl-writer".into())
            .spawn(move || run(rx, store, projection, audit, durable_len, flag, replicated))
            .expect("spawn writer thread");
        Self { tx, poisoned }
    }

    pub fn is_poisoned(&self) -> bool {
        self.poisoned.load(Ordering::Acquire)
    }

    pub async fn submit<T>(&self, make: impl FnOnce(oneshot::Sender<Result<T, EngineError>>) -> Command) -> Result<T, EngineError> {
        self.enqueue(make).await?.await.map_err(|_| EngineError::Poisoned)?
    }

    /// Queues a command and returns where its answer will arrive, without waiting for it: commands queued
    /// one after another are decided in that order (a follower pipelines replicated batches this way).
    pub async fn enqueue<T>(
        &self,
        make: impl FnOnce(oneshot::Sender<Result<T, EngineError>>) -> Command,
    ) -> Result<Answer<T>, EngineError> {
        let (command, answer) = self.command(make)?;
        self.tx.send(command).await.map_err(|_| EngineError::Poisoned)?;
        Ok(answer)
    }

    /// [`Writer::enqueue`] from a thread outside the async runtime (a render thread), blocking while the queue
    /// is full.
    pub fn enqueue_blocking<T>(
        &self,
        make: impl FnOnce(oneshot::Sender<Result<T, EngineError>>) -> Command,
    ) -> Result<Answer<T>, EngineError> {
        let (command, answer) = self.command(make)?;
        self.tx.blocking_send(command).map_err(|_| EngineError::Poisoned)?;
        Ok(answer)
    }

    /// The command `make` builds around a fresh reply channel, unless the writer is poisoned.
    fn command<T>(
        &self,
        make: impl FnOnce(oneshot::Sender<Result<T, EngineError>>) -> Command,
    ) -> Result<(Command, Answer<T>), EngineError> {
        if self.is_poisoned() {
            return Err(EngineError::Poisoned);
        }
        let (reply, answer) = oneshot::channel();
        Ok((make(reply), answer))
    }
}

/// Where the writer's answer to a queued command arrives.
pub type Answer<T> = oneshot::Receiver<Result<T, EngineError>>;

/// A reply that waits for its batch to become durable.
enum Pending {
    Append(oneshot::Sender<Result<AppendOutcome, EngineError>>, Result<AppendOutcome, EngineError>),
    Issue(oneshot::Sender<Result<IssueCommit, EngineError>>, Result<IssueCommit, EngineError>),
    Admin(oneshot::Sender<Result<u64, EngineError>>, Result<u64, EngineError>),
    /// Answered as soon as the batch is durable here, whatever the commit gate holds.
    Direct(oneshot::Sender<Result<u64, EngineError>>, Result<u64, EngineError>),
}

impl Pending {
    fn send(self, storage_failed: bool) {
        // A failed flush turns every answer of the batch into an error: nothing of it may be acknowledged.
        match self {
            Pending::Append(tx, r) => drop(tx.send(if storage_failed { Err(EngineError::Poisoned) } else { r })),
            Pending::Issue(tx, r) => drop(tx.send(if storage_failed { Err(EngineError::Poisoned) } else { r })),
            Pending::Admin(tx, r) | Pending::Direct(tx, r) => {
                drop(tx.send(if storage_failed { Err(EngineError::Poisoned) } else { r }))
            }
        }
    }
}

fn run(
    mut rx: mpsc::Receiver<Command>,
    store: Arc<dyn LogStore>,
    projection: Arc<RwLock<Projection>>,
    audit: Arc<AuditLog>,
    durable_len: watch::Sender<u64>,
    poisoned: Arc<AtomicBool>,
    replicated: Option<Replicated>,
) {
    // Commands not yet decided, in arrival order; it only holds leftovers when a batch hit its leaf cap.
    let mut queue: VecDeque<Command> = VecDeque::with_capacity(MAX_COMMANDS_PER_BATCH);
    loop {
        if queue.is_empty() {
            match rx.blocking_recv() {
                Some(first) => queue.push_back(first),
                None => return,
            }
        }
        while queue.len() < MAX_COMMANDS_PER_BATCH {
            match rx.try_recv() {
                Ok(c) => queue.push_back(c),
                Err(_) => break,
            }
        }
        metrics::gauge!(crate::server::telemetry::WRITER_QUEUE_DEPTH).set(queue.len() as f64);
        if poisoned.load(Ordering::Acquire) {
            queue.drain(..).for_each(refuse);
            continue;
        }
        let mut leaves: Vec<Vec<u8>> = Vec::new();
        let mut pending = Vec::with_capacity(queue.len());
        let sequencing = replicated.as_ref().is_none_or(|r| r.sequencing.load(Ordering::Acquire));
        {
            let mut proj = projection.write().expect("projection lock");
            while leaves.len() < MAX_LEAVES_PER_BATCH {
                let Some(command) = queue.pop_front() else { break };
                pending.push(decide(command, &mut proj, &mut leaves, sequencing));
            }
        }
        // The tree nodes of the batch are hashed before the flush so they are durable with the leaves.
        let extension = (!leaves.is_empty()).then(|| audit.extend(&leaves));
        let flush_started = std::time::Instant::now();
        let failed = !leaves.is_empty()
            && match store.append_durable(&leaves, extension.as_ref().map_or(&[][..], |e| &e.nodes)) {
                Ok(_) => {
                    crate::server::telemetry::record_flush(leaves.len(), flush_started.elapsed());
                    audit.commit(extension.expect("a non-empty batch was hashed"));
                    let _ = durable_len.send(store.len());
                    false
                }
                Err(e) => {
                    tracing::error!(error = %e, "durable append failed; the engine refuses all work until restarted");
                    poisoned.store(true, Ordering::Release);
                    true
                }
            };
        let end = store.len();
        match &replicated {
            Some(r) if !failed => {
                if !sequencing {
                    // A follower's batches are the primary's leaves: held by both centres once durable here.
                    r.gate.commit_directly(end);
                }
                let (direct, held): (Vec<_>, Vec<_>) = pending.into_iter().partition(|p| matches!(p, Pending::Direct(..)));
                direct.into_iter().for_each(|p| p.send(false));
                if sequencing {
                    // Even a batch with nothing to answer (a mode marker) must pass the gate: its end is what
                    // the committed size and the published checkpoint advance to.
                    r.gate.hold(end, move || held.into_iter().for_each(|p| p.send(false)));
                } else {
                    // A follower decides no local command (they were answered "not the primary").
                    held.into_iter().for_each(|p| p.send(false));
                }
            }
            _ => pending.into_iter().for_each(|p| p.send(failed)),
        }
    }
}

fn refuse(command: Command) {
    match command {
        Command::Append { reply, .. } => drop(reply.send(Err(EngineError::Poisoned))),
        Command::Issue { reply, .. } => drop(reply.send(Err(EngineError::Poisoned))),
        Command::Admin { reply, .. }
        | Command::Refusal { reply, .. }
        | Command::Forget { reply, .. }
        | Command::Replicate { reply, .. }
        | Command::Leadership { reply, .. } => drop(reply.send(Err(EngineError::Poisoned))),
    }
}

fn not_primary() -> EngineError {
    EngineError::Unavailable("this centre does not sequence the log now (it follows the other centre)".into())
}

fn push_leaf(proj: &mut Projection, leaves: &mut Vec<Vec<u8>>, kind: Kind) -> u64 {
    let leaf = LogLeaf { kind: Some(kind) };
    let position = proj.leaf_count;
    leaves.push(leaf.encode_to_vec());
    proj.apply(&leaf);
    position
}

/// The encoding of `LogLeaf { change_event: ev }` built from the event's own encoding: field 1, wire type 2
/// (length-delimited), the length as a varint, then the bytes. Identical to prost's output for that leaf.
pub(crate) fn change_event_leaf(event: &[u8]) -> Vec<u8> {
    let mut leaf = Vec::with_capacity(event.len() + 11);
    leaf.push(0x0A);
    prost::encoding::encode_varint(event.len() as u64, &mut leaf);
    leaf.extend_from_slice(event);
    leaf
}

fn decide(command: Command, proj: &mut Projection, leaves: &mut Vec<Vec<u8>>, sequencing: bool) -> Pending {
    // Only the primary assigns positions; a follower's log grows only by what the primary sent.
    match command {
        Command::Replicate { reply, .. } if sequencing => {
            Pending::Direct(reply, Err(EngineError::Internal("replicated leaves offered to the primary".into())))
        }
        Command::Replicate { first_position, leaves: incoming, reply } => {
            Pending::Direct(reply, decide_replicate(first_position, incoming, proj, leaves))
        }
        Command::Append { reply, .. } if !sequencing => Pending::Append(reply, Err(not_primary())),
        Command::Issue { reply, .. } if !sequencing => Pending::Issue(reply, Err(not_primary())),
        Command::Admin { reply, .. } | Command::Refusal { reply, .. } if !sequencing => {
            Pending::Admin(reply, Err(not_primary()))
        }
        Command::Leadership { reply, .. } if !sequencing => Pending::Direct(reply, Err(not_primary())),
        Command::Leadership { leadership, reply } => {
            Pending::Direct(reply, Ok(push_leaf(proj, leaves, Kind::Leadership(leadership))))
        }
        Command::Forget { reply, .. } if !sequencing => Pending::Admin(reply, Err(not_primary())),
        Command::Append { events, prepared, at, reply } => {
            let result = decide_append(events, prepared, &at, proj, leaves);
            Pending::Append(reply, result)
        }
        Command::Issue { record, still_valid, reply } => {
            let result = decide_issue(record, still_valid, proj, leaves);
            Pending::Issue(reply, result)
        }
        Command::Admin { action, precondition, reply } => {
            let result = precondition(proj).map(|()| push_leaf(proj, leaves, Kind::Admin(action)));
            Pending::Admin(reply, result)
        }
        Command::Refusal { record, reply } => Pending::Admin(reply, Ok(push_leaf(proj, leaves, Kind::Refusal(record)))),
        Command::Forget { forgotten, reply } => {
            let position = push_leaf(proj, leaves, Kind::Forgotten(forgotten));
            let result = match proj.erase_failure.take() {
                Some(e) => Err(EngineError::Internal(format!("the key could not be erased: {e}"))),
                None => Ok(position),
            };
            Pending::Admin(reply, result)
        }
    }
}

/// Folds leaves the primary sequenced, refusing anything that is not exactly the next position or does not
/// decode (the primary is trusted to sequence, not to send garbage; the checkpoint comparison catches the
/// rest).
fn decide_replicate(
    first_position: u64,
    incoming: Vec<Vec<u8>>,
    proj: &mut Projection,
    leaves: &mut Vec<Vec<u8>>,
) -> Result<u64, EngineError> {
    if first_position != proj.leaf_count {
        return Err(EngineError::Diverged(format!(
            "replicated leaves start at {first_position}, this log continues at {}",
            proj.leaf_count
        )));
    }
    // Decoded (and sealed events unsealed, in place) the way a rebuild does, before any is folded.
    let decoded = incoming
        .iter()
        .enumerate()
        .map(|(i, bytes)| match crate::projection::decode_leaf(proj.keys(), bytes) {
            d if d.is_undecodable() => Err(EngineError::Diverged(format!(
                "replicated leaf at {} does not decode",
                first_position + i as u64
            ))),
            d => Ok(d),
        })
        .collect::<Result<Vec<_>, _>>()?;
    for (leaf, bytes) in decoded.into_iter().zip(incoming) {
        proj.apply_decoded(leaf);
        leaves.push(bytes);
    }
    Ok(proj.leaf_count)
}

fn decide_append(
    events: Vec<ChangeEvent>,
    mut prepared: Vec<PreparedEvent>,
    at: &str,
    proj: &mut Projection,
    leaves: &mut Vec<Vec<u8>>,
) -> Result<AppendOutcome, EngineError> {
    // Each event was encoded, sealed and hashed once before it reached the writer: the digest serves
    // admission and the fold, the prepared leaf is what is stored.
    let digests: Vec<[u8; 32]> = prepared.iter().map(|p| p.digest).collect();
    // Decide the whole request before folding any of it, so it stays all-or-nothing.
    let admissions = proj.state.admit_batch_with_digests(&events, &digests);
    if let Some((i, kind)) = admissions.iter().enumerate().find_map(|(i, a)| match a {
        Admission::Conflict { kind } => Some((i, *kind)),
        _ => None,
    }) {
        let ev = &events[i];
        // Fail closed: record the anomaly (digests only) so the suspension survives restarts, write
        // nothing else of this request, and tell the caller.
        let anomaly = LinkAnomaly {
            municipality_code: ev.municipality_code.clone(),
            source_seq: ev.source_seq,
            event_id: ev.event_id.clone(),
            kind: "conflict".to_string(),
            // The digest admission compared: keyed for events with personal fields, so it reveals nothing.
            event_sha256: hex::encode(digests[i]),
            at: at.to_string(),
        };
        let (municipality, source_seq) = (ev.municipality_code.clone(), ev.source_seq);
        push_leaf(proj, leaves, Kind::LinkAnomaly(anomaly));
        return Err(EngineError::SequenceConflict { municipality, source_seq, kind: kind.as_str() });
    }
    let mut positions: Vec<u64> = Vec::with_capacity(events.len());
    for (i, (ev, admission)) in events.iter().zip(admissions).enumerate() {
        let position = match admission {
            Admission::New => {
                let position = proj.leaf_count;
                leaves.push(std::mem::take(&mut prepared[i].leaf));
                proj.apply_change_event(ev, digests[i]);
                position
            }
            Admission::Duplicate { position } => position,
            Admission::DuplicateInBatch { index } => positions[index],
            Admission::Conflict { .. } => unreachable!("conflicts were handled above"),
        };
        positions.push(position);
    }
    Ok(AppendOutcome { positions })
}

fn decide_issue(
    record: IssuanceRecord,
    still_valid: Check,
    proj: &mut Projection,
    leaves: &mut Vec<Vec<u8>>,
) -> Result<IssueCommit, EngineError> {
    let request_id = record.request.as_ref().map(|r| r.request_id.as_str()).unwrap_or_default();
    if let Some(existing) = proj.state.issuance_by_request(request_id) {
        return Ok(IssueCommit::Existing {
            position: existing.position,
            request_digest: existing.request_digest.clone(),
            certificate_id: existing.certificate_id.clone(),
        });
    }
    let municipality = record.request.as_ref().map(|r| r.municipality_code.as_str()).unwrap_or_default();
    if proj.changed_since(municipality, record.as_of_position) {
        // Something about this municipality was folded after the snapshot the certificate was rendered
        // from: the caller's check decides whether the certificate is still exactly right.
        still_valid(proj)?;
    }
    let position = push_leaf(proj, leaves, Kind::Issuance(record));
    Ok(IssueCommit::Committed { position })
}

#[cfg(test)]
mod tests {
    use super::*;
    use bcl_proto::{change_event::Body, CardRevoked};

    #[test]
    fn change_event_leaf_matches_prost() {
        for n in [0usize, 1, 100, 200, 5000] {
            let ev = ChangeEvent {
                municipality_code: "131016".into(),
                source_seq: 9,
                event_id: "e".repeat(n),
                effective_date: "2026-04-01".into(),
                body: Some(Body::CardRevoked(CardRevoked { card_serial: "X".into() })),
            };
            let expected = LogLeaf { kind: Some(Kind::ChangeEvent(ev.clone())) }.encode_to_vec();
            assert_eq!(change_event_leaf(&ev.encode_to_vec()), expected, "event id of {n} bytes");
        }
    }
}
