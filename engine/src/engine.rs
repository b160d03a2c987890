//! The engine: one log, its projection, the writer, and the operations the gRPC services expose.
//! The services (`server/`) only decode, call one method here, and encode.

use crate::audit::log::AuditLog;
use crate::audit::note::NoteSigner;
use crate::clock::Clock;
use crate::error::EngineError;
use crate::projection::Projection;
use crate::secrets::MasterSecret;
use crate::storage::LogStore;
use crate::writer::{AppendOutcome, Command, Writer};
use bcl_proto::ChangeEvent;
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
    /// The render threads (`render_pool`): how many, and at what priority.
    pub render: crate::render_pool::Config,
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
    /// Where certificates are rendered (issuance, replays the cache no longer holds).
    pub(crate) render_pool: crate::render_pool::RenderPool,
    pub(crate) secret: MasterSecret,
    pub(crate) cache: crate::issuance::CertificateCache,
    /// Per-resident keys of the sealed personal data, outside the log (`keystore`).
    pub(crate) keys: Arc<crate::keystore::KeyStore>,
    data_dir: PathBuf,
}

impl Engine {
    /// What every engine opens from its data directory: the log, the scramble master secret, the checkpoint
    /// signing key (each created on first start), and the fonts.
    fn open_parts(
        config: &EngineConfig,
    ) -> Result<(Arc<dyn LogStore>, MasterSecret, NoteSigner, crate::render::Renderer), EngineError> {
        std::fs::create_dir_all(&config.data_dir)
            .map_err(|e| EngineError::Internal(format!("cannot create data directory: {e}")))?;
        let store = crate::storage::open(&config.data_dir.join("log"))?;
        let secret = MasterSecret::load_or_create(&config.data_dir)
            .map_err(|e| EngineError::Internal(format!("cannot load the scramble master secret: {e}")))?;
        let signer = crate::audit::log::load_or_create_signer(&config.data_dir)
            .map_err(|e| EngineError::Internal(format!("cannot load the checkpoint signing key: {e}")))?;
        let renderer = match &config.fonts {
            Some(paths) => crate::render::Renderer::load(paths),
            None => crate::render::Renderer::load_default(),
        }
        .map_err(|e| EngineError::Internal(format!("cannot load fonts: {e}")))?;
        Ok((store, secret, signer, renderer))
    }

    /// Opens the data directory, rebuilds the projection by folding the whole log, and starts the writer.
    pub fn open(config: EngineConfig) -> Result<Arc<Engine>, EngineError> {
        let (store, secret, signer, renderer) = Self::open_parts(&config)?;
        Self::with_parts(store, secret, signer, Arc::new(renderer), config.clock, config.data_dir, config.render)
    }

    /// Opens the key store of a data directory (`<data-dir>/keys`, owner-only).
    pub fn open_keys(data_dir: &Path) -> Result<Arc<crate::keystore::KeyStore>, EngineError> {
        crate::keystore::KeyStore::open(&data_dir.join("keys"))
            .map(Arc::new)
            .map_err(|e| EngineError::Internal(format!("cannot open the key store: {e}")))
    }

