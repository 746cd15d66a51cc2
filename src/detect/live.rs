//! The live reference set of a running service: a [`References`] kept in
//! step with the store's change feed.
//!
//! A write through this process commits to the store and then calls
//! [`Live::catch_up`], so a client reads its own write as soon as it is
//! acknowledged. A follower task ([`Live::follow`]) wakes on the store's
//! notifications, or every poll interval, and catches up too: that is how a
//! replica sees the writes of the others, and how it recovers from a missed
//! notification or a lost connection (it reads everything after the last
//! sequence number it applied). Catch-ups run one at a time (an async
//! mutex); the set itself sits behind one short lock, and index inserts and
//! searches run on the blocking pool, never on the async workers.
//!
//! Deleted references leave tombstones that every search skips over. When
//! they pass a fifth of the slots, a new set is built from the store in the
//! background, caught up under the catch-up mutex and swapped in; searches
//! in flight finish on the old one.
//!
//! With a snapshot folder, the follower also writes an index snapshot
//! (see [`super::snapshot`]) when enough changes have been applied since the
//! last one, or some changes and enough time: a restart then loads it and
//! catches up instead of rebuilding. While a snapshot is written, searches
//! go on and changes wait.
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use super::startup::PAGE;
use super::{snapshot, startup, DetectError, References};
use crate::index::IndexKind;
use crate::metrics;
use crate::store::{Store, StoreError, VectorRow};
use crate::vocab::EncoderId;

/// When the follower writes index snapshots.
#[derive(Debug, Clone)]
pub struct SnapshotPolicy {
    pub dir: PathBuf,
    pub encoder: EncoderId,
    /// Write one once this many changes have been applied since the last.
    pub every_changes: i64,
    /// Or once this much time has passed with at least one change.
    pub every: Duration,
}

struct Snapshots {
    policy: SnapshotPolicy,
    /// Feed position of the newest snapshot on disk (-1: none).
    saved: AtomicI64,
    last: Mutex<Instant>,
    writing: AtomicBool,
}

pub struct Live {
    store: Arc<dyn Store>,
    kind: IndexKind,
    current: RwLock<Arc<References>>,
    sync: tokio::sync::Mutex<()>,
    rebuilding: AtomicBool,
    snapshots: Option<Snapshots>,
}

/// Every active reference with its vector, by ascending id.
pub async fn all_rows(store: &dyn Store) -> Result<Vec<VectorRow>, StoreError> {
    let mut rows = Vec::new();
    let mut after = 0;
    loop {
        let page = store.vectors(after, 8192).await?;
        let Some(last) = page.last() else {
            break;
        };
        after = last.id;
        rows.extend(page);
    }
    Ok(rows)
}

impl Live {
    /// `refs` must have applied the feed up to [`References::applied`].
    pub fn new(store: Arc<dyn Store>, refs: References, kind: IndexKind) -> Self {
        metrics::FEED_APPLIED_SEQ.set(refs.applied());
        Self {
            store,
            kind,
            current: RwLock::new(Arc::new(refs)),
            sync: tokio::sync::Mutex::new(()),
            rebuilding: AtomicBool::new(false),
            snapshots: None,
        }
    }

    /// Writes snapshots under `policy`; `saved` is the feed position of
    /// the snapshot the set was loaded from, if it was.
    pub fn with_snapshots(mut self, policy: SnapshotPolicy, saved: Option<i64>) -> Self {
        if let Some(seq) = saved {
            metrics::SNAPSHOT_SEQ.set(seq);
        }
        self.snapshots = Some(Snapshots {
            policy,
            saved: AtomicI64::new(saved.unwrap_or(-1)),
            last: Mutex::new(Instant::now()),
            writing: AtomicBool::new(false),
        });
        self
    }

    /// Feed position of the newest snapshot this process wrote or loaded.
    pub fn snapshot_seq(&self) -> Option<i64> {
        self.snapshots
            .as_ref()
            .map(|s| s.saved.load(Ordering::Acquire))
            .filter(|&seq| seq >= 0)
    }

