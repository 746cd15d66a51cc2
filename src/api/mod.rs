//! HTTP API: routes, wire types, the body extractor, auth and the one error
//! type. Handlers talk to the [`Detector`] only.
//!
//! The server answers `GET /health` as soon as it listens; every route that
//! needs the model or the index answers 503 `not_ready` until the detector
//! is installed in [`AppState::detector`], which happens once the encoder is
//! loaded and the index built.
mod auth;
mod error;
mod extract;
mod handlers;
#[cfg(test)]
mod tests;
mod validate;
mod web;
mod wire;

use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use axum::extract::{MatchedPath, Request};
use axum::http::{HeaderValue, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use tokio::sync::Semaphore;
use tower_http::catch_panic::CatchPanicLayer;
use tracing::Instrument;

use crate::detect::keys::KeyRing;
use crate::detect::Detector;
use crate::metrics;
pub use error::ApiError;

/// The OpenAPI document served at `GET /openapi.json`.
pub const OPENAPI: &str = include_str!("openapi.json");

/// Every route: (method, path). `openapi.json` documents exactly these.
pub const ROUTES: &[(&str, &str)] = &[
    ("post", "/detect"),
    ("post", "/reference"),
    ("get", "/reference/{id}"),
    ("delete", "/reference/{id}"),
    ("get", "/health"),
    ("get", "/ready"),
    ("get", "/info"),
    ("get", "/metrics"),
    ("get", "/openapi.json"),
    ("get", "/"),
    ("get", "/ui/{file}"),
];

/// What to do with a text longer than the model reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Overlength {
    /// Embed its first `max_length` tokens and say so (`truncated: true`).
    Truncate,
    /// Answer 422 `too_many_tokens`.
    Reject,
}

/// Request limits and access policy.
#[derive(Debug, Clone)]
pub struct ApiConfig {
    pub max_items: usize,
    pub max_text_chars: usize,
    pub max_body_bytes: usize,
    pub max_k: usize,
    /// Most windows of sentences a request with `segments` may need.
    pub max_segment_windows: usize,
    pub overlength: Overlength,
    /// `POST /detect` without a key.
    pub open_detect: bool,
    /// Shown by `/info`.
    pub index_kind: String,
    /// Requests served at once (probes aside); more are answered 503
    /// `overloaded` at once, before their bodies are read.
    pub max_concurrent: usize,
    /// Longest a request may run before it is answered 503 `timeout`
    /// (`None`: no limit).
    pub request_timeout: Option<Duration>,
}

impl Default for ApiConfig {
    fn default() -> Self {
        Self {
            max_items: 64,
            max_text_chars: 100_000,
            max_body_bytes: 8 << 20,
            max_k: 100,
            max_segment_windows: 256,
            overlength: Overlength::Truncate,
            open_detect: false,
            index_kind: "auto".into(),
            max_concurrent: 64,
            request_timeout: Some(Duration::from_secs(60)),
        }
    }
}

pub struct AppState {
    /// Set once the encoder is loaded and the index built.
    pub detector: OnceLock<Arc<Detector>>,
    pub keys: KeyRing,
    pub config: ApiConfig,
    /// One permit per request in progress ([`ApiConfig::max_concurrent`]).
    gate: Arc<Semaphore>,
}

impl AppState {
    pub fn new(keys: KeyRing, config: ApiConfig) -> Self {
        Self {
            detector: OnceLock::new(),
            keys,
            gate: Arc::new(Semaphore::new(config.max_concurrent.max(1))),
            config,
        }
    }
}

/// The application: routes, error shape for unknown routes and methods,
/// panic guard, body limit, request ids and metrics.
pub fn app(state: Arc<AppState>) -> Router {
    let limit = state.config.max_body_bytes;
    Router::new()
        .route("/detect", post(handlers::detect))
        .route("/reference", post(handlers::add_reference))
        .route(
            "/reference/{id}",
            get(handlers::get_reference).delete(handlers::delete_reference),
        )
        .route("/health", get(handlers::health))
        .route("/ready", get(handlers::ready))
        .route("/info", get(handlers::info))
        .route("/metrics", get(handlers::metrics))
        .route("/openapi.json", get(handlers::openapi))
        .route("/", get(web::page))
        .route("/ui/{file}", get(web::file))
        .fallback(handlers::not_found)
        .method_not_allowed_fallback(handlers::method_not_allowed)
        .layer(axum::extract::DefaultBodyLimit::max(limit))
        .layer(CatchPanicLayer::custom(|_| {
            tracing::error!("handler panicked");
            ApiError::Internal.into_response()
        }))
        .layer(middleware::from_fn_with_state(state.clone(), admit))
        .layer(middleware::from_fn(observe))
        .with_state(state)
}

