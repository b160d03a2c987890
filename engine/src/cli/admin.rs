//! `bcl admin ...`: the municipality's administration (管理者ページ) from the command line, over the same
//! `Admin` gRPC service the web console would use. Every change is a leaf of the log on the server side.

use super::CliResult;
use bcl_proto::{
    admin_client::AdminClient, CertificateType, ListTransactionsRequest, MunicipalityRef, SetIssuanceBlockRequest,
    SetMaintenanceRequest, SettlementRequest,
};
use tonic::transport::Channel;

#[derive(clap::Args)]
pub struct Args {
    /// The server (gRPC URL).
    #[arg(long, default_value = "http://127.0.0.1:50051", global = true)]
    pub server: String,
    /// The municipality (6-digit local government code).
    #[arg(long, default_value = "131016", global = true)]
    pub code: String,
    #[command(flatten)]
    pub tls: super::ClientTlsArgs,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(clap::Subcommand)]
pub enum Command {
    /// 取引情報: issuances, optionally within a period (Japan-time dates, inclusive).
    Transactions {
        #[arg(long)]
        from: Option<String>,
        #[arg(long)]
        to: Option<String>,
        #[arg(long, default_value_t = 0)]
        limit: u32,
        /// One JSON object per line instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// The month's settlement (YYYY-MM): certificates per type, BCL fees, store commissions, resident fees.
    Settlement {
        #[arg(long)]
        month: String,
        #[arg(long)]
        json: bool,
    },
    /// The municipality's issuance settings.
    Settings,
    /// Maintenance on or off (off is refused while link data is held back).
    Maintenance {
        #[arg(value_parser = ["on", "off"])]
        state: String,
        #[arg(long, default_value = "")]
        reason: String,
    },
    /// 中間DB参照: what the engine holds for a resident and what each certificate type would answer now.
    Lookup { resident_id: String },
    /// 発行禁止: block or unblock kiosk issuance for a resident.
    Block {
        resident_id: String,
        #[arg(long)]
        unblock: bool,
    },
    /// Crypto-shredding: erase a resident's key so their personal data in the log can never be read again,
    /// and record who did it (a `Forgotten` leaf). Works on the data directory of a STOPPED server.
    Forget {
        #[arg(long, default_value = "./bcl-data")]
        data_dir: std::path::PathBuf,
        #[arg(long)]
        municipality: String,
        #[arg(long)]
        resident: String,
        /// Who asked for the erasure (recorded in the log); defaults to $USER.
        #[arg(long)]
        actor: Option<String>,
        /// Pin the recorded time (RFC 3339), for tests.
        #[arg(long)]
        now: Option<String>,
    },
}

/// `bcl admin forget`: offline, because the contract's Admin service has no erasure RPC. The engine is
/// opened on the data directory like `bcl serve` would (so a running server's lock refuses it), the
/// `Forgotten` leaf is appended through the writer, and its fold erases the keys.
fn forget(
    data_dir: std::path::PathBuf,
    municipality: &str,
    resident: &str,
    actor: Option<String>,
    now: Option<String>,
) -> CliResult {
    let actor = actor.or_else(|| std::env::var("USER").ok()).unwrap_or_else(|| "operator".to_owned());
    let clock = match &now {
        Some(t) => crate::clock::Clock::fixed(t)?,
        None => crate::clock::Clock::System,
    };
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    let engine = crate::engine::Engine::open(crate::engine::EngineConfig { data_dir, clock, fonts: None, render: Default::default() })
        .map_err(|e| format!("cannot open the data directory (stop the server first): {e}"))?;
    let position = runtime.block_on(engine.forget(municipality, resident, &actor))?;
    println!("forgotten: municipality {municipality} resident {resident}, recorded at log position {position}");
    Ok(())
}

fn type_name(t: i32) -> &'static str {
    CertificateType::try_from(t).map_or("UNKNOWN", |t| t.as_str_name())
}

