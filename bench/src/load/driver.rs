//! The drivers. Open loop: a dispatcher thread sends each request at its scheduled instant, each in its own
//! task, and latency runs from that instant (coordinated-omission correction); how late the dispatcher was
//! is reported as the harness's own send lag. Closed loop: each kiosk sends,
//! waits for its answer, thinks, and sends again; latency runs from the actual send.
//!
//! Every transaction is checked (see [`super::verdict`]) and entered into the [`Recorder`]; issued ones
//! are kept (a bounded window) so that kiosk retries can re-send them byte for byte.

use super::config::{Length, Mode, Plan};
use super::mix::{type_name, Category, Draw, Expected, Mix};
use super::recorder::{Completion, Recorder};
use super::routing::{kiosk_id, vendor_of, CentreId, Centres};
use super::schedule::Schedule;
use super::verdict::{judge, Issued};
use bcl_proto::IssueRequest;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Issued requests kept for kiosk retries.
const RECENT: usize = 4096;

/// One kiosk transaction, ready to send.
#[derive(Debug, Clone)]
struct Job {
    request: IssueRequest,
    first: CentreId,
    expected: Expected,
    category: Category,
    retry_of: Option<Issued>,
}

/// An issued request a kiosk may retry.
#[derive(Debug, Clone)]
struct Recent {
    request: IssueRequest,
    centre: CentreId,
    expected: Expected,
    issued: Issued,
}

/// Shared by every task of a run.
pub struct Run {
    pub centres: Centres,
    pub mix: Mix,
    pub recorder: Recorder,
    run_id: String,
    next_id: AtomicU64,
    in_flight: AtomicU64,
    recent: Mutex<VecDeque<Recent>>,
    /// When measurement starts (the end of the warm-up).
    pub measure_start: Instant,
    /// Nanoseconds after `measure_start` of the last measured completion.
    last_measured_done: AtomicU64,
}

/// What the driver observed besides the recorder's totals.
#[derive(Debug, Clone, Copy)]
pub struct Timing {
    /// From the start of measurement to the intended instant of the last measured request (open loop) or
    /// to the end of sending (closed loop): the window the offered rate is computed over.
    pub send_window: Duration,
    /// From the start of measurement to the last measured answer.
    pub completion_window: Duration,
    /// Sending stopped at a hard cap rather than at the planned length.
    pub capped: bool,
}

impl Run {
    pub fn new(centres: Centres, mix: Mix, seed: u64, warmup: Duration) -> Arc<Run> {
        let millis = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_millis());
        Arc::new(Run {
            centres,
            mix,
            recorder: Recorder::new(),
            run_id: format!("kl-{seed}-{millis}"),
            next_id: AtomicU64::new(0),
            in_flight: AtomicU64::new(0),
            recent: Mutex::new(VecDeque::with_capacity(RECENT)),
            measure_start: Instant::now() + warmup,
            last_measured_done: AtomicU64::new(0),
        })
    }

    pub fn in_flight(&self) -> u64 {
        self.in_flight.load(Ordering::Relaxed)
    }

    /// The next transaction for kiosk number `kiosk`: a fresh draw, or a retry of an earlier issuance.
    fn job(&self, kiosk: usize, rng: &mut ChaCha8Rng) -> Job {
        loop {
            match self.mix.draw(rng) {
                Draw::Retry => {
                    let recent = self.recent.lock().unwrap_or_else(|e| e.into_inner());
                    if recent.is_empty() {
                        continue;
                    }
                    let r = recent[rng.random_range(0..recent.len())].clone();
                    return Job { request: r.request, first: r.centre, expected: r.expected, category: Category::Retry, retry_of: Some(r.issued) };
                }
                Draw::Fresh(d) => {
                    let first = self.centres.first_choice(vendor_of(kiosk).1);
                    let mut request = d.request;
                    request.request_id = format!("{}-{:09}", self.run_id, self.next_id.fetch_add(1, Ordering::Relaxed));
                    request.kiosk_id = kiosk_id(kiosk);
                    request.centre = first.proto() as i32;
                    return Job { request, first, expected: d.expected, category: d.category, retry_of: None };
                }
            }
        }
    }

    /// Sends one transaction and records it; `from` is where its latency starts.
    async fn transact(&self, job: Job, from: Instant, measured: bool) {
        let delivery = self.centres.issue(job.first, &job.request).await;
        let done = Instant::now();
        if let Ok(r) = &delivery.result {
            self.recorder.issuance(delivery.served_by, &job.request.request_id, &r.certificate_id, r.replayed, job.retry_of.is_some());
        }
        let (outcome, mismatch) = judge(job.expected, job.retry_of.as_ref(), delivery.failed_over, &delivery.result);
        if let (Ok(r), None, None) = (&delivery.result, &job.retry_of, &mismatch) {
            if !delivery.failed_over {
                let mut recent = self.recent.lock().unwrap_or_else(|e| e.into_inner());
                if recent.len() == RECENT {
                    recent.pop_front();
                }
                recent.push_back(Recent {
                    request: job.request.clone(),
                    centre: delivery.served_by,
                    expected: job.expected,
                    issued: Issued { certificate_id: r.certificate_id.clone(), content_sha256: r.content_sha256.clone() },
                });
            }
        }
        let finished_at = done.saturating_duration_since(self.measure_start);
        if measured {
            self.last_measured_done.fetch_max(finished_at.as_nanos() as u64, Ordering::Relaxed);
        }
        self.recorder.complete(Completion {
            measured,
            finished_at,
            latency: done.saturating_duration_since(from),
            centre: delivery.served_by,
            type_name: type_name(job.request.r#type),
            category: job.category,
            outcome,
            failed_over: delivery.failed_over,
            mismatch,
        });
        self.in_flight.fetch_sub(1, Ordering::Relaxed);
    }

    fn completion_window(&self) -> Duration {
        Duration::from_nanos(self.last_measured_done.load(Ordering::Relaxed))
    }
}

