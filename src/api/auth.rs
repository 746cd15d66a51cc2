//! Bearer-key checks for handlers.
use axum::http::{header, HeaderMap};

use super::error::ApiError;
use super::AppState;
use crate::detect::keys::{Principal, Scope};

/// The caller, who must hold `scope`.
pub async fn require(
    state: &AppState,
    headers: &HeaderMap,
    scope: Scope,
) -> Result<Principal, ApiError> {
    let presented = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(bearer)
        .filter(|k| !k.is_empty())
        .ok_or(ApiError::Unauthorized)?;
    let principal = state
        .keys
        .authenticate(presented)
        .await
        .map_err(|e| {
            crate::metrics::STORE_ERRORS.inc();
            if e.is_unavailable() {
                tracing::warn!(error = %e, "key lookup failed: store unavailable");
                ApiError::StoreUnavailable
            } else {
                tracing::error!(error = %e, "key lookup failed");
                ApiError::Internal
            }
        })?
        .ok_or(ApiError::Unauthorized)?;
    if principal.allows(scope) {
        Ok(principal)
    } else {
        Err(ApiError::Forbidden(scope))
    }
}

/// The key of an `Authorization: Bearer KEY` header; the scheme is
/// case-insensitive, as in every HTTP authentication scheme.
fn bearer(value: &str) -> Option<&str> {
    let (scheme, key) = value.trim_start().split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then(|| key.trim())
}

/// Like [`require`], but detection may be configured open to anyone.
pub async fn require_detect(state: &AppState, headers: &HeaderMap) -> Result<String, ApiError> {
    if state.config.open_detect && !headers.contains_key(header::AUTHORIZATION) {
        return Ok("anonymous".into());
    }
    Ok(require(state, headers, Scope::Detect).await?.name)
}
