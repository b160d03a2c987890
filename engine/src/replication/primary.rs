//! The primary's side: streaming the log to the follower, and deciding when to continue alone.

use super::{Replication, Role};
use crate::audit::log::StoreNodes;
use crate::audit::merkle;
use crate::commit_gate::GateMode;
use crate::engine::Engine;
use crate::writer::Command;
use bcl_proto::{leadership::Mode, primary_message, Entries, Heartbeat, Leadership, PrimaryMessage};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::mpsc;
use tonic::Status;

/// Largest number of leaves (and bytes) in one `Entries` message.
const PAGE_LEAVES: usize = 4096;
const PAGE_BYTES: usize = 8 * 1024 * 1024;

/// Sends every durable leaf from `from` on, then keeps following, with a heartbeat every
/// `config.heartbeat`. Ends when the follower goes away or this centre stops being the primary.
pub(super) async fn stream_to_follower(
    engine: Arc<Engine>,
    r: Arc<Replication>,
    from: u64,
    verified: Arc<AtomicU64>,
    tx: mpsc::Sender<Result<PrimaryMessage, Status>>,
) {
    let mut next = from;
    let mut durable = engine.subscribe_durable();
    let mut heartbeat = tokio::time::interval(r.config.heartbeat);
    heartbeat.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        if !r.is_sequencing() {
            return;
        }
        let len = engine.store.len();
        if next < len {
            let page = match engine.store.read(next, PAGE_LEAVES.min((len - next) as usize)) {
                Ok(p) => p,
                Err(e) => {
                    let _ = tx.send(Err(crate::server::status::to_status(e.into()))).await;
                    return;
                }
            };
            let mut leaves = Vec::with_capacity(page.len());
            let mut bytes = 0;
            for (_, leaf) in page {
                bytes += leaf.len();
                leaves.push(leaf);
                if bytes >= PAGE_BYTES {
                    break;
                }
            }
            let first_position = next;
            next += leaves.len() as u64;
            // The newest signed checkpoint rides along, so the follower verifies what it applied at once
            // instead of at the next heartbeat.
            let checkpoint_note = engine.audit.newest_signed().note.clone();
            // The keys of the page's sealed events travel with it: a follower without them would fold those
            // events as forgotten.
            let keys = engine.key_store().entries_for_leaves(&leaves).into_iter().map(|e| e.into()).collect();
            let entries = Entries { first_position, leaves, checkpoint_note, keys };
            let msg = PrimaryMessage { kind: Some(primary_message::Kind::Entries(entries)) };
            if tx.send(Ok(msg)).await.is_err() {
                return;
            }
            continue;
        }
        tokio::select! {
            changed = durable.changed() => if changed.is_err() { return },
            _ = heartbeat.tick() => {
                let msg = heartbeat_message(&engine, &r, verified.load(Ordering::Acquire));
                if tx.send(Ok(msg)).await.is_err() {
                    return;
                }
            }
            _ = tx.closed() => return,
        }
    }
}

fn heartbeat_message(engine: &Engine, r: &Replication, verified: u64) -> PrimaryMessage {
    let checkpoint = engine.audit.newest_signed();
    let size = checkpoint.checkpoint.size;
    let (consistency, consistency_from) = if verified > 0 && verified < size {
        match merkle::consistency_proof(&StoreNodes(engine.store.as_ref()), verified, size) {
            Ok(proof) => (proof.iter().map(|h| h.to_vec()).collect(), verified),
            Err(_) => (Vec::new(), 0),
        }
    } else {
        (Vec::new(), 0)
    };
    let (epoch, mode) = match r.role() {
        Role::Primary { epoch, mode: GateMode::Sync } => (epoch, Mode::Sync),
        Role::Primary { epoch, mode: GateMode::Solo } => (epoch, Mode::Solo),
        _ => (r.epoch(), Mode::Unspecified),
    };
    PrimaryMessage {
        kind: Some(primary_message::Kind::Heartbeat(Heartbeat {
            durable_size: engine.store.len(),
            checkpoint_note: checkpoint.note.clone(),
            consistency,
            consistency_from,
            epoch,
            mode: mode as i32,
            verifier_key: engine.audit.verifier_key(),
        })),
    }
}

