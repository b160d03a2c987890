//! Issuance (`Issuance.Issue`): eligibility against a snapshot of the projection, rendering outside any
//! lock, then one durable issuance leaf through the writer before the answer leaves the engine.
//!
//! Idempotency: the request id is the key. A retry with the same parameters gets the same certificate
//! (same id, same bytes, `replayed = true`) and is charged once, because only one issuance leaf per request
//! id can ever enter the log (the writer decides it). The same id with other parameters is refused.

use crate::certificate::{render, render_as, renderer_version, Rendered};
use crate::engine::Engine;
use crate::error::EngineError;
use crate::replication::Sequenced;
use crate::writer::{Command, IssueCommit};
use bcl_projections::date::JstDateTime;
use bcl_projections::record::CertificateDocument;
use bcl_projections::{Refusal, RefusalReason};
use bcl_proto::{CertificateType, IssuanceRecord, IssueRequest, IssueResponse, LogLeaf};
use prost::Message;
use sha2::{Digest, Sha256};
use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};

/// How often an issuance is prepared again when the municipality's data changed while it was rendered.
const MAX_PREPARE_ATTEMPTS: usize = 3;
/// How long a follower waits to receive leaves the primary already holds before refusing (`STALE_REPLICA`).
const REPLICA_WAIT: std::time::Duration = std::time::Duration::from_millis(500);

pub fn certificate_id(req: &IssueRequest) -> String {
    let mut h = Sha256::new();
    h.update(b"bcl-certificate-id-v1\0");
    h.update(req.municipality_code.as_bytes());
    h.update(b"\0");
    h.update(req.request_id.as_bytes());
    let d = h.finalize();
    format!("{}-{}", req.municipality_code, hex::encode_upper(&d[..10]))
}

/// Digest of every parameter of the request, so a retry can be told from a reuse of the id.
pub fn request_digest(req: &IssueRequest) -> String {
    hex::encode(Sha256::digest(req.encode_to_vec()))
}

fn invalid(message: &str) -> EngineError {
    EngineError::refused(RefusalReason::InvalidRequest, message)
}

fn validate(req: &IssueRequest) -> Result<(), EngineError> {
    if req.request_id.is_empty() || req.request_id.len() > 128 {
        return Err(invalid("request_id: required, at most 128 bytes"));
    }
    if req.kiosk_id.len() > 64 || req.kiosk_id.chars().any(char::is_control) {
        return Err(invalid("kiosk_id: at most 64 bytes, no control characters"));
    }
    if req.subject_resident_ids.len() > 32 {
        return Err(invalid("subject_resident_ids: at most 32 residents"));
    }
    // Refusals are logged with their request: unbounded identifiers would let a caller write anything it
    // likes into the log.
    if !req.card_serial.is_empty() && !bcl_projections::validate::is_valid_id(&req.card_serial) {
        return Err(invalid("card_serial: at most 64 bytes of A-Z a-z 0-9 _ - ."));
    }
    if !req.subject_resident_ids.iter().all(|id| bcl_projections::validate::is_valid_id(id)) {
        return Err(invalid("subject_resident_ids: each at most 64 bytes of A-Z a-z 0-9 _ - ."));
    }
    match bcl_proto::Centre::try_from(req.centre) {
        Ok(bcl_proto::Centre::East | bcl_proto::Centre::West) => {}
        _ => return Err(invalid("centre: EAST or WEST is required")),
    }
    match CertificateType::try_from(req.r#type) {
        Ok(CertificateType::Unspecified) | Err(_) => Err(invalid("type: unknown certificate type")),
        Ok(_) => Ok(()),
    }
}

/// What an issuance was prepared from: the snapshot position, the record and its provenance.
struct Prepared {
    as_of: u64,
    record: CertificateDocument,
    sources: Vec<u64>,
    fee_yen: u32,
}

