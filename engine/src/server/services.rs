//! Thin gRPC handlers: decode, check the caller's scope (municipality, centre), call the engine, encode.

use super::auth::{Caller, Role};
use super::guard::{caller_of, outside_scope};
use super::status::to_status;
use super::telemetry as t;
use crate::engine::Engine;
use bcl_proto::{
    admin_server::Admin, audit_server::Audit, ingest_server::Ingest, issuance_server::Issuance, Ack, AppendRequest,
    AppendResponse, Checkpoint, ConsistencyProofRequest, GetCheckpointRequest, InclusionProofRequest, IssueRequest,
    IssueResponse, ListTransactionsRequest, LogEntry, MunicipalityRef, MunicipalitySettings, MunicipalityStatus, Proof,
    ReadLogRequest, ReproduceRequest, SetIssuanceBlockRequest, SetMaintenanceRequest, Settlement, SettlementRequest,
    Transaction,
};
use std::pin::Pin;
use std::sync::Arc;
use tokio_stream::Stream;
use tonic::{Request, Response, Status};

type Result<T> = std::result::Result<Response<T>, Status>;

/// The caller of `request`, refused unless it may act, in `role`, for municipality `code`.
fn scoped<T>(request: &Request<T>, role: Role, code: &str) -> std::result::Result<Caller, Status> {
    let caller = caller_of(request)?;
    if caller.may_act_for(role, code) {
        Ok(caller)
    } else {
        Err(outside_scope(&caller, &format!("municipality {code}")))
    }
}

fn centre_name(centre: i32) -> &'static str {
    match bcl_proto::Centre::try_from(centre) {
        Ok(bcl_proto::Centre::East) => "east",
        Ok(bcl_proto::Centre::West) => "west",
        _ => "unspecified",
    }
}

fn type_name(t: i32) -> &'static str {
    bcl_proto::CertificateType::try_from(t).map_or("UNKNOWN", |t| t.as_str_name())
}

/// The outcome label of an Issue: `issued`, `replayed`, or the ErrorInfo reason of the refusal.
fn outcome_of(result: &std::result::Result<IssueResponse, Status>) -> String {
    match result {
        Ok(r) if r.replayed => "replayed".into(),
        Ok(_) => "issued".into(),
        Err(status) => {
            use tonic_types::StatusExt;
            status.get_error_details().error_info().map_or_else(|| format!("{:?}", status.code()), |i| i.reason.clone())
        }
    }
}
type BoxStream<T> = Pin<Box<dyn Stream<Item = std::result::Result<T, Status>> + Send + 'static>>;

#[derive(Clone)]
pub struct Services {
    pub engine: Arc<Engine>,
    /// Load shedding for Issue (`shed.rs`); `None` admits everything.
    pub admission: Option<Arc<crate::shed::Admission>>,
}

#[tonic::async_trait]
impl Ingest for Services {
    async fn append(&self, request: Request<AppendRequest>) -> Result<AppendResponse> {
        let caller = caller_of(&request)?;
        // Every event of the batch must belong to a municipality of the link: checked before anything is
        // written, so a batch is refused whole.
        if let Some(ev) =
            request.get_ref().events.iter().find(|ev| !caller.may_act_for(Role::Link, &ev.municipality_code))
        {
            return Err(outside_scope(&caller, &format!("municipality {}", ev.municipality_code)));
        }
        let events = request.into_inner().events;
        let count = events.len() as u64;
        let result = self.engine.append(events).await;
        metrics::counter!(t::APPEND_EVENTS, "outcome" => if result.is_ok() { "accepted" } else { "refused" })
            .increment(count);
        let outcome = result.map_err(to_status)?;
        Ok(Response::new(AppendResponse {
            first_position: outcome.positions.first().copied().unwrap_or_default(),
            last_position: outcome.positions.last().copied().unwrap_or_default(),
            positions: outcome.positions,
        }))
    }

    async fn get_municipality_status(&self, request: Request<MunicipalityRef>) -> Result<MunicipalityStatus> {
        scoped(&request, Role::Link, &request.get_ref().municipality_code)?;
        self.engine.municipality_status(&request.into_inner().municipality_code).map(Response::new).map_err(to_status)
    }
}