/// The primary's watchdog: continue alone when the follower stops acknowledging, return to SYNC when it
/// has caught up, and stand down if the other centre has taken over with a newer epoch.
pub(super) async fn watch(engine: &Arc<Engine>, r: &Arc<Replication>) {
    let mut tick = tokio::time::interval(r.config.heartbeat);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut last_probe: Option<Instant> = None;
    let mut len_before = engine.store.len();
    loop {
        tick.tick().await;
        let Role::Primary { epoch, mode } = r.role() else { return };
        let stalled = mode == GateMode::Sync && r.gate.oldest_wait().is_some_and(|w| w >= r.config.solo_after);
        if stalled || last_probe.is_none_or(|t| t.elapsed() >= Duration::from_secs(1)) {
            last_probe = Some(Instant::now());
            if let Ok(status) = r.peer.status().await {
                if status.role == bcl_proto::centre_status::Role::Primary as i32 && status.epoch > epoch {
                    // The other centre took over while this one was unreachable (paused, partitioned).
                    // Everything this centre holds unacknowledged must not be acknowledged now.
                    r.sequencing.store(false, Ordering::Release);
                    r.gate.abandon();
                    r.set_role(Role::Stopped {
                        reason: format!(
                            "the other centre became primary at epoch {}; restart this centre to rejoin as follower",
                            status.epoch
                        ),
                    });
                    return;
                }
            }
        }
        if stalled {
            tracing::warn!(
                centre = r.config.centre.as_str(),
                waited_ms = r.config.solo_after.as_millis() as u64,
                "the other centre stopped acknowledging: continuing alone (degraded operation)"
            );
            change_mode(engine, r, epoch, GateMode::Solo).await;
        } else if mode == GateMode::Solo && follower_current(r, len_before) {
            tracing::info!(centre = r.config.centre.as_str(), "the other centre caught up: back in sync");
            change_mode(engine, r, epoch, GateMode::Sync).await;
        }
        len_before = engine.store.len();
    }
}

/// The follower is connected and holds everything that was durable here one tick ago.
fn follower_current(r: &Replication, len_before: u64) -> bool {
    let link = r.link.lock().expect("link lock");
    let recent = link.last_ack.is_some_and(|t| t.elapsed() <= r.config.stale_after);
    recent && r.gate.acked_size() >= len_before
}

/// Records the mode change in the log, then switches the gate. Going SOLO, the marker is durable before
/// anything is acknowledged alone; going back to SYNC, the gate turns strict first.
pub(super) async fn change_mode(engine: &Engine, r: &Replication, epoch: u64, mode: GateMode) {
    if mode == GateMode::Sync {
        r.gate.set_mode(GateMode::Sync);
    }
    match write_leadership(engine, r, epoch, mode).await {
        Ok(_) => {
            if mode == GateMode::Solo {
                r.gate.set_mode(GateMode::Solo);
            }
            r.set_role(Role::Primary { epoch, mode });
        }
        Err(e) => tracing::error!(error = %e, "could not record the change of replication mode"),
    }
}

pub(super) async fn write_leadership(
    engine: &Engine,
    r: &Replication,
    epoch: u64,
    mode: GateMode,
) -> Result<u64, crate::error::EngineError> {
    let leadership = Leadership {
        centre: r.config.centre.as_str().to_string(),
        epoch,
        mode: match mode {
            GateMode::Sync => Mode::Sync,
            GateMode::Solo => Mode::Solo,
        } as i32,
        at: engine.clock().now().to_rfc3339(),
        log_size: engine.store.len(),
    };
    engine.writer.submit(|reply| Command::Leadership { leadership, reply }).await
}
