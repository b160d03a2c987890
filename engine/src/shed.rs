//! Admission control for `Issuance.Issue`: load shedding.
//!
//! An Issue costs a few milliseconds of CPU (render, raster, scramble, deflate). Past what the cores can
//! do, an engine that accepts everything builds a queue whose waiting time grows until every request hits
//! its deadline: goodput collapses and the kiosk vendors learn it only after the deadline. Here at most
//! `max_in_flight` issuances check eligibility and render at once (the rendering on the render threads,
//! `render_pool`, so the async workers stay free to read requests and answer refusals at once); a request
//! that finds them all busy waits in a FIFO queue of at
//! most `max_queue` places for at most `max_queue_wait` (that bound applies while more requests wait than
//! there are slots: a backlog), and is otherwise answered immediately with
//! `UNAVAILABLE` / reason `ENGINE_OVERLOADED`, which the vendor treats like a down centre: it fails over
//! to the other centre with the same request_id (idempotent, so a shed request is never half-issued: it
//! never entered the engine).

use crate::error::EngineError;
use std::future::Future;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// Limits of the admission controller (`bcl serve --max-in-flight --max-queue --max-queue-wait-ms`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Config {
    /// Issuances checking eligibility and rendering at once (an issuance waiting for its durable append has
    /// given its slot back). One per core keeps the CPU busy; more only lengthens everyone's service time.
    pub max_in_flight: usize,
    /// Requests waiting for a slot; beyond it a request is shed at once.
    pub max_queue: usize,
    /// Longest wait for a slot before a request is shed, while more requests wait than there are slots:
    /// bounds the queueing part of the latency under a backlog.
    pub max_queue_wait: Duration,
}

impl Default for Config {
    /// One slot per core plus one (the server's own threads, gRPC and the writer, take turns with the
    /// renderers, and a renderer descheduled by them would otherwise leave a core to nobody), a queue of four slots' worth, and 50 ms: about what that queue takes to drain at 5-10 ms
    /// per certificate, and 40 times shorter than the kiosks' 2 s deadline, so a vendor told to go
    /// elsewhere still has time to. (With 10 ms, a machine whose other tenants stall the engine for tens
    /// of milliseconds shed requests even at 25 offered/s: see BENCHMARKS.md.)
    fn default() -> Self {
        let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
        Config { max_in_flight: cores + 1, max_queue: 4 * (cores + 1), max_queue_wait: Duration::from_millis(50) }
    }
}

/// Why a request was shed (the `cause` of the `ErrorInfo`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cause {
    QueueFull,
    QueueWait,
}

impl Cause {
    pub fn as_str(self) -> &'static str {
        match self {
            Cause::QueueFull => "queue_full",
            Cause::QueueWait => "queue_wait",
        }
    }
}

/// Counters since start, for tests and the operator.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Stats {
    pub admitted: u64,
    pub shed_queue_full: u64,
    pub shed_queue_wait: u64,
}

pub struct Admission {
    config: Config,
    slots: Arc<Semaphore>,
    queued: AtomicUsize,
    admitted: AtomicU64,
    shed_full: AtomicU64,
    shed_wait: AtomicU64,
}

impl Admission {
    pub fn new(config: Config) -> Self {
        let permits = config.max_in_flight.clamp(1, Semaphore::MAX_PERMITS);
        Admission {
            config,
            slots: Arc::new(Semaphore::new(permits)),
            queued: AtomicUsize::new(0),
            admitted: AtomicU64::new(0),
            shed_full: AtomicU64::new(0),
            shed_wait: AtomicU64::new(0),
        }
    }

    pub fn config(&self) -> Config {
        self.config
    }

    pub fn stats(&self) -> Stats {
        Stats {
            admitted: self.admitted.load(Ordering::Relaxed),
            shed_queue_full: self.shed_full.load(Ordering::Relaxed),
            shed_queue_wait: self.shed_wait.load(Ordering::Relaxed),
        }
    }

