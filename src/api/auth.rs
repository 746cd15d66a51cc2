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
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::trim)
        .filter(|k| !k.is_empty())
        .ok_or(ApiError::Unauthorized)?;
    let principal = state
        .keys
        .authenticate(presented)
        .await
        .map_err(|e| {
            tracing::error!(error = %e, "key lookup failed");
            crate::metrics::STORE_ERRORS.inc();
            ApiError::Internal
        })?
        .ok_or(ApiError::Unauthorized)?;
    if principal.allows(scope) {
        Ok(principal)
    } else {
        Err(ApiError::Forbidden(scope))
    }
}

/// Like [`require`], but detection may be configured open to anyone.
pub async fn require_detect(state: &AppState, headers: &HeaderMap) -> Result<String, ApiError> {
    if state.config.open_detect && !headers.contains_key(header::AUTHORIZATION) {
        return Ok("anonymous".into());
    }
    Ok(require(state, headers, Scope::Detect).await?.name)
}
