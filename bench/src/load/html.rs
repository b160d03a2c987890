//! `report.html`: one self-contained page (inline SVG, no scripts, no external files) with latency over
//! time and the percentile distribution per centre, beside the Markdown summary. Hand-drawn SVG rather
//! than a plotting crate: two line charts do not justify a font-rendering dependency tree.

use super::report::Report;
use hdrhistogram::Histogram;
use std::fmt::Write as _;

const W: f64 = 760.0;
const H: f64 = 300.0;
const LEFT: f64 = 60.0;
const BOTTOM: f64 = 40.0;
const TOP: f64 = 20.0;
const RIGHT: f64 = 120.0;
const COLOURS: [&str; 6] = ["#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b"];

/// Percentiles on the distribution chart's x axis, placed by log10(1 / (1 - q)).
const QUANTILES: [f64; 9] = [0.5, 0.75, 0.9, 0.95, 0.99, 0.995, 0.999, 0.9995, 0.9999];

fn escape(s: &str) -> String {
    s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;")
}

/// A log10 latency axis (milliseconds) that covers `lo..=hi` microseconds in whole decades.
struct LogAxis {
    lo: f64,
    hi: f64,
}

impl LogAxis {
    fn covering(lo_us: u64, hi_us: u64) -> LogAxis {
        let lo = (lo_us.max(1) as f64 / 1000.0).log10().floor().min(-1.0);
        let hi = (hi_us.max(1) as f64 / 1000.0).log10().ceil().max(lo + 1.0);
        LogAxis { lo, hi }
    }

    fn y(&self, us: u64) -> f64 {
        let v = (us.max(1) as f64 / 1000.0).log10().clamp(self.lo, self.hi);
        TOP + (H - TOP - BOTTOM) * (1.0 - (v - self.lo) / (self.hi - self.lo))
    }

