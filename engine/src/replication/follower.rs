//! The follower's side: apply the primary's leaves, verify its checkpoints, and take over when it dies.

use super::{peer, primary, Replication, Role};
use crate::audit::checkpoint::Checkpoint;
use crate::audit::log::StoreNodes;
use crate::audit::merkle::{self, Hash};
use crate::audit::note::NoteVerifier;
use crate::commit_gate::GateMode;
use crate::engine::Engine;
use crate::error::EngineError;
use crate::writer::Command;
use bcl_proto::{
    centre_status, follower_message, leadership::Mode, primary_message, FollowerAck, FollowerMessage, Heartbeat, Hello,
};
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::mpsc;

/// Pause between attempts to reach the primary.
const RETRY: Duration = Duration::from_millis(50);

enum Ended {
    /// The stream or the connection failed; `refused` when the primary's port refused the connection.
    Lost { refused: bool },
    /// The other centre answers but does not sequence the log.
    NotPrimary(bcl_proto::CentreStatus),
    /// The histories disagree: stop, loudly.
    Diverged(String),
}

/// One round: follow the primary until the stream ends, then decide what to do about it.
pub(super) async fn run(engine: &Arc<Engine>, r: &Arc<Replication>) {
    match follow_once(engine, r).await {
        Ended::Diverged(reason) => {
            tracing::error!(%reason, "replication stopped: the centres' histories diverge");
            r.set_role(Role::Stopped { reason });
        }
        Ended::NotPrimary(status) => {
            if agreed_leader_is_me(engine, r, &status) {
                take_over_existing_epoch(engine, r).await;
            } else {
                tokio::time::sleep(RETRY).await;
            }
        }
        Ended::Lost { refused } => {
            let mut refused = refused;
            if !refused {
                tokio::time::sleep(RETRY).await;
                refused = matches!(r.peer.status().await, Err(s) if peer::is_refused(&s));
            }
            if refused && may_promote(r) {
                promote(engine, r).await;
            } else if !refused {
                // Reachable again or merely slow: the next round reconnects.
            } else {
                tokio::time::sleep(RETRY).await;
            }
        }
    }
}

/// A follower may take over only with positive evidence that the primary is gone (its port refuses) and
/// proof that it holds every acknowledged leaf: the primary was in SYNC mode (acknowledging nothing this
/// centre did not hold) when this centre last heard from it, recently enough that it cannot since have
/// switched to SOLO (`stale_after` > the primary's `solo_after`).
fn may_promote(r: &Replication) -> bool {
    let link = r.link.lock().expect("link lock");
    let fresh = link.last_contact.is_some_and(|t| t.elapsed() <= r.config.stale_after);
    matches!(r.role(), Role::Follower) && link.primary_sync && fresh
}

async fn promote(engine: &Arc<Engine>, r: &Arc<Replication>) {
    let epoch = r.epoch() + 1;
    tracing::warn!(
        centre = r.config.centre.as_str(),
        epoch,
        "the primary is gone (connection refused): taking over and carrying all traffic alone"
    );
    r.set_epoch(epoch);
    engine.audit.set_gated(true);
    r.gate.set_mode(GateMode::Solo);
    r.sequencing.store(true, Ordering::Release);
    match primary::write_leadership(engine, r, epoch, GateMode::Solo).await {
        Ok(_) => r.set_role(Role::Primary { epoch, mode: GateMode::Solo }),
        Err(e) => {
            r.sequencing.store(false, Ordering::Release);
            tracing::error!(error = %e, "could not record the take-over");
        }
    }
}

/// Both centres follow and this centre's log names it as the primary of the newest epoch (e.g. both
/// restarted): it resumes sequencing in that epoch.
async fn take_over_existing_epoch(engine: &Arc<Engine>, r: &Arc<Replication>) {
    let (_, epoch, _) = super::service::leader_of(engine, r);
    let epoch = epoch.max(1);
    r.set_epoch(epoch);
    engine.audit.set_gated(true);
    r.gate.set_mode(GateMode::Sync);
    r.sequencing.store(true, Ordering::Release);
    match primary::write_leadership(engine, r, epoch, GateMode::Sync).await {
        Ok(_) => r.set_role(Role::Primary { epoch, mode: GateMode::Sync }),
        Err(e) => {
            r.sequencing.store(false, Ordering::Release);
            tracing::error!(error = %e, "could not resume as primary");
        }
    }
}

