//! Durable labelled references behind one trait.
//!
//! The store is the source of truth: every reference keeps its text, the
//! SHA-256 of its whitespace-normalised text (unique, which makes adding
//! idempotent), its labels and provenance, its embedding and the identity of
//! the encoder that produced it. The nearest-neighbour index is derived from
//! it and can always be rebuilt. SQLite (a file, zero set-up) is the default;
//! PostgreSQL serves shared deployments. Both run the same SQL (`$N`
//! placeholders, `ON CONFLICT`, `RETURNING`), from `sql.rs`.
pub(crate) mod keys;
mod postgres;
mod sql;
mod sqlite;
mod types;

use std::collections::HashSet;
use std::sync::Arc;

use async_trait::async_trait;

use crate::vocab::EncoderId;
pub use keys::{ApiKey, KeyStore};
pub use postgres::PgStore;
pub use sqlite::SqliteStore;
pub use types::{text_sha256, Change, Counts, Inserted, Label, NewReference, Reference, VectorRow};

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("database error")]
    Db(#[from] sqlx::Error),
    #[error("schema migration failed")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    #[error("unsupported database URL {0:?} (use a SQLite path or sqlite:// / postgres:// URL)")]
    Url(String),
    #[error("corrupt row {id}: {reason}")]
    Corrupt { id: i64, reason: String },
    #[error("{0} embeddings for {1} references")]
    Mismatch(usize, usize),
}

impl StoreError {
    /// The database cannot be reached or cannot take the write now (down,
    /// restarting, out of connections, disk full, read-only, locked): the
    /// request may succeed later, and nothing was half-written, because
    /// every write is one transaction.
    pub fn is_unavailable(&self) -> bool {
        let Self::Db(e) = self else { return false };
        match e {
            sqlx::Error::Io(_)
            | sqlx::Error::Tls(_)
            | sqlx::Error::Protocol(_)
            | sqlx::Error::PoolTimedOut
            | sqlx::Error::PoolClosed
            | sqlx::Error::WorkerCrashed => true,
            sqlx::Error::Database(db) => {
                if let Some(pg) = db.try_downcast_ref::<sqlx::postgres::PgDatabaseError>() {
                    // Connection exceptions, insufficient resources (disk
                    // full, too many connections), operator intervention
                    // (shutdown, restart), system errors.
                    let code = pg.code();
                    ["08", "53", "57P", "58"]
                        .iter()
                        .any(|class| code.starts_with(class))
                        || code == "25006" // read-only transaction
                } else if db.try_downcast_ref::<sqlx::sqlite::SqliteError>().is_some() {
                    // BUSY, LOCKED, READONLY, IOERR, FULL, CANTOPEN
                    // (primary result codes; extended codes carry them in
                    // their low byte).
                    db.code()
                        .and_then(|c| c.parse::<i32>().ok())
                        .is_some_and(|c| matches!(c & 0xff, 5 | 6 | 8 | 10 | 13 | 14))
                } else {
                    false
                }
            }
            _ => false,
        }
    }
}

#[async_trait]
pub trait Store: KeyStore {
    /// Adds references with their embeddings in one transaction. A text
    /// already stored keeps its row and returns its id (`created: false`);
    /// a deleted one is restored.
    async fn insert(
        &self,
        items: &[NewReference],
        embeddings: &[Vec<f32>],
        encoder: &EncoderId,
    ) -> Result<Vec<Inserted>, StoreError>;
    /// Which of these text hashes are already stored (deleted or not).
    async fn existing(&self, hashes: &[String]) -> Result<HashSet<String>, StoreError>;
    async fn get(&self, id: i64) -> Result<Option<Reference>, StoreError>;
    /// Excludes a reference from votes; `false` if absent or already deleted.
    async fn delete(&self, id: i64) -> Result<bool, StoreError>;
    /// Active references with their vectors, by ascending id, for index builds.
    async fn vectors(&self, after_id: i64, limit: i64) -> Result<Vec<VectorRow>, StoreError>;
    /// Encoders that produced the active references, with counts.
    async fn encoders(&self) -> Result<Vec<(EncoderId, i64)>, StoreError>;
    /// Texts of active references by ascending id, for re-embedding.
    async fn texts(&self, after_id: i64, limit: i64) -> Result<Vec<(i64, String)>, StoreError>;
    /// Replaces embeddings (one transaction) after a re-embed.
    async fn set_embeddings(
        &self,
        rows: &[(i64, Vec<f32>)],
        encoder: &EncoderId,
    ) -> Result<(), StoreError>;
    async fn counts(&self) -> Result<Counts, StoreError>;
    /// The change feed: references whose latest change has a sequence
    /// number above `after`, in sequence order, each in its current state.
    async fn changes(&self, after: i64, limit: i64) -> Result<Vec<Change>, StoreError>;
    /// The highest sequence number of the change feed (0 when empty).
    async fn last_seq(&self) -> Result<i64, StoreError>;
    /// Returns when another process may have changed the references
    /// (PostgreSQL: a notification on the feed's channel), or after
    /// `timeout`. Callers read the feed either way, so a missed wake-up
    /// only delays, never loses, a change.
    async fn wait_change(&self, timeout: std::time::Duration);
    async fn save_calibration(&self, encoder: &EncoderId, body: &str) -> Result<(), StoreError>;
    async fn calibration(&self, encoder: &EncoderId) -> Result<Option<String>, StoreError>;
}

/// Opens (creating if needed) and migrates the store at `url`: a
/// `postgres://` URL, a `sqlite://` URL, or a plain file path for SQLite.
pub async fn open(url: &str) -> Result<Arc<dyn Store>, StoreError> {
    if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        Ok(Arc::new(PgStore::connect(url).await?))
    } else if let Some(path) = url.strip_prefix("sqlite://") {
        Ok(Arc::new(SqliteStore::open(path).await?))
    } else if url.is_empty() || url.contains("://") {
        Err(StoreError::Url(url.to_owned()))
    } else {
        Ok(Arc::new(SqliteStore::open(url).await?))
    }
}

/// Encodes a vector as little-endian f32 bytes.
pub fn encode_vector(v: &[f32]) -> Vec<u8> {
    v.iter().flat_map(|x| x.to_le_bytes()).collect()
}

pub fn decode_vector(id: i64, bytes: &[u8]) -> Result<Vec<f32>, StoreError> {
    if !bytes.len().is_multiple_of(4) {
        return Err(StoreError::Corrupt {
            id,
            reason: format!("embedding has {} bytes", bytes.len()),
        });
    }
    Ok(bytes
        .chunks_exact(4)
        .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
        .collect())
}
