//! `bcl demo`: the whole path on an embedded default, for a newcomer. Generates a fixture municipality and
//! starts the two exchange centres, East and West, as a replicated pair (each a real server on a free local
//! port with its own fresh data directory, the same master secret, replicating over mutual TLS). It appends
//! the change events over gRPC, configures issuance, issues a certificate for every fixture case through
//! the vendors' routing library (`crate::router`: one vendor prefers East, the other West) and shows the
//! refusals, retries one request at the other centre to show it is charged once, checks that both centres
//! hold the same history (same signed tree head), and writes the PDFs to a folder it prints. Every call
//! uses the certificates `bcl certs init` makes (in `<out>/tls`): the link appends, the municipality's
//! admin configures, each exchange centre issues with its own certificate, the auditor reads checkpoints.

use super::CliResult;
use crate::clock::Clock;
use crate::engine::{Engine, EngineConfig};
use crate::replication::{CentreName, ReplicationConfig};
use crate::router::CentreRouter;
use crate::secrets::MasterSecret;
use crate::server::tls::ClientAuth;
use crate::server::ServeOptions;
use bcl_fixtures::{Expect, Spec};
use bcl_proto::{
    admin_client::AdminClient, audit_client::AuditClient, ingest_client::IngestClient, issuance_client::IssuanceClient,
    AppendRequest, Centre, GetCheckpointRequest, IssueRequest, MunicipalityRef, MunicipalitySettings,
};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

#[derive(clap::Args)]
pub struct Args {
    /// Where the PDFs (and the demo's data directory) go.
    #[arg(long, default_value = "out/demo")]
    pub out: PathBuf,
    /// Households in the generated municipality.
    #[arg(long, default_value_t = 100)]
    pub households: usize,
    #[arg(long, default_value_t = 42)]
    pub seed: u64,
    /// The demo's fixed clock (Japan time), inside service hours.
    #[arg(long, default_value = "2026-04-01T10:00:00+09:00")]
    pub now: String,
}

