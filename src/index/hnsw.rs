//! HNSW graph (`hnsw_rs`) over unit vectors with `1 - dot` as the distance.
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;

use anyhow::Context;
use hnsw_rs::api::AnnT;
use hnsw_rs::hnswio::HnswIo;
use hnsw_rs::prelude::{Distance, Hnsw};

use super::{Hit, VectorIndex};

/// Graph parameters: `m` links per node, the candidate-list sizes used while
/// building (`ef_construction`) and searching (`ef_search`, raised to `k` when
/// smaller).
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct HnswParams {
    pub m: usize,
    pub ef_construction: usize,
    pub ef_search: usize,
}

impl Default for HnswParams {
    fn default() -> Self {
        Self {
            m: 16,
            ef_construction: 100,
            ef_search: 256,
        }
    }
}

/// Cosine distance for vectors already normalised to unit length. Rounding
/// can push a dot product a hair past 1; the distance is clamped at 0.
#[derive(Debug, Default, Clone, Copy)]
pub struct UnitCosine;

impl Distance<f32> for UnitCosine {
    fn eval(&self, a: &[f32], b: &[f32]) -> f32 {
        (1.0 - super::exact::dot(a, b)).max(0.0)
    }
}

pub struct HnswIndex {
    dim: usize,
    params: HnswParams,
    graph: Hnsw<'static, f32, UnitCosine>,
    /// Vectors searchable so far.
    count: AtomicUsize,
    /// Held while inserting so slots stay consecutive; searches never wait.
    insert: Mutex<()>,
}

const MAX_LAYERS: usize = 16;

/// Base name of the graph dump (`graph.hnsw.graph`, `graph.hnsw.data`).
const DUMP_NAME: &str = "graph";

impl HnswIndex {
    pub fn new(dim: usize, capacity: usize, params: HnswParams) -> Self {
        let graph = Hnsw::new(
            params.m.clamp(2, 256),
            capacity.max(1024),
            MAX_LAYERS,
            params.ef_construction.max(params.m),
            UnitCosine,
        );
        Self {
            dim,
            params,
            graph,
            count: AtomicUsize::new(0),
            insert: Mutex::new(()),
        }
    }

    /// Reads a graph written by `save`. The reader borrows from its loader
    /// for the graph's lifetime, so the loader (a path and options, a few
    /// hundred bytes) is kept for the life of the process.
    pub fn load(dim: usize, params: HnswParams, dir: &Path) -> anyhow::Result<Self> {
        for ext in ["hnsw.graph", "hnsw.data"] {
            let f = dir.join(format!("{DUMP_NAME}.{ext}"));
            anyhow::ensure!(f.is_file(), "{} is missing", f.display());
        }
        let loader: &'static mut HnswIo = Box::leak(Box::new(HnswIo::new(dir, DUMP_NAME)));
        let graph: Hnsw<'static, f32, UnitCosine> = loader
            .load_hnsw()
            .with_context(|| format!("cannot read the graph in {}", dir.display()))?;
        let count = graph.get_nb_point();
        Ok(Self {
            dim,
            params,
            graph,
            count: AtomicUsize::new(count),
            insert: Mutex::new(()),
        })
    }

    /// Searches with a candidate list of `ef_search` (raised to `k`)
    /// instead of the configured one: for benchmarks that sweep it over one
    /// built graph.
    pub fn search_with(&self, query: &[f32], k: usize, ef_search: usize) -> Vec<Hit> {
        if k == 0 || self.len() == 0 {
            return Vec::new();
        }
        let ef = ef_search.max(k);
        let mut hits: Vec<Hit> = self
            .graph
            .search(query, k, ef)
            .into_iter()
            .map(|n| Hit {
                slot: n.d_id,
                similarity: 1.0 - n.distance,
            })
            .collect();
        hits.sort_by(|a, b| {
            b.similarity
                .total_cmp(&a.similarity)
                .then(a.slot.cmp(&b.slot))
        });
        hits
    }
}

impl VectorIndex for HnswIndex {
    fn dim(&self) -> usize {
        self.dim
    }

    fn len(&self) -> usize {
        self.count.load(Ordering::Acquire)
    }

    fn add(&self, vectors: &[&[f32]]) -> usize {
        let _guard = self.insert.lock().expect("index lock");
        let first = self.count.load(Ordering::Acquire);
        let items: Vec<(&[f32], usize)> = vectors
            .iter()
            .enumerate()
            .map(|(i, v)| {
                assert_eq!(v.len(), self.dim, "vector dimension");
                (*v, first + i)
            })
            .collect();
        if items.len() > 1 {
            self.graph.parallel_insert_slice(&items);
        } else if let Some(item) = items.first() {
            self.graph.insert_slice(*item);
        }
        self.count.fetch_add(items.len(), Ordering::Release);
        first
    }

    fn search(&self, query: &[f32], k: usize) -> Vec<Hit> {
        self.search_with(query, k, self.params.ef_search)
    }

    fn save(&self, dir: &Path) -> anyhow::Result<Vec<String>> {
        let _guard = self.insert.lock().expect("index lock");
        let name = self
            .graph
            .file_dump(dir, DUMP_NAME)
            .with_context(|| format!("cannot write the graph into {}", dir.display()))?;
        anyhow::ensure!(
            name == DUMP_NAME,
            "the graph was written as {name:?} in {}, which was not empty",
            dir.display()
        );
        Ok(["hnsw.graph", "hnsw.data"]
            .iter()
            .map(|ext| format!("{DUMP_NAME}.{ext}"))
            .collect())
    }
}