impl Prepared {
    /// A digest of everything the certificate and its issuance record are built from, so that two centres
    /// running the same build can tell whether they would issue exactly the same thing.
    fn digest(&self) -> [u8; 32] {
        Sha256::digest(format!("{:?}|{:?}|{}", self.record, self.sources, self.fee_yen).as_bytes()).into()
    }
}

/// What `Prepared::digest` gives for `req` against `state`: the primary's re-check of an issuance a follower
/// prepared from its replica.
pub(crate) fn document_digest(
    state: &bcl_projections::State,
    req: &IssueRequest,
    now: JstDateTime,
    certificate_id: &str,
) -> Result<[u8; 32], EngineError> {
    Ok(prepare(state, 0, req, now, certificate_id)?.digest())
}

fn prepare(
    state: &bcl_projections::State,
    as_of: u64,
    req: &IssueRequest,
    now: JstDateTime,
    certificate_id: &str,
) -> Result<Prepared, EngineError> {
    let plan = bcl_projections::check_request(state, req, now)?;
    let (record, sources) = bcl_projections::build_certificate(state, &plan, certificate_id, now.date)?;
    Ok(Prepared { as_of, record, sources, fee_yen: plan.fee_yen() })
}

/// The writer's re-check of an issuance, run only if the municipality changed after the snapshot it was
/// prepared from: the certificate must still be allowed and show exactly the same data, or it is prepared
/// again.
fn still_valid(
    req: &IssueRequest,
    certificate_id: &str,
    now: JstDateTime,
    prepared: &Prepared,
) -> crate::writer::Check {
    let (req, certificate_id, expected) = (req.clone(), certificate_id.to_string(), prepared.record.clone());
    Box::new(move |proj: &crate::projection::Projection| {
        let again = prepare(&proj.state, proj.leaf_count, &req, now, &certificate_id)?;
        if again.record == expected {
            Ok(())
        } else {
            Err(EngineError::Internal(STALE.into()))
        }
    })
}

impl Engine {
    /// `Issuance.Issue`. A refusal by the rules of a municipality this engine serves is recorded in the log
    /// (durably, before the answer) so the municipality's transaction log shows every attempt; malformed
    /// requests and reused request ids are not transactions and are not recorded.
    pub async fn issue(self: &Arc<Self>, req: IssueRequest) -> Result<IssueResponse, EngineError> {
        self.issue_admitted(req, crate::shed::Slot::none()).await
    }

    /// [`Engine::issue`] for a request admitted by the load shedder: its `slot` is given back once the
    /// certificate is rendered, before the wait for the durable append (see [`crate::shed::Slot`]).
    pub async fn issue_admitted(
        self: &Arc<Self>,
        req: IssueRequest,
        mut slot: crate::shed::Slot,
    ) -> Result<IssueResponse, EngineError> {
        let result = self.issue_or_refuse(&req, &mut slot).await;
        slot.release();
        if let Err(EngineError::Refused(refusal)) = &result {
            let recorded = !matches!(refusal.reason, RefusalReason::InvalidRequest | RefusalReason::RequestIdReused)
                && self
                    .projection
                    .read()
                    .expect("projection lock")
                    .state
                    .municipality(&req.municipality_code)
                    .is_some();
            let recorded = recorded && refusal.reason != RefusalReason::StaleReplica;
            if recorded {
                let record = bcl_proto::RefusalRecord {
                    request: Some(req.clone()),
                    reason: refusal.reason.as_str().to_string(),
                    at: self.clock.now().to_rfc3339(),
                };
                match self.follower() {
                    None => {
                        self.writer.submit(|reply| Command::Refusal { record, reply }).await?;
                    }
                    Some(r) => {
                        if let Err(e) = r.sequence_refusal(record).await {
                            tracing::warn!(error = %e, "a refusal could not be recorded at the primary");
                        }
                    }
                }
            }
        }
        result
    }

