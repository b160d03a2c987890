//! When a durable write may be acknowledged, in a replicated deployment (East and West).
//!
//! A leaf written by the primary is durable on one centre after its flush. In SYNC mode it is acknowledged
//! only once the follower reports that it holds it durably too, so that a centre lost to `kill -9` (or a
//! fire) never takes an acknowledged change or issuance with it. The writer hands every flushed batch's
//! replies to the gate with the batch's end position; the follower's acknowledgements (`acked`) release
//! them. In SOLO mode (縮退運転, the other centre is down) the gate releases at once.
//!
//! Releasing is cheap (one-shot sends and publishing a checkpoint that was signed already), so it runs
//! inline on whichever thread moves the gate: the writer (SOLO, or an ack that arrived first) or the
//! replication session that received the ack. No thread of its own, no timer.

use std::collections::VecDeque;
use std::sync::Mutex;
use std::time::{Duration, Instant};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GateMode {
    /// Release a batch once the follower holds it.
    Sync,
    /// Release at once: this centre acknowledges alone.
    Solo,
}

type Release = Box<dyn FnOnce() + Send>;

struct Held {
    end: u64,
    since: Instant,
    release: Release,
}

struct Inner {
    mode: GateMode,
    /// The follower holds leaves [0, acked) durably.
    acked: u64,
    /// The size whose callers have been answered (everything below is committed).
    committed: u64,
    held: VecDeque<Held>,
}

pub struct CommitGate {
    inner: Mutex<Inner>,
    /// Called with the new committed size whenever it grows (publishes the checkpoint, wakes readers).
    on_commit: Box<dyn Fn(u64) + Send + Sync>,
}

impl CommitGate {
    pub fn new(mode: GateMode, committed: u64, on_commit: impl Fn(u64) + Send + Sync + 'static) -> Self {
        let inner = Inner { mode, acked: committed, committed, held: VecDeque::new() };
        Self { inner: Mutex::new(inner), on_commit: Box::new(on_commit) }
    }

    /// Holds the replies of a durable batch ending at `end` until the mode allows them out.
    pub fn hold(&self, end: u64, release: impl FnOnce() + Send + 'static) {
        let mut inner = self.inner.lock().expect("commit gate lock");
        inner.held.push_back(Held { end, since: Instant::now(), release: Box::new(release) });
        self.drain(inner);
    }

    /// The follower holds `size` leaves durably.
    pub fn acked(&self, size: u64) {
        let mut inner = self.inner.lock().expect("commit gate lock");
        if size > inner.acked {
            inner.acked = size;
        }
        self.drain(inner);
    }

    pub fn set_mode(&self, mode: GateMode) {
        let mut inner = self.inner.lock().expect("commit gate lock");
        inner.mode = mode;
        self.drain(inner);
    }

    pub fn mode(&self) -> GateMode {
        self.inner.lock().expect("commit gate lock").mode
    }

    /// What the follower acknowledged last.
    pub fn acked_size(&self) -> u64 {
        self.inner.lock().expect("commit gate lock").acked
    }

    pub fn committed(&self) -> u64 {
        self.inner.lock().expect("commit gate lock").committed
    }

    /// How long the oldest held batch has been waiting for the follower (None: nothing waits).
    pub fn oldest_wait(&self) -> Option<Duration> {
        self.inner.lock().expect("commit gate lock").held.front().map(|h| h.since.elapsed())
    }

    /// Drops every held reply unanswered (their callers get an error): used when this centre learns that the
    /// other one took over, so what it holds must never be acknowledged.
    pub fn abandon(&self) {
        let held = std::mem::take(&mut self.inner.lock().expect("commit gate lock").held);
        drop(held);
    }

    /// A follower's own batches: durable here and already held by the primary, so committed at once.
    pub fn commit_directly(&self, end: u64) {
        let mut inner = self.inner.lock().expect("commit gate lock");
        inner.committed = inner.committed.max(end);
        let committed = inner.committed;
        drop(inner);
        (self.on_commit)(committed);
    }

    fn drain(&self, mut inner: std::sync::MutexGuard<'_, Inner>) {
        let mut out = Vec::new();
        while let Some(front) = inner.held.front() {
            if inner.mode == GateMode::Solo || front.end <= inner.acked {
                let held = inner.held.pop_front().expect("front exists");
                inner.committed = inner.committed.max(held.end);
                out.push(held.release);
            } else {
                break;
            }
        }
        let committed = inner.committed;
        drop(inner);
        if !out.is_empty() {
            // Publish first: a caller that gets its answer can immediately read a checkpoint covering it.
            (self.on_commit)(committed);
            out.into_iter().for_each(|release| release());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicU64, Ordering};
    use std::sync::Arc;

    fn gate(mode: GateMode) -> (CommitGate, Arc<AtomicU64>) {
        let published = Arc::new(AtomicU64::new(0));
        let p = published.clone();
        (CommitGate::new(mode, 0, move |s| p.store(s, Ordering::SeqCst)), published)
    }

    #[test]
    fn sync_releases_only_what_the_follower_holds_in_order() {
        let (g, published) = gate(GateMode::Sync);
        let released = Arc::new(Mutex::new(Vec::new()));
        for end in [3u64, 5, 9] {
            let r = released.clone();
            g.hold(end, move || r.lock().unwrap().push(end));
        }
        assert!(released.lock().unwrap().is_empty());
        g.acked(6);
        assert_eq!(*released.lock().unwrap(), vec![3, 5]);
        assert_eq!(published.load(Ordering::SeqCst), 5);
        assert!(g.oldest_wait().is_some(), "the batch ending at 9 still waits");
        g.set_mode(GateMode::Solo);
        assert_eq!(*released.lock().unwrap(), vec![3, 5, 9]);
        assert_eq!(g.committed(), 9);
        let r = released.clone();
        g.hold(10, move || r.lock().unwrap().push(10));
        assert_eq!(released.lock().unwrap().last(), Some(&10), "SOLO releases at once");
    }

    #[test]
    fn an_ack_that_arrives_before_the_batch_is_handed_over_releases_it_at_once() {
        let (g, _) = gate(GateMode::Sync);
        g.acked(4);
        let done = Arc::new(Mutex::new(false));
        let d = done.clone();
        g.hold(4, move || *d.lock().unwrap() = true);
        assert!(*done.lock().unwrap());
    }
}
