//! `bcl demo`: the whole path on an embedded default, for a newcomer. Generates a fixture municipality,
//! starts a real server on a free local port with a fresh data directory, appends the change events over
//! gRPC, configures issuance, issues a certificate for every fixture case (and shows the refusals), checks a
//! retry is idempotent, and writes the PDFs to a folder it prints. Everything goes over mutual TLS with the
//! certificates `bcl certs init` makes (in `<out>/tls`): the link appends, the municipality's admin
//! configures, each exchange centre issues with its own certificate.

use super::CliResult;
use crate::clock::Clock;
use crate::engine::{Engine, EngineConfig};
use crate::server::tls::ClientAuth;
use crate::server::ServeOptions;
use bcl_fixtures::{Expect, Spec};
use bcl_proto::{
    admin_client::AdminClient, ingest_client::IngestClient, issuance_client::IssuanceClient, AppendRequest, Centre,
    CertificateType, IssueRequest, MunicipalityRef, MunicipalitySettings,
};
use std::path::PathBuf;

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
    std::fs::create_dir_all(&args.out)?;
    let tls_dir = args.out.join("tls");
    super::certs::init(&tls_dir, std::slice::from_ref(&spec.municipality_code), &[], true)?;
    let engine = Engine::open(EngineConfig { data_dir: data_dir.clone(), clock, fonts: None })?;
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    runtime.block_on(async move {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
        let options = ServeOptions { tls_dir: Some(tls_dir.clone()), ..ServeOptions::default() };
        let server = tokio::spawn(crate::server::serve_with(
            engine,
            listener,
            async {
                let _ = stop_rx.await;
            },
            options,
        ));
        let url = format!("https://{addr}");
        println!(
            "engine listening on {addr}, mutual TLS (certificates in {}, data in {})",
            tls_dir.display(),
            data_dir.display()
        );
        let code = spec.municipality_code.clone();
        let as_identity = |name: String| ClientAuth::tls(&tls_dir, name);

        let mut ingest = IngestClient::new(as_identity(format!("link-{code}")).connect(&url).await?);
        let started = std::time::Instant::now();
        for chunk in municipality.events.chunks(1000) {
            ingest.append(AppendRequest { events: chunk.to_vec() }).await?;
        }
        let status =
            ingest.get_municipality_status(MunicipalityRef { municipality_code: code.clone() }).await?.into_inner();
        println!(
            "appended {} change events of municipality {code} in {:.0?}: applied_seq {} state {:?}",
            municipality.events.len(),
            started.elapsed(),
            status.applied_seq,
            bcl_proto::MunicipalityState::try_from(status.state).unwrap_or_default()
        );

        let mut admin = AdminClient::new(as_identity(format!("admin-{code}")).connect(&url).await?);
        admin
            .update_settings(MunicipalitySettings {
                municipality_code: code.clone(),
                municipality_name: "東京都千代田区".into(),
                mayor_title: "千代田区長".into(),
                enabled_types: [
                    CertificateType::ResidentRecord,
                    CertificateType::ResidentRecordItems,
                    CertificateType::SealRegistration,
                    CertificateType::TaxAssessment,
                    CertificateType::Income,
                    CertificateType::FamilyRegister,
                    CertificateType::FamilyRegisterPersonal,
                    CertificateType::FamilyRegisterAnnex,
                    CertificateType::DisasterDamage,
                ]
                .into_iter()
                .map(|t| t as i32)
                .collect(),
                mayor_name: "千代田　太郎".into(),
                personal_number_allowed: Some(true),
                ..Default::default()
            })
            .await?;

        // Each centre issues with its own certificate: a centre may only issue as itself.
        let mut east = IssuanceClient::new(as_identity("centre-east".into()).connect(&url).await?)
            .max_decoding_message_size(64 << 20);
        let mut west = IssuanceClient::new(as_identity("centre-west".into()).connect(&url).await?)
            .max_decoding_message_size(64 << 20);
        let pdf_dir = args.out.clone();
        let mut written = 0;
        for (i, case) in municipality.cases.iter().enumerate() {
            let req = IssueRequest {
                request_id: format!("demo-{}-{i}", case.name),
                centre: if i % 2 == 0 { Centre::East } else { Centre::West } as i32,
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
            let issuance = if i % 2 == 0 { &mut east } else { &mut west };
            match issuance.issue(req.clone()).await {
                Ok(resp) => {
                    let resp = resp.into_inner();
                    let path = pdf_dir.join(format!("{:02}-{}.pdf", i, case.name));
                    std::fs::write(&path, &resp.pdf)?;
                    written += 1;
                    println!(
                        "  {:<28} issued {} ({} sheet(s), {} yen, {} KiB, {:.1?}) -> {}",
                        case.name,
                        resp.certificate_id,
                        resp.sheets,
                        resp.fee_yen,
                        resp.pdf.len() / 1024,
                        started.elapsed(),
                        path.display()
                    );
                    if written == 1 {
                        let again = issuance.issue(req).await?.into_inner();
                        assert!(
                            again.replayed && again.pdf == resp.pdf,
                            "a retried request must return the same certificate"
                        );
                        println!(
                            "  {:<28} retry of the same request_id: same certificate, replayed=true, charged once",
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
                    println!("  {:<28} refused {:<22} {}", case.name, reason, status.message());
                }
            }
        }
        println!("\nwrote {written} certificate PDFs to {}", std::fs::canonicalize(&pdf_dir)?.display());
        let _ = stop_tx.send(());
        server.await??;
        Ok(())
    })
}