    async fn issue_or_refuse(
        self: &Arc<Self>,
        req: &IssueRequest,
        slot: &mut crate::shed::Slot,
    ) -> Result<IssueResponse, EngineError> {
        let req = req.clone();
        validate(&req)?;
        let digest = request_digest(&req);
        let existing = {
            let proj = self.projection.read().expect("projection lock");
            proj.state.issuance_by_request(&req.request_id).map(|e| (e.position, e.request_digest.clone()))
        };
        if let Some((position, existing_digest)) = existing {
            return self.replay(position, &existing_digest, &digest).await;
        }
        if let Some(r) = self.replication() {
            r.issuing_state()?;
        }
        let now = self.clock.now();
        let certificate_id = certificate_id(&req);
        for _ in 0..MAX_PREPARE_ATTEMPTS {
            if let Some(r) = self.replication() {
                r.issuing_state()?;
            }
            let (prepared, Rendered { pdf, sheets, sha256 }, queued) =
                match self.prepare_and_render(&req, now, &certificate_id, &digest, slot).await {
                    Ok(done) => done,
                    // A follower that is behind the primary (SOLO mode, catching up) must not refuse from data
                    // it does not have yet: catch up first (or refuse as stale), then decide.
                    Err(e) => match self.follower().map(|r| r.link.lock().expect("link lock").primary_size) {
                        Some(size) if size > self.store.len() => {
                            self.wait_for_size(size, REPLICA_WAIT).await?;
                            self.prepare_and_render(&req, now, &certificate_id, &digest, slot).await?
                        }
                        _ => return Err(e),
                    },
                };
            // Hashed by the renderer in the pass that also gives the PDF its /ID.
            let content_sha256 = hex::encode(sha256);
            let committed = match (queued, self.follower()) {
                // A primary's render thread queued the issuance with the writer as soon as it was rendered.
                (Some(answer), _) => answer.await.map_err(|_| EngineError::Poisoned)?,
                (None, None) => {
                    let record = self.issuance_record(&req, &certificate_id, now, &digest, &prepared, sheets, sha256);
                    let still_valid = still_valid(&req, &certificate_id, now, &prepared);
                    self.writer.submit(|reply| Command::Issue { record, still_valid, reply }).await
                }
                // A follower renders from its replica; the primary sequences (one issuance per request id
                // across both centres) and re-checks the data against its own state.
                (None, Some(r)) => {
                    let record = self.issuance_record(&req, &certificate_id, now, &digest, &prepared, sheets, sha256);
                    match r.sequence_issuance(record, prepared.digest()).await? {
                        Sequenced::Committed { position } => Ok(IssueCommit::Committed { position }),
                        Sequenced::Existing { position, request_digest, certificate_id } => {
                            self.wait_for_size(position + 1, REPLICA_WAIT).await?;
                            Ok(IssueCommit::Existing { position, request_digest, certificate_id })
                        }
                        Sequenced::Changed { size } => {
                            self.wait_for_size(size, REPLICA_WAIT).await?;
                            Err(EngineError::Internal(STALE.into()))
                        }
                    }
                }
            };
            match committed {
                Ok(IssueCommit::Committed { position }) => {
                    self.cache.insert(&certificate_id, pdf.clone());
                    return Ok(IssueResponse {
                        certificate_id,
                        pdf,
                        sheets,
                        fee_yen: prepared.fee_yen,
                        content_sha256,
                        log_position: position,
                        replayed: false,
                    });
                }
                Ok(IssueCommit::Existing { position, request_digest, .. }) => {
                    return self.replay(position, &request_digest, &digest).await;
                }
                Err(EngineError::Internal(m)) if m == STALE => continue,
                Err(e) => return Err(e),
            }
        }
        Err(EngineError::Refused(Refusal {
            reason: RefusalReason::MunicipalitySuspended,
            message: "the municipality's data kept changing during issuance; retry".into(),
        }))
    }