pub fn run(args: Args) -> CliResult {
    if let Command::Forget { data_dir, municipality, resident, actor, now } = args.command {
        return forget(data_dir, &municipality, &resident, actor, now);
    }
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    runtime.block_on(async move {
        // An https:// server is reached as the municipality's admin (admin-CODE) unless --identity says otherwise.
        let channel: Channel = args.tls.connect(&args.server, &format!("admin-{}", args.code)).await?;
        let mut client = AdminClient::new(channel);
        let code = args.code.clone();
        match args.command {
            Command::Transactions { from, to, limit, json } => {
                let req = ListTransactionsRequest {
                    municipality_code: code,
                    from_date: from.unwrap_or_default(),
                    to_date: to.unwrap_or_default(),
                    limit,
                };
                let mut stream = client.list_transactions(req).await?.into_inner();
                if !json {
                    println!("{:<25} {:<4} {:<12} {:<26} {:>6} {:>6} {:>6} {:>7} outcome", "issued_at", "ctr", "kiosk", "type", "copies", "fee", "bcl", "store");
                }
                while let Some(t) = stream.message().await? {
                    let centre = bcl_proto::Centre::try_from(t.centre).map_or("?", |c| c.as_str_name());
                    if json {
                        let row = serde_json::json!({
                            "issuedAt": t.issued_at, "centre": centre, "kioskId": t.kiosk_id,
                            "type": type_name(t.r#type), "certificateId": t.certificate_id, "requestId": t.request_id,
                            "copies": t.copies, "sheets": t.sheets, "feeYen": t.fee_yen, "bclFeeYen": t.bcl_fee_yen,
                            "storeCommissionYen": t.store_commission_yen, "outcome": t.outcome, "logPosition": t.log_position,
                        });
                        println!("{row}");
                    } else {
                        println!(
                            "{:<25} {:<4} {:<12} {:<26} {:>6} {:>6} {:>6} {:>7} {}",
                            t.issued_at, centre, t.kiosk_id, type_name(t.r#type), t.copies, t.fee_yen, t.bcl_fee_yen, t.store_commission_yen, t.outcome
                        );
                    }
                }
            }
            Command::Settlement { month, json } => {
                let s = client.get_settlement(SettlementRequest { municipality_code: code, month }).await?.into_inner();
                if json {
                    let per_type: Vec<_> = s
                        .per_type
                        .iter()
                        .map(|e| serde_json::json!({
                            "type": type_name(e.r#type), "issuances": e.issuances, "certificates": e.certificates,
                            "bclFeeYen": e.bcl_fee_yen, "storeCommissionYen": e.store_commission_yen, "residentFeesYen": e.resident_fees_yen,
                        }))
                        .collect();
                    let row = serde_json::json!({
                        "municipalityCode": s.municipality_code, "month": s.month, "certificates": s.certificates,
                        "disasterCertificates": s.disaster_certificates, "bclFeeYen": s.bcl_fee_yen,
                        "storeCommissionYen": s.store_commission_yen, "residentFeesYen": s.resident_fees_yen, "perType": per_type,
                    });
                    println!("{row}");
                } else {
                    println!("{} {}", s.municipality_code, s.month);
                    println!("{:<26} {:>9} {:>12} {:>10} {:>12} {:>13}", "type", "issuances", "certificates", "bcl_fee", "store_comm", "resident_fees");
                    for e in &s.per_type {
                        println!(
                            "{:<26} {:>9} {:>12} {:>10} {:>12} {:>13}",
                            type_name(e.r#type), e.issuances, e.certificates, e.bcl_fee_yen, e.store_commission_yen, e.resident_fees_yen
                        );
                    }
                    println!(
                        "{:<26} {:>9} {:>12} {:>10} {:>12} {:>13}",
                        "total", "", s.certificates, s.bcl_fee_yen, s.store_commission_yen, s.resident_fees_yen
                    );
                }
            }
            Command::Settings => {
                let s = client.get_settings(MunicipalityRef { municipality_code: code }).await?.into_inner();
                println!("{}", serde_json::json!({
                    "municipalityCode": s.municipality_code, "municipalityName": s.municipality_name,
                    "mayorTitle": s.mayor_title, "mayorName": s.mayor_name,
                    "enabledTypes": s.enabled_types.iter().map(|t| type_name(*t)).collect::<Vec<_>>(),
                    "personalNumberAllowed": s.personal_number_allowed,
                    "fees": s.fees.iter().map(|f| serde_json::json!({"type": type_name(f.r#type), "feeYen": f.fee_yen})).collect::<Vec<_>>(),
                    "serviceStart": s.service_start, "serviceEnd": s.service_end,
                }));
            }
            Command::Maintenance { state, reason } => {
                let s = client
                    .set_maintenance(SetMaintenanceRequest { municipality_code: code, on: state == "on", reason })
                    .await?
                    .into_inner();
                let state = bcl_proto::MunicipalityState::try_from(s.state).map_or("?", |m| m.as_str_name());
                println!("{} {state} applied_seq={} received_seq={} backlog={}", s.municipality_code, s.applied_seq, s.received_seq, s.backlog);
            }
            Command::Lookup { resident_id } => {
                let v = client
                    .lookup_resident(bcl_proto::LookupResidentRequest { municipality_code: code, resident_id })
                    .await?
                    .into_inner();
                let eligibility: Vec<_> = v
                    .eligibility
                    .iter()
                    .map(|e| serde_json::json!({"type": type_name(e.r#type), "issuable": e.issuable, "reason": e.reason, "message": e.message}))
                    .collect();
                println!("{}", serde_json::json!({
                    "residentId": v.resident_id, "householdId": v.household_id, "familyName": v.family_name,
                    "givenName": v.given_name, "birthDate": v.birth_date, "address": v.address, "status": v.status,
                    "householdHead": v.household_head, "supportMeasure": v.support_measure,
                    "issuanceBlocked": v.issuance_blocked, "gaijiPending": v.gaiji_pending,
                    "sealRegistered": v.seal_registered, "taxYears": v.tax_years, "familyRegisterId": v.family_register_id,
                    "cards": v.cards, "damageRecords": v.damage_records, "sourcePositions": v.source_positions,
                    "eligibility": eligibility,
                }));
            }
            Command::Block { resident_id, unblock } => {
                client
                    .set_issuance_block(SetIssuanceBlockRequest { municipality_code: code, resident_id, blocked: !unblock })
                    .await?;
                println!("{}", if unblock { "unblocked" } else { "blocked" });
            }
            Command::Forget { .. } => unreachable!("handled offline above"),
        }
        Ok(())
    })
}
