//! Thin gRPC handlers: decode, call the engine, encode.

use super::status::to_status;
use crate::engine::Engine;
use bcl_proto::{
    admin_server::Admin, audit_server::Audit, ingest_server::Ingest, issuance_server::Issuance, Ack, AppendRequest,
    AppendResponse, Checkpoint, ConsistencyProofRequest, GetCheckpointRequest, InclusionProofRequest, IssueRequest,
    IssueResponse, ListTransactionsRequest, LogEntry, MunicipalityRef, MunicipalitySettings, MunicipalityStatus,
    Proof, ReadLogRequest, ReproduceRequest, SetIssuanceBlockRequest, SetMaintenanceRequest, Settlement,
    SettlementRequest, Transaction,
};
use std::pin::Pin;
use std::sync::Arc;
use tokio_stream::Stream;
use tonic::{Request, Response, Status};

type Result<T> = std::result::Result<Response<T>, Status>;
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
        let outcome = self.engine.append(request.into_inner().events).await.map_err(to_status)?;
        Ok(Response::new(AppendResponse {
            first_position: outcome.positions.first().copied().unwrap_or_default(),
            last_position: outcome.positions.last().copied().unwrap_or_default(),
            positions: outcome.positions,
        }))
    }

    async fn get_municipality_status(&self, request: Request<MunicipalityRef>) -> Result<MunicipalityStatus> {
        self.engine.municipality_status(&request.into_inner().municipality_code).map(Response::new).map_err(to_status)
    }
}

#[tonic::async_trait]
impl Issuance for Services {
    async fn issue(&self, request: Request<IssueRequest>) -> Result<IssueResponse> {
        let (engine, req) = (self.engine.clone(), request.into_inner());
        let work = async move { engine.issue(req).await };
        crate::shed::run(self.admission.as_deref(), work).await.map(Response::new).map_err(to_status)
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
        self.engine.set_maintenance(request.into_inner()).await.map(Response::new).map_err(to_status)
    }

    async fn set_issuance_block(&self, request: Request<SetIssuanceBlockRequest>) -> Result<Ack> {
        self.engine.set_issuance_block(request.into_inner()).await.map(|()| Response::new(Ack {})).map_err(to_status)
    }

    async fn update_settings(&self, request: Request<MunicipalitySettings>) -> Result<MunicipalitySettings> {
        self.engine.update_settings(request.into_inner()).await.map(Response::new).map_err(to_status)
    }

    async fn get_settings(&self, request: Request<MunicipalityRef>) -> Result<MunicipalitySettings> {
        self.engine.settings(&request.into_inner().municipality_code).map(Response::new).map_err(to_status)
    }

    async fn list_transactions(&self, request: Request<ListTransactionsRequest>) -> Result<Self::ListTransactionsStream> {
        let transactions = self.engine.list_transactions(&request.into_inner()).map_err(to_status)?;
        Ok(Response::new(Box::pin(tokio_stream::iter(transactions.into_iter().map(Ok)))))
    }

    async fn get_settlement(&self, request: Request<SettlementRequest>) -> Result<Settlement> {
        self.engine.settlement(&request.into_inner()).map(Response::new).map_err(to_status)
    }

    async fn lookup_resident(&self, request: Request<bcl_proto::LookupResidentRequest>) -> Result<bcl_proto::ResidentView> {
        self.engine.lookup_resident(&request.into_inner()).map(Response::new).map_err(to_status)
    }
}