    /// The CPU part of an issuance, on a render thread (`render_pool`): the eligibility check and the
    /// ready-to-render record against a snapshot of the projection (under its read lock, which the writer may
    /// hold for a whole ingest batch: not something to wait for on an async worker), then the rendering.
    ///
    /// On a primary the render thread then queues the issuance with the writer itself and hands back where
    /// the writer's answer will arrive: the append starts at once instead of after an async worker has picked
    /// the rendered certificate up, one wake-up fewer on the way to the flush (under load, a wake-up that
    /// waited behind other renders). A follower's issuance goes to the primary from the async side.
    ///
    /// The admission `slot` goes to the render thread, which gives it back as soon as the CPU part is over
    /// (rendered, or refused), before the wait for the append: a request waiting for a slot is then woken
    /// by the render thread itself, not after an async worker has first picked the finished render up.
    /// That hand-off is what separates consecutive renders when every slot is busy, i.e. in the bursts
    /// that make the tail. A second attempt runs without a slot: after a stale refusal, as before; after a
    /// follower's catch-up, which used to keep its slot through the wait for the primary's data, a wait
    /// that needs no core. Renders at once stay bounded all the same: the pool has `max_in_flight` threads.
    async fn prepare_and_render(
        self: &Arc<Self>,
        req: &IssueRequest,
        now: JstDateTime,
        certificate_id: &str,
        request_digest: &str,
        slot: &mut crate::shed::Slot,
    ) -> Result<(Prepared, Rendered, Option<crate::writer::Answer<IssueCommit>>), EngineError> {
        let (engine, req, certificate_id, request_digest) =
            (self.clone(), req.clone(), certificate_id.to_string(), request_digest.to_string());
        let slot = std::mem::take(slot);
        self.render_pool
            .run(move || {
                // Given back when this job ends, whichever way it ends.
                let _slot = slot;
                let prepared = {
                    let proj = engine.projection.read().expect("projection lock");
                    prepare(&proj.state, proj.leaf_count, &req, now, &certificate_id)?
                };
                let render_started = std::time::Instant::now();
                let rendered = render(&engine.renderer, &engine.secret, &prepared.record, now)?;
                metrics::histogram!(crate::server::telemetry::RENDER_DURATION).record(render_started.elapsed());
                if engine.follower().is_some() {
                    return Ok((prepared, rendered, None));
                }
                let (sheets, sha256) = (rendered.sheets, rendered.sha256);
                let record =
                    engine.issuance_record(&req, &certificate_id, now, &request_digest, &prepared, sheets, sha256);
                let still_valid = still_valid(&req, &certificate_id, now, &prepared);
                let queued = engine.writer.enqueue_blocking(|reply| Command::Issue { record, still_valid, reply })?;
                Ok((prepared, rendered, Some(queued)))
            })
            .await?
    }

    /// The log's record of an issuance about to be appended.
    #[allow(clippy::too_many_arguments)]
    fn issuance_record(
        &self,
        req: &IssueRequest,
        certificate_id: &str,
        now: JstDateTime,
        request_digest: &str,
        prepared: &Prepared,
        sheets: u32,
        sha256: [u8; 32],
    ) -> IssuanceRecord {
        IssuanceRecord {
            certificate_id: certificate_id.to_string(),
            request: Some(req.clone()),
            issued_at: now.to_rfc3339(),
            fee_yen: prepared.fee_yen,
            sheets,
            content_sha256: hex::encode(sha256),
            as_of_position: prepared.as_of,
            source_positions: prepared.sources.clone(),
            renderer_version: renderer_version(&prepared.record).to_string(),
            font_sha256: self.renderer.font_digest().to_string(),
            request_digest: request_digest.to_string(),
        }
    }

