//! `bcl serve --verify-http ADDR`: the verification page a recipient of a certificate uses. They upload a
//! scan of the back and type the certificate id printed under it; the page shows the front descrambled
//! from their scan beside the front re-rendered from the log, the verdict, and the blocks that differ.
//!
//! Two routes, served with axum on plain HTTP/1.1 (put a TLS-terminating proxy in front in production):
//!
//! - `GET /`: the page (`page.html`, self-contained: no script or style from elsewhere).
//! - `POST /api/verify?certificate_id=ID` with the image bytes as the body: a JSON answer, either the
//!   verdict or `{"error": "..."}` with a status saying whose fault it is (400 unreadable input, 404
//!   unknown certificate, 413 too large, 503 busy, 500 ours). Messages name the rule that failed, never
//!   the data.
//!
//! The upload is untrusted: the body is read with a byte limit and a deadline before anything else, the
//! decoder is bounded (`image_io.rs`), and at most [`MAX_CONCURRENT`] verifications run at once (each
//! holds up to a few hundred MiB at the largest accepted scan), the rest are told to retry.
//!
//! The re-rendered front shows personal data, so it is only sent to someone whose scan shows they hold
//! this certificate's back: a match, or a back that agrees everywhere but in a few blocks (tampering to
//! localise). A scan of some other back with a guessed id gets the verdict and the noise it descrambles
//! to, never the front.

use std::sync::Arc;
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::extract::{DefaultBodyLimit, RawQuery, Request, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use base64::Engine as _;
use tokio::sync::Semaphore;

use super::service::BackReport;
use super::{Verdict, MAX_SCAN_BYTES};
use crate::engine::Engine;
use crate::error::EngineError;

/// Verifications running at once; more are answered 503 at once rather than queued behind them.
pub const MAX_CONCURRENT: usize = 2;
/// Time allowed for the upload itself, so a client trickling bytes cannot hold a slot.
const UPLOAD_DEADLINE: Duration = Duration::from_secs(30);
/// Longest certificate id accepted (ids are like `131016-2026-000001`).
const MAX_ID_LEN: usize = 64;
/// Largest fraction of front blocks that may differ for the front to be shown on a non-match.
const FRONT_SHOWN_MAX_DIFFERING: f64 = 0.1;

const PAGE: &str = include_str!("page.html");

#[derive(Clone)]
struct AppState {
    engine: Arc<Engine>,
    slots: Arc<Semaphore>,
}

/// The page's routes, for [`serve`] and for tests.
pub fn router(engine: Arc<Engine>) -> Router {
    let state = AppState { engine, slots: Arc::new(Semaphore::new(MAX_CONCURRENT)) };
    Router::new()
        .route("/", get(page))
        .route("/api/verify", post(verify))
        // The handler reads the body itself, with its own limit and deadline.
        .layer(DefaultBodyLimit::disable())
        .with_state(state)
}

/// Serves the page on `listener` until `shutdown` resolves.
pub async fn serve(
    engine: Arc<Engine>,
    listener: tokio::net::TcpListener,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    axum::serve(listener, router(engine)).with_graceful_shutdown(shutdown).await
}

async fn page() -> Response {
    let mut r = PAGE.into_response();
    let h = r.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static("text/html; charset=utf-8"));
    // Everything the page needs is inline; images come back as data: URLs.
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(
            "default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; img-src data:; \
             connect-src 'self'; form-action 'none'; frame-ancestors 'none'",
        ),
    );
    h.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    r
}

fn error(status: StatusCode, message: &str) -> Response {
    json(status, serde_json::json!({ "error": message }))
}

fn json(status: StatusCode, value: serde_json::Value) -> Response {
    let mut r = (status, value.to_string()).into_response();
    r.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
    // Verdicts and fronts are personal: never cached.
    r.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    r
}

/// The certificate id from the query string. Ids are letters, digits and hyphens, so no percent-decoding
/// is needed, and anything else is refused rather than interpreted.
fn certificate_id(query: Option<&str>) -> Result<String, &'static str> {
    let id = query
        .unwrap_or("")
        .split('&')
        .find_map(|pair| pair.strip_prefix("certificate_id="))
        .map(str::trim)
        .unwrap_or("");
    if id.is_empty() {
        return Err("Enter the certificate id printed under the image on the back.");
    }
    if id.len() > MAX_ID_LEN || !id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-') {
        return Err("A certificate id has only letters, digits and hyphens, as printed under the image.");
    }
    Ok(id.to_owned())
}

