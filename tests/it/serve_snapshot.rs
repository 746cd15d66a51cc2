//! Index snapshots across restarts: a restarted server loads the newest
//! snapshot and catches up from the change feed (including changes made
//! while it was down); a damaged snapshot is refused and the index rebuilt
//! from the store. Every wait is on a log line or a metric.
use std::process::Command;

use serde_json::json;

use super::server::{Server, ADMIN};

fn nearest(s: &Server, text: &str) -> (i64, String) {
    let (st, v) = s.post(
        "/detect",
        Some(ADMIN),
        &json!({"text": text, "k": 1, "explain": true}),
    );
    assert_eq!(st, 200, "{v}");
    let top = &v["neighbours"][0];
    (
        top["id"].as_i64().expect("an id"),
        top["label"].as_str().unwrap_or_default().to_owned(),
    )
}

fn applied(s: &Server) -> i64 {
    let (_, info) = s.get("/info", Some(ADMIN));
    info["index"]["applied_seq"].as_i64().expect("applied_seq")
}

#[test]
fn restart_loads_the_snapshot_catches_up_and_rebuilds_a_damaged_one() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("detective.db");
    let snaps = dir.path().join("detective.db.index");
    let args = ["--snapshot-every", "1"];

    // First start: built from the store, then the first snapshot.
    let mut s = Server::spawn(&db, &args);
    s.wait_ready();
    assert_eq!(s.log_count("index built from"), 1);
    s.wait_metric("detective_index_snapshot_seq", applied(&s) as f64);

    // A reference added over HTTP: in the next snapshot.
    let x = "Snapshot probe X: a reference with turns of phrase \
             (quux-7781, zephyr-0932) that no default reference shares.";
    let (st, made) = s.post(
        "/reference",
        Some(ADMIN),
        &json!({"text": x, "label": "machine", "model": "snap-lm", "family": "snap"}),
    );
    assert_eq!(st, 201, "{made}");
    let xid = made["id"].as_i64().unwrap();
    s.wait_metric("detective_index_snapshot_seq", applied(&s) as f64);
    s.kill9();

    // While it is down, another process adds a reference.
    let y = "Snapshot probe Y: written while the server was down, \
             with markers (fjord-5521, kestrel-3390) of its own.";
    let file = dir.path().join("y.jsonl");
    std::fs::write(
        &file,
        json!({"text": y, "label": "human"}).to_string() + "\n",
    )
    .unwrap();
    let out = Command::new(super::common::bin())
        .args(["import", "--no-calibrate", "--db"])
        .arg(&db)
        .arg(&file)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    // Second start: the snapshot, plus the one change made meanwhile.
    let mut s = Server::spawn(&db, &args);
    s.wait_ready();
    assert_eq!(
        s.log_count("index built from"),
        0,
        "{:?}",
        s.log.lock().unwrap()
    );
    assert_eq!(
        s.log_count("index loaded from its snapshot"),
        1,
        "{:?}",
        s.log.lock().unwrap()
    );
    assert_eq!(s.log_count("(1 later changes applied)"), 1);
    assert_eq!(nearest(&s, x), (xid, "machine".to_owned()));
    let (yid, ylabel) = nearest(&s, y);
    assert_eq!(ylabel, "human");
    let (_, info) = s.get("/info", Some(ADMIN));
    assert_eq!(
        info["index"]["voting"], info["references"]["total"],
        "{info}"
    );
    s.wait_metric("detective_index_snapshot_seq", applied(&s) as f64);
    s.kill9();

    // One flipped byte in the graph: refused, rebuilt, voting as before.
    let current = std::fs::read_to_string(snaps.join("CURRENT")).unwrap();
    let graph = snaps.join(current.trim()).join("graph.hnsw.graph");
    let graph = if graph.exists() {
        graph
    } else {
        snaps.join(current.trim()).join("vectors.f32")
    };
    let mut bytes = std::fs::read(&graph).unwrap();
    let mid = bytes.len() / 2;
    bytes[mid] ^= 0x5a;
    std::fs::write(&graph, bytes).unwrap();
    let s = Server::spawn(&db, &args);
    s.wait_ready();
    assert_eq!(s.log_count("snapshot not used: snapshot is damaged"), 1);
    assert_eq!(nearest(&s, x), (xid, "machine".to_owned()));
    assert_eq!(nearest(&s, y).0, yid);
    // And a sound snapshot replaces the damaged one.
    s.wait_metric("detective_index_snapshot_seq", applied(&s) as f64);
}
