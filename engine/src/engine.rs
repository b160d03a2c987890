//! The engine: one log, its projection, the writer, and the operations the gRPC services expose.
//! The services (`server/`) only decode, call one method here, and encode.

use crate::audit::log::AuditLog;
use crate::audit::note::NoteSigner;
use crate::clock::Clock;
use crate::error::EngineError;
use crate::projection::Projection;
use crate::secrets::MasterSecret;
use crate::storage::{LogStore, SledStore};
use crate::writer::{AppendOutcome, Command, Writer};
use bcl_proto::{ChangeEvent, LogLeaf};
use prost::Message;
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};
use tokio::sync::watch;

/// Largest number of events accepted in one Append request.
pub const MAX_EVENTS_PER_APPEND: usize = 10_000;

pub struct EngineConfig {
    pub data_dir: PathBuf,
    pub clock: Clock,
    /// Fonts used to render certificates; `None` = the project's default fonts.
    pub fonts: Option<crate::render::FontPaths>,
}

pub struct Engine {
    pub(crate) store: Arc<dyn LogStore>,
    pub(crate) projection: Arc<RwLock<Projection>>,
    pub(crate) writer: Writer,
    pub(crate) audit: Arc<AuditLog>,
    pub(crate) durable_len: watch::Receiver<u64>,
    /// The size whose writers have been answered: equal to `durable_len` for a single engine; behind it on
    /// a replicated primary until the follower holds the leaves. What public readers may see.
    pub(crate) committed_len: watch::Receiver<u64>,
    /// East/West replication, when configured.
    pub(crate) replication: Option<Arc<crate::replication::Replication>>,
    pub(crate) clock: Clock,
    pub(crate) renderer: Arc<crate::render::Renderer>,
    pub(crate) secret: MasterSecret,
    pub(crate) cache: crate::issuance::CertificateCache,
    data_dir: PathBuf,
}

impl Engine {
    /// Opens the data directory, rebuilds the projection by folding the whole log, and starts the writer.
    pub fn open(config: EngineConfig) -> Result<Arc<Engine>, EngineError> {
        std::fs::create_dir_all(&config.data_dir)
            .map_err(|e| EngineError::Internal(format!("cannot create data directory: {e}")))?;
        let store: Arc<dyn LogStore> = Arc::new(SledStore::open(&config.data_dir.join("log"))?);
        let secret = MasterSecret::load_or_create(&config.data_dir)
            .map_err(|e| EngineError::Internal(format!("cannot load the scramble master secret: {e}")))?;
        let signer = crate::audit::log::load_or_create_signer(&config.data_dir)
            .map_err(|e| EngineError::Internal(format!("cannot load the checkpoint signing key: {e}")))?;
        let renderer = match &config.fonts {
            Some(paths) => crate::render::Renderer::load(paths),
            None => crate::render::Renderer::load_default(),
        }
        .map_err(|e| EngineError::Internal(format!("cannot load fonts: {e}")))?;
        Self::with_parts(store, secret, signer, Arc::new(renderer), config.clock, config.data_dir)
    }

    pub fn with_parts(
        store: Arc<dyn LogStore>,
        secret: MasterSecret,
        signer: NoteSigner,
        renderer: Arc<crate::render::Renderer>,
        clock: Clock,
        data_dir: PathBuf,
    ) -> Result<Arc<Engine>, EngineError> {
        let projection = rebuild(store.as_ref())?;
        Self::assemble(store, projection, secret, signer, renderer, clock, data_dir, None)
    }

