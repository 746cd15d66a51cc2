//! HNSW against exact search on 50,000 seeded, clustered unit vectors.
use detective::index::{ExactIndex, HnswIndex, HnswParams, VectorIndex};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use detective::index::synthetic;

#[test]
fn hnsw_recall_at_10_is_at_least_0_99_on_50k_vectors() {
    let (n, dim, queries) = (50_000, 384, 500);
    let data = synthetic::clustered(n, dim, 1000, 0.35, 7);
    let hnsw = HnswIndex::new(dim, n, HnswParams::default());
    let exact = ExactIndex::new(dim);
    let refs: Vec<&[f32]> = data.iter().map(Vec::as_slice).collect();
    hnsw.add(&refs);
    exact.add(&refs);
    assert_eq!(hnsw.len(), n);
    let mut rng = StdRng::seed_from_u64(11);
    let qs = synthetic::clustered(queries, dim, 1000, 0.35, 7 + rng.gen_range(1..1000));
    let recall = synthetic::recall_at(&hnsw, &exact, &qs, 10);
    assert!(recall >= 0.99, "recall@10 = {recall}");
}

#[test]
fn incremental_adds_are_searchable_at_once() {
    let dim = 16;
    let data = synthetic::clustered(2000, dim, 20, 0.3, 3);
    let hnsw = HnswIndex::new(dim, 10, HnswParams::default());
    for v in &data {
        hnsw.add(&[v.as_slice()]);
    }
    for (slot, v) in data.iter().enumerate().step_by(97) {
        let hit = hnsw.search(v, 1)[0];
        assert!((hit.similarity - 1.0).abs() < 1e-5, "slot {slot}: {hit:?}");
    }
}