async fn verify(State(state): State<AppState>, RawQuery(query): RawQuery, request: Request) -> Response {
    let id = match certificate_id(query.as_deref()) {
        Ok(id) => id,
        Err(message) => return error(StatusCode::BAD_REQUEST, message),
    };
    let Ok(_slot) = state.slots.clone().try_acquire_owned() else {
        return error(StatusCode::SERVICE_UNAVAILABLE, "The service is busy; try again in a moment.");
    };
    let body = match tokio::time::timeout(UPLOAD_DEADLINE, read_body(request.into_body())).await {
        Ok(Ok(body)) => body,
        Ok(Err(response)) => return response,
        Err(_) => return error(StatusCode::REQUEST_TIMEOUT, "The upload took too long."),
    };
    if body.is_empty() {
        return error(StatusCode::BAD_REQUEST, "Choose the scan of the back (PNG or JPEG) to upload.");
    }
    let engine = state.engine.clone();
    // Tens of milliseconds of CPU: off the async workers.
    let report = tokio::task::spawn_blocking(move || engine.verify_back_report(&body, &id)).await;
    match report {
        Ok(Ok(report)) => match answer(&report) {
            Ok(value) => json(StatusCode::OK, value),
            Err(e) => engine_error(e),
        },
        Ok(Err(e)) => engine_error(e),
        Err(_) => error(StatusCode::INTERNAL_SERVER_ERROR, "The verification failed on our side."),
    }
}

async fn read_body(body: Body) -> Result<Bytes, Response> {
    axum::body::to_bytes(body, MAX_SCAN_BYTES).await.map_err(|_| {
        let mib = MAX_SCAN_BYTES >> 20;
        error(StatusCode::PAYLOAD_TOO_LARGE, &format!("The file is too large: at most {mib} MiB are accepted."))
    })
}

fn engine_error(e: EngineError) -> Response {
    match e {
        // Decoding and locating errors say what is wrong with the file, never what is in it.
        EngineError::Invalid(message) => {
            error(StatusCode::BAD_REQUEST, &format!("This file cannot be verified: {message}."))
        }
        EngineError::NotFound(_) => error(
            StatusCode::NOT_FOUND,
            "No certificate with this id was issued here. Check the id printed under the image on the back.",
        ),
        other => {
            tracing::warn!(error = %other, "verification page: internal error");
            error(StatusCode::INTERNAL_SERVER_ERROR, "The verification failed on our side.")
        }
    }
}

fn png_base64(image: &crate::scramble::GrayImage) -> Result<String, EngineError> {
    let png = crate::scramble::gray_to_png(image.width, image.height, &image.pixels)
        .map_err(|e| EngineError::Internal(format!("PNG encoding: {e}")))?;
    Ok(base64::engine::general_purpose::STANDARD.encode(png))
}

fn answer(report: &BackReport) -> Result<serde_json::Value, EngineError> {
    let v = &report.verification;
    let blocks = &v.blocks;
    let differing = blocks.tampered.len() as f64 / blocks.mismatch.len().max(1) as f64;
    let front_shown = v.verdict == Verdict::Match || differing <= FRONT_SHOWN_MAX_DIFFERING;
    Ok(serde_json::json!({
        "verdict": match v.verdict { Verdict::Match => "match", Verdict::NoMatch => "no_match" },
        "score": blocks.score,
        "threshold": super::MATCH_THRESHOLD,
        "sheet": report.sheet + 1,
        "sheets": report.sheets,
        "block_size": crate::scramble::BLOCK,
        "width": v.restored.width,
        "height": v.restored.height,
        "differing_blocks": blocks.tampered.iter().map(|&(c, r)| [c, r]).collect::<Vec<_>>(),
        "descrambled_png": png_base64(&v.restored)?,
        "front_png": if front_shown { Some(png_base64(&report.front)?) } else { None },
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn certificate_ids_are_taken_only_as_printed() {
        assert_eq!(certificate_id(Some("certificate_id=131016-2026-000001")).unwrap(), "131016-2026-000001");
        assert_eq!(certificate_id(Some("x=1&certificate_id=AB-1")).unwrap(), "AB-1");
        assert!(certificate_id(None).is_err());
        assert!(certificate_id(Some("certificate_id=")).is_err());
        assert!(certificate_id(Some("certificate_id=%2e%2e")).is_err());
        assert!(certificate_id(Some("certificate_id=a<b")).is_err());
        assert!(certificate_id(Some(&format!("certificate_id={}", "1".repeat(65)))).is_err());
    }
}
