//! API keys in the store. Only a SHA-256 of each key is kept (keys are long
//! random strings, so a fast hash is enough); the non-secret prefix selects
//! the candidate rows, and the caller compares hashes in constant time.
use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde::Serialize;

use super::StoreError;

/// A stored key, without its hash.
#[derive(Debug, Clone, Serialize)]
pub struct ApiKey {
    pub id: i64,
    pub name: String,
    pub prefix: String,
    /// Space-separated scope names.
    pub scopes: Vec<String>,
    pub created_at: DateTime<Utc>,
    pub revoked_at: Option<DateTime<Utc>>,
}

#[async_trait]
pub trait KeyStore: Send + Sync {
    async fn create_key(
        &self,
        name: &str,
        prefix: &str,
        key_sha256: &str,
        scopes: &[String],
    ) -> Result<i64, StoreError>;
    /// Active keys with this prefix, each with its stored hash.
    async fn keys_by_prefix(&self, prefix: &str) -> Result<Vec<(ApiKey, String)>, StoreError>;
    async fn list_keys(&self) -> Result<Vec<ApiKey>, StoreError>;
    /// `false` if absent or already revoked.
    async fn revoke_key(&self, id: i64) -> Result<bool, StoreError>;
}

pub const CREATE: &str = "INSERT INTO api_key (name, prefix, key_sha256, scopes, created_at) \
     VALUES ($1, $2, $3, $4, $5) RETURNING id";
pub const BY_PREFIX: &str =
    "SELECT * FROM api_key WHERE prefix = $1 AND revoked_at IS NULL ORDER BY id";
pub const LIST: &str = "SELECT * FROM api_key ORDER BY id";
pub const REVOKE: &str = "UPDATE api_key SET revoked_at = $2 WHERE id = $1 AND revoked_at IS NULL";

/// Implements `KeyStore` for a struct with a `pool` field.
macro_rules! impl_key_store {
    ($store:ty, $row:ty) => {
        fn row_to_key(r: &$row) -> Result<$crate::store::ApiKey, $crate::store::StoreError> {
            use sqlx::Row;
            let scopes: String = r.try_get("scopes")?;
            Ok($crate::store::ApiKey {
                id: r.try_get("id")?,
                name: r.try_get("name")?,
                prefix: r.try_get("prefix")?,
                scopes: scopes.split_whitespace().map(str::to_owned).collect(),
                created_at: r.try_get("created_at")?,
                revoked_at: r.try_get("revoked_at")?,
            })
        }

        #[async_trait::async_trait]
        impl $crate::store::KeyStore for $store {
            async fn create_key(
                &self,
                name: &str,
                prefix: &str,
                key_sha256: &str,
                scopes: &[String],
            ) -> Result<i64, $crate::store::StoreError> {
                use sqlx::Row;
                let row = sqlx::query($crate::store::keys::CREATE)
                    .bind(name)
                    .bind(prefix)
                    .bind(key_sha256)
                    .bind(scopes.join(" "))
                    .bind(chrono::Utc::now())
                    .fetch_one(&self.pool)
                    .await?;
                Ok(row.try_get("id")?)
            }

            async fn keys_by_prefix(
                &self,
                prefix: &str,
            ) -> Result<Vec<($crate::store::ApiKey, String)>, $crate::store::StoreError> {
                use sqlx::Row;
                let rows = sqlx::query($crate::store::keys::BY_PREFIX)
                    .bind(prefix)
                    .fetch_all(&self.pool)
                    .await?;
                rows.iter()
                    .map(|r| Ok((row_to_key(r)?, r.try_get("key_sha256")?)))
                    .collect()
            }

            async fn list_keys(
                &self,
            ) -> Result<Vec<$crate::store::ApiKey>, $crate::store::StoreError> {
                let rows = sqlx::query($crate::store::keys::LIST)
                    .fetch_all(&self.pool)
                    .await?;
                rows.iter().map(row_to_key).collect()
            }

            async fn revoke_key(&self, id: i64) -> Result<bool, $crate::store::StoreError> {
                let done = sqlx::query($crate::store::keys::REVOKE)
                    .bind(id)
                    .bind(chrono::Utc::now())
                    .execute(&self.pool)
                    .await?;
                Ok(done.rows_affected() == 1)
            }
        }
    };
}
pub(crate) use impl_key_store;
