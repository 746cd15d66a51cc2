//! SQLite store: one file, WAL journal, `synchronous = FULL` so that a
//! reference acknowledged as committed survives a crash of the process or
//! the machine.
use std::str::FromStr;

use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::SqlitePool;

use super::keys::impl_key_store;
use super::sql::impl_store;
use super::StoreError;

pub struct SqliteStore {
    pool: SqlitePool,
}

impl SqliteStore {
    pub async fn open(path: &str) -> Result<Self, StoreError> {
        let opts = SqliteConnectOptions::from_str(&format!("sqlite://{path}"))?
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Full)
            .busy_timeout(std::time::Duration::from_secs(30));
        let pool = SqlitePoolOptions::new()
            .max_connections(4)
            .connect_with(opts)
            .await?;
        sqlx::migrate!("migrations/sqlite").run(&pool).await?;
        Ok(Self { pool })
    }

    /// One process writes a SQLite file, so there is nothing to listen
    /// to: callers poll.
    async fn wait_for_change(&self, timeout: std::time::Duration) {
        tokio::time::sleep(timeout).await;
    }
}

// SQLite has one writer at a time, which orders the feed by itself.
impl_store!(
    SqliteStore,
    sqlx::sqlite::SqliteRow,
    super::sql::Feed {
        lock: None,
        notify: None,
    }
);
impl_key_store!(SqliteStore, sqlx::sqlite::SqliteRow);

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::{Label, NewReference, Store};
    use crate::vocab::EncoderId;

    /// A file opened read-only (`PATH?mode=ro`) refuses a write as
    /// unavailable (HTTP 503), and nothing of it is written.
    #[tokio::test]
    async fn a_read_only_file_refuses_writes_as_unavailable() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s.db");
        let p = path.to_str().unwrap();
        drop(SqliteStore::open(p).await.unwrap());
        let ro = SqliteStore::open(&format!("{p}?mode=ro")).await.unwrap();
        let id = EncoderId {
            name: "e".into(),
            checksum: "c".into(),
            max_length: 8,
        };
        let item = |text: &str| NewReference::plain(text, Label::Human, "t");
        let e = ro
            .insert(&[item("a"), item("b")], &[vec![1.0], vec![0.5]], &id)
            .await
            .unwrap_err();
        assert!(
            e.is_unavailable(),
            "{e}: {:?}",
            std::error::Error::source(&e)
        );
        assert_eq!(ro.counts().await.unwrap().total, 0);
        assert_eq!(ro.last_seq().await.unwrap(), 0);
    }
}