pub fn run(args: Args) -> CliResult {
    let clock = Clock::fixed(&args.now)?;
    let today = clock.now().date;
    let spec = Spec {
        households: args.households,
        seed: args.seed,
        today: (today.year, today.month, today.day),
        ..Default::default()
    };
    let municipality = bcl_fixtures::generate(&spec);
    let data_dir = args.out.join("data");
    if data_dir.exists() {
        std::fs::remove_dir_all(&data_dir)?;
    }
    std::fs::create_dir_all(&data_dir)?;
    // The certificates of an earlier demo go too (only the `NN-case.pdf` files it writes): a folder mixing
    // this run's PDFs with stale ones from other fixture cases would show certificates this run never issued.
    for entry in std::fs::read_dir(&args.out)? {
        let path = entry?.path();
        let name = path.file_name().and_then(|n| n.to_str()).unwrap_or_default();
        let numbered =
            name.len() > 7 && name.as_bytes()[..2].iter().all(u8::is_ascii_digit) && name.as_bytes()[2] == b'-';
        if numbered && name.ends_with(".pdf") && path.is_file() {
            std::fs::remove_file(&path)?;
        }
    }
    let tls_dir = args.out.join("tls");
    super::certs::init(&tls_dir, std::slice::from_ref(&spec.municipality_code), &[], true)?;
    // Both centres share one scramble master secret, so a certificate issued at either verifies at both.
    let secret_file = data_dir.join("master-secret.key");
    let mut secret = [0u8; 32];
    std::io::Read::read_exact(&mut std::fs::File::open("/dev/urandom")?, &mut secret)?;
    crate::secrets::write_private(&secret_file, &secret)?;
    let centres = [CentreName::East, CentreName::West].map(|c| data_dir.join(c.as_str()));
    for dir in &centres {
        std::fs::create_dir_all(dir)?;
        MasterSecret::provision(dir, &secret_file)?;
    }

    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    let result = runtime.block_on(async {
        // Bind both first: each centre asks the other for its status while deciding who sequences.
        let east_listener = std::net::TcpListener::bind("127.0.0.1:0")?;
        let west_listener = std::net::TcpListener::bind("127.0.0.1:0")?;
        // Non-blocking, as Tokio needs: the start-up status server accepts on clones of these.
        east_listener.set_nonblocking(true)?;
        west_listener.set_nonblocking(true)?;
        let (east_addr, west_addr) = (east_listener.local_addr()?, west_listener.local_addr()?);
        // Each on its own task: they decide their roles by talking to each other.
        let open = |centre: CentreName, dir: &Path, peer: std::net::SocketAddr, listener: &std::net::TcpListener| {
            let mut replication = ReplicationConfig::new(centre, format!("https://{peer}"));
            replication.tls_dir = Some(tls_dir.clone());
            let config = EngineConfig { data_dir: dir.to_path_buf(), clock, fonts: None, render: Default::default() };
            let listener = listener.try_clone();
            tokio::spawn(async move {
                Engine::open_replicated(config, replication, Some(&listener?)).await.map_err(box_error)
            })
        };
        let east = open(CentreName::East, &centres[0], west_addr, &east_listener);
        let west = open(CentreName::West, &centres[1], east_addr, &west_listener);
        let (east, west) = (east.await??, west.await??);
        let (stop, stopped) = tokio::sync::watch::channel(());
        let mut servers = Vec::new();
        for (engine, listener) in [(east.clone(), east_listener), (west.clone(), west_listener)] {
            crate::replication::spawn(engine.clone());
            let listener = tokio::net::TcpListener::from_std(listener)?;
            // Nothing is in flight when the demo stops; the streams left (replication between the centres,
            // the routers' health watches) are cut after a short grace.
            let options = ServeOptions {
                tls_dir: Some(tls_dir.clone()),
                shutdown_grace: Duration::from_millis(300),
                ..ServeOptions::default()
            };
            let mut stopped = stopped.clone();
            servers.push(tokio::spawn(crate::server::serve_with(
                engine,
                listener,
                async move {
                    let _ = stopped.changed().await;
                },
                options,
            )));
        }
        let (east_url, west_url) = (format!("https://{east_addr}"), format!("https://{west_addr}"));
        println!(
            "East centre on {east_addr}: {}\nWest centre on {west_addr}: {}\nreplicating over mutual TLS \
             (certificates in {}, data in {})",
            describe(&east),
            describe(&west),
            tls_dir.display(),
            data_dir.display()
        );
        let code = spec.municipality_code.clone();
        let as_identity = |name: &str| ClientAuth::tls(&tls_dir, name);

        // The municipality's data link and its staff talk to East; West holds the same history.
        let mut ingest = IngestClient::new(as_identity(&format!("link-{code}")).connect(&east_url).await?);
        let started = std::time::Instant::now();
        for chunk in municipality.events.chunks(1000) {
            ingest.append(AppendRequest { events: chunk.to_vec() }).await?;
        }
        let status =
            ingest.get_municipality_status(MunicipalityRef { municipality_code: code.clone() }).await?.into_inner();
        println!(
            "appended {} change events of municipality {code} in {:.0?} (acknowledged once both centres hold \
             them): applied_seq {} state {:?}",
            municipality.events.len(),
            started.elapsed(),
            status.applied_seq,
            bcl_proto::MunicipalityState::try_from(status.state).unwrap_or_default()
        );

        let mut admin = AdminClient::new(as_identity(&format!("admin-{code}")).connect(&east_url).await?);
        admin.update_settings(demo_settings(&code)).await?;

        // Two kiosk vendors, each behind its own exchange centre identity, each preferring its own centre
        // and failing over to the other with the same request id (the routing library).
        let routers = [
            (Centre::East, CentreRouter::with_auth(&east_url, &west_url, CentreName::East, &as_identity("centre-east"))?),
            (Centre::West, CentreRouter::with_auth(&east_url, &west_url, CentreName::West, &as_identity("centre-west"))?),
        ];
        for (_, router) in &routers {
            router.watch_health();
        }
        let pdf_dir = args.out.clone();
        let mut written = 0;
        for (i, case) in municipality.cases.iter().enumerate() {
            let (centre, router) = &routers[i % 2];
            let req = IssueRequest {
                request_id: format!("demo-{}-{i}", case.name),
                centre: *centre as i32,
                kiosk_id: format!("KIOSK-{:05}", 100 + i),
                municipality_code: code.clone(),
                card_serial: case.card_serial.clone(),
                r#type: case.certificate_type as i32,
                subject_resident_ids: case.subject_resident_ids.clone(),
                include_relationship: true,
                include_domicile: i % 3 == 0,
                include_personal_number: false,
                fiscal_year: case.fiscal_year,
                copies: 1,
            };
            let started = std::time::Instant::now();
            let routed = router.issue(req.clone()).await;
            let at = routed.centre.as_str();
            match routed.result {
                Ok(resp) => {
                    let path = pdf_dir.join(format!("{:02}-{}.pdf", i, case.name));
                    std::fs::write(&path, &resp.pdf)?;
                    written += 1;
                    println!(
                        "  {:<28} issued at {at} {} ({} sheet(s), {} yen, {} KiB, {:.1?}) -> {}",
                        case.name,
                        resp.certificate_id,
                        resp.sheets,
                        resp.fee_yen,
                        resp.pdf.len() / 1024,
                        started.elapsed(),
                        path.display()
                    );
                    if written == 1 {
                        // The kiosk's answer was lost, say, and the vendor retries at the *other* centre.
                        let (other, other_url) =
                            if routed.centre == CentreName::East { ("west", &west_url) } else { ("east", &east_url) };
                        let identity = if *centre == Centre::East { "centre-east" } else { "centre-west" };
                        let mut client = IssuanceClient::new(as_identity(identity).connect(other_url).await?)
                            .max_decoding_message_size(64 << 20);
                        let again = client.issue(req).await?.into_inner();
                        if !(again.replayed && again.pdf == resp.pdf) {
                            return Err("a request retried at the other centre must return the same certificate".into());
                        }
                        println!(
                            "  {:<28} same request_id retried at {other}: same certificate, replayed=true, charged once",
                            ""
                        );
                    }
                    if let Expect::Refuse(reason) = case.expect {
                        println!("  !! expected refusal {reason} but the certificate was issued");
                    }
                }
                Err(status) => {
                    let reason = tonic_types::StatusExt::get_error_details(&status)
                        .error_info()
                        .map(|i| i.reason.clone())
                        .unwrap_or_default();
                    println!("  {:<28} refused at {at} {:<22} {}", case.name, reason, status.message());
                }
            }
        }
        println!("\nwrote {written} certificate PDFs to {}", std::fs::canonicalize(&pdf_dir)?.display());
        same_history(&as_identity("auditor"), &east_url, &west_url).await?;
        let _ = stop.send(());
        for server in servers {
            server.await??;
        }
        Ok::<_, Box<dyn std::error::Error + Send + Sync>>(())
    });
    // The replication tasks between the centres end with the runtime.
    runtime.shutdown_timeout(Duration::from_secs(2));
    result
}

