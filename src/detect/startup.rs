//! Opening the reference set for voting: the one sequence that `serve` and
//! `detect` both run.
//!
//! 1. seed an empty store with the shipped default references;
//! 2. refuse a store whose vectors another encoder made;
//! 3. load the newest index snapshot made for this encoder and index
//!    configuration and catch it up from the change feed, or else read
//!    every stored vector and build the index;
//! 4. take the stored calibration (k, thresholds), computing and storing
//!    one if there is none.
//!
//! With a snapshot and a stored calibration, no stored vector is read: that
//! is what keeps a restart at a million references fast.
use std::path::Path;
use std::time::Instant;

use super::snapshot::{self, Unusable};
use super::{calibrate, check_encoder, seed, Calibration, DetectError, References};
use crate::encoder::Embed;
use crate::index::IndexKind;
use crate::store::{Store, VectorRow};

/// Changes read from the feed per query while catching up.
pub(super) const PAGE: i64 = 1024;

/// Where the opened set came from.
#[derive(Debug, Clone, PartialEq)]
pub enum Origin {
    /// Built from the stored vectors.
    Built,
    /// Loaded from the snapshot at this feed position, then caught up.
    Snapshot { applied: i64, caught_up: usize },
}

pub struct Opened {
    pub refs: References,
    pub kind: IndexKind,
    pub calibration: Option<Calibration>,
    pub origin: Origin,
    /// Default references stored into an empty store.
    pub seeded: usize,
    /// Why the snapshot was not used, when one was asked for.
    pub snapshot_skipped: Option<String>,
    pub seconds: f64,
}

/// Callbacks for long steps: `(done, total)`.
pub struct Progress<'a> {
    pub seeding: &'a dyn Fn(u64, u64),
    pub indexing: &'a dyn Fn(u64, u64),
}

impl Progress<'_> {
    pub const NONE: Progress<'static> = Progress {
        seeding: &|_, _| {},
        indexing: &|_, _| {},
    };
}

/// Opens the reference set of `store` for `encoder`. `kind_for` picks the
/// index for a number of references. Blocking work (index loading and
/// building) runs on the calling thread: call it from a blocking context.
pub async fn open(
    store: &dyn Store,
    encoder: &dyn Embed,
    kind_for: &dyn Fn(usize) -> anyhow::Result<IndexKind>,
    snapshots: Option<&Path>,
    classifier_weight: f64,
    progress: &Progress<'_>,
) -> anyhow::Result<Opened> {
    let started = Instant::now();
    let seeded = seed::if_empty(store, encoder, progress.seeding).await?;
    check_encoder(store, encoder.id()).await?;
    let counts = store.counts().await?;
    anyhow::ensure!(
        counts.total > 0,
        "the store holds no references: add some with `detective import FILE.jsonl`"
    );
    let kind = kind_for(counts.total as usize)?;
    let dim = encoder.dim();
    let mut skipped = None;
    let mut loaded = None;
    if let Some(root) = snapshots {
        match from_snapshot(store, encoder, kind, dim, root).await {
            Ok(found) => loaded = Some(found),
            Err(Unusable::Missing(_)) => skipped = Some("no snapshot yet".to_owned()),
            Err(why) => {
                tracing::warn!(dir = %root.display(), reason = %why, "index snapshot not used; rebuilding");
                skipped = Some(why.to_string());
            }
        }
    }
    let mut rows: Option<Vec<VectorRow>> = None;
    let (refs, origin) = match loaded {
        Some(found) => found,
        None => {
            // The feed position first: changes made while the rows are
            // read are applied again by the first catch-up, harmlessly.
            let seq = store.last_seq().await?;
            let all = super::live::all_rows(store).await?;
            let refs = build(&all, dim, kind, progress.indexing)?;
            refs.mark_applied(seq);
            rows = Some(all);
            (refs, Origin::Built)
        }
    };
    // A calibration for another classifier weight, or for another
    // classifier, chose its thresholds and rule on other scores; one made
    // without the encoder's held-out split validated on texts the encoder
    // knows; one made before group votes never compared them with the
    // majority, or before novelty thresholds by length, never compared
    // them or set them: each is calibrated again.
    let calibration = match calibrate::stored(store, encoder.id()).await?.filter(|c| {
        c.classifier_weight == classifier_weight
            && c.made_with_current_classifier()
            && c.held_out_split == encoder.held_out()
            && c.compared_default_groups()
            && (c.novelty.is_some() || c.validation_size < super::novelty::MIN_VALIDATION)
    }) {
        Some(c) => Some(c),
        None => {
            let rows = match rows {
                Some(r) => r,
                None => super::live::all_rows(store).await?,
            };
            calibrate::refresh(
                store,
                encoder.id(),
                dim,
                &rows,
                kind,
                classifier_weight,
                encoder.held_out(),
            )
            .await?
        }
    };
    if let Some(c) = &calibration {
        tracing::info!(
            k = c.k,
            validation = c.validation_size,
            held_out = c.held_out,
            group_vote = c.groups,
            "calibrated on {} validation texts{}",
            c.validation_size,
            if c.held_out {
                " held out of the encoder's training"
            } else {
                ""
            }
        );
    }
    Ok(Opened {
        refs,
        kind,
        calibration,
        origin,
        seeded,
        snapshot_skipped: skipped,
        seconds: started.elapsed().as_secs_f64(),
    })
}

