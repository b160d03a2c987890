//! Verification as an engine operation and as the gRPC `bcl.v1.Verify` service.
//!
//! The front a back must carry is re-rendered from the log ([`Engine::front_images`]), every sheet
//! of the certificate is tried (a scan shows the back of one of them), and the best-scoring sheet
//! answers. Errors name the rule that failed, never image content or personal data.

use bcl_proto::{BlockRef, Verdict as PbVerdict, VerifyBackRequest, VerifyBackResponse};
use tonic::{Request, Response, Status};

use super::{decode_scan, verify_scan, Verdict, Verification, VerifyError, MATCH_THRESHOLD};
use crate::engine::Engine;
use crate::error::EngineError;
use crate::server::status::to_status;
use crate::server::Services;

/// Largest gRPC request the Verify service accepts: the largest scan plus the id.
pub const MAX_VERIFY_REQUEST_BYTES: usize = super::MAX_SCAN_BYTES + 64 * 1024;

impl From<VerifyError> for EngineError {
    fn from(e: VerifyError) -> EngineError {
        match e {
            VerifyError::BadFront(_) => EngineError::Internal(format!("verification: {e}")),
            other => EngineError::Invalid(other.to_string()),
        }
    }
}

/// The best-matching sheet's verification, with the front it was compared with.
pub struct BackReport {
    /// 0-based sheet of the certificate whose back the scan carries (the best-scoring one).
    pub sheet: usize,
    pub sheets: usize,
    pub verification: Verification,
    /// That sheet's quantised front, re-rendered from the log. It shows personal data: only show it to
    /// someone who has shown they hold this certificate's back (see `http.rs`).
    pub front: crate::scramble::GrayImage,
}

impl Engine {
    /// Verifies a scan (PNG or JPEG bytes) of a back of certificate `certificate_id`, against every sheet.
    pub fn verify_back_report(&self, scan: &[u8], certificate_id: &str) -> Result<BackReport, EngineError> {
        if certificate_id.is_empty() {
            return Err(EngineError::Invalid("certificate_id: must not be empty".into()));
        }
        let scan = decode_scan(scan)?;
        let fronts = self.front_images(certificate_id)?;
        let key = crate::certificate::scramble_key(&self.secret, certificate_id);
        let mut best: Option<(usize, Verification)> = None;
        let mut last_error = None;
        for (sheet, front) in fronts.iter().enumerate() {
            match verify_scan(&scan, front, &key) {
                Ok(v) => {
                    if best.as_ref().is_none_or(|(_, b)| v.blocks.score > b.blocks.score) {
                        best = Some((sheet, v));
                    }
                }
                Err(e) => last_error = Some(e),
            }
        }
        let Some((sheet, verification)) = best else {
            return Err(last_error
                .map(EngineError::from)
                .unwrap_or_else(|| EngineError::Internal("certificate has no sheets".into())));
        };
        let sheets = fronts.len();
        let front = fronts.into_iter().nth(sheet).expect("the sheet was verified against");
        Ok(BackReport { sheet, sheets, verification, front })
    }

    /// Verifies a scan (PNG or JPEG bytes) of a back of certificate `certificate_id`.
    pub fn verify_back(&self, scan: &[u8], certificate_id: &str) -> Result<VerifyBackResponse, EngineError> {
        let BackReport { sheet, sheets, verification: v, .. } = self.verify_back_report(scan, certificate_id)?;
        let r = &v.restored;
        let png = crate::scramble::gray_to_png(r.width, r.height, &r.pixels)
            .map_err(|e| EngineError::Internal(format!("PNG encoding: {e}")))?;
        Ok(VerifyBackResponse {
            verdict: match v.verdict {
                Verdict::Match => PbVerdict::Match,
                Verdict::NoMatch => PbVerdict::NoMatch,
            } as i32,
            score: v.blocks.score,
            threshold: MATCH_THRESHOLD,
            descrambled_png: png,
            sheet: sheet as u32 + 1,
            sheets: sheets as u32,
            differing_blocks: v.blocks.tampered.iter().map(|&(column, row)| BlockRef { column, row }).collect(),
        })
    }
}

#[tonic::async_trait]
impl bcl_proto::verify_server::Verify for Services {
    async fn verify_back(&self, request: Request<VerifyBackRequest>) -> Result<Response<VerifyBackResponse>, Status> {
        let req = request.into_inner();
        let engine = self.engine.clone();
        // Tens of milliseconds of CPU: keep it off the async workers.
        tokio::task::spawn_blocking(move || engine.verify_back(&req.scan, &req.certificate_id))
            .await
            .map_err(|_| Status::internal("verification task failed"))?
            .map(Response::new)
            .map_err(to_status)
    }
}