#[tonic::async_trait]
impl Issuance for Services {
    async fn issue(&self, request: Request<IssueRequest>) -> Result<IssueResponse> {
        let caller = caller_of(&request)?;
        let centre = centre_name(request.get_ref().centre);
        // An unknown centre value is the engine's INVALID_REQUEST, not a permission question.
        if centre != "unspecified" && !caller.may_issue_as(centre) {
            return Err(outside_scope(&caller, &format!("centre {centre}")));
        }
        let kind = type_name(request.get_ref().r#type);
        let started = std::time::Instant::now();
        let (engine, req) = (self.engine.clone(), request.into_inner());
        let work = move |slot| async move { engine.issue_admitted(req, slot).await };
        let result = crate::shed::run(self.admission.as_deref(), work).await.map_err(to_status);
        let outcome = outcome_of(&result);
        if result.is_err() {
            metrics::counter!(t::REFUSALS, "reason" => outcome.clone()).increment(1);
        }
        let labels = [("centre", centre.to_string()), ("type", kind.to_string()), ("outcome", outcome)];
        metrics::histogram!(t::ISSUE_DURATION, &labels).record(started.elapsed());
        metrics::counter!(t::ISSUE_REQUESTS, &labels).increment(1);
        tracing::debug!(centre, r#type = kind, outcome = %labels[2].1, "issue");
        result.map(Response::new)
    }
}

#[tonic::async_trait]
impl Audit for Services {
    type ReadLogStream = BoxStream<LogEntry>;

    async fn get_checkpoint(&self, _: Request<GetCheckpointRequest>) -> Result<Checkpoint> {
        let signed = self.engine.checkpoint();
        Ok(Response::new(Checkpoint {
            note: signed.note.clone(),
            tree_size: signed.checkpoint.size,
            root_hash: signed.checkpoint.root.to_vec(),
        }))
    }

    async fn get_inclusion_proof(&self, request: Request<InclusionProofRequest>) -> Result<Proof> {
        let req = request.into_inner();
        let hashes = self.engine.inclusion_proof(req.leaf_index, req.tree_size).map_err(to_status)?;
        Ok(Response::new(Proof { hashes: hashes.iter().map(|h| h.to_vec()).collect() }))
    }

    async fn get_consistency_proof(&self, request: Request<ConsistencyProofRequest>) -> Result<Proof> {
        let req = request.into_inner();
        let hashes = self.engine.consistency_proof(req.first_size, req.second_size).map_err(to_status)?;
        Ok(Response::new(Proof { hashes: hashes.iter().map(|h| h.to_vec()).collect() }))
    }

    async fn read_log(&self, request: Request<ReadLogRequest>) -> Result<Self::ReadLogStream> {
        let req = request.into_inner();
        Ok(Response::new(Box::pin(super::read_log::stream(self.engine.clone(), req))))
    }

    async fn reproduce(&self, request: Request<ReproduceRequest>) -> Result<IssueResponse> {
        let id = request.into_inner().certificate_id;
        let engine = self.engine.clone();
        tokio::task::spawn_blocking(move || engine.reproduce(&id))
            .await
            .map_err(|_| Status::internal("reproduction task failed"))?
            .map(Response::new)
            .map_err(to_status)
    }
}

#[tonic::async_trait]
impl Admin for Services {
    type ListTransactionsStream = BoxStream<Transaction>;

    async fn set_maintenance(&self, request: Request<SetMaintenanceRequest>) -> Result<MunicipalityStatus> {
        let caller = scoped(&request, Role::MunicipalityAdmin, &request.get_ref().municipality_code)?;
        let req = request.into_inner();
        tracing::info!(identity = %caller, municipality = %req.municipality_code, on = req.on, "admin: maintenance");
        self.engine.set_maintenance_by(req, &caller.actor()).await.map(Response::new).map_err(to_status)
    }

    async fn set_issuance_block(&self, request: Request<SetIssuanceBlockRequest>) -> Result<Ack> {
        let caller = scoped(&request, Role::MunicipalityAdmin, &request.get_ref().municipality_code)?;
        let req = request.into_inner();
        tracing::info!(identity = %caller, municipality = %req.municipality_code, "admin: issuance block");
        self.engine.set_issuance_block_by(req, &caller.actor()).await.map(|()| Response::new(Ack {})).map_err(to_status)
    }

    async fn update_settings(&self, request: Request<MunicipalitySettings>) -> Result<MunicipalitySettings> {
        let caller = scoped(&request, Role::MunicipalityAdmin, &request.get_ref().municipality_code)?;
        let req = request.into_inner();
        tracing::info!(identity = %caller, municipality = %req.municipality_code, "admin: settings");
        self.engine.update_settings_by(req, &caller.actor()).await.map(Response::new).map_err(to_status)
    }

    async fn get_settings(&self, request: Request<MunicipalityRef>) -> Result<MunicipalitySettings> {
        scoped(&request, Role::MunicipalityAdmin, &request.get_ref().municipality_code)?;
        self.engine.settings(&request.into_inner().municipality_code).map(Response::new).map_err(to_status)
    }

    async fn list_transactions(
        &self,
        request: Request<ListTransactionsRequest>,
    ) -> Result<Self::ListTransactionsStream> {
        scoped(&request, Role::MunicipalityAdmin, &request.get_ref().municipality_code)?;
        let transactions = self.engine.list_transactions(&request.into_inner()).map_err(to_status)?;
        Ok(Response::new(Box::pin(tokio_stream::iter(transactions.into_iter().map(Ok)))))
    }

    async fn get_settlement(&self, request: Request<SettlementRequest>) -> Result<Settlement> {
        scoped(&request, Role::MunicipalityAdmin, &request.get_ref().municipality_code)?;
        self.engine.settlement(&request.into_inner()).map(Response::new).map_err(to_status)
    }

    async fn lookup_resident(
        &self,
        request: Request<bcl_proto::LookupResidentRequest>,
    ) -> Result<bcl_proto::ResidentView> {
        scoped(&request, Role::MunicipalityAdmin, &request.get_ref().municipality_code)?;
        self.engine.lookup_resident(&request.into_inner()).map(Response::new).map_err(to_status)
    }
}