    /// Answers a retried request with the certificate issued the first time.
    async fn replay(
        self: &Arc<Self>,
        position: u64,
        issued_digest: &str,
        digest: &str,
    ) -> Result<IssueResponse, EngineError> {
        if issued_digest != digest {
            return Err(EngineError::RequestIdReused);
        }
        let record = self.issuance_at(position)?;
        let (pdf, source) = match self.cache.get(&record.certificate_id) {
            Some(pdf) => (pdf, "cache"),
            None => {
                // Rendering again (and perhaps folding history first): work for the render threads.
                let (engine, issued) = (self.clone(), record.clone());
                let (pdf, source) = self
                    .render_pool
                    .run(move || match engine.reproduce_from_current_state(&issued) {
                        Some(pdf) => Ok((pdf, "current_state")),
                        None => engine.reproduce_record(&issued).map(|pdf| (pdf, "history")),
                    })
                    .await??;
                self.cache.insert(&record.certificate_id, pdf.clone());
                (pdf, source)
            }
        };
        metrics::counter!(crate::server::telemetry::REPLAYS, "source" => source).increment(1);
        Ok(IssueResponse {
            certificate_id: record.certificate_id,
            pdf,
            sheets: record.sheets,
            fee_yen: record.fee_yen,
            content_sha256: record.content_sha256,
            log_position: position,
            replayed: true,
        })
    }

    fn issuance_at(&self, position: u64) -> Result<IssuanceRecord, EngineError> {
        let leaf = self.store.read(position, 1)?;
        let (_, bytes) =
            leaf.into_iter().next().ok_or_else(|| EngineError::Internal("issuance leaf missing".into()))?;
        match LogLeaf::decode(bytes.as_slice()).map(|l| l.kind) {
            Ok(Some(bcl_proto::log_leaf::Kind::Issuance(r))) => Ok(r),
            _ => Err(EngineError::Internal("leaf at the issuance position is not an issuance".into())),
        }
    }

    /// `Audit.Reproduce`: re-renders a certificate from the log prefix it was issued from.
    pub fn reproduce(&self, certificate_id: &str) -> Result<IssueResponse, EngineError> {
        let position = {
            let proj = self.projection.read().expect("projection lock");
            proj.state.certificate_position(certificate_id)
        }
        .ok_or_else(|| EngineError::NotFound("certificate".into()))?;
        let record = self.issuance_at(position)?;
        let pdf = self.reproduce_record(&record)?;
        Ok(IssueResponse {
            certificate_id: record.certificate_id,
            pdf,
            sheets: record.sheets,
            fee_yen: record.fee_yen,
            content_sha256: record.content_sha256,
            log_position: position,
            replayed: true,
        })
    }

    /// A retry's fast path: renders the certificate from today's state instead of folding the log prefix it
    /// was issued from (one render instead of a fold of the whole history, ~40 ms at 20,000 events). Sound
    /// because the bytes are only returned if their SHA-256 equals the one recorded at issuance, i.e. they
    /// *are* the issued certificate; when the data shown changed since (a move, a revoked seal, an erased
    /// resident...) the digest differs or the state refuses, and `None` sends the caller to history.
    /// (It is [`reproduce_from_state`] except that the projection's read lock is dropped before rendering,
    /// so the writer is not held up for the milliseconds a render takes.)
    fn reproduce_from_current_state(&self, record: &IssuanceRecord) -> Option<Vec<u8>> {
        check_fonts(&self.renderer, record).ok()?;
        let (prepared, now) = {
            let proj = self.projection.read().expect("projection lock");
            prepared_from_state(&proj.state, record).ok()?
        };
        render_and_compare(&self.renderer, &self.secret, &prepared, now, record).ok()
    }