/// Probes and scrapes, answered whatever the load.
const PROBES: &[&str] = &["/health", "/ready", "/metrics"];

/// The global bounds: at most `max_concurrent` requests in progress (the
/// next is refused at once, before its body is read, so a flood costs
/// neither memory nor queueing) and at most `request_timeout` each.
/// Probes pass, so a supervisor sees a loaded service as alive.
async fn admit(
    axum::extract::State(state): axum::extract::State<Arc<AppState>>,
    req: Request,
    next: Next,
) -> Response {
    if PROBES.contains(&req.uri().path()) {
        return next.run(req).await;
    }
    let Ok(_permit) = state.gate.clone().try_acquire_owned() else {
        metrics::HTTP_SHED.inc();
        return ApiError::Overloaded.into_response();
    };
    match state.config.request_timeout {
        None => next.run(req).await,
        Some(limit) => match tokio::time::timeout(limit, next.run(req)).await {
            Ok(resp) => resp,
            Err(_) => {
                tracing::warn!(seconds = limit.as_secs_f64(), "request timed out");
                ApiError::Timeout(limit.as_secs()).into_response()
            }
        },
    }
}

/// Request id, tracing span, access log and HTTP metrics for every request.
async fn observe(req: Request, next: Next) -> Response {
    let started = Instant::now();
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map_or("unmatched", |p| p.as_str())
        .to_owned();
    let method = method_label(req.method());
    let id = request_id(&req);
    if let Some(bytes) = req
        .headers()
        .get(axum::http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok()?.parse::<u64>().ok())
    {
        metrics::HTTP_REQUEST_BYTES
            .with_label_values(&[&route])
            .observe(bytes as f64);
    }
    let span = tracing::info_span!("request", id = %id, method = %method, route = %route);
    let mut pending = Abandoned(Some(route.clone()));
    let mut resp = next.run(req).instrument(span.clone()).await;
    pending.0 = None;
    let status = resp.status();
    let elapsed = started.elapsed().as_secs_f64();
    metrics::HTTP_REQUESTS
        .with_label_values(&[&route, method, status.as_str()])
        .inc();
    metrics::HTTP_SECONDS
        .with_label_values(&[&route])
        .observe(elapsed);
    if route == "/detect" && status == StatusCode::OK {
        metrics::stage("total", elapsed);
    }
    span.in_scope(|| {
        tracing::info!(status = status.as_u16(), seconds = elapsed, "request done");
    });
    if let Ok(v) = HeaderValue::from_str(&id) {
        resp.headers_mut().insert("x-request-id", v);
    }
    resp
}

/// Counts a request whose future is dropped before it answers: the client
/// closed the connection.
struct Abandoned(Option<String>);

impl Drop for Abandoned {
    fn drop(&mut self) {
        if let Some(route) = &self.0 {
            metrics::HTTP_ABANDONED.with_label_values(&[route]).inc();
        }
    }
}

/// The method as a metric label: the standard methods, every other one
/// folded into `other` so clients cannot create label values.
fn method_label(method: &axum::http::Method) -> &'static str {
    use axum::http::Method;
    match *method {
        Method::GET => "get",
        Method::POST => "post",
        Method::PUT => "put",
        Method::DELETE => "delete",
        Method::HEAD => "head",
        Method::OPTIONS => "options",
        Method::PATCH => "patch",
        Method::TRACE => "trace",
        Method::CONNECT => "connect",
        _ => "other",
    }
}

/// The caller's `x-request-id` when it is short and printable, else a new one.
fn request_id(req: &Request) -> String {
    req.headers()
        .get("x-request-id")
        .and_then(|v| v.to_str().ok())
        .filter(|v| !v.is_empty() && v.len() <= 64 && v.bytes().all(|b| b.is_ascii_graphic()))
        .map(str::to_owned)
        .unwrap_or_else(|| {
            let mut b = [0u8; 8];
            rand::RngCore::fill_bytes(&mut rand::thread_rng(), &mut b);
            hex::encode(b)
        })
}

/// Resolves on SIGINT or SIGTERM; the server then stops accepting and
/// finishes the requests in flight.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = term => {},
    }
    eprintln!("shutting down: finishing requests in flight");
}