/// Whether to send one more request, given how many were sent and how far into the run we are.
fn within_caps(plan: &Plan, sent_total: u64, started: Instant) -> bool {
    sent_total < plan.max_requests && started.elapsed() < plan.max_duration
}

/// Runs the planned load against `run` and waits for every answer.
pub async fn drive(plan: &Plan, run: Arc<Run>) -> Timing {
    match plan.args.mode {
        Mode::Open => open_loop(plan, run).await,
        Mode::Closed => closed_loop(plan, run).await,
    }
}

/// The open-loop dispatcher runs on an OS thread of its own. Latency counts from each request's scheduled
/// instant, so the dispatcher's lateness is inside every figure it reports. tokio's timer ticks in whole
/// milliseconds and rounds each deadline up, so a task sleeping on it sent ~1.2 ms late on average (p99
/// 2–3 ms; measured with the `send_lag` this report now carries). A thread sleeping on the OS's
/// high-resolution timer sends within tens of microseconds and hands each request to the runtime.
async fn open_loop(plan: &Plan, run: Arc<Run>) -> Timing {
    let (plan, runtime) = (plan.clone(), tokio::runtime::Handle::current());
    let (done, timing) = tokio::sync::oneshot::channel();
    std::thread::Builder::new()
        .name("kiosk-dispatch".into())
        .spawn(move || {
            run.recorder.dispatcher_nice(prepare_dispatcher_thread());
            let _ = done.send(dispatch(&plan, run, &runtime));
        })
        .expect("start the dispatcher thread");
    timing.await.expect("the dispatcher thread returns its timing")
}

/// How much the dispatcher thread asks to be favoured over other threads (niceness −10; the engines it
/// measures keep theirs). It does almost no work — a few microseconds per request — but it is the kiosks'
/// clock: when it waits for a core behind the engine's renders, requests leave late and in bunches, which
/// kiosks on their own machines never do. (What the dispatcher thread as a whole changed in the reported
/// latencies, measured side by side with the harness before it: BENCHMARKS.md, "the harness on time".)
/// Raising a priority needs root or CAP_SYS_NICE; without it the dispatcher keeps the default and the
/// report says so.
const DISPATCHER_NICE: i32 = -10;

/// Prepares the dispatcher thread; returns the niceness it runs at.
fn prepare_dispatcher_thread() -> i32 {
    // SAFETY: both calls change only the calling thread (Linux keeps timer slack and niceness per thread;
    // `who` = 0 names the caller) and take plain integers.
    unsafe {
        // A sleeping thread's timer may fire up to its "timer slack" late (50 µs by default, to batch
        // wake-ups); 1 ns asks for none.
        libc::prctl(libc::PR_SET_TIMERSLACK, 1 as libc::c_ulong);
        if libc::setpriority(libc::PRIO_PROCESS, 0, DISPATCHER_NICE) == 0 {
            return DISPATCHER_NICE;
        }
        // getpriority returns the niceness itself (-1 is both a niceness and the error value; the
        // dispatcher only reports it).
        libc::getpriority(libc::PRIO_PROCESS, 0)
    }
}

/// Sleeps until `deadline` on the OS timer (never on a runtime's timer: see [`open_loop`]).
fn sleep_until(deadline: Instant) {
    let now = Instant::now();
    if deadline > now {
        std::thread::sleep(deadline - now);
    }
}