    /// Folds the log prefix `[0, as_of)` and prepares the certificate again with the recorded request and
    /// clock: the exact record the certificate was rendered from.
    fn prepared_from_history(&self, record: &IssuanceRecord) -> Result<(Prepared, JstDateTime), EngineError> {
        let mut projection = crate::projection::Projection::with_keys(self.keys.clone(), false);
        let (mut from, end) = (0, record.as_of_position);
        let chunks = std::iter::from_fn(|| {
            (from < end).then(|| {
                let chunk = self.store.read(from, (end - from).min(8192) as usize)?;
                if chunk.is_empty() {
                    return Err(EngineError::Internal("log shorter than the issuance's snapshot".into()));
                }
                from += chunk.len() as u64;
                Ok(chunk.into_iter().map(|(_, leaf)| leaf).collect::<Vec<_>>())
            })
        });
        let mut undecodable = None;
        crate::projection::fold_pipelined(&mut projection, chunks, |_, position, decoded| {
            if decoded.is_undecodable() {
                undecodable.get_or_insert(position);
            }
        })?;
        if let Some(position) = undecodable {
            return Err(EngineError::Internal(format!("leaf {position} does not decode")));
        }
        check_sources_readable(&projection, record)?;
        prepared_from_state(&projection.state, record)
    }

    /// Re-renders a certificate from history and checks the bytes against the recorded digest: a mismatch
    /// is an audit failure, never hidden.
    fn reproduce_record(&self, record: &IssuanceRecord) -> Result<Vec<u8>, EngineError> {
        check_fonts(&self.renderer, record)?;
        let (prepared, now) = self.prepared_from_history(record)?;
        render_and_compare(&self.renderer, &self.secret, &prepared, now, record)
    }

    /// The quantised front images that the backs of an issued certificate carry (one per sheet), rebuilt
    /// from history: what a descrambled back must equal.
    pub fn front_images(&self, certificate_id: &str) -> Result<Vec<crate::scramble::GrayImage>, EngineError> {
        let position = {
            let proj = self.projection.read().expect("projection lock");
            proj.state.certificate_position(certificate_id)
        }
        .ok_or_else(|| EngineError::NotFound("certificate".into()))?;
        let record = self.issuance_at(position)?;
        let (prepared, _) = self.prepared_from_history(&record)?;
        crate::certificate::front_images(&self.renderer, &prepared.record)
    }
}

fn check_fonts(renderer: &crate::render::Renderer, record: &IssuanceRecord) -> Result<(), EngineError> {
    if record.font_sha256 != renderer.font_digest() {
        return Err(EngineError::Internal("the certificate was rendered with other fonts than this server has".into()));
    }
    Ok(())
}

/// Prepares the certificate again from `state` (the fold of the log prefix `[0, as_of_position)`) with the
/// recorded request and clock: the exact record the certificate was rendered from.
fn prepared_from_state(
    state: &bcl_projections::State,
    record: &IssuanceRecord,
) -> Result<(Prepared, JstDateTime), EngineError> {
    let req = record.request.clone().ok_or_else(|| EngineError::Internal("issuance without request".into()))?;
    let now = JstDateTime::parse_rfc3339(&record.issued_at)
        .map_err(|_| EngineError::Internal("issuance with an unreadable clock".into()))?;
    let prepared = prepare(state, record.as_of_position, &req, now, &record.certificate_id).map_err(|e| match e {
        // Crypto-shredding, not damage: say so.
        EngineError::Refused(r) if r.reason == RefusalReason::PersonalDataErased => forgotten_error(),
        e => EngineError::Internal(format!("reproduction: the history no longer allows this certificate ({e})")),
    })?;
    Ok((prepared, now))
}

fn forgotten_error() -> EngineError {
    EngineError::refused(
        RefusalReason::PersonalDataErased,
        "the certificate cannot be reproduced: personal data it was printed from was erased (forgotten)",
    )
}

/// A certificate printed from a sealed event that the fold could not read cannot be reproduced: the
/// resident was forgotten (or, for an auditor, the key-store snapshot lacks the key). Damaged ciphertext
/// is a different failure and is reported as such.
pub fn check_sources_readable(
    projection: &crate::projection::Projection,
    record: &IssuanceRecord,
) -> Result<(), EngineError> {
    for &p in &record.source_positions {
        if let Ok(i) = projection.unreadable().binary_search_by_key(&p, |(q, _)| *q) {
            let e = &projection.unreadable()[i].1;
            return Err(match e {
                crate::keystore::seal::UnsealError::KeyMissing => forgotten_error(),
                e => EngineError::Internal(format!("sealed event at position {p}: {e}")),
            });
        }
    }
    Ok(())
}