/// Builds a set from `rows`.
pub fn build(
    rows: &[VectorRow],
    dim: usize,
    kind: IndexKind,
    progress: &dyn Fn(u64, u64),
) -> Result<References, DetectError> {
    let refs = References::new(kind, dim, rows.len());
    let mut done = 0;
    // Large chunks: each is one parallel insert, and its end a barrier.
    for chunk in rows.chunks(16_384) {
        refs.add(chunk)?;
        done += chunk.len();
        progress(done as u64, rows.len() as u64);
    }
    Ok(refs)
}

/// Applies every change after the set's position.
pub async fn catch_up(store: &dyn Store, refs: &References) -> Result<usize, DetectError> {
    let mut applied = 0;
    loop {
        let page = store.changes(refs.applied(), PAGE).await?;
        if page.is_empty() {
            return Ok(applied);
        }
        applied += page.len();
        refs.apply(&page)?;
    }
}

/// Loads the snapshot and catches it up, checking it against the store: a
/// snapshot ahead of the store's feed, or one that after catching up votes
/// with a different number of references than the store holds, belongs to
/// another store (or a restored backup) and is not used.
async fn from_snapshot(
    store: &dyn Store,
    encoder: &dyn Embed,
    kind: IndexKind,
    dim: usize,
    root: &Path,
) -> Result<(References, Origin), Unusable> {
    let t = Instant::now();
    let (refs, manifest) = snapshot::load(root, encoder.id(), kind, dim)?;
    let store_err = |e: DetectError| Unusable::Damaged(e.into());
    let last = store.last_seq().await.map_err(|e| store_err(e.into()))?;
    if manifest.applied > last {
        return Err(Unusable::Mismatch {
            what: "store position",
            found: manifest.applied.to_string(),
            want: format!("at most {last}"),
        });
    }
    let loaded_s = t.elapsed().as_secs_f64();
    let caught_up = catch_up(store, &refs).await.map_err(store_err)?;
    let before = store.last_seq().await.map_err(|e| store_err(e.into()))?;
    let counts = store.counts().await.map_err(|e| store_err(e.into()))?;
    let after = store.last_seq().await.map_err(|e| store_err(e.into()))?;
    // Compared only at a quiet moment: the count and the set at one position.
    if before == after && refs.applied() == after && refs.len() as i64 != counts.total {
        return Err(Unusable::Mismatch {
            what: "reference count",
            found: refs.len().to_string(),
            want: counts.total.to_string(),
        });
    }
    tracing::info!(
        dir = %root.display(),
        references = refs.len(),
        snapshot_seq = manifest.applied,
        caught_up,
        load_seconds = loaded_s,
        "index snapshot loaded"
    );
    Ok((
        refs,
        Origin::Snapshot {
            applied: manifest.applied,
            caught_up,
        },
    ))
}
