//! One error type for every HTTP failure, one exhaustive `match` to status
//! codes, one JSON shape: `{"error": {"code": "...", "message": "..."}}`.
//! Messages name the offending field or limit; internal causes are logged
//! with the request, never returned.
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::json;

use crate::detect::keys::Scope;
use crate::detect::DetectError;
use crate::encoder::WorkerError;

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// The body is not JSON at all.
    #[error("{0}")]
    MalformedJson(String),
    /// JSON of the wrong shape or with invalid values.
    #[error("{0}")]
    Invalid(String),
    /// A text longer than the model reads, with `--overlength reject`.
    #[error("{0}")]
    TooManyTokens(String),
    #[error("{0}")]
    TooLarge(String),
    #[error("missing or unknown API key: send `Authorization: Bearer KEY`")]
    Unauthorized,
    #[error("this API key lacks the {} scope", .0.as_str())]
    Forbidden(Scope),
    #[error("{0}")]
    NotFound(String),
    #[error("method not allowed on this path")]
    MethodNotAllowed,
    #[error("the encoding queue is full; retry shortly")]
    Busy,
    #[error("the service is starting: the model is loading or the index is being built")]
    NotReady,
    #[error("the encoder is not running")]
    Unavailable,
    #[error("the reference store is unreachable or cannot take writes now; retry shortly")]
    StoreUnavailable,
    #[error("too many requests in progress; retry shortly")]
    Overloaded,
    #[error("the request took longer than {0} s and was stopped")]
    Timeout(u64),
    #[error("internal error")]
    Internal,
}

impl ApiError {
    pub fn status(&self) -> StatusCode {
        match self {
            Self::MalformedJson(_) => StatusCode::BAD_REQUEST,
            Self::Invalid(_) | Self::TooManyTokens(_) => StatusCode::UNPROCESSABLE_ENTITY,
            Self::TooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            Self::Unauthorized => StatusCode::UNAUTHORIZED,
            Self::Forbidden(_) => StatusCode::FORBIDDEN,
            Self::NotFound(_) => StatusCode::NOT_FOUND,
            Self::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            Self::Busy => StatusCode::TOO_MANY_REQUESTS,
            Self::NotReady
            | Self::Unavailable
            | Self::StoreUnavailable
            | Self::Overloaded
            | Self::Timeout(_) => StatusCode::SERVICE_UNAVAILABLE,
            Self::Internal => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    pub fn code(&self) -> &'static str {
        match self {
            Self::MalformedJson(_) => "malformed_json",
            Self::Invalid(_) => "invalid_request",
            Self::TooManyTokens(_) => "too_many_tokens",
            Self::TooLarge(_) => "too_large",
            Self::Unauthorized => "unauthorized",
            Self::Forbidden(_) => "forbidden",
            Self::NotFound(_) => "not_found",
            Self::MethodNotAllowed => "method_not_allowed",
            Self::Busy => "queue_full",
            Self::NotReady => "not_ready",
            Self::Unavailable => "unavailable",
            Self::StoreUnavailable => "store_unavailable",
            Self::Overloaded => "overloaded",
            Self::Timeout(_) => "timeout",
            Self::Internal => "internal",
        }
    }

    pub fn invalid(msg: impl Into<String>) -> Self {
        Self::Invalid(msg.into())
    }
}

impl From<DetectError> for ApiError {
    fn from(e: DetectError) -> Self {
        match e {
            DetectError::Worker(WorkerError::Full) => Self::Busy,
            DetectError::Worker(WorkerError::Stopped) => Self::Unavailable,
            DetectError::NoReferences => Self::NotReady,
            DetectError::Store(e) if e.is_unavailable() => {
                tracing::warn!(error = %e, cause = ?std::error::Error::source(&e), "store unavailable");
                Self::StoreUnavailable
            }
            other => {
                tracing::error!(error = %other, cause = ?std::error::Error::source(&other), "request failed");
                Self::Internal
            }
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = json!({"error": {"code": self.code(), "message": self.to_string()}});
        let mut resp = (self.status(), axum::Json(body)).into_response();
        let headers = resp.headers_mut();
        match self {
            Self::Busy | Self::Overloaded | Self::Timeout(_) => {
                headers.insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
            }
            Self::NotReady | Self::Unavailable | Self::StoreUnavailable => {
                headers.insert(header::RETRY_AFTER, HeaderValue::from_static("5"));
            }
            Self::Unauthorized => {
                headers.insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
            }
            _ => {}
        }
        resp
    }
}