    /// Opens a data directory as one of two replicated centres (East/West): agrees with the other centre
    /// who sequences the log (discarding a never-acknowledged tail if the other centre took over while
    /// this one was down), then starts. `replication::spawn` starts the background work.
    /// `starting_listener` (the server's bound socket, duplicated) answers the other centre meanwhile.
    pub async fn open_replicated(
        config: EngineConfig,
        replication: crate::replication::ReplicationConfig,
        starting_listener: Option<&std::net::TcpListener>,
    ) -> Result<Arc<Engine>, EngineError> {
        std::fs::create_dir_all(&config.data_dir)
            .map_err(|e| EngineError::Internal(format!("cannot create data directory: {e}")))?;
        let store: Arc<dyn LogStore> = Arc::new(SledStore::open(&config.data_dir.join("log"))?);
        let secret = MasterSecret::load_or_create(&config.data_dir)
            .map_err(|e| EngineError::Internal(format!("cannot load the scramble master secret: {e}")))?;
        let signer = crate::audit::log::load_or_create_signer(&config.data_dir)
            .map_err(|e| EngineError::Internal(format!("cannot load the checkpoint signing key: {e}")))?;
        let renderer = match &config.fonts {
            Some(paths) => crate::render::Renderer::load(paths),
            None => crate::render::Renderer::load_default(),
        }
        .map_err(|e| EngineError::Internal(format!("cannot load fonts: {e}")))?;
        let mut projection = rebuild(store.as_ref())?;
        // Answer the other centre's status questions while deciding, so two centres starting together agree.
        let (stop_starting, starting) = tokio::sync::oneshot::channel::<()>();
        let mut starting_server = None;
        if let Some(listener) = &starting_listener {
            let service = crate::replication::service::StartingService {
                status: crate::replication::service::starting_status(&replication, &projection, secret.fingerprint()),
            };
            let listener = tokio::net::TcpListener::from_std(listener.try_clone().map_err(io_error)?).map_err(io_error)?;
            // Every other call is answered UNAVAILABLE ("starting"), so a kiosk router moves on instead of
            // taking the missing service for a broken server (UNIMPLEMENTED).
            let mut routes = tonic::service::Routes::new(bcl_proto::replication_server::ReplicationServer::new(service));
            let router = std::mem::take(routes.axum_router_mut());
            *routes.axum_router_mut() = router.fallback(|| async {
                (
                    [("content-type", "application/grpc"), ("grpc-status", "14"), ("grpc-message", "starting")],
                    (),
                )
            });
            starting_server = Some(tokio::spawn(
                tonic::transport::Server::builder()
                    .add_routes(routes)
                    .serve_with_incoming_shutdown(tokio_stream::wrappers::TcpListenerStream::new(listener), async {
                        let _ = starting.await;
                    }),
            ));
        }
        let start =
            crate::replication::rejoin::decide(store.as_ref(), &projection, &replication, &config.data_dir, &secret.fingerprint())
                .await;
        let _ = stop_starting.send(());
        // No connection may reach the start-up service once the real one answers on the same socket.
        if let Some(server) = starting_server {
            let _ = tokio::time::timeout(std::time::Duration::from_secs(2), server).await;
        }
        let start = start?;
        if start.discarded > 0 {
            projection = rebuild(store.as_ref())?;
        }
        let engine = Self::assemble(
            store,
            projection,
            secret,
            signer,
            Arc::new(renderer),
            config.clock,
            config.data_dir,
            Some((replication, start.clone())),
        )?;
        if let (Some(mode), Some(r)) = (start.marker, engine.replication.as_ref()) {
            crate::replication::record_start(&engine, r, start.epoch, mode).await?;
        }
        Ok(engine)
    }

    #[allow(clippy::too_many_arguments)]
    fn assemble(
        store: Arc<dyn LogStore>,
        projection: Projection,
        secret: MasterSecret,
        signer: NoteSigner,
        renderer: Arc<crate::render::Renderer>,
        clock: Clock,
        data_dir: PathBuf,
        replication: Option<(crate::replication::ReplicationConfig, crate::replication::rejoin::Start)>,
    ) -> Result<Arc<Engine>, EngineError> {
        let audit = Arc::new(AuditLog::open(store.as_ref(), signer)?);
        let (durable_tx, durable_len) = watch::channel(store.len());
        let projection = Arc::new(RwLock::new(projection));
        let (replication, committed_len, replicated) = match replication {
            None => (None, durable_len.clone(), None),
            Some((config, start)) => {
                let (committed_tx, committed_len) = watch::channel(store.len());
                let publish = audit.clone();
                let mode = match start.role {
                    crate::replication::Role::Primary { mode, .. } => mode,
                    _ => crate::commit_gate::GateMode::Sync,
                };
                let gate = Arc::new(crate::commit_gate::CommitGate::new(mode, store.len(), move |size| {
                    publish.publish_up_to(size);
                    committed_tx.send_replace(size);
                }));
                // A primary holds its checkpoints back until the follower holds their leaves.
                audit.set_gated(matches!(start.role, crate::replication::Role::Primary { .. }));
                let r = Arc::new(crate::replication::Replication::new(config, gate.clone(), start.role, start.epoch)?);
                let replicated = crate::writer::Replicated { gate, sequencing: r.sequencing.clone() };
                (Some(r), committed_len, Some(replicated))
            }
        };
        let writer = Writer::start(store.clone(), projection.clone(), audit.clone(), durable_tx, replicated);
        Ok(Arc::new(Engine {
            store,
            projection,
            writer,
            audit,
            durable_len,
            committed_len,
            replication,
            clock,
            renderer,
            secret,
            cache: crate::issuance::CertificateCache::new(256 * 1024 * 1024),
            data_dir,
        }))
    }

