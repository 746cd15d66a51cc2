//! The store's reference counts as `/info` and the `detective_references`
//! gauge show them. Counting is an aggregate over the whole table, and
//! `/info` needs no key, so counts are reused for [`Tally::FRESH`]: however
//! many requests ask, the store counts at most once per that interval
//! (concurrent askers wait for the one count in progress). A write through
//! this process marks the counts stale, so its own `/info` shows it at
//! once; the gauge is refreshed at most once per [`Tally::SETTLE`] after
//! writes, so a burst of additions costs one count, not one per request.
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::Mutex;

use crate::metrics;
use crate::store::{Counts, Store, StoreError};

/// Counts and the store's change position, as of one moment.
#[derive(Debug, Clone)]
pub struct Tallied {
    pub counts: Counts,
    pub store_seq: i64,
}

pub struct Tally {
    store: Arc<dyn Store>,
    last: Mutex<Option<(Instant, Tallied)>>,
    stale: AtomicBool,
    scheduled: AtomicBool,
}

impl Tally {
    /// How long counts are reused.
    pub const FRESH: Duration = Duration::from_secs(2);
    /// How long after a write the gauge is refreshed.
    pub const SETTLE: Duration = Duration::from_secs(1);

    pub fn new(store: Arc<dyn Store>) -> Self {
        Self {
            store,
            last: Mutex::new(None),
            stale: AtomicBool::new(false),
            scheduled: AtomicBool::new(false),
        }
    }

    /// The counts, reused while fresh.
    pub async fn get(&self) -> Result<Tallied, StoreError> {
        let mut last = self.last.lock().await;
        let stale = self.stale.swap(false, Ordering::AcqRel);
        if let Some((at, t)) = last.as_ref() {
            if !stale && at.elapsed() < Self::FRESH {
                return Ok(t.clone());
            }
        }
        let counted = async {
            Ok::<_, StoreError>(Tallied {
                counts: self.store.counts().await?,
                store_seq: self.store.last_seq().await?,
            })
        }
        .await;
        match counted {
            Ok(t) => {
                metrics::set_references(&t.counts.by_family);
                *last = Some((Instant::now(), t.clone()));
                Ok(t)
            }
            Err(e) => {
                if stale {
                    self.stale.store(true, Ordering::Release);
                }
                metrics::STORE_ERRORS.inc();
                Err(e)
            }
        }
    }

    /// After a write: the next [`get`](Self::get) counts again, and the
    /// gauge follows within [`SETTLE`](Self::SETTLE) (one count for a burst).
    pub fn changed(self: &Arc<Self>) {
        self.stale.store(true, Ordering::Release);
        if self.scheduled.swap(true, Ordering::AcqRel) {
            return;
        }
        let me = self.clone();
        tokio::spawn(async move {
            tokio::time::sleep(Self::SETTLE).await;
            me.scheduled.store(false, Ordering::Release);
            me.stale.store(true, Ordering::Release);
            if let Err(e) = me.get().await {
                tracing::warn!(error = %e, "cannot count references");
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::{Label, NewReference, SqliteStore};
    use crate::vocab::EncoderId;

    fn item(i: usize) -> NewReference {
        NewReference {
            model: Some("m".into()),
            family: Some("f".into()),
            ..NewReference::plain(format!("text number {i}"), Label::Machine, "test")
        }
    }

    /// Concurrent readers and writers: every reader gets counts, a reader
    /// after a write sees it, and readers within the fresh interval share
    /// one count.
    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn counts_are_shared_and_follow_writes() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.db");
        let store: Arc<dyn Store> =
            Arc::new(SqliteStore::open(path.to_str().unwrap()).await.unwrap());
        let enc = EncoderId {
            name: "e".into(),
            checksum: "c".into(),
            max_length: 8,
        };
        let tally = Arc::new(Tally::new(store.clone()));
        assert_eq!(tally.get().await.unwrap().counts.total, 0);
        let mut tasks = Vec::new();
        for w in 0..4 {
            let (store, tally, enc) = (store.clone(), tally.clone(), enc.clone());
            tasks.push(tokio::spawn(async move {
                for i in 0..10 {
                    store
                        .insert(&[item(w * 100 + i)], &[vec![1.0, 0.0]], &enc)
                        .await
                        .unwrap();
                    tally.changed();
                    // This writer's own addition is counted.
                    let t = tally.get().await.unwrap();
                    assert!(t.counts.total > (i as i64), "{t:?}");
                }
            }));
        }
        for _ in 0..4 {
            let tally = tally.clone();
            tasks.push(tokio::spawn(async move {
                for _ in 0..50 {
                    let t = tally.get().await.unwrap();
                    assert!((0..=40).contains(&t.counts.total), "{t:?}");
                }
            }));
        }
        for t in tasks {
            t.await.unwrap();
        }
        assert_eq!(tally.get().await.unwrap().counts.total, 40);
        // A write this tally is told about is counted at once.
        store
            .insert(&[item(999)], &[vec![1.0, 0.0]], &enc)
            .await
            .unwrap();
        tally.changed();
        assert_eq!(tally.get().await.unwrap().counts.total, 41);
    }
}
