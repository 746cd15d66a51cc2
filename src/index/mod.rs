//! Nearest-neighbour search over unit vectors (cosine similarity = dot
//! product).
//!
//! Two implementations behind one trait: [`HnswIndex`] (approximate, what
//! serves traffic) and [`ExactIndex`] (brute force: used for small sets and to
//! measure the approximate index's recall). Vectors live at consecutive
//! *slots*; the caller maps slots to reference ids and metadata. The index is
//! derived from the store and can always be rebuilt from it.
mod exact;
mod hnsw;
pub mod synthetic;

use std::path::Path;

pub use exact::{dot, ExactIndex};
pub use hnsw::{HnswIndex, HnswParams};

/// One search result: a slot and its cosine similarity to the query.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Hit {
    pub slot: usize,
    pub similarity: f32,
}

pub trait VectorIndex: Send + Sync {
    fn dim(&self) -> usize;
    fn len(&self) -> usize;
    fn is_empty(&self) -> bool {
        self.len() == 0
    }
    /// Appends vectors at slots `len()..len() + vectors.len()`; returns the
    /// first slot. Safe to call while searches run.
    fn add(&self, vectors: &[&[f32]]) -> usize;
    /// Up to `k` nearest slots, most similar first.
    fn search(&self, query: &[f32], k: usize) -> Vec<Hit>;
    /// Writes the index into the empty folder `dir`; returns the names of
    /// the files written. Inserts wait while it runs; searches do not.
    fn save(&self, dir: &Path) -> anyhow::Result<Vec<String>>;
}

/// Which index to build.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum IndexKind {
    Exact,
    Hnsw(HnswParams),
}

/// Reads an index written by [`VectorIndex::save`] with the same kind.
/// The caller checks the files' integrity first (a damaged HNSW dump can
/// make the graph reader panic).
pub fn load(kind: IndexKind, dim: usize, dir: &Path) -> anyhow::Result<Box<dyn VectorIndex>> {
    Ok(match kind {
        IndexKind::Exact => Box::new(ExactIndex::load(dim, dir)?),
        IndexKind::Hnsw(p) => Box::new(HnswIndex::load(dim, p, dir)?),
    })
}

pub fn build(kind: IndexKind, dim: usize, capacity: usize) -> Box<dyn VectorIndex> {
    match kind {
        IndexKind::Exact => Box::new(ExactIndex::new(dim)),
        IndexKind::Hnsw(p) => Box::new(HnswIndex::new(dim, capacity, p)),
    }
}