/// Renders a prepared certificate and checks the bytes against the recorded digest: a mismatch is an audit
/// failure, never hidden.
fn render_and_compare(
    renderer: &crate::render::Renderer,
    secret: &crate::secrets::MasterSecret,
    prepared: &Prepared,
    now: JstDateTime,
    record: &IssuanceRecord,
) -> Result<Vec<u8>, EngineError> {
    // The version recorded at issuance decides what the certificate looked like.
    let Rendered { pdf, .. } = render_as(renderer, secret, &prepared.record, now, &record.renderer_version)?;
    if hex::encode(Sha256::digest(&pdf)) != record.content_sha256 {
        return Err(EngineError::Internal("reproduction differs from the issued certificate".into()));
    }
    Ok(pdf)
}

/// Re-renders an issued certificate from `state`, the fold of the log prefix `[0, record.as_of_position)`,
/// and checks the bytes against the recorded SHA-256. It needs no server: an auditor folds its own copy of
/// the log (`bcl audit verify`) and calls this with the fonts and the scramble master secret.
pub fn reproduce_from_state(
    renderer: &crate::render::Renderer,
    secret: &crate::secrets::MasterSecret,
    state: &bcl_projections::State,
    record: &IssuanceRecord,
) -> Result<Vec<u8>, EngineError> {
    check_fonts(renderer, record)?;
    let (prepared, now) = prepared_from_state(state, record)?;
    render_and_compare(renderer, secret, &prepared, now, record)
}

const STALE: &str = "stale snapshot";

/// Recently issued PDFs, so a retry is answered without re-rendering. Bounded by total bytes; a miss falls
/// back to reproduction from the log, which gives the same bytes.
pub struct CertificateCache {
    budget: usize,
    inner: Mutex<CacheInner>,
}

#[derive(Default)]
struct CacheInner {
    bytes: usize,
    order: VecDeque<String>,
    map: HashMap<String, Vec<u8>>,
}

impl CertificateCache {
    pub fn new(budget: usize) -> Self {
        Self { budget, inner: Mutex::new(CacheInner::default()) }
    }

    pub fn insert(&self, id: &str, pdf: Vec<u8>) {
        let mut c = self.inner.lock().expect("cache lock");
        c.bytes += pdf.len();
        match c.map.insert(id.to_string(), pdf) {
            Some(old) => c.bytes -= old.len(),
            None => c.order.push_back(id.to_string()),
        }
        while c.bytes > self.budget {
            let Some(old) = c.order.pop_front() else { break };
            if let Some(p) = c.map.remove(&old) {
                c.bytes -= p.len();
            }
        }
    }

