//! The tower layer every gRPC request passes before its handler: it names the caller (from the TLS client
//! certificate), opens the request's tracing span with its request id, checks the caller's role against
//! [`auth::ACL`], and takes a token from the caller's rate-limit bucket. Handlers find the [`Caller`] in the
//! request's extensions (`request.extensions().get::<Caller>()`).

use super::auth::{self, Caller};
use super::ratelimit::RateLimiter;
use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use tonic::transport::server::{TcpConnectInfo, TlsConnectInfo};
use tonic::{Code, Status};
use tracing::Instrument;

pub const REQUEST_ID_HEADER: &str = "x-request-id";

/// What the guard needs, shared by every connection.
pub struct GuardConfig {
    /// `false` only with `--insecure-dev`: every caller is [`Caller::insecure_dev`].
    pub tls: bool,
    /// `--link-grant NAME=CODE,...`: municipalities of `bcl://link` certificates by CN.
    pub link_grants: HashMap<String, Vec<String>>,
    pub limiter: RateLimiter,
}

#[derive(Clone)]
pub struct GuardLayer(pub Arc<GuardConfig>);

impl<S> tower::Layer<S> for GuardLayer {
    type Service = Guard<S>;
    fn layer(&self, inner: S) -> Guard<S> {
        Guard { inner, config: self.0.clone() }
    }
}

#[derive(Clone)]
pub struct Guard<S> {
    inner: S,
    config: Arc<GuardConfig>,
}

fn denied(code: Code, reason: &str, message: String) -> Status {
    use tonic_types::{ErrorDetails, StatusExt};
    Status::with_error_details(code, message, ErrorDetails::with_error_info(reason, super::status::DOMAIN, []))
}

/// A request id for a request that came without one: unique within this process and across restarts.
fn new_request_id() -> String {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    static EPOCH: std::sync::OnceLock<u64> = std::sync::OnceLock::new();
    let epoch = *EPOCH.get_or_init(|| {
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_micros() as u64).unwrap_or(0)
    });
    format!("{epoch:x}-{:x}", NEXT.fetch_add(1, Ordering::Relaxed))
}

/// A client's `x-request-id` is used as given when it is a plain token; anything else (it is attacker
/// controlled and goes into every log line) is replaced.
fn request_id_of<B>(req: &http::Request<B>) -> String {
    req.headers()
        .get(REQUEST_ID_HEADER)
        .and_then(|v| v.to_str().ok())
        .filter(|v| {
            !v.is_empty() && v.len() <= 64 && v.bytes().all(|b| b.is_ascii_alphanumeric() || b"-_.:".contains(&b))
        })
        .map(str::to_string)
        .unwrap_or_else(new_request_id)
}

impl<S> Guard<S> {
    fn caller<B>(&self, req: &http::Request<B>) -> Option<Caller> {
        if !self.config.tls {
            return Some(Caller::insecure_dev());
        }
        let certs = req.extensions().get::<TlsConnectInfo<TcpConnectInfo>>()?.peer_certs()?;
        Caller::from_certificate(certs.first()?.as_ref(), &self.config.link_grants)
    }
}

/// Health checks are what load balancers poll: never rate limited.
fn exempt_from_rate_limit(path: &str) -> bool {
    path.starts_with("/grpc.health.v1.Health/")
}

impl<S, B, R> tower::Service<http::Request<B>> for Guard<S>
where
    S: tower::Service<http::Request<B>, Response = http::Response<R>> + Clone + Send + 'static,
    S::Future: Send + 'static,
    B: Send + 'static,
    R: Default + Send + 'static,
{
    type Response = http::Response<R>;
    type Error = S::Error;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, S::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut req: http::Request<B>) -> Self::Future {
        let path = req.uri().path().to_string();
        let request_id = request_id_of(&req);
        let caller = self.caller(&req);
        // At ERROR level so the span (and its request id) is on every line whatever the filter lets through.
        let span = tracing::error_span!(
            "rpc",
            request_id = %request_id,
            method = %path,
            caller = caller.as_ref().map_or("-", |c| c.name.as_str())
        );
        let refusal = match &caller {
            None => {
                tracing::warn!(parent: &span, "no usable client certificate");
                Some((
                    "unauthenticated",
                    denied(Code::Unauthenticated, "UNAUTHENTICATED", "no usable client certificate".into()),
                ))
            }
            Some(c) if !c.may_call(&path) => {
                tracing::warn!(parent: &span, identity = %c, "permission denied: role may not call this service");
                Some((
                    "permission_denied",
                    denied(Code::PermissionDenied, "PERMISSION_DENIED", format!("{} may not call {path}", c.name)),
                ))
            }
            Some(c) if !exempt_from_rate_limit(&path) && !self.config.limiter.try_acquire(&c.key()) => {
                tracing::warn!(parent: &span, identity = %c, "rate limit exceeded");
                Some((
                    "rate_limited",
                    denied(Code::ResourceExhausted, "RATE_LIMITED", format!("rate limit of {} exceeded", c.name)),
                ))
            }
            Some(_) => None,
        };
        let id_header = http::HeaderValue::from_str(&request_id).ok();
        if let Some((outcome, status)) = refusal {
            metrics::counter!(super::telemetry::GUARD_REFUSALS, "reason" => outcome).increment(1);
            let mut resp = status.into_http::<R>();
            if let Some(v) = id_header {
                resp.headers_mut().insert(REQUEST_ID_HEADER, v);
            }
            return Box::pin(async move { Ok(resp) });
        }
        req.extensions_mut().insert(caller.expect("refused above when missing"));
        // `call` on a clone that was not polled ready is not allowed: swap in the clone, call the ready one.
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        Box::pin(
            async move {
                tracing::debug!("request");
                let mut resp = inner.call(req).await?;
                if let Some(v) = id_header {
                    resp.headers_mut().insert(REQUEST_ID_HEADER, v);
                }
                Ok(resp)
            }
            .instrument(span),
        )
    }
}

/// The caller the guard put in a request's extensions. A handler reached without one (impossible through
/// [`super::serve_with`]) refuses rather than guessing.
pub fn caller_of<T>(request: &tonic::Request<T>) -> Result<Caller, Status> {
    request.extensions().get::<Caller>().cloned().ok_or_else(|| Status::unauthenticated("no caller identity"))
}

/// The scoped refusal of a handler (municipality or centre outside the caller's grants), logged with the
/// caller's identity and the code, which are not personal data.
pub fn outside_scope(caller: &Caller, what: &str) -> Status {
    tracing::warn!(identity = %caller, scope = what, "permission denied: outside the caller's grants");
    metrics::counter!(super::telemetry::GUARD_REFUSALS, "reason" => "outside_scope").increment(1);
    denied(Code::PermissionDenied, "PERMISSION_DENIED", format!("{} may not act for {what}", caller.name))
}

pub use auth::Role;
