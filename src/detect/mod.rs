//! The use cases: build the searchable reference set from the store, detect
//! (embed -> search -> vote), add and delete references.
//!
//! [`References`] pairs a [`VectorIndex`] with the metadata of each slot and
//! the set of deleted ids; searches over-fetch by the number of deletions
//! not yet compacted, so a deleted reference stops voting at once.
pub mod calibrate;
pub mod import;
pub mod keys;
pub mod seed;
mod service;
pub mod vote;

use std::collections::HashSet;
use std::sync::RwLock;

use crate::encoder::EncoderId;
use crate::index::{self, IndexKind, VectorIndex};
use crate::store::{Label, Store, StoreError, VectorRow};
pub use calibrate::Calibration;
pub use service::{Decision, Detection, Detector, Tokens};
pub use vote::{vote, Neighbour, Verdict, VoteConfig};

#[derive(Debug, thiserror::Error)]
pub enum DetectError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(
        "the store holds {count} references embedded by {stored}, but the running encoder is {running}; \
         run `detective reindex` to re-embed them with the running encoder"
    )]
    EncoderMismatch {
        stored: String,
        running: String,
        count: i64,
    },
    #[error("embedding has {got} dimensions, the index {want}")]
    Dimension { got: usize, want: usize },
    #[error(transparent)]
    Worker(#[from] crate::encoder::WorkerError),
    #[error("tokenizer failed")]
    Tokenize(#[source] crate::encoder::EncoderError),
    #[error("no references to vote")]
    NoReferences,
    #[error("{0} vectors for {1} items")]
    Count(usize, usize),
}

#[derive(Debug, Clone)]
struct Meta {
    id: i64,
    label: Label,
    model: Option<String>,
    family: Option<String>,
    source: Option<String>,
}

/// The searchable reference set: index + per-slot metadata + deletions.
pub struct References {
    index: Box<dyn VectorIndex>,
    meta: RwLock<Vec<Meta>>,
    /// Ids that have a slot in the index (deleted or not).
    indexed: RwLock<HashSet<i64>>,
    deleted: RwLock<HashSet<i64>>,
}

impl References {
    pub fn new(kind: IndexKind, dim: usize, capacity: usize) -> Self {
        Self {
            index: index::build(kind, dim, capacity),
            meta: RwLock::new(Vec::with_capacity(capacity)),
            indexed: RwLock::new(HashSet::with_capacity(capacity)),
            deleted: RwLock::new(HashSet::new()),
        }
    }

    pub fn len(&self) -> usize {
        self.index.len() - self.deleted.read().expect("lock").len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub fn dim(&self) -> usize {
        self.index.dim()
    }

    /// Adds rows (their vectors and metadata); visible to the next search.
    /// A row whose id already has a slot (a restored deletion) only votes
    /// again.
    pub fn add(&self, rows: &[VectorRow]) -> Result<(), DetectError> {
        if let Some(bad) = rows.iter().find(|r| r.embedding.len() != self.dim()) {
            return Err(DetectError::Dimension {
                got: bad.embedding.len(),
                want: self.dim(),
            });
        }
        // Metadata first, under the lock, so a slot is never searchable
        // without its metadata.
        let mut meta = self.meta.write().expect("lock");
        let mut indexed = self.indexed.write().expect("lock");
        let mut deleted = self.deleted.write().expect("lock");
        let (old, rows): (Vec<&VectorRow>, Vec<&VectorRow>) =
            rows.iter().partition(|r| indexed.contains(&r.id));
        for r in old {
            deleted.remove(&r.id);
        }
        if rows.is_empty() {
            return Ok(());
        }
        let vectors: Vec<&[f32]> = rows.iter().map(|r| r.embedding.as_slice()).collect();
        let first = self.index.add(&vectors);
        debug_assert_eq!(first, meta.len());
        meta.extend(rows.iter().map(|r| Meta {
            id: r.id,
            label: r.label,
            model: r.model.clone(),
            family: r.family.clone(),
            source: r.source.clone(),
        }));
        indexed.extend(rows.iter().map(|r| r.id));
        Ok(())
    }

    /// Stops a reference from voting.
    pub fn remove(&self, id: i64) {
        if self.indexed.read().expect("lock").contains(&id) {
            self.deleted.write().expect("lock").insert(id);
        }
    }

    /// The `k` nearest live references, most similar first.
    pub fn search(&self, query: &[f32], k: usize) -> Vec<Neighbour> {
        let deleted = self.deleted.read().expect("lock");
        let hits = self.index.search(query, k + deleted.len());
        let meta = self.meta.read().expect("lock");
        hits.into_iter()
            .filter_map(|h| meta.get(h.slot).map(|m| (h, m)))
            .filter(|(_, m)| !deleted.contains(&m.id))
            .take(k)
            .map(|(h, m)| Neighbour {
                id: m.id,
                similarity: h.similarity,
                label: m.label,
                model: m.model.clone(),
                family: m.family.clone(),
                source: m.source.clone(),
            })
            .collect()
    }
}

/// Fails when the store holds vectors from another encoder.
pub async fn check_encoder(store: &dyn Store, encoder: &EncoderId) -> Result<(), DetectError> {
    for (stored, count) in store.encoders().await? {
        if &stored != encoder {
            return Err(DetectError::EncoderMismatch {
                stored: stored.to_string(),
                running: encoder.to_string(),
                count,
            });
        }
    }
    Ok(())
}

/// Votes for each query vector.
pub fn detect_vectors(
    refs: &References,
    queries: &[Vec<f32>],
    cfg: &VoteConfig,
) -> Vec<Option<Verdict>> {
    queries
        .iter()
        .map(|q| vote(&refs.search(q, cfg.k), cfg))
        .collect()
}