/// The centre that should sequence when neither does: the one named by the newer Leadership leaf of the
/// two logs (the configured first primary for a brand-new pair).
pub(super) fn agreed_leader_is_me(engine: &Engine, r: &Replication, peer: &bcl_proto::CentreStatus) -> bool {
    if peer.role == centre_status::Role::Primary as i32 {
        return false;
    }
    let (mine, my_epoch, _) = super::service::leader_of(engine, r);
    let leader = if peer.leader_epoch > my_epoch { peer.leader.clone() } else { mine };
    leader == r.config.centre.as_str()
}

/// What the follower verified of the primary's checkpoints.
struct Verification {
    /// The primary's checkpoint key, pinned on first sight (the first heartbeat).
    verifier: Option<(String, NoteVerifier)>,
    /// The newest checkpoint not yet verified (waiting for this log to reach its size).
    pending: Option<Heartbeat>,
    verified_size: u64,
    verified_root: Option<Hash>,
}

impl Verification {
    /// Pins the primary's key from a heartbeat (a changed key stops replication).
    fn pin(&mut self, verifier_key: &str) -> Result<(), String> {
        match &self.verifier {
            Some((key, _)) if key == verifier_key => Ok(()),
            Some(_) => Err("the primary's checkpoint key changed".into()),
            None => {
                let v = NoteVerifier::parse(verifier_key).map_err(|e| format!("primary's verifier key: {e}"))?;
                self.verifier = Some((verifier_key.to_string(), v));
                Ok(())
            }
        }
    }

    /// Verifies the pending checkpoint once this log has reached its size: signature, our own root at that
    /// size, and (from a heartbeat) the consistency proof from the last verified checkpoint.
    fn check(&mut self, engine: &Engine) -> Result<(), String> {
        let Some(hb) = &self.pending else { return Ok(()) };
        let Some((_, verifier)) = self.verifier.as_ref() else { return Ok(()) };
        let checkpoint = Checkpoint::open(verifier, &hb.checkpoint_note)
            .map_err(|e| format!("the primary's checkpoint does not verify: {e}"))?;
        if checkpoint.size <= self.verified_size {
            self.pending = None;
            return Ok(());
        }
        if engine.store.len() < checkpoint.size {
            return Ok(());
        }
        let nodes = StoreNodes(engine.store.as_ref());
        let ours = merkle::root(&nodes, checkpoint.size).map_err(|e| format!("tree root: {e}"))?;
        if ours != checkpoint.root {
            return Err(format!(
                "at size {} this log's root differs from the primary's signed checkpoint",
                checkpoint.size
            ));
        }
        if hb.consistency_from > 0 && hb.consistency_from == self.verified_size {
            let proof: Vec<Hash> = hb.consistency.iter().filter_map(|h| h.as_slice().try_into().ok()).collect();
            let first = self.verified_root.expect("a verified size has its root");
            merkle::verify_consistency(hb.consistency_from, checkpoint.size, &first, &checkpoint.root, &proof)
                .map_err(|e| format!("the primary's consistency proof fails: {e:?}"))?;
        }
        self.verified_size = checkpoint.size;
        self.verified_root = Some(checkpoint.root);
        self.pending = None;
        Ok(())
    }
}

