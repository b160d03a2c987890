//! `kiosk-load`: drives one or more engines over gRPC like thousands of convenience-store kiosks.
//!
//! One idea per module:
//! - [`schedule`]: when each open-loop request is meant to leave (constant rate or Poisson);
//! - [`mix`]: what each kiosk asks for, drawn from the fixture municipality's cases in documented proportions;
//! - [`routing`]: kiosk vendors, their preferred centre, and fail-over with the same request;
//! - [`recorder`]: latency histograms, outcome counts and the idempotency ledger;
//! - [`report`]: JSON, CSV and the Markdown summary;
//! - [`html`]: the one-page HTML report with latency-over-time and percentile charts (inline SVG);
//! - [`verdict`]: judging each answer against what the fixture case calls for;
//! - [`spawn`]: starting `bcl serve` processes and loading fixture municipalities into them;
//! - [`driver`]: the open-loop and closed-loop drivers that tie these together;
//! - [`config`]: the command line and its limits.

pub mod config;
pub mod driver;
pub mod html;
pub mod mix;
pub mod recorder;
pub mod report;
pub mod routing;
pub mod schedule;
pub mod spawn;
pub mod verdict;