fn box_error(e: impl std::error::Error + Send + Sync + 'static) -> Box<dyn std::error::Error + Send + Sync> {
    Box::new(e)
}

fn describe(engine: &Arc<Engine>) -> String {
    engine.replication().map_or_else(|| "alone".into(), |r| r.describe())
}

fn demo_settings(code: &str) -> MunicipalitySettings {
    MunicipalitySettings {
        // Every type: the demo shows each kind of certificate and refusal.
        enabled_types: bcl_projections::eligibility::ALL_TYPES.iter().map(|t| *t as i32).collect(),
        personal_number_allowed: Some(true),
        ..bcl_fixtures::municipality_settings(code)
    }
}

/// What an auditor checks first: both centres publish a signed tree head of the same size and root. The
/// follower applies the last acknowledged leaves a moment after the primary publishes them, so wait (briefly,
/// bounded) for the sizes to meet.
async fn same_history(
    auditor: &ClientAuth,
    east_url: &str,
    west_url: &str,
) -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
    let mut east = AuditClient::new(auditor.connect(east_url).await?);
    let mut west = AuditClient::new(auditor.connect(west_url).await?);
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    loop {
        let e = east.get_checkpoint(GetCheckpointRequest {}).await?.into_inner();
        let w = west.get_checkpoint(GetCheckpointRequest {}).await?.into_inner();
        if e.tree_size == w.tree_size {
            if e.root_hash != w.root_hash {
                return Err(format!("East and West disagree at tree size {}", e.tree_size).into());
            }
            println!("East and West hold the same history: {} leaves, root {}", e.tree_size, hex::encode(&e.root_hash));
            return Ok(());
        }
        if std::time::Instant::now() > deadline {
            return Err(format!("tree sizes did not meet: East {} West {}", e.tree_size, w.tree_size).into());
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
