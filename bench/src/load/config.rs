//! The command line of `kiosk-load`, and the validated plan it describes. Every run is bounded: by its
//! own duration or request count, and by hard caps on both that no option can lift past.

use super::routing::CentreId;
use super::schedule::Arrival;
use std::path::PathBuf;
use std::time::Duration;

/// Open loop: requests leave on schedule whatever the server does (the honest way to measure latency at
/// an offered rate). Closed loop: N kiosks each wait for their answer, think, and send again.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Mode {
    Open,
    Closed,
}

/// Drives bcl engines over gRPC like thousands of convenience-store kiosks.
#[derive(Debug, Clone, clap::Parser)]
#[command(name = "kiosk-load", version)]
pub struct Args {
    /// Engines to drive, e.g. east=http://10.0.0.1:50051,west=http://10.0.0.2:50051.
    #[arg(long, value_delimiter = ',')]
    pub target: Vec<String>,
    /// Start own `bcl serve` processes (fresh data directories) instead of --target.
    #[arg(long)]
    pub spawn: bool,
    /// With --spawn: how many centres to start (1 = east only, 2 = east and west).
    #[arg(long, default_value_t = 2)]
    pub centres: usize,
    /// With --spawn: one more argument for every `bcl serve` started (repeat it), e.g.
    /// --serve-arg=--no-shed or --serve-arg=--max-queue-wait-ms=10.
    #[arg(long, allow_hyphen_values = true)]
    pub serve_arg: Vec<String>,
    /// The bcl binary for --spawn (default: $BCL_BIN, or next to this executable).
    #[arg(long)]
    pub bcl: Option<PathBuf>,
    /// Fixture municipalities to load into every engine.
    #[arg(long, default_value_t = 1)]
    pub municipalities: usize,
    /// Ordinary households per municipality (the edge-case households come on top).
    #[arg(long, default_value_t = 200)]
    pub households: usize,
    /// Do not ingest and configure the fixture municipalities (a --target already holds them).
    #[arg(long)]
    pub no_setup: bool,
    #[arg(long, value_enum, default_value_t = Mode::Open)]
    pub mode: Mode,
    #[arg(long, value_enum, default_value_t = Arrival::Poisson)]
    pub arrival: Arrival,
    /// Open loop: offered requests per second.
    #[arg(long, default_value_t = 100.0)]
    pub rate: f64,
    /// Kiosks: open loop deals requests to this many kiosk ids; closed loop runs this many kiosks.
    #[arg(long, default_value_t = 2000)]
    pub kiosks: usize,
    /// Closed loop: mean think time between a kiosk's answer and its next request (exponential), ms.
    #[arg(long, default_value_t = 0.0)]
    pub think_ms: f64,
    /// Measured seconds after the warm-up (default 20 unless --requests is given).
    #[arg(long)]
    pub duration: Option<f64>,
    /// Measured requests after the warm-up (instead of --duration).
    #[arg(long)]
    pub requests: Option<u64>,
    /// Seconds of warm-up, sent and checked but not timed.
    #[arg(long, default_value_t = 2.0)]
    pub warmup: f64,
    /// Hard cap on the whole run's seconds (warm-up included); sending stops there.
    #[arg(long, default_value_t = 600.0)]
    pub max_duration: f64,
    /// Hard cap on requests sent (warm-up included).
    #[arg(long, default_value_t = 1_000_000)]
    pub max_requests: u64,
    /// Open loop: requests in flight at most; beyond it the dispatcher waits (counted, latency still
    /// measured from the intended instant).
    #[arg(long, default_value_t = 4096)]
    pub max_in_flight: usize,
    /// Per-attempt deadline, ms: past it the vendor fails over.
    #[arg(long, default_value_t = 2000)]
    pub deadline_ms: u64,
    /// HTTP/2 connections per centre.
    #[arg(long, default_value_t = 4)]
    pub connections: usize,
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Directory for report.json and the CSV files.
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Fail-over drill (with --spawn and two centres): SIGKILL the east engine this many seconds in.
    #[arg(long)]
    pub kill_east_after: Option<f64>,
    /// A run of a few seconds: two spawned centres, two small municipalities, 200 measured requests at
    /// 100/s, and the east engine killed two thirds of the way through.
    #[arg(long)]
    pub smoke: bool,
    /// No live progress line.
    #[arg(long)]
    pub quiet: bool,
}

/// Hard limits no option can exceed.
pub const CAP_DURATION: Duration = Duration::from_secs(3600);
pub const CAP_REQUESTS: u64 = 10_000_000;

/// Why the command line does not describe a run.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ConfigError {
    #[error("--target entries must read east=URL or west=URL, each centre at most once")]
    Target,
    #[error("give either --target or --spawn")]
    NoEngine,
    #[error("--centres must be 1 or 2")]
    Centres,
    #[error("--kill-east-after needs --spawn with two centres")]
    Drill,
    #[error("{0} must be a finite number above 0")]
    Positive(&'static str),
    #[error("--municipalities must be between 1 and 100")]
    Municipalities,
}

/// Where the engines are.
#[derive(Debug, Clone, PartialEq)]
pub enum Engines {
    Targets(Vec<(CentreId, String)>),
    Spawn { centres: usize },
}

/// How long the measured part runs.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Length {
    Duration(Duration),
    Requests(u64),
}

/// A validated run.
#[derive(Debug, Clone)]
pub struct Plan {
    pub args: Args,
    pub engines: Engines,
    pub length: Length,
    pub warmup: Duration,
    pub max_duration: Duration,
    pub max_requests: u64,
    pub deadline: Duration,
    pub think: Duration,
    pub kill_east_after: Option<Duration>,
}

