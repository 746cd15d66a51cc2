//! `detective bench-index`: HNSW against exact search at a given size:
//! build time, per-query latency (median), speed-up and recall@k. With
//! `--snapshot DIR` it builds the reference set and writes its snapshot;
//! `--load DIR` (a fresh process, so its memory is what a restart costs)
//! times loading it and checks the loaded set's recall.
use std::path::{Path, PathBuf};
use std::time::Instant;

use clap::Args;

use crate::detect::{snapshot, startup, References};
use crate::index::{synthetic, ExactIndex, HnswIndex, HnswParams, IndexKind, VectorIndex};
use crate::store::{Label, VectorRow};
use crate::vocab::EncoderId;

#[derive(Debug, Args)]
pub struct BenchIndexArgs {
    /// Stored vectors (synthetic: 50,000; with --vectors: at most this
    /// many of the file's, all by default).
    #[arg(long)]
    pub n: Option<usize>,
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
    /// HNSW candidate lists while searching, comma-separated: one row each,
    /// over the same built graph.
    #[arg(long, value_delimiter = ',', default_values_t = [HnswParams::default().ef_search])]
    pub ef_search: Vec<usize>,
    /// Build the reference set and write its snapshot into this folder.
    #[arg(long, conflicts_with = "load")]
    pub snapshot: Option<PathBuf>,
    /// Load the snapshot in this folder (written with the same --n and
    /// --dim) and report load time, memory and recall.
    #[arg(long)]
    pub load: Option<PathBuf>,
    /// Real vectors instead of synthetic ones: `detective embed` output
    /// (JSONL with `embedding`); every 20th line is a query (up to
    /// --queries), never stored, the rest are stored (up to --n; --dim is
    /// taken from the file).
    #[arg(long, conflicts_with_all = ["snapshot", "load"])]
    pub vectors: Option<PathBuf>,
}

/// Synthetic stored vectors when --n is not given.
const SYNTHETIC_N: usize = 50_000;

impl BenchIndexArgs {
    fn params(&self) -> HnswParams {
        HnswParams {
            m: self.hnsw_m,
            ef_construction: self.ef_construction,
            ef_search: self
                .ef_search
                .first()
                .copied()
                .unwrap_or(HnswParams::default().ef_search),
        }
    }

    fn n(&self) -> usize {
        self.n.unwrap_or(SYNTHETIC_N)
    }

    fn data(&self) -> (Vec<Vec<f32>>, Vec<Vec<f32>>) {
        let clusters = (self.n() / 50).max(1);
        (
            synthetic::clustered(self.n(), self.dim, clusters, 0.35, 7),
            synthetic::clustered(self.queries, self.dim, clusters, 0.35, 8),
        )
    }
}

/// The identity snapshots of synthetic vectors are tagged with.
fn synthetic_encoder(dim: usize) -> EncoderId {
    EncoderId {
        name: format!("synthetic-{dim}"),
        checksum: "0".repeat(64),
        max_length: 0,
    }
}

fn dir_mib(dir: &Path) -> f64 {
    fn walk(p: &Path) -> u64 {
        std::fs::read_dir(p).map_or(0, |rd| {
            rd.flatten()
                .map(|e| match e.metadata() {
                    Ok(m) if m.is_dir() => walk(&e.path()),
                    Ok(m) => m.len(),
                    Err(_) => 0,
                })
                .sum()
        })
    }
    walk(dir) as f64 / (1024.0 * 1024.0)
}

fn write_snapshot(args: &BenchIndexArgs, dir: &Path) -> anyhow::Result<()> {
    let (data, _) = args.data();
    let rows: Vec<VectorRow> = data
        .into_iter()
        .enumerate()
        .map(|(i, v)| VectorRow {
            id: i as i64 + 1,
            label: if i % 2 == 0 {
                Label::Human
            } else {
                Label::Machine
            },
            model: (i % 2 == 1).then(|| "synthetic-model".into()),
            family: (i % 2 == 1).then(|| "synthetic".into()),
            source: None,
            group: None,
            embedding: v,
        })
        .collect();
    let kind = IndexKind::Hnsw(args.params());
    let t = Instant::now();
    let bar = super::common::bar_progress("references indexed");
    let refs = startup::build(&rows, args.dim, kind, &bar)?;
    refs.mark_applied(rows.len() as i64);
    let build = t.elapsed().as_secs_f64();
    let t = Instant::now();
    snapshot::save(&refs, &synthetic_encoder(args.dim), kind, dir)?;
    let save = t.elapsed().as_secs_f64();
    println!("| references | build s | snapshot write s | snapshot MiB |");
    println!("|---|---|---|---|");
    println!(
        "| {} | {build:.1} | {save:.1} | {:.0} |",
        args.n(),
        dir_mib(dir)
    );
    Ok(())
}

fn load_snapshot(args: &BenchIndexArgs, dir: &Path) -> anyhow::Result<()> {
    let kind = IndexKind::Hnsw(args.params());
    let rss_before = peak_rss_mib();
    let t = Instant::now();
    let (snap, manifest) = snapshot::verify(dir, &synthetic_encoder(args.dim), kind, args.dim)?;
    let verify = t.elapsed().as_secs_f64();
    let t = Instant::now();
    let refs: References = snapshot::read(&snap, &manifest, kind)?;
    let read = t.elapsed().as_secs_f64();
    let rss = peak_rss_mib().saturating_sub(rss_before);
    anyhow::ensure!(
        manifest.voting == args.n(),
        "the snapshot holds {} references, not --n {}",
        manifest.voting,
        args.n()
    );
    let (data, queries) = args.data();
    let exact = ExactIndex::new(args.dim);
    exact.add(&data.iter().map(Vec::as_slice).collect::<Vec<_>>());
    let mut found = 0;
    for q in &queries {
        let truth: std::collections::HashSet<i64> = exact
            .search(q, args.k)
            .iter()
            .map(|h| h.slot as i64 + 1)
            .collect();
        found += refs
            .search(q, args.k)
            .iter()
            .filter(|n| truth.contains(&n.id))
            .count();
    }
    let recall = found as f64 / (queries.len() * args.k) as f64;
    println!(
        "| references | snapshot MiB | checksums s | read s | load s | peak RSS MiB | recall@{} after load |",
        args.k
    );
    println!("|---|---|---|---|---|---|---|");
    println!(
        "| {} | {:.0} | {verify:.1} | {read:.1} | {:.1} | {rss} | {recall:.4} |",
        args.n(),
        dir_mib(dir),
        verify + read
    );
    Ok(())
}