async fn follow_once(engine: &Arc<Engine>, r: &Arc<Replication>) -> Ended {
    let status = match r.peer.status().await {
        Ok(s) => s,
        Err(s) => return Ended::Lost { refused: peer::is_refused(&s) },
    };
    if status.role != centre_status::Role::Primary as i32 {
        return Ended::NotPrimary(status);
    }
    if status.epoch < r.epoch() {
        return Ended::Diverged(format!(
            "the other centre sequences at epoch {} but this centre knows epoch {}",
            status.epoch,
            r.epoch()
        ));
    }
    r.set_epoch(status.epoch);
    let from = engine.store.len();
    let root = match merkle::root(&StoreNodes(engine.store.as_ref()), from) {
        Ok(root) => root,
        Err(e) => return Ended::Diverged(format!("cannot compute this log's root: {e}")),
    };
    let (out_tx, out_rx) = mpsc::channel(256);
    let hello = Hello { centre: r.config.centre.as_str().to_string(), from, root: root.to_vec() };
    let _ = out_tx.send(FollowerMessage { kind: Some(follower_message::Kind::Hello(hello)) }).await;
    let mut stream = match r.peer.replication().follow(tokio_stream::wrappers::ReceiverStream::new(out_rx)).await {
        Ok(s) => s.into_inner(),
        Err(s) if s.message().contains("diverge") => return Ended::Diverged(s.message().to_string()),
        Err(s) => return Ended::Lost { refused: peer::is_refused(&s) },
    };
    tracing::info!(centre = r.config.centre.as_str(), from, "following the primary");
    let verification =
        Arc::new(Mutex::new(Verification { verifier: None, pending: None, verified_size: 0, verified_root: None }));
    // Applied batches are acknowledged in order by this task while the next ones are already queued.
    let (applied_tx, mut applied_rx) = mpsc::channel::<tokio::sync::oneshot::Receiver<Result<u64, EngineError>>>(1024);
    let acker = {
        let (engine, verification, out_tx) = (engine.clone(), verification.clone(), out_tx.clone());
        tokio::spawn(async move {
            while let Some(rx) = applied_rx.recv().await {
                let durable_size = match rx.await {
                    Ok(Ok(size)) => size,
                    Ok(Err(e)) => return Err(e.to_string()),
                    Err(_) => return Err("the writer stopped".to_string()),
                };
                let verified_size = {
                    let mut v = verification.lock().expect("verification lock");
                    v.check(&engine)?;
                    v.verified_size
                };
                let ack = FollowerAck { durable_size, verified_size };
                let _ = out_tx.send(FollowerMessage { kind: Some(follower_message::Kind::Ack(ack)) }).await;
            }
            Ok(())
        })
    };
    let ended = loop {
        let msg = match tokio::time::timeout(r.config.stale_after, stream.message()).await {
            Err(_) => break Ended::Lost { refused: false },
            Ok(Err(s)) => break Ended::Lost { refused: peer::is_refused(&s) },
            Ok(Ok(None)) => break Ended::Lost { refused: false },
            Ok(Ok(Some(msg))) => msg,
        };
        match msg.kind {
            Some(primary_message::Kind::Entries(entries)) => {
                r.link.lock().expect("link lock").last_contact = Some(Instant::now());
                if !entries.checkpoint_note.is_empty() {
                    let mut v = verification.lock().expect("verification lock");
                    // A heartbeat's pending checkpoint (with its consistency proof) is kept until verified.
                    if v.pending.is_none() {
                        v.pending = Some(Heartbeat { checkpoint_note: entries.checkpoint_note.clone(), ..Default::default() });
                    }
                }
                // Keys first, durably: the fold of the page below unseals with them.
                let keys: Result<Vec<crate::keystore::KeyEntry>, _> =
                    entries.keys.into_iter().map(crate::keystore::KeyEntry::try_from).collect();
                if let Err(e) = keys.map_err(|e| e.to_string()).and_then(|k| engine.key_store().put_many(&k).map_err(|e| e.to_string())) {
                    break Ended::Diverged(format!("cannot store replicated keys: {e}"));
                }
                let (first_position, leaves) = (entries.first_position, entries.leaves);
                match engine.writer.enqueue(|reply| Command::Replicate { first_position, leaves, reply }).await {
                    Ok(rx) => {
                        if applied_tx.send(rx).await.is_err() {
                            break Ended::Lost { refused: false };
                        }
                    }
                    Err(e) => break Ended::Diverged(e.to_string()),
                }
            }
            Some(primary_message::Kind::Heartbeat(hb)) => {
                {
                    let mut link = r.link.lock().expect("link lock");
                    link.last_contact = Some(Instant::now());
                    link.primary_size = hb.durable_size;
                    link.primary_sync = hb.mode == Mode::Sync as i32;
                    link.epoch = hb.epoch;
                }
                r.set_epoch(hb.epoch);
                let verified_size = {
                    let mut v = verification.lock().expect("verification lock");
                    if let Err(reason) = v.pin(&hb.verifier_key) {
                        break Ended::Diverged(reason);
                    }
                    v.pending = Some(hb);
                    if let Err(reason) = v.check(engine) {
                        break Ended::Diverged(reason);
                    }
                    v.verified_size
                };
                r.link.lock().expect("link lock").verified_size = verified_size;
                // Keeps the primary's view of this follower fresh when no leaves flow.
                let ack = FollowerAck { durable_size: engine.store.len(), verified_size };
                let _ = out_tx.try_send(FollowerMessage { kind: Some(follower_message::Kind::Ack(ack)) });
            }
            None => {}
        }
    };
    // Let every queued batch finish before deciding anything (a take-over must come after them).
    drop(applied_tx);
    match acker.await {
        Ok(Err(reason)) => Ended::Diverged(reason),
        _ => ended,
    }
}
