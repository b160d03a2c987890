//! The engine's clock, in Japan time. Service hours, the year-end closure, "moved in today" and the date
//! printed on a certificate all read it, so tests and demos can pin it (`--now`).

use bcl_projections::date::JstDateTime;
use std::time::{SystemTime, UNIX_EPOCH};

#[derive(Debug, Clone, Copy)]
pub enum Clock {
    System,
    Fixed(JstDateTime),
}

impl Clock {
    /// Parses `--now` (RFC 3339 with any offset; converted to Japan time).
    pub fn fixed(rfc3339: &str) -> Result<Self, String> {
        JstDateTime::parse_rfc3339(rfc3339).map(Clock::Fixed).map_err(|e| format!("--now: {e}"))
    }

    pub fn now(&self) -> JstDateTime {
        match self {
            Clock::Fixed(t) => *t,
            Clock::System => {
                let secs = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs() as i64).unwrap_or(0);
                JstDateTime::from_unix_seconds(secs)
            }
        }
    }
}
