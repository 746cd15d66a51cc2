//! `detective bench-index`: HNSW against exact search at a given size:
//! build time, per-query latency (median), speed-up and recall@k.
use std::time::Instant;

use clap::Args;

use crate::index::{synthetic, ExactIndex, HnswIndex, HnswParams, VectorIndex};

#[derive(Debug, Args)]
pub struct BenchIndexArgs {
    /// Stored vectors.
    #[arg(long, default_value_t = 50_000)]
    pub n: usize,
    #[arg(long, default_value_t = 384)]
    pub dim: usize,
    /// Queries (drawn from the same clusters, not stored).
    #[arg(long, default_value_t = 500)]
    pub queries: usize,
    #[arg(long, default_value_t = 10)]
    pub k: usize,
    #[arg(long, default_value_t = HnswParams::default().m)]
    pub hnsw_m: usize,
    #[arg(long, default_value_t = HnswParams::default().ef_construction)]
    pub ef_construction: usize,
    #[arg(long, default_value_t = HnswParams::default().ef_search)]
    pub ef_search: usize,
}

fn median_per_query(index: &dyn VectorIndex, queries: &[Vec<f32>], k: usize) -> f64 {
    let mut times: Vec<f64> = queries
        .iter()
        .map(|q| {
            let t = Instant::now();
            std::hint::black_box(index.search(q, k));
            t.elapsed().as_secs_f64()
        })
        .collect();
    times.sort_by(f64::total_cmp);
    times[times.len() / 2]
}

pub fn run(args: &BenchIndexArgs) -> anyhow::Result<()> {
    anyhow::ensure!(
        args.n > 0 && args.queries > 0 && args.k > 0,
        "sizes must be positive"
    );
    let clusters = (args.n / 50).max(1);
    let data = synthetic::clustered(args.n, args.dim, clusters, 0.35, 7);
    let queries = synthetic::clustered(args.queries, args.dim, clusters, 0.35, 8);
    let refs: Vec<&[f32]> = data.iter().map(Vec::as_slice).collect();
    let params = HnswParams {
        m: args.hnsw_m,
        ef_construction: args.ef_construction,
        ef_search: args.ef_search,
    };
    let rss_before = peak_rss_mib();
    let t = Instant::now();
    let hnsw = HnswIndex::new(args.dim, args.n, params);
    hnsw.add(&refs);
    let build_hnsw = t.elapsed().as_secs_f64();
    let rss_hnsw = peak_rss_mib().saturating_sub(rss_before);
    let t = Instant::now();
    let exact = ExactIndex::new(args.dim);
    exact.add(&refs);
    let build_exact = t.elapsed().as_secs_f64();
    let q_hnsw = median_per_query(&hnsw, &queries, args.k);
    let q_exact = median_per_query(&exact, &queries, args.k);
    let recall = synthetic::recall_at(&hnsw, &exact, &queries, args.k);
    println!(
        "| index | vectors | build s | query ms (median) | speed-up | recall@{} |",
        args.k
    );
    println!("|---|---|---|---|---|---|");
    println!(
        "| exact | {} | {:.2} | {:.3} | 1.0x | 1.0000 |",
        args.n,
        build_exact,
        q_exact * 1e3
    );
    println!(
        "| hnsw (m={}, ef_construction={}, ef_search={}) | {} | {:.1} | {:.3} | {:.1}x | {:.4} |",
        params.m,
        params.ef_construction,
        params.ef_search,
        args.n,
        build_hnsw,
        q_hnsw * 1e3,
        q_exact / q_hnsw,
        recall
    );
    println!(
        "\nHNSW memory: {rss_hnsw} MiB peak RSS growth for {} vectors ({:.0} MiB per 100k; raw vectors alone are {:.0} MiB per 100k)",
        args.n,
        rss_hnsw as f64 * 100_000.0 / args.n as f64,
        (args.dim * 4 * 100_000) as f64 / (1024.0 * 1024.0)
    );
    Ok(())
}

/// Peak resident set size of this process (Linux), in MiB.
fn peak_rss_mib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1)?.parse::<u64>().ok())
        })
        .map_or(0, |kib| kib / 1024)
}