    /// A slot, or the reason there is none within the bounds.
    pub async fn admit(&self) -> Result<OwnedSemaphorePermit, Cause> {
        if let Ok(permit) = self.slots.clone().try_acquire_owned() {
            self.admitted.fetch_add(1, Ordering::Relaxed);
            return Ok(permit);
        }
        // Reserve a queue place first, so the bound holds however many requests arrive together.
        let place = self.queued.fetch_add(1, Ordering::AcqRel);
        let result = if place >= self.config.max_queue {
            Err(Cause::QueueFull)
        } else {
            // The semaphore is FIFO: the oldest waiter gets the next free slot.
            let acquire = self.slots.clone().acquire_owned();
            tokio::pin!(acquire);
            tokio::select! {
                biased;
                permit = &mut acquire => permit.map_err(|_| Cause::QueueWait),
                _ = tokio::time::sleep(self.config.max_queue_wait) => {
                    // Past the bound, shed only from a backlog: more waiters than slots. A few waiters behind
                    // slots that a busy machine has stalled are not overload, and each is at most one round
                    // of the slots away from its turn (keeping its place in the queue).
                    if self.queued.load(Ordering::Acquire) > self.config.max_in_flight {
                        Err(Cause::QueueWait)
                    } else {
                        acquire.await.map_err(|_| Cause::QueueWait)
                    }
                }
            }
        };
        self.queued.fetch_sub(1, Ordering::AcqRel);
        match result {
            Ok(_) => self.admitted.fetch_add(1, Ordering::Relaxed),
            Err(Cause::QueueFull) => self.shed_full.fetch_add(1, Ordering::Relaxed),
            Err(Cause::QueueWait) => self.shed_wait.fetch_add(1, Ordering::Relaxed),
        };
        result
    }

    /// Runs `work` once admitted, as a task of its own on the async workers, so that an issuance whose
    /// caller goes away (deadline, disconnect) still finishes what it started: its append is answered, its
    /// refusal recorded, its certificate cached for the retry. `work` gets the [`Slot`] and may give it back
    /// early (the issuance does once it has rendered). It must not hold the async worker for long: the
    /// issuance sends its CPU part to the render threads (`render_pool`).
    pub async fn run<T, F, Fut>(&self, work: F) -> Result<T, EngineError>
    where
        F: FnOnce(Slot) -> Fut,
        Fut: Future<Output = Result<T, EngineError>> + Send + 'static,
        T: Send + 'static,
    {
        let permit = self.admit().await.map_err(|cause| EngineError::Overloaded(cause.as_str()))?;
        tokio::spawn(work(Slot(Some(permit))))
            .await
            .map_err(|_| EngineError::Internal("issuance task failed".into()))?
    }
}

/// An admitted request's place among the `max_in_flight`: held while the request uses the CPU (eligibility,
/// rendering) and given back with [`Slot::release`] before it waits for its durable append, so a core is
/// never left idle behind an fsync while requests queue (the writer batches the waiting appends into one
/// flush anyway). Dropping it releases it too.
#[derive(Debug, Default)]
pub struct Slot(Option<OwnedSemaphorePermit>);

impl Slot {
    /// No admission control (`--no-shed`, in-process callers): releasing is a no-op.
    pub fn none() -> Slot {
        Slot(None)
    }

    pub fn release(&mut self) {
        self.0 = None;
    }

    pub fn is_held(&self) -> bool {
        self.0.is_some()
    }
}