fn median_per_query(queries: &[Vec<f32>], search: impl Fn(&[f32])) -> f64 {
    let mut times: Vec<f64> = queries
        .iter()
        .map(|q| {
            let t = Instant::now();
            search(q);
            t.elapsed().as_secs_f64()
        })
        .collect();
    times.sort_by(f64::total_cmp);
    times[times.len() / 2]
}

/// Stored vectors and queries.
type Vectors = (Vec<Vec<f32>>, Vec<Vec<f32>>);

/// Stored vectors (at most `n`) and queries read from `detective embed`
/// output.
fn real_vectors(path: &Path, n: Option<usize>, queries: usize) -> anyhow::Result<Vectors> {
    #[derive(serde::Deserialize)]
    struct Line {
        embedding: Vec<f32>,
    }
    // Line by line, so the file's text never sits in memory beside the
    // vectors (the memory figure is the index's, not the file's).
    use std::io::BufRead;
    let file = std::fs::File::open(path)
        .map_err(|e| anyhow::anyhow!("cannot read {}: {e}", path.display()))?;
    let (mut data, mut asked) = (Vec::new(), Vec::new());
    // Vectors read so far (every 20th is a query).
    let mut read = 0;
    for (number, line) in std::io::BufReader::new(file).lines().enumerate() {
        let line = line.map_err(|e| anyhow::anyhow!("cannot read {}: {e}", path.display()))?;
        if line.trim().is_empty() {
            continue;
        }
        let v = serde_json::from_str::<Line>(&line)
            .map_err(|e| anyhow::anyhow!("{}: line {}: {e}", path.display(), number + 1))?
            .embedding;
        if read % 20 == 19 {
            if asked.len() < queries {
                asked.push(v);
            }
        } else if n.is_none_or(|n| data.len() < n) {
            data.push(v);
        }
        read += 1;
    }
    let dim = data.first().map_or(0, Vec::len);
    anyhow::ensure!(
        dim > 0 && !asked.is_empty(),
        "{}: too few vectors",
        path.display()
    );
    anyhow::ensure!(
        data.iter().chain(&asked).all(|v| v.len() == dim),
        "{}: vectors of different lengths",
        path.display()
    );
    Ok((data, asked))
}

pub fn run(args: &BenchIndexArgs) -> anyhow::Result<()> {
    anyhow::ensure!(
        args.n() > 0 && args.queries > 0 && args.k > 0 && !args.ef_search.contains(&0),
        "sizes must be positive"
    );
    if let Some(dir) = &args.snapshot {
        return write_snapshot(args, dir);
    }
    if let Some(dir) = &args.load {
        return load_snapshot(args, dir);
    }
    let (data, queries) = match &args.vectors {
        Some(path) => real_vectors(path, args.n, args.queries)?,
        None => args.data(),
    };
    let (n, dim) = (data.len(), data[0].len());
    let refs: Vec<&[f32]> = data.iter().map(Vec::as_slice).collect();
    let params = args.params();
    let rss_before = peak_rss_mib();
    let t = Instant::now();
    let hnsw = HnswIndex::new(dim, n, params);
    hnsw.add(&refs);
    let build_hnsw = t.elapsed().as_secs_f64();
    let rss_hnsw = peak_rss_mib().saturating_sub(rss_before);
    let t = Instant::now();
    let exact = ExactIndex::new(dim);
    exact.add(&refs);
    let build_exact = t.elapsed().as_secs_f64();
    let q_exact = median_per_query(&queries, |q| {
        std::hint::black_box(exact.search(q, args.k));
    });
    let truth = synthetic::truth(&exact, &queries, args.k);
    println!(
        "| index | vectors | build s | query ms (median) | speed-up | recall@{} |",
        args.k
    );
    println!("|---|---|---|---|---|---|");
    println!(
        "| exact | {} | {:.2} | {:.3} | 1.0x | 1.0000 |",
        n,
        build_exact,
        q_exact * 1e3
    );
    for &ef in &args.ef_search {
        let q_hnsw = median_per_query(&queries, |q| {
            std::hint::black_box(hnsw.search_with(q, args.k, ef));
        });
        let recall = synthetic::recall_against(&truth, &queries, args.k, |q| {
            hnsw.search_with(q, args.k, ef)
        });
        println!(
            "| hnsw (m={}, ef_construction={}, ef_search={}) | {} | {:.1} | {:.3} | {:.1}x | {:.4} |",
            params.m,
            params.ef_construction,
            ef,
            n,
            build_hnsw,
            q_hnsw * 1e3,
            q_exact / q_hnsw,
            recall
        );
    }
    println!(
        "\nHNSW memory: {rss_hnsw} MiB peak RSS growth for {} vectors ({:.0} MiB per 100k; raw vectors alone are {:.0} MiB per 100k)",
        n,
        rss_hnsw as f64 * 100_000.0 / n as f64,
        (dim * 4 * 100_000) as f64 / (1024.0 * 1024.0)
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
