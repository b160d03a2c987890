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
        let audit = Arc::new(AuditLog::open(store.as_ref(), signer)?);
        let (durable_tx, durable_len) = watch::channel(store.len());
        let projection = Arc::new(RwLock::new(projection));
        let writer = Writer::start(store.clone(), projection.clone(), audit.clone(), durable_tx);
        Ok(Arc::new(Engine {
            store,
            projection,
            writer,
            audit,
            durable_len,
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

    /// A receiver that changes whenever the durable log grows (for `ReadLog(follow)`).
    pub fn subscribe_len(&self) -> watch::Receiver<u64> {
        self.durable_len.clone()
    }

    pub fn read_log(&self, from: u64, limit: usize) -> Result<Vec<(u64, Vec<u8>)>, EngineError> {
        Ok(self.store.read(from, limit)?)
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
        let at = self.clock.now().to_rfc3339();
        self.writer.submit(|reply| Command::Append { events, at, reply }).await
    }

    pub fn municipality_status(&self, code: &str) -> Result<bcl_proto::MunicipalityStatus, EngineError> {
        // Only a well-formed code is echoed back: anything else is the caller's input, not an identifier.
        crate::admin::check_code(code)?;
        let proj = self.projection.read().expect("projection lock");
        proj.state.status(code).ok_or_else(|| EngineError::NotFound(format!("municipality {code}")))
    }
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