fn positive(v: f64, name: &'static str) -> Result<f64, ConfigError> {
    if v.is_finite() && v > 0.0 {
        Ok(v)
    } else {
        Err(ConfigError::Positive(name))
    }
}

impl Args {
    /// Applies --smoke, checks every option, and clamps the caps.
    pub fn plan(mut self) -> Result<Plan, ConfigError> {
        if self.smoke {
            self.spawn = true;
            self.target.clear();
            self.centres = 2;
            self.municipalities = 2;
            self.households = 10;
            self.mode = Mode::Open;
            self.arrival = Arrival::Constant;
            self.rate = 100.0;
            self.requests = Some(200);
            self.duration = None;
            self.warmup = 0.5;
            self.kill_east_after = Some(0.5 + 200.0 / 100.0 * 2.0 / 3.0);
        }
        let engines = if self.spawn {
            if !(1..=2).contains(&self.centres) {
                return Err(ConfigError::Centres);
            }
            Engines::Spawn { centres: self.centres }
        } else if self.target.is_empty() {
            return Err(ConfigError::NoEngine);
        } else {
            let mut targets: Vec<(CentreId, String)> = Vec::new();
            for t in &self.target {
                let (name, url) = t.split_once('=').ok_or(ConfigError::Target)?;
                let centre = CentreId::parse(name).ok_or(ConfigError::Target)?;
                if targets.iter().any(|(c, _)| *c == centre) {
                    return Err(ConfigError::Target);
                }
                targets.push((centre, url.to_string()));
            }
            Engines::Targets(targets)
        };
        if self.kill_east_after.is_some() && engines != (Engines::Spawn { centres: 2 }) {
            return Err(ConfigError::Drill);
        }
        if !(1..=100).contains(&self.municipalities) {
            return Err(ConfigError::Municipalities);
        }
        positive(self.rate, "--rate")?;
        if self.kiosks == 0 {
            return Err(ConfigError::Positive("--kiosks"));
        }
        if !(self.think_ms.is_finite() && self.think_ms >= 0.0) {
            return Err(ConfigError::Positive("--think-ms"));
        }
        let length = match (self.requests, self.duration) {
            (Some(0), _) => return Err(ConfigError::Positive("--requests")),
            (Some(n), _) => Length::Requests(n.min(CAP_REQUESTS)),
            (None, Some(d)) => Length::Duration(Duration::from_secs_f64(positive(d, "--duration")?.min(CAP_DURATION.as_secs_f64()))),
            (None, None) => Length::Duration(Duration::from_secs(20)),
        };
        if !(self.warmup.is_finite() && self.warmup >= 0.0) {
            return Err(ConfigError::Positive("--warmup"));
        }
        let max_duration = Duration::from_secs_f64(positive(self.max_duration, "--max-duration")?.min(CAP_DURATION.as_secs_f64()));
        let max_requests = self.max_requests.clamp(1, CAP_REQUESTS);
        let kill_east_after = match self.kill_east_after {
            Some(s) => Some(Duration::from_secs_f64(positive(s, "--kill-east-after")?)),
            None => None,
        };
        Ok(Plan {
            engines,
            length,
            warmup: Duration::from_secs_f64(self.warmup.min(CAP_DURATION.as_secs_f64())),
            max_duration,
            max_requests,
            deadline: Duration::from_millis(self.deadline_ms.max(1)),
            think: Duration::from_secs_f64(self.think_ms / 1000.0),
            kill_east_after,
            args: self,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    fn plan(line: &str) -> Result<Plan, ConfigError> {
        Args::parse_from(std::iter::once("kiosk-load").chain(line.split_whitespace())).plan()
    }

    #[test]
    fn targets_name_each_centre_once() {
        let p = plan("--target east=http://a:1,west=http://b:2").unwrap();
        assert_eq!(p.engines, Engines::Targets(vec![(CentreId::East, "http://a:1".into()), (CentreId::West, "http://b:2".into())]));
        assert_eq!(plan("--target north=http://a:1").unwrap_err(), ConfigError::Target);
        assert_eq!(plan("--target east=http://a:1,east=http://b:2").unwrap_err(), ConfigError::Target);
        assert_eq!(plan("--rate 5").unwrap_err(), ConfigError::NoEngine);
    }

    #[test]
    fn every_run_is_bounded() {
        let p = plan("--spawn --requests 999999999999 --max-duration 1e9 --max-requests 99999999999").unwrap();
        assert_eq!(p.length, Length::Requests(CAP_REQUESTS));
        assert_eq!(p.max_duration, CAP_DURATION);
        assert_eq!(p.max_requests, CAP_REQUESTS);
        assert_eq!(plan("--spawn").unwrap().length, Length::Duration(Duration::from_secs(20)));
        assert_eq!(plan("--spawn --rate 0").unwrap_err(), ConfigError::Positive("--rate"));
        assert_eq!(plan("--spawn --requests 0").unwrap_err(), ConfigError::Positive("--requests"));
    }

    #[test]
    fn the_drill_needs_two_spawned_centres_and_smoke_sets_one() {
        assert_eq!(plan("--spawn --centres 1 --kill-east-after 1").unwrap_err(), ConfigError::Drill);
        assert_eq!(plan("--target east=http://a:1 --kill-east-after 1").unwrap_err(), ConfigError::Drill);
        let smoke = plan("--smoke").unwrap();
        assert_eq!(smoke.engines, Engines::Spawn { centres: 2 });
        assert_eq!(smoke.length, Length::Requests(200));
        let kill = smoke.kill_east_after.unwrap();
        assert!(kill > smoke.warmup && kill < smoke.warmup + Duration::from_secs(2), "the drill falls inside the measured run");
    }
}
