//! The threads that render certificates, apart from everything else the engine does.
//!
//! An Issue is a few milliseconds of rendering surrounded by short, latency-critical steps: reading the
//! request, the eligibility check, the writer's durable append, the answer. Under load the renders keep
//! the cores busy, and every hand-off between those steps (the writer woken by its `fdatasync`, the
//! async worker woken by the writer's reply) waited for a render's time slice: on the two-core reference
//! machine that put a third of an Issue's p99 into waiting for the append (measured, BENCHMARKS.md). So
//! the CPU part of an Issue (the eligibility check against the projection, then the rendering) runs here,
//! on threads of its own, and the rest runs on the async workers and the writer thread, which are no longer
//! among the renders. On a primary the render thread also queues the issuance with the writer itself
//! (`issuance.rs`), which saves the hand-off through an async worker between the render and the append. The render threads can also run at a lower scheduling priority (`nice`,
//! `bcl serve --render-nice`): a short step then preempts a render instead of queueing behind it, which
//! shortens the tail further (BENCHMARKS.md). It is off by default ([`DEFAULT_NICE`] = 0) because it also
//! lets a flood of cheap requests (malformed issues, idempotent re-sends) take the cores from every
//! render: `tests/hostile.rs` then saw another caller's certificates wait for the flood to end, in 2 runs
//! of 6 at niceness 10. With a per-caller rate limit that bounds such floods, an operator may turn it on.
//!
//! The pool has as many threads as the server admits issuances at once (`shed::Config::max_in_flight`),
//! so an admitted render never waits for a thread. A job that panics is reported to its caller as an
//! internal error and the thread goes on.

use crate::error::EngineError;
use std::collections::VecDeque;
use std::sync::{Arc, Condvar, Mutex};

/// Niceness added to the render threads by default: none (see the module's documentation). At 10 a render
/// is worth about a tenth of a normal thread when both want a core (Linux CFS/EEVDF weights 110 vs 1024).
pub const DEFAULT_NICE: i32 = 0;

/// How the render threads are set up (`bcl serve --render-nice`; the thread count follows
/// `--max-in-flight`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Config {
    pub threads: usize,
    /// Added to the threads' niceness (0 = the engine's own priority). Raising niceness needs no privilege.
    pub nice: i32,
}

impl Default for Config {
    /// As many threads as the shedder admits issuances by default (`shed::Config::max_in_flight`).
    fn default() -> Self {
        Config { threads: crate::shed::Config::default().max_in_flight, nice: DEFAULT_NICE }
    }
}

type Job = Box<dyn FnOnce() + Send>;

#[derive(Default)]
struct Queue {
    jobs: VecDeque<Job>,
    closed: bool,
}

pub struct RenderPool {
    shared: Arc<(Mutex<Queue>, Condvar)>,
}

impl RenderPool {
    /// Starts `config.threads` threads (at least one). If the priority cannot be lowered (not Linux, or a
    /// seccomp profile forbids it), the threads run at the engine's priority and a warning says so.
    pub fn start(config: Config) -> RenderPool {
        let shared: Arc<(Mutex<Queue>, Condvar)> = Arc::default();
        for i in 0..config.threads.max(1) {
            let shared = shared.clone();
            std::thread::Builder::new()
                .name(format!("bcl-render-{i}"))
                .spawn(move || {
                    if let Err(e) = lower_priority(config.nice) {
                        if i == 0 {
                            tracing::warn!(nice = config.nice, error = %e, "render threads keep the engine's priority");
                        }
                    }
                    work(&shared)
                })
                .expect("spawn render thread");
        }
        RenderPool { shared }
    }