/// `work` through `admission`, or directly (in the caller's task, as before shedding existed) when the
/// server runs without one (`bcl serve --no-shed`, for comparison runs).
pub async fn run<T, F, Fut>(admission: Option<&Admission>, work: F) -> Result<T, EngineError>
where
    F: FnOnce(Slot) -> Fut,
    Fut: Future<Output = Result<T, EngineError>> + Send + 'static,
    T: Send + 'static,
{
    match admission {
        Some(admission) => admission.run(work).await,
        None => work(Slot::none()).await,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::sync::oneshot;

    fn config(in_flight: usize, queue: usize, wait_ms: u64) -> Config {
        Config { max_in_flight: in_flight, max_queue: queue, max_queue_wait: Duration::from_millis(wait_ms) }
    }

    #[tokio::test]
    async fn a_full_queue_sheds_at_once() {
        let admission = Admission::new(config(1, 0, 60_000));
        let _held = admission.admit().await.unwrap();
        // With no queue places the answer cannot wait for the 60 s bound: it is immediate.
        let started = std::time::Instant::now();
        assert_eq!(admission.admit().await.unwrap_err(), Cause::QueueFull);
        assert!(started.elapsed() < Duration::from_secs(30));
        assert_eq!(admission.stats(), Stats { admitted: 1, shed_queue_full: 1, shed_queue_wait: 0 });
    }

    #[tokio::test]
    async fn past_the_wait_bound_a_backlog_is_shed_but_a_lone_waiter_keeps_its_place() {
        let admission = Arc::new(Admission::new(config(1, 4, 20)));
        let held = admission.admit().await.unwrap();
        let started = std::time::Instant::now();
        let waiters: Vec<_> = (0..2)
            .map(|_| {
                let admission = admission.clone();
                tokio::spawn(async move { admission.admit().await.map(drop) })
            })
            .collect();
        // Two waiters behind one slot is a backlog: once the bound passes, one of them is shed ...
        while admission.stats().shed_queue_wait == 0 {
            tokio::task::yield_now().await;
        }
        assert!(started.elapsed() >= Duration::from_millis(20), "shed only once the bound passed");
        // ... and the other, now alone, keeps waiting (the slot is still held) until the slot frees.
        assert_eq!(admission.queued.load(Ordering::Acquire), 1);
        drop(held);
        let mut results = Vec::new();
        for w in waiters {
            results.push(w.await.unwrap());
        }
        results.sort_by_key(|r| r.is_err());
        assert_eq!(results, [Ok(()), Err(Cause::QueueWait)]);
        assert_eq!(admission.stats(), Stats { admitted: 2, shed_queue_full: 0, shed_queue_wait: 1 });
    }

    #[tokio::test]
    async fn a_queued_request_gets_the_slot_freed_within_the_bound() {
        let admission = Arc::new(Admission::new(config(1, 4, 60_000)));
        let held = admission.admit().await.unwrap();
        let waiter = tokio::spawn({
            let admission = admission.clone();
            async move { admission.admit().await.map(drop) }
        });
        while admission.queued.load(Ordering::Acquire) == 0 {
            tokio::task::yield_now().await;
        }
        drop(held);
        assert_eq!(waiter.await.unwrap(), Ok(()));
        assert_eq!(admission.stats(), Stats { admitted: 2, shed_queue_full: 0, shed_queue_wait: 0 });
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn run_bounds_concurrency_and_sheds_the_rest_with_overloaded() {
        let admission = Arc::new(Admission::new(config(2, 1, 60_000)));
        // Two issuances hold both slots until released; a third waits in the only queue place; a fourth
        // finds the queue full.
        let (release_tx, release_rx): (Vec<_>, Vec<_>) = (0..3).map(|_| oneshot::channel::<()>()).unzip();
        let mut running = Vec::new();
        for rx in release_rx {
            let a = admission.clone();
            running.push(tokio::spawn(async move {
                // The slot moves into the future (an unused closure argument would be dropped at once).
                a.run(|slot| async move {
                    let _held = slot;
                    rx.await.map_err(|_| EngineError::Poisoned)
                })
                .await
            }));
            // Let each one reach the semaphore before the next, so the order is known.
            while admission.stats().admitted + (admission.queued.load(Ordering::Acquire) as u64) < running.len() as u64
            {
                tokio::task::yield_now().await;
            }
        }
        let shed = admission.run(|_| async { Ok(()) }).await;
        assert!(matches!(shed, Err(EngineError::Overloaded("queue_full"))), "{shed:?}");
        for tx in release_tx {
            tx.send(()).unwrap();
        }
        for r in running {
            r.await.unwrap().unwrap();
        }
        assert_eq!(admission.stats(), Stats { admitted: 3, shed_queue_full: 1, shed_queue_wait: 0 });
    }

    #[tokio::test]
    async fn without_a_controller_work_runs_in_place() {
        assert_eq!(run(None, |_| async { Ok::<_, EngineError>(7) }).await.unwrap(), 7);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_released_slot_admits_the_next_request_while_the_first_still_runs() {
        let admission = Arc::new(Admission::new(config(1, 4, 60_000)));
        let (released_tx, released_rx) = oneshot::channel::<()>();
        let (finish_tx, finish_rx) = oneshot::channel::<()>();
        let a = admission.clone();
        let first = tokio::spawn(async move {
            a.run(move |mut slot| async move {
                assert!(slot.is_held());
                slot.release();
                released_tx.send(()).unwrap();
                // Still running (as an issuance waiting for its fsync) with its slot given back.
                finish_rx.await.map_err(|_| EngineError::Poisoned)
            })
            .await
        });
        released_rx.await.unwrap();
        // The only slot is free again: the second request is admitted at once, not queued or shed.
        let held = admission.run(|slot| async move { Ok(slot.is_held()) }).await.unwrap();
        assert!(held);
        assert_eq!(admission.queued.load(Ordering::Acquire), 0);
        finish_tx.send(()).unwrap();
        first.await.unwrap().unwrap();
        assert_eq!(admission.stats(), Stats { admitted: 2, shed_queue_full: 0, shed_queue_wait: 0 });
    }
}