    fn grid(&self, out: &mut String) {
        for d in (self.lo as i32)..=(self.hi as i32) {
            let ms = 10f64.powi(d);
            let y = self.y((ms * 1000.0) as u64);
            let _ = write!(out, r##"<line x1="{LEFT}" x2="{}" y1="{y:.1}" y2="{y:.1}" stroke="#ddd"/><text x="{}" y="{:.1}" font-size="11" text-anchor="end">{} ms</text>"##, W - RIGHT, LEFT - 4.0, y + 4.0, ms);
        }
    }
}

fn polyline(out: &mut String, points: &[(f64, f64)], colour: &str, label: &str, slot: usize) {
    let pts: Vec<String> = points.iter().map(|(x, y)| format!("{x:.1},{y:.1}")).collect();
    let _ = write!(out, r#"<polyline fill="none" stroke="{colour}" stroke-width="1.5" points="{}"/>"#, pts.join(" "));
    let ly = TOP + 14.0 * slot as f64 + 6.0;
    let _ = write!(
        out,
        r#"<line x1="{}" x2="{}" y1="{ly}" y2="{ly}" stroke="{colour}" stroke-width="2"/><text x="{}" y="{}" font-size="11">{}</text>"#,
        W - RIGHT + 8.0,
        W - RIGHT + 24.0,
        W - RIGHT + 28.0,
        ly + 4.0,
        escape(label)
    );
}

fn frame(title: &str, x_label: &str, body: &str) -> String {
    format!(
        r##"<h2>{}</h2><svg xmlns="http://www.w3.org/2000/svg" width="{W}" height="{H}" font-family="sans-serif"><rect x="{LEFT}" y="{TOP}" width="{}" height="{}" fill="none" stroke="#999"/>{body}<text x="{}" y="{}" font-size="12" text-anchor="middle">{}</text></svg>"##,
        escape(title),
        W - LEFT - RIGHT,
        H - TOP - BOTTOM,
        LEFT + (W - LEFT - RIGHT) / 2.0,
        H - 6.0,
        escape(x_label)
    )
}

/// Latency per second of the run: p50, p99 and max of the answers that finished in that second.
fn timeline_chart(timeline: &[Histogram<u64>]) -> String {
    let seconds = timeline.len().max(1) as f64;
    let x = |s: usize| LEFT + (W - LEFT - RIGHT) * (s as f64 + 0.5) / seconds;
    let lo = timeline.iter().filter(|h| !h.is_empty()).map(|h| h.value_at_quantile(0.5)).min().unwrap_or(1);
    let hi = timeline.iter().map(|h| h.max()).max().unwrap_or(1000);
    let axis = LogAxis::covering(lo, hi);
    let mut body = String::new();
    axis.grid(&mut body);
    for (slot, (label, q)) in [("p50", 0.5), ("p99", 0.99), ("max", 1.0)].into_iter().enumerate() {
        let points: Vec<(f64, f64)> =
            timeline.iter().enumerate().filter(|(_, h)| !h.is_empty()).map(|(s, h)| (x(s), axis.y(h.value_at_quantile(q)))).collect();
        polyline(&mut body, &points, COLOURS[slot], label, slot);
    }
    for s in (0..timeline.len()).step_by((timeline.len() / 10).max(1)) {
        let _ = write!(body, r#"<text x="{:.1}" y="{}" font-size="11" text-anchor="middle">{s}</text>"#, x(s), H - BOTTOM + 14.0);
    }
    frame("Latency over time (per second of measurement)", "seconds since the end of the warm-up", &body)
}

/// The latency distribution, all answers and per centre.
fn percentile_chart(report: &Report) -> String {
    let series: Vec<(String, &Histogram<u64>)> = report
        .totals
        .latency
        .iter()
        .filter(|((dim, _), _)| *dim == "all" || *dim == "centre")
        .map(|((dim, key), h)| (if *dim == "all" { "all".to_string() } else { key.clone() }, h))
        .collect();
    let lo = series.iter().map(|(_, h)| h.value_at_quantile(0.5)).min().unwrap_or(1);
    let hi = series.iter().map(|(_, h)| h.max()).max().unwrap_or(1000);
    let axis = LogAxis::covering(lo, hi);
    let span = (1.0f64 / (1.0 - QUANTILES[QUANTILES.len() - 1])).log10();
    let x = |q: f64| LEFT + (W - LEFT - RIGHT) * ((1.0 / (1.0 - q)).log10() / span);
    let mut body = String::new();
    axis.grid(&mut body);
    for q in QUANTILES {
        let _ = write!(body, r#"<text x="{:.1}" y="{}" font-size="11" text-anchor="middle">p{}</text>"#, x(q), H - BOTTOM + 14.0, q * 100.0);
    }
    for (slot, (label, h)) in series.iter().enumerate() {
        let points: Vec<(f64, f64)> = QUANTILES.iter().map(|q| (x(*q), axis.y(h.value_at_quantile(*q)))).collect();
        polyline(&mut body, &points, COLOURS[slot % COLOURS.len()], &format!("{label} (n={})", h.len()), slot);
    }
    frame("Latency percentiles (from the intended send instant in open loop)", "percentile", &body)
}

/// The whole page.
pub fn render(report: &Report) -> String {
    let mut out = String::from("<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>kiosk-load report</title></head><body style=\"font-family:sans-serif;max-width:900px\">");
    let _ = write!(out, "<h1>kiosk-load report</h1><p><code>{}</code></p>", escape(report.config["command"].as_str().unwrap_or("")));
    out.push_str(&timeline_chart(&report.totals.timeline));
    out.push_str(&percentile_chart(report));
    let _ = writeln!(out, "<h2>Summary</h2><pre>{}</pre></body></html>", escape(&report.markdown()));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_log_axis_places_decades_evenly_and_clamps() {
        let a = LogAxis::covering(500, 2_000_000); // 0.5 ms .. 2 s: 0.1 ms .. 10 s
        assert_eq!((a.lo, a.hi), (-1.0, 4.0));
        let step = a.y(1_000) - a.y(10_000);
        assert!((step - (a.y(10_000) - a.y(100_000))).abs() < 1e-9);
        assert_eq!(a.y(1), a.y(100), "below the axis clamps to its bottom");
        assert!(a.y(1_000) > a.y(2_000), "longer latencies are drawn higher");
    }

    #[test]
    fn escapes_markup_from_the_command_line() {
        assert_eq!(escape("<a & b>"), "&lt;a &amp; b&gt;");
    }
}