    /// Writes a snapshot if one is due (or, with `force`, if the set holds
    /// any change the newest snapshot lacks); returns its feed position.
    pub async fn snapshot_if_due(&self, force: bool) -> Result<Option<i64>, DetectError> {
        let Some(snaps) = &self.snapshots else {
            return Ok(None);
        };
        let refs = self.snapshot();
        let (applied, saved) = (refs.applied(), snaps.saved.load(Ordering::Acquire));
        let pending = applied - saved;
        let since = snaps
            .last
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .elapsed();
        let due = pending > 0
            && (force
                || saved < 0
                || pending >= snaps.policy.every_changes
                || since >= snaps.policy.every);
        if !due || snaps.writing.swap(true, Ordering::AcqRel) {
            return Ok(None);
        }
        let policy = snaps.policy.clone();
        let kind = self.kind;
        let started = Instant::now();
        let written = tokio::task::spawn_blocking(move || {
            snapshot::save(&refs, &policy.encoder, kind, &policy.dir)
        })
        .await;
        snaps.writing.store(false, Ordering::Release);
        *snaps.last.lock().unwrap_or_else(|e| e.into_inner()) = Instant::now();
        let manifest = match written {
            Ok(Ok(m)) => m,
            Ok(Err(e)) => {
                tracing::warn!(error = %format!("{e:#}"), "cannot write the index snapshot");
                return Ok(None);
            }
            Err(_) => return Err(DetectError::Worker(crate::encoder::WorkerError::Failed)),
        };
        snaps.saved.store(manifest.applied, Ordering::Release);
        metrics::SNAPSHOT_SEQ.set(manifest.applied);
        metrics::SNAPSHOT_SECONDS.set(started.elapsed().as_secs_f64());
        Ok(Some(manifest.applied))
    }

    /// The set searches use now.
    pub fn snapshot(&self) -> Arc<References> {
        self.current
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Applies every change the store holds beyond what this process has
    /// applied; returns how many were applied.
    pub async fn catch_up(&self) -> Result<usize, DetectError> {
        let _one = self.sync.lock().await;
        let refs = self.snapshot();
        self.catch_up_into(&refs).await
    }

    async fn catch_up_into(&self, refs: &Arc<References>) -> Result<usize, DetectError> {
        let mut applied = 0;
        loop {
            let page = self.store.changes(refs.applied(), PAGE).await?;
            if page.is_empty() {
                break;
            }
            applied += page.len();
            let target = refs.clone();
            tokio::task::spawn_blocking(move || target.apply(&page))
                .await
                .map_err(|_| DetectError::Worker(crate::encoder::WorkerError::Failed))??;
        }
        metrics::FEED_APPLIED_SEQ.set(refs.applied());
        metrics::FEED_SYNCED.set(
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0.0, |d| d.as_secs_f64()),
        );
        metrics::INDEX_VECTORS.set(refs.len() as i64);
        metrics::INDEX_TOMBSTONES.set(refs.tombstones() as i64);
        Ok(applied)
    }

    /// Whether tombstones have passed a fifth of the slots (and a floor, so
    /// small sets are not rebuilt for a handful of deletions).
    fn needs_compaction(refs: &References) -> bool {
        let dead = refs.tombstones();
        dead >= 256 && dead * 5 >= refs.len() + dead
    }

    /// Rebuilds the set without its tombstones and swaps it in; a no-op
    /// when not needed or already under way.
    pub async fn compact_if_needed(&self) -> Result<(), DetectError> {
        if !Self::needs_compaction(&self.snapshot()) || self.rebuilding.swap(true, Ordering::AcqRel)
        {
            return Ok(());
        }
        let result = self.rebuild().await;
        self.rebuilding.store(false, Ordering::Release);
        result
    }

    async fn rebuild(&self) -> Result<(), DetectError> {
        let started = Instant::now();
        let dim = self.snapshot().dim();
        let seq = self.store.last_seq().await?;
        let rows = all_rows(self.store.as_ref()).await?;
        let kind = self.kind;
        let fresh = tokio::task::spawn_blocking(move || {
            let refs = startup::build(&rows, dim, kind, &|_, _| {})?;
            refs.mark_applied(seq);
            Ok::<_, DetectError>(refs)
        })
        .await
        .map_err(|_| DetectError::Worker(crate::encoder::WorkerError::Failed))??;
        let fresh = Arc::new(fresh);
        let _one = self.sync.lock().await;
        self.catch_up_into(&fresh).await?;
        let old = std::mem::replace(
            &mut *self.current.write().unwrap_or_else(|e| e.into_inner()),
            fresh,
        );
        tracing::info!(
            seconds = started.elapsed().as_secs_f64(),
            tombstones = old.tombstones(),
            "reference index compacted"
        );
        metrics::INDEX_TOMBSTONES.set(0);
        Ok(())
    }

    /// Follows the store's change feed until the process ends: waits for a
    /// notification (or `poll`), catches up, compacts when due.
    pub async fn follow(self: Arc<Self>, poll: Duration) {
        loop {
            self.store.wait_change(poll).await;
            if let Err(e) = self.catch_up().await {
                metrics::STORE_ERRORS.inc();
                tracing::warn!(error = %e, "cannot read the reference change feed");
                continue;
            }
            if let Err(e) = self.compact_if_needed().await {
                tracing::warn!(error = %e, "compaction failed");
            }
            if let Err(e) = self.snapshot_if_due(false).await {
                tracing::warn!(error = %e, "index snapshot failed");
            }
        }
    }

    /// (applied sequence number, the store's latest), for `/info` and lag.
    pub async fn positions(&self) -> Result<(i64, i64), StoreError> {
        let last = self.store.last_seq().await?;
        Ok((self.snapshot().applied(), last))
    }
}
