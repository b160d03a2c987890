//! `grpc.health.v1.Health` that means something: every service turns NOT_SERVING once the log refuses writes
//! (a failed flush poisons the engine until a restart), and `bcl.v1.Issuance/<municipality code>` reports
//! each municipality: NOT_SERVING while it is suspended (fail closed) or under maintenance. The same pass
//! refreshes the state gauges of the metrics.

use super::telemetry as t;
use crate::engine::Engine;
use bcl_proto::MunicipalityState;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tonic_health::server::HealthReporter;
use tonic_health::ServingStatus;

/// The services whose health follows the storage.
pub const SERVICES: &[&str] = &["bcl.v1.Ingest", "bcl.v1.Issuance", "bcl.v1.Audit", "bcl.v1.Admin", "bcl.v1.Verify"];

/// The health service name of one municipality's issuance.
pub fn issuance_of(code: &str) -> String {
    format!("bcl.v1.Issuance/{code}")
}

/// `report_overall` false leaves "" and `bcl.v1.Issuance` to the replication's centre health.
/// Runs until the process ends: after every durable batch (the log length changes) and at least once a
/// second (a poisoned writer does not grow the log; the checkpoint age grows by itself).
pub async fn watch(engine: Arc<Engine>, reporter: HealthReporter, report_overall: bool) {
    let mut grown = engine.subscribe_len();
    let mut last_growth = Instant::now();
    let mut last_len = engine.log_len();
    let mut reported: HashMap<String, ServingStatus> = HashMap::new();
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    loop {
        let len = engine.log_len();
        if len != last_len {
            last_len = len;
            last_growth = Instant::now();
        }
        let healthy = !engine.writer.is_poisoned();
        let mut wanted: Vec<(String, ServingStatus)> = Vec::new();
        let storage = if healthy { ServingStatus::Serving } else { ServingStatus::NotServing };
        let own = SERVICES.iter().filter(|s| report_overall || **s != "bcl.v1.Issuance");
        wanted.extend(own.map(|s| (s.to_string(), storage)));
        if report_overall {
            wanted.push((String::new(), storage));
        }
        let mut counts = [0u32; 3];
        {
            let proj = engine.projection.read().expect("projection lock");
            for code in proj.state.municipality_codes() {
                let state = proj.state.status(code).map(|s| s.state()).unwrap_or(MunicipalityState::Active);
                let index = match state {
                    MunicipalityState::Maintenance => 1,
                    MunicipalityState::Suspended => 2,
                    _ => 0,
                };
                counts[index] += 1;
                metrics::gauge!(t::MUNICIPALITY_STATE, "municipality" => code.to_string()).set(index as f64);
                let serving = healthy && index == 0;
                wanted.push((
                    issuance_of(code),
                    if serving { ServingStatus::Serving } else { ServingStatus::NotServing },
                ));
            }
        }
        for (state, n) in ["ACTIVE", "MAINTENANCE", "SUSPENDED"].iter().zip(counts) {
            metrics::gauge!(t::MUNICIPALITIES, "state" => *state).set(n as f64);
        }
        metrics::gauge!(t::LOG_LEAVES).set(len as f64);
        metrics::gauge!(t::CHECKPOINT_AGE).set(last_growth.elapsed().as_secs_f64());
        metrics::gauge!(t::STORAGE_HEALTHY).set(if healthy { 1.0 } else { 0.0 });
        for (service, status) in wanted {
            if reported.get(&service) != Some(&status) {
                reporter.set_service_status(&service, status).await;
                reported.insert(service, status);
            }
        }
        tokio::select! {
            changed = grown.changed() => if changed.is_err() { return },
            _ = tick.tick() => {},
        }
    }
}
