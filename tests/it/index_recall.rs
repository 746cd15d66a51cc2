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

/// `bench-index --vectors` measures recall on vectors from a file (as
/// `detective embed` writes them): every 20th line is a query, never
/// stored; `--n` caps the stored vectors; `--ef-search` gives one row per
/// value; a malformed line is a one-line error naming its line.
#[test]
fn bench_index_reads_real_vectors_from_embed_output() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("vectors.jsonl");
    let data = synthetic::clustered(400, 8, 10, 0.3, 5);
    let lines: Vec<String> = data
        .iter()
        .map(|v| serde_json::json!({ "text": "t", "embedding": v }).to_string())
        .collect();
    std::fs::write(&path, lines.join("\n")).unwrap();
    let out = bench_index(&[], &path);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}");
    // 20 queries held out of 400 lines: 380 stored, at 8 dimensions.
    let hnsw = stdout
        .lines()
        .find(|l| l.starts_with("| hnsw"))
        .unwrap_or_else(|| panic!("{stdout}"));
    assert!(hnsw.contains("| 380 |"), "{hnsw}");
    let recall: f64 = hnsw
        .trim_end_matches('|')
        .rsplit('|')
        .next()
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    assert!(recall > 0.9 && recall <= 1.0, "{hnsw}");

    let out = bench_index(&["--n", "200", "--ef-search", "10,200"], &path);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}");
    let rows: Vec<&str> = stdout.lines().filter(|l| l.starts_with("| hnsw")).collect();
    assert_eq!(rows.len(), 2, "{stdout}");
    assert!(
        rows[0].contains("ef_search=10)") && rows[1].contains("ef_search=200)"),
        "{stdout}"
    );
    assert!(rows.iter().all(|r| r.contains("| 200 |")), "{stdout}");
    // A candidate list as long as the set searches it all: exact recall.
    assert!(rows[1].trim_end().ends_with("| 1.0000 |"), "{}", rows[1]);

    // The line number counts blank lines, as an editor does.
    std::fs::write(&path, format!("{}\n\nnot json\n", lines[0])).unwrap();
    let out = bench_index(&[], &path);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(stderr.contains("line 3"), "{stderr}");
}

/// `detective bench-index ARGS --vectors VECTORS`.
fn bench_index(args: &[&str], vectors: &std::path::Path) -> std::process::Output {
    std::process::Command::new(crate::common::bin())
        .arg("bench-index")
        .args(args)
        .arg("--vectors")
        .arg(vectors)
        .output()
        .unwrap()
}