    pub fn with_parts(
        store: Arc<dyn LogStore>,
        secret: MasterSecret,
        signer: NoteSigner,
        renderer: Arc<crate::render::Renderer>,
        clock: Clock,
        data_dir: PathBuf,
        render: crate::render_pool::Config,
    ) -> Result<Arc<Engine>, EngineError> {
        let keys = Self::open_keys(&data_dir)?;
        let projection = rebuild(store.as_ref(), &keys)?;
        Self::assemble(store, projection, keys, secret, signer, renderer, render, clock, data_dir, None)
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
        let (store, secret, signer, renderer) = Self::open_parts(&config)?;
        let keys = Self::open_keys(&config.data_dir)?;
        let mut projection = rebuild(store.as_ref(), &keys)?;
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
            let mut builder = tonic::transport::Server::builder();
            if let Some(dir) = &replication.tls_dir {
                let tls = crate::server::tls::server_tls(dir).map_err(|e| EngineError::Internal(format!("TLS: {e}")))?;
                builder = builder.tls_config(tls).map_err(|e| EngineError::Internal(format!("TLS: {e}")))?;
            }
            starting_server = Some(tokio::spawn(
                builder
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
            projection = rebuild(store.as_ref(), &keys)?;
        }
        let engine = Self::assemble(
            store,
            projection,
            keys,
            secret,
            signer,
            Arc::new(renderer),
            config.render,
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
        keys: Arc<crate::keystore::KeyStore>,
        secret: MasterSecret,
        signer: NoteSigner,
        renderer: Arc<crate::render::Renderer>,
        render: crate::render_pool::Config,
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
        if let Some(r) = &replication {
            r.observe_durable(durable_len.clone());
        }
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
            render_pool: crate::render_pool::RenderPool::start(render),
            secret,
            cache: crate::issuance::CertificateCache::new(256 * 1024 * 1024),
            keys,
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
        let has_seal = events.iter().any(|e| matches!(e.body, Some(bcl_proto::change_event::Body::SealRegistered(_))));
        let events = if has_seal {
            // Validation decodes seal images (up to a few seconds of CPU for a 64 MiB request of the largest
            // ones): keep that off the async workers that serve every other caller.
            tokio::task::spawn_blocking(move || crate::ingest::validate_batch(&events).map(|()| events))
                .await
                .map_err(|_| EngineError::Internal("validation task failed".into()))??
        } else {
            crate::ingest::validate_batch(&events)?;
            events
        };
        if let Some(r) = self.follower() {
            return r.forward_append(events).await;
        }
        let at = self.clock.now().to_rfc3339();
        // Personal fields are sealed here, off the writer thread and before any leaf is hashed.
        let prepared = crate::keystore::seal::prepare_events(&self.keys, &events)
            .map_err(|e| EngineError::Internal(format!("cannot seal personal data: {e}")))?;
        self.writer.submit(|reply| Command::Append { events, prepared, at, reply }).await
    }

    /// Crypto-shredding (`bcl admin forget`): records a `Forgotten` leaf, whose fold erases the resident's
    /// keys, so their sealed events become unreadable here and in any engine that folds this log. The
    /// resident must be known to the municipality. Returns the leaf's position.
    pub async fn forget(&self, municipality: &str, resident_id: &str, actor: &str) -> Result<u64, EngineError> {
        let known = {
            let proj = self.projection.read().expect("projection lock");
            proj.state.municipality(municipality).is_some_and(|m| m.resident(resident_id).is_some())
        };
        if !known {
            return Err(EngineError::NotFound("resident".into()));
        }
        if actor.is_empty() || actor.len() > 64 {
            return Err(EngineError::Invalid("actor must be 1 to 64 bytes".into()));
        }
        let forgotten = bcl_proto::Forgotten {
            municipality_code: municipality.to_owned(),
            resident_id: resident_id.to_owned(),
            at: self.clock.now().to_rfc3339(),
            actor: actor.to_owned(),
        };
        self.writer.submit(|reply| Command::Forget { forgotten, reply }).await
    }

    /// The key store (replication ships its entries alongside the log).
    pub fn key_store(&self) -> &Arc<crate::keystore::KeyStore> {
        &self.keys
    }

    pub fn municipality_status(&self, code: &str) -> Result<bcl_proto::MunicipalityStatus, EngineError> {
        // Only a well-formed code is echoed back: anything else is the caller's input, not an identifier.
        crate::admin::check_code(code)?;
        let proj = self.projection.read().expect("projection lock");
        proj.state.status(code).ok_or_else(|| EngineError::NotFound(format!("municipality {code}")))
    }
}

fn io_error(e: std::io::Error) -> EngineError {
    EngineError::Internal(format!("listener: {e}"))
}

/// Folds every durable leaf, in order. A leaf that does not decode, or sealed personal data that does not
/// authenticate, means the log is damaged: refuse to start rather than serve certificates from a partial
/// history. Sealed events whose key was erased fold as a forgotten resident's.
fn rebuild(store: &dyn LogStore, keys: &Arc<crate::keystore::KeyStore>) -> Result<Projection, EngineError> {
    const CHUNK: usize = 8192;
    let mut projection = Projection::with_keys(keys.clone(), true);
    let len = store.len();
    // Reading, decoding and unsealing run a chunk ahead of the fold, on the other core.
    let mut from = 0;
    let chunks = std::iter::from_fn(|| {
        (from < len).then(|| {
            let chunk = store.read(from, CHUNK)?;
            if chunk.is_empty() {
                return Err(crate::storage::StorageError::Corrupt { position: from, what: "leaf missing" }.into());
            }
            let mut leaves = Vec::with_capacity(chunk.len());
            for (position, bytes) in chunk {
                if position != from {
                    return Err(
                        crate::storage::StorageError::Corrupt { position, what: "positions out of order" }.into()
                    );
                }
                leaves.push(bytes);
                from += 1;
            }
            Ok::<_, EngineError>(leaves)
        })
    });
    let mut undecodable = None;
    crate::projection::fold_pipelined(&mut projection, chunks, |_, position, decoded| {
        if decoded.is_undecodable() && undecodable.is_none() {
            undecodable = Some(position);
        }
    })?;
    if let Some(position) = undecodable {
        return Err(crate::storage::StorageError::Corrupt { position, what: "leaf does not decode" }.into());
    }
    if let Some(&(position, _)) = projection.first_damaged() {
        return Err(crate::storage::StorageError::Corrupt {
            position,
            what: "sealed personal data does not authenticate",
        }
        .into());
    }
    if let Some(e) = projection.erase_failure.take() {
        return Err(EngineError::Internal(format!("cannot erase a forgotten resident's key: {e}")));
    }
    Ok(projection)
}
