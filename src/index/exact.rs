//! Brute-force search: every query scores every vector. Exact by
//! construction, which makes it the yardstick for the HNSW index.
use std::cmp::Ordering;
use std::collections::BinaryHeap;
use std::io::{BufWriter, Write};
use std::path::Path;
use std::sync::RwLock;

use anyhow::Context;

use super::{Hit, VectorIndex};

pub struct ExactIndex {
    dim: usize,
    data: RwLock<Vec<f32>>,
}

impl ExactIndex {
    pub fn new(dim: usize) -> Self {
        Self {
            dim,
            data: RwLock::new(Vec::new()),
        }
    }

    /// Reads the vectors written by `save`.
    pub fn load(dim: usize, dir: &Path) -> anyhow::Result<Self> {
        let path = dir.join(VECTORS_FILE);
        let bytes =
            std::fs::read(&path).with_context(|| format!("cannot read {}", path.display()))?;
        anyhow::ensure!(
            bytes.len() % (4 * dim.max(1)) == 0,
            "{} does not hold whole {dim}-dimensional vectors",
            path.display()
        );
        let data = bytes
            .chunks_exact(4)
            .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .collect();
        Ok(Self {
            dim,
            data: RwLock::new(data),
        })
    }
}

/// The vectors, f32 little-endian, slot after slot.
const VECTORS_FILE: &str = "vectors.f32";

/// Min-heap entry on similarity, so the heap's top is the worst kept hit.
struct Worst(Hit);

impl PartialEq for Worst {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}
impl Eq for Worst {}
impl PartialOrd for Worst {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Worst {
    fn cmp(&self, other: &Self) -> Ordering {
        other
            .0
            .similarity
            .total_cmp(&self.0.similarity)
            .then(self.0.slot.cmp(&other.0.slot))
    }
}

/// Dot product with eight independent accumulators: a plain `sum()` must
/// add in order and stays scalar; split lanes let the compiler use SIMD.
pub fn dot(a: &[f32], b: &[f32]) -> f32 {
    let n = a.len().min(b.len());
    let (a, b) = (&a[..n], &b[..n]);
    let mut acc = [0.0f32; 8];
    let (ca, cb) = (a.chunks_exact(8), b.chunks_exact(8));
    let (ra, rb) = (ca.remainder(), cb.remainder());
    for (x, y) in ca.zip(cb) {
        for i in 0..8 {
            acc[i] += x[i] * y[i];
        }
    }
    let tail: f32 = ra.iter().zip(rb).map(|(x, y)| x * y).sum();
    acc.iter().sum::<f32>() + tail
}

impl VectorIndex for ExactIndex {
    fn dim(&self) -> usize {
        self.dim
    }

    fn len(&self) -> usize {
        self.data.read().expect("index lock").len() / self.dim
    }

    fn add(&self, vectors: &[&[f32]]) -> usize {
        let mut data = self.data.write().expect("index lock");
        let first = data.len() / self.dim;
        for v in vectors {
            assert_eq!(v.len(), self.dim, "vector dimension");
            data.extend_from_slice(v);
        }
        first
    }

    fn search(&self, query: &[f32], k: usize) -> Vec<Hit> {
        if k == 0 {
            return Vec::new();
        }
        let data = self.data.read().expect("index lock");
        let mut heap: BinaryHeap<Worst> = BinaryHeap::with_capacity(k + 1);
        for (slot, v) in data.chunks_exact(self.dim).enumerate() {
            let hit = Hit {
                slot,
                similarity: dot(query, v),
            };
            if heap.len() < k {
                heap.push(Worst(hit));
            } else if heap.peek().is_some_and(|w| hit.similarity > w.0.similarity) {
                heap.pop();
                heap.push(Worst(hit));
            }
        }
        let mut hits: Vec<Hit> = heap.into_iter().map(|w| w.0).collect();
        hits.sort_by(|a, b| {
            b.similarity
                .total_cmp(&a.similarity)
                .then(a.slot.cmp(&b.slot))
        });
        hits
    }

    fn save(&self, dir: &Path) -> anyhow::Result<Vec<String>> {
        let data = self.data.read().expect("index lock");
        let path = dir.join(VECTORS_FILE);
        let mut out = BufWriter::new(
            std::fs::File::create(&path)
                .with_context(|| format!("cannot create {}", path.display()))?,
        );
        for x in data.iter() {
            out.write_all(&x.to_le_bytes())?;
        }
        out.into_inner()?.sync_all()?;
        Ok(vec![VECTORS_FILE.to_owned()])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dot_matches_the_plain_sum_at_every_length() {
        for n in [0, 1, 7, 8, 9, 384, 385] {
            let a: Vec<f32> = (0..n).map(|i| (i as f32 * 0.37).sin()).collect();
            let b: Vec<f32> = (0..n).map(|i| (i as f32 * 0.11).cos()).collect();
            let plain: f32 = a.iter().zip(&b).map(|(x, y)| x * y).sum();
            assert!((dot(&a, &b) - plain).abs() < 1e-4, "n={n}");
        }
    }

    #[test]
    fn finds_best_matches_in_order() {
        let idx = ExactIndex::new(2);
        idx.add(&[&[1.0, 0.0], &[0.0, 1.0], &[0.6, 0.8]]);
        let hits = idx.search(&[0.8, 0.6], 2);
        // [0.6, 0.8] scores 0.96, [1, 0] scores 0.8, [0, 1] scores 0.6.
        assert_eq!(hits.iter().map(|h| h.slot).collect::<Vec<_>>(), vec![2, 0]);
        assert!((hits[0].similarity - 0.96).abs() < 1e-6);
        assert_eq!(idx.search(&[1.0, 0.0], 10).len(), 3);
        assert!(idx.search(&[1.0, 0.0], 0).is_empty());
    }
}