    pub fn data_dir(&self) -> &Path {
        &self.data_dir
    }

    pub fn clock(&self) -> &Clock {
        &self.clock
    }

    /// Durable size of the log.
    pub fn log_len(&self) -> u64 {
        self.store.len()
    }

    /// A receiver that changes whenever the committed log grows (for `ReadLog(follow)`).
    pub fn subscribe_len(&self) -> watch::Receiver<u64> {
        self.committed_len.clone()
    }

    /// A receiver of the durable size (ahead of the committed size on a replicated primary).
    pub fn subscribe_durable(&self) -> watch::Receiver<u64> {
        self.durable_len.clone()
    }

    /// Reads committed leaves: on a replicated primary, never a leaf a failover could still discard.
    pub fn read_log(&self, from: u64, limit: usize) -> Result<Vec<(u64, Vec<u8>)>, EngineError> {
        let committed = *self.committed_len.borrow();
        let limit = limit.min(committed.saturating_sub(from) as usize);
        Ok(self.store.read(from, limit)?)
    }

    /// East/West replication state, when this engine is one of two centres.
    pub fn replication(&self) -> Option<&Arc<crate::replication::Replication>> {
        self.replication.as_ref()
    }

    /// The replication of a centre that does not sequence the log now (its writes go to the primary).
    pub(crate) fn follower(&self) -> Option<&Arc<crate::replication::Replication>> {
        self.replication.as_ref().filter(|r| !r.is_sequencing())
    }

    /// Appends change events atomically and durably (the data link, `Ingest.Append`).
    pub async fn append(&self, events: Vec<ChangeEvent>) -> Result<AppendOutcome, EngineError> {
        crate::ingest::validate_batch(&events)?;
        if let Some(r) = self.follower() {
            return r.forward_append(events).await;
        }
        let at = self.clock.now().to_rfc3339();
        self.writer.submit(|reply| Command::Append { events, at, reply }).await
    }

    pub fn municipality_status(&self, code: &str) -> Result<bcl_proto::MunicipalityStatus, EngineError> {
        let proj = self.projection.read().expect("projection lock");
        proj.state.status(code).ok_or_else(|| EngineError::NotFound(format!("municipality {code}")))
    }
}

fn io_error(e: std::io::Error) -> EngineError {
    EngineError::Internal(format!("listener: {e}"))
}

/// Folds every durable leaf, in order. A leaf that does not decode means the log is damaged: refuse to
/// start rather than serve certificates from a partial history.
fn rebuild(store: &dyn LogStore) -> Result<Projection, EngineError> {
    const CHUNK: usize = 8192;
    let mut projection = Projection::default();
    let len = store.len();
    let mut from = 0;
    while from < len {
        let chunk = store.read(from, CHUNK)?;
        if chunk.is_empty() {
            return Err(crate::storage::StorageError::Corrupt { position: from, what: "leaf missing" }.into());
        }
        for (position, bytes) in chunk {
            if position != projection.leaf_count {
                return Err(crate::storage::StorageError::Corrupt { position, what: "positions out of order" }.into());
            }
            let leaf = LogLeaf::decode(bytes.as_slice())
                .map_err(|_| crate::storage::StorageError::Corrupt { position, what: "leaf does not decode" })?;
            projection.apply(&leaf);
            from = position + 1;
        }
    }
    Ok(projection)
}
