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
        Self::open_with(path, 4).await
    }

    async fn open_with(path: &str, connections: u32) -> Result<Self, StoreError> {
        let opts = SqliteConnectOptions::from_str(&format!("sqlite://{path}"))?
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Full)
            .busy_timeout(std::time::Duration::from_secs(30));
        let pool = SqlitePoolOptions::new()
            .max_connections(connections)
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

    /// The disk under the file fills up: every write is refused, and none is
    /// acknowledged, however often it is retried on the same connection;
    /// once space is freed, a write is committed for every connection to
    /// see. (SQLite rolls a transaction back by itself when the disk is
    /// full; a connection that the driver still counts as in a transaction
    /// would acknowledge later writes inside a savepoint never committed.)
    /// Needs root to mount a small tmpfs; skipped elsewhere.
    #[tokio::test]
    async fn a_full_disk_refuses_every_write_and_loses_none() {
        let dir = tempfile::tempdir().unwrap();
        let mounted = std::process::Command::new("mount")
            .args(["-t", "tmpfs", "-o", "size=4m", "tmpfs"])
            .arg(dir.path())
            .stderr(std::process::Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        if !mounted {
            eprintln!("skipped: cannot mount a tmpfs here (needs root with CAP_SYS_ADMIN)");
            return;
        }
        struct Unmount<'a>(&'a std::path::Path);
        impl Drop for Unmount<'_> {
            fn drop(&mut self) {
                let _ = std::process::Command::new("umount")
                    .arg("-l")
                    .arg(self.0)
                    .status();
            }
        }
        let _unmount = Unmount(dir.path());
        let path = dir.path().join("s.db");
        let p = path.to_str().unwrap();
        // One connection, so that every retry meets the one that failed.
        let store = SqliteStore::open_with(p, 1).await.unwrap();
        let id = EncoderId {
            name: "e".into(),
            checksum: "c".into(),
            max_length: 8,
        };
        let batch = |b: usize| -> (Vec<NewReference>, Vec<Vec<f32>>) {
            (0..8)
                .map(|i| {
                    let text = format!("batch {b} item {i} {}", "some words ".repeat(300));
                    (NewReference::plain(text, Label::Human, "t"), vec![0.5; 384])
                })
                .unzip()
        };
        let (items, vectors) = batch(0);
        store.insert(&items, &vectors, &id).await.unwrap();
        let filler = dir.path().join("filler");
        {
            use std::io::Write;
            let mut f = std::fs::File::create(&filler).unwrap();
            let chunk = vec![0u8; 1 << 14];
            while f.write_all(&chunk).and_then(|()| f.sync_all()).is_ok() {}
        }
        let mut acknowledged = 8;
        let mut refused = 0;
        for b in 1..200 {
            let (items, vectors) = batch(b);
            match store.insert(&items, &vectors, &id).await {
                Ok(_) if refused == 0 => acknowledged += 8,
                Ok(_) => panic!("batch {b} acknowledged on a full disk after {refused} refusals"),
                Err(e) => {
                    assert!(e.is_unavailable(), "{e}");
                    refused += 1;
                    if refused == 5 {
                        break;
                    }
                }
            }
        }
        assert_eq!(refused, 5, "the full disk refused writes");
        std::fs::remove_file(&filler).unwrap();
        let (items, vectors) = batch(1000);
        store.insert(&items, &vectors, &id).await.unwrap();
        let other = SqliteStore::open(p).await.unwrap();
        assert_eq!(
            other.counts().await.unwrap().total,
            acknowledged + 8,
            "every acknowledged write, and only those, visible to another connection"
        );
        drop(other);
        drop(store);
        let reopened = SqliteStore::open(p).await.unwrap();
        assert_eq!(reopened.counts().await.unwrap().total, acknowledged + 8);
    }
}