/// The open-loop send loop, on the dispatcher thread; the transactions run on `runtime`.
fn dispatch(plan: &Plan, run: Arc<Run>, runtime: &tokio::runtime::Handle) -> Timing {
    let started = run.measure_start - plan.warmup;
    let mut schedule = Schedule::new(plan.args.arrival, plan.args.rate, plan.args.seed).expect("the plan checked the rate");
    let mut rng = ChaCha8Rng::seed_from_u64(plan.args.seed ^ 0x6b696f736b);
    let slots = Arc::new(tokio::sync::Semaphore::new(plan.args.max_in_flight.max(1)));
    let mut tasks = tokio::task::JoinSet::new();
    let (mut sent_total, mut measured_sent) = (0u64, 0u64);
    let mut send_window = Duration::ZERO;
    let mut capped = false;
    loop {
        let offset = schedule.next_offset();
        let measured = offset >= plan.warmup;
        let planned_more = match plan.length {
            Length::Duration(d) => offset < plan.warmup + d,
            Length::Requests(n) => !measured || measured_sent < n,
        };
        if !planned_more {
            break;
        }
        if !within_caps(plan, sent_total, started) || offset >= plan.max_duration {
            capped = true;
            break;
        }
        let intended = started + offset;
        // Everything that can be done before the instant is: at the instant, only the hand-over is left.
        let job = run.job(rng.random_range(0..plan.args.kiosks), &mut rng);
        run.recorder.sent(measured);
        sent_total += 1;
        if measured {
            measured_sent += 1;
            send_window = offset - plan.warmup;
        }
        sleep_until(intended);
        let permit = match slots.clone().try_acquire_owned() {
            Ok(p) => p,
            Err(_) => {
                run.recorder.harness_waited();
                runtime.block_on(slots.clone().acquire_owned()).expect("the semaphore is never closed")
            }
        };
        run.in_flight.fetch_add(1, Ordering::Relaxed);
        let lag = intended.elapsed();
        let task_run = run.clone();
        tasks.spawn_on(
            async move {
                task_run.transact(job, intended, measured).await;
                drop(permit);
            },
            runtime,
        );
        if measured {
            run.recorder.send_lag(lag);
        }
        // Reap finished tasks as we go so the set does not grow with the run.
        while tasks.try_join_next().is_some() {}
    }
    runtime.block_on(async { while tasks.join_next().await.is_some() {} });
    // The last request's slot lasts one inter-arrival gap.
    let send_window = send_window + Duration::from_secs_f64(1.0 / plan.args.rate);
    Timing { send_window, completion_window: run.completion_window(), capped }
}

async fn closed_loop(plan: &Plan, run: Arc<Run>) -> Timing {
    let started = run.measure_start - plan.warmup;
    let stop = Arc::new(AtomicBool::new(false));
    let tickets = Arc::new(AtomicU64::new(0));
    let sent_total = Arc::new(AtomicU64::new(0));
    let capped = Arc::new(AtomicBool::new(false));
    let mut kiosks = tokio::task::JoinSet::new();
    for kiosk in 0..plan.args.kiosks {
        let (run, stop, tickets, sent_total, capped, plan) =
            (run.clone(), stop.clone(), tickets.clone(), sent_total.clone(), capped.clone(), plan.clone());
        kiosks.spawn(async move {
            let mut rng = ChaCha8Rng::seed_from_u64(plan.args.seed.wrapping_add(kiosk as u64 + 1));
            // Kiosks start spread over one think time (or 10 ms) so they do not all fire at once.
            let spread = plan.think.max(Duration::from_millis(10));
            tokio::time::sleep(spread.mul_f64(rng.random::<f64>())).await;
            while !stop.load(Ordering::Relaxed) {
                let now = Instant::now();
                let measured = now >= run.measure_start;
                if measured {
                    match plan.length {
                        Length::Duration(d) if now >= run.measure_start + d => break,
                        Length::Requests(n) if tickets.fetch_add(1, Ordering::Relaxed) >= n => break,
                        _ => {}
                    }
                }
                if !within_caps(&plan, sent_total.fetch_add(1, Ordering::Relaxed), started) {
                    capped.store(true, Ordering::Relaxed);
                    stop.store(true, Ordering::Relaxed);
                    break;
                }
                let job = run.job(kiosk, &mut rng);
                run.recorder.sent(measured);
                run.in_flight.fetch_add(1, Ordering::Relaxed);
                run.transact(job, Instant::now(), measured).await;
                if !plan.think.is_zero() {
                    let u: f64 = 1.0 - rng.random::<f64>();
                    tokio::time::sleep(plan.think.mul_f64(-u.ln()).min(plan.think * 20)).await;
                }
            }
        });
    }
    while kiosks.join_next().await.is_some() {}
    let window = run.completion_window();
    Timing { send_window: window, completion_window: window, capped: capped.load(Ordering::Relaxed) }
}