    /// Runs `job` on a render thread and waits for its result without blocking the caller's thread. If the
    /// caller stops waiting (a cancelled request), the job still finishes; its result is dropped.
    pub async fn run<T, F>(&self, job: F) -> Result<T, EngineError>
    where
        F: FnOnce() -> T + Send + 'static,
        T: Send + 'static,
    {
        let (tx, rx) = tokio::sync::oneshot::channel();
        let job: Job = Box::new(move || {
            let _ = tx.send(job());
        });
        {
            let (queue, ready) = &*self.shared;
            queue.lock().expect("render queue").jobs.push_back(job);
            ready.notify_one();
        }
        // The sender is dropped without a value only if the job panicked.
        rx.await.map_err(|_| EngineError::Internal("rendering failed unexpectedly".into()))
    }
}

impl Drop for RenderPool {
    /// The threads finish the queued jobs and end.
    fn drop(&mut self) {
        let (queue, ready) = &*self.shared;
        queue.lock().expect("render queue").closed = true;
        ready.notify_all();
    }
}

fn work(shared: &(Mutex<Queue>, Condvar)) {
    let (queue, ready) = shared;
    loop {
        let job = {
            let mut q = queue.lock().expect("render queue");
            loop {
                if let Some(job) = q.jobs.pop_front() {
                    break job;
                }
                if q.closed {
                    return;
                }
                q = ready.wait(q).expect("render queue");
            }
        };
        // A panic is a bug, reported to the one caller (its sender is dropped), not the end of the thread.
        let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(job));
    }
}

/// Raises the calling thread's niceness by `nice` (Linux applies `setpriority(PRIO_PROCESS, tid)` to that
/// one thread).
#[cfg(target_os = "linux")]
fn lower_priority(nice: i32) -> std::io::Result<()> {
    if nice == 0 {
        return Ok(());
    }
    // SAFETY: plain system calls on the calling thread's id; no memory is passed.
    let done = unsafe {
        let tid = libc::gettid();
        let now = libc::getpriority(libc::PRIO_PROCESS, tid as libc::id_t);
        libc::setpriority(libc::PRIO_PROCESS, tid as libc::id_t, now.saturating_add(nice))
    };
    if done == 0 {
        Ok(())
    } else {
        Err(std::io::Error::last_os_error())
    }
}

#[cfg(not(target_os = "linux"))]
fn lower_priority(nice: i32) -> std::io::Result<()> {
    if nice == 0 {
        Ok(())
    } else {
        Err(std::io::Error::new(std::io::ErrorKind::Unsupported, "per-thread priority is set on Linux only"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn jobs_run_on_the_render_threads_and_return_their_results() {
        let pool = Arc::new(RenderPool::start(Config { threads: 2, nice: 0 }));
        let name = pool.run(|| std::thread::current().name().map(str::to_owned)).await.unwrap();
        assert!(name.is_some_and(|n| n.starts_with("bcl-render-")));
        let mut jobs = tokio::task::JoinSet::new();
        for i in 0..50u64 {
            let pool = pool.clone();
            jobs.spawn(async move { (i, pool.run(move || (0..=i).sum::<u64>()).await.unwrap()) });
        }
        let mut answered = 0;
        while let Some(done) = jobs.join_next().await {
            let (i, sum) = done.unwrap();
            assert_eq!(sum, i * (i + 1) / 2);
            answered += 1;
        }
        assert_eq!(answered, 50);
    }

    #[tokio::test]
    async fn a_panicking_job_is_an_error_and_the_thread_goes_on() {
        let pool = RenderPool::start(Config { threads: 1, nice: 0 });
        let failed = pool.run(|| -> u32 { panic!("a bug") }).await;
        assert!(matches!(failed, Err(EngineError::Internal(_))), "{failed:?}");
        assert_eq!(pool.run(|| 7).await.unwrap(), 7);
    }

    #[cfg(target_os = "linux")]
    #[tokio::test]
    async fn the_render_threads_run_at_a_lower_priority() {
        let base = unsafe { libc::getpriority(libc::PRIO_PROCESS, libc::gettid() as libc::id_t) };
        let pool = RenderPool::start(Config { threads: 1, nice: 5 });
        let nice = pool.run(|| unsafe { libc::getpriority(libc::PRIO_PROCESS, libc::gettid() as libc::id_t) }).await;
        assert_eq!(nice.unwrap(), (base + 5).min(19));
    }
}
