//! Seeded synthetic vectors for recall tests and index benchmarks: unit
//! vectors scattered around random cluster centres, which is closer to real
//! embedding sets than uniform noise.
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use std::collections::HashSet;

use super::{Hit, VectorIndex};

fn unit(mut v: Vec<f32>) -> Vec<f32> {
    let n = v.iter().map(|x| x * x).sum::<f32>().sqrt().max(1e-12);
    v.iter_mut().for_each(|x| *x /= n);
    v
}

fn gaussian(rng: &mut StdRng) -> f32 {
    // Box-Muller.
    let (u1, u2): (f32, f32) = (rng.gen_range(1e-7..1.0), rng.gen_range(0.0..1.0));
    (-2.0 * u1.ln()).sqrt() * (std::f32::consts::TAU * u2).cos()
}

/// `n` unit vectors around `clusters` centres; `spread` scales the noise.
pub fn clustered(n: usize, dim: usize, clusters: usize, spread: f32, seed: u64) -> Vec<Vec<f32>> {
    let mut rng = StdRng::seed_from_u64(seed);
    let mut centres_rng = StdRng::seed_from_u64(0xC0FFEE);
    let centres: Vec<Vec<f32>> = (0..clusters.max(1))
        .map(|_| unit((0..dim).map(|_| gaussian(&mut centres_rng)).collect()))
        .collect();
    (0..n)
        .map(|_| {
            let c = &centres[rng.gen_range(0..centres.len())];
            let scale = spread / (dim as f32).sqrt();
            unit(c.iter().map(|x| x + scale * gaussian(&mut rng)).collect())
        })
        .collect()
}

/// Mean share of the exact top-`k` that `approx` also returns.
pub fn recall_at(
    approx: &dyn VectorIndex,
    exact: &dyn VectorIndex,
    queries: &[Vec<f32>],
    k: usize,
) -> f64 {
    recall_against(&truth(exact, queries, k), queries, k, |q| {
        approx.search(q, k)
    })
}

/// The slots of each query's exact top-`k`.
pub fn truth(exact: &dyn VectorIndex, queries: &[Vec<f32>], k: usize) -> Vec<HashSet<usize>> {
    queries
        .iter()
        .map(|q| exact.search(q, k).iter().map(|h| h.slot).collect())
        .collect()
}

/// Mean share of each query's `truth` (top-`k`) that `search` returns.
pub fn recall_against(
    truth: &[HashSet<usize>],
    queries: &[Vec<f32>],
    k: usize,
    search: impl Fn(&[f32]) -> Vec<Hit>,
) -> f64 {
    let found: usize = queries
        .iter()
        .zip(truth)
        .map(|(q, t)| search(q).iter().filter(|h| t.contains(&h.slot)).count())
        .sum();
    found as f64 / (queries.len() * k).max(1) as f64
}