    pub fn get(&self, id: &str) -> Option<Vec<u8>> {
        self.inner.lock().expect("cache lock").map.get(id).cloned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::EngineConfig;
    use bcl_fixtures::{Expect, Spec};
    use bcl_proto::{change_event::Body, ChangeEvent, MunicipalitySettings, ResidentChanged};

    const NOW: &str = "2026-04-01T10:00:00+09:00";

    /// An engine holding a small fixture municipality, and an issuable 住民票の写し request of one of its
    /// households with the fixture's events (for the next `source_seq`).
    async fn engine_and_request() -> (tempfile::TempDir, Arc<Engine>, IssueRequest, Vec<ChangeEvent>) {
        let dir = tempfile::tempdir().unwrap();
        let clock = crate::clock::Clock::fixed(NOW).unwrap();
        let config =
            EngineConfig { data_dir: dir.path().to_path_buf(), clock, fonts: None, render: Default::default() };
        let engine = Engine::open(config).unwrap();
        let m = bcl_fixtures::generate(&Spec { households: 20, ..Default::default() });
        for chunk in m.events.chunks(1000) {
            engine.append(chunk.to_vec()).await.unwrap();
        }
        engine
            .update_settings(MunicipalitySettings {
                municipality_code: "131016".into(),
                municipality_name: "東京都千代田区".into(),
                mayor_title: "千代田区長".into(),
                enabled_types: vec![CertificateType::ResidentRecord as i32],
                ..Default::default()
            })
            .await
            .unwrap();
        let case = m
            .cases
            .iter()
            .find(|c| c.certificate_type == CertificateType::ResidentRecord && matches!(c.expect, Expect::Issue { .. }))
            .expect("an issuable case");
        (dir, engine, case.resident_record_request("stale-1", "131016", "KIOSK-00001"), m.events)
    }

    /// A change of `resident_id`'s family name to another resident's, as the municipality's next event.
    fn rename(events: &[ChangeEvent], resident_id: &str, seq: u64) -> ChangeEvent {
        let other = events
            .iter()
            .find_map(|e| match &e.body {
                Some(Body::ResidentRegistered(r)) if r.resident_id != resident_id => Some(r.family_name.clone()),
                _ => None,
            })
            .expect("another resident");
        ChangeEvent {
            municipality_code: "131016".into(),
            source_seq: seq,
            event_id: format!("00000000-0000-4000-8000-{seq:012x}"),
            effective_date: "2026-04-01".into(),
            body: Some(Body::ResidentChanged(ResidentChanged {
                resident_id: resident_id.into(),
                family_name: Some(other),
                ..Default::default()
            })),
        }
    }

    /// The writer's re-check of an issuance prepared before the municipality changed: refused as stale (and
    /// nothing appended) when the certificate would now show other data, committed when the change is about
    /// someone else. This is what makes `issue` prepare and render again instead of recording a certificate
    /// of data the log no longer holds.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn an_issuance_whose_data_changed_since_it_was_prepared_is_refused_as_stale() {
        let (_dir, engine, req, events) = engine_and_request().await;
        let now = engine.clock.now();
        let (id, digest) = (certificate_id(&req), request_digest(&req));
        let snapshot = || {
            let proj = engine.projection.read().unwrap();
            prepare(&proj.state, proj.leaf_count, &req, now, &id).unwrap()
        };
        let submit = |prepared: Prepared| {
            let record = engine.issuance_record(&req, &id, now, &digest, &prepared, 1, [7; 32]);
            let check = still_valid(&req, &id, now, &prepared);
            engine.writer.submit(move |reply| Command::Issue { record, still_valid: check, reply })
        };
        let mut seq = events.iter().map(|e| e.source_seq).max().unwrap() + 1;

        // The subject's own name changes after the snapshot: stale, and the log does not grow.
        let before = snapshot();
        engine.append(vec![rename(&events, &req.subject_resident_ids[0], seq)]).await.unwrap();
        seq += 1;
        let size = engine.store.len();
        match submit(before).await {
            Err(EngineError::Internal(m)) => assert_eq!(m, STALE),
            other => panic!("expected the stale re-check to refuse, got {other:?}"),
        }
        assert_eq!(engine.store.len(), size, "a stale issuance appended nothing");

        // Someone outside the certificate changes: the same certificate still holds, so it is committed.
        let before = snapshot();
        let outsider = events
            .iter()
            .find_map(|e| match &e.body {
                Some(Body::ResidentRegistered(r)) if !req.subject_resident_ids.contains(&r.resident_id) => {
                    Some(r.resident_id.clone())
                }
                _ => None,
            })
            .unwrap();
        engine.append(vec![rename(&events, &outsider, seq)]).await.unwrap();
        assert!(matches!(submit(before).await, Ok(IssueCommit::Committed { .. })));
    }
}
