//! The live reference set under concurrent traffic, and replicas on one
//! PostgreSQL. Every wait is on observable state (an answer, a vote), with
//! deadlines far above what a correct server needs, so a slow machine
//! only makes the tests slower.
use std::collections::HashSet;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use super::server::{long_text, Server, ADMIN};

/// A request that answers in no more than this is not stalled.
const STALL: Duration = Duration::from_secs(60);

fn text_for(writer: usize, i: usize) -> String {
    format!(
        "Replica probe {writer}-{i}: a reference written in a style all its own, with \
         quirks {} and {} that no default reference shares.",
        writer * 7919 + i,
        i * 104_729 + writer
    )
}

/// The ids of the nearest references to `text` (k = 3).
fn nearest(s: &Server, text: &str) -> Vec<i64> {
    let (st, v) = s.post(
        "/detect",
        Some(ADMIN),
        &json!({"text": text, "k": 3, "explain": true}),
    );
    assert_eq!(st, 200, "{v}");
    v["neighbours"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n["id"].as_i64().unwrap())
        .collect()
}

#[track_caller]
fn wait_until(what: &str, mut ok: impl FnMut() -> bool) -> Duration {
    let started = Instant::now();
    while !ok() {
        assert!(started.elapsed() < STALL, "{what}: not within {STALL:?}");
        std::thread::sleep(Duration::from_millis(5));
    }
    started.elapsed()
}

/// Detect clients, reference writers and deletes at once: no stall, no
/// 5xx, `/health` answers throughout; afterwards every acknowledged
/// reference is stored once and votes, and every deleted one does not.
fn soak(s: &Server) {
    let done = AtomicBool::new(false);
    let client = reqwest::blocking::Client::builder()
        .timeout(STALL)
        .build()
        .unwrap();
    let (kept, deleted) = std::thread::scope(|scope| {
        let health = scope.spawn(|| {
            let mut n = 0;
            while !done.load(Ordering::Acquire) {
                let r = client.get(s.url("/health")).send().expect("health answers");
                assert_eq!(r.status(), 200);
                n += 1;
                std::thread::sleep(Duration::from_millis(20));
            }
            n
        });
        let detectors: Vec<_> = (0..4)
            .map(|c| {
                let client = &client;
                scope.spawn(move || {
                    for i in 0..15 {
                        let texts: Vec<String> =
                            (0..4).map(|j| long_text(c * 100 + i * 4 + j)).collect();
                        let r = client
                            .post(s.url("/detect"))
                            .bearer_auth(ADMIN)
                            .json(&json!({ "texts": texts }))
                            .send()
                            .expect("detect answers");
                        assert_eq!(r.status(), 200, "{}", r.text().unwrap_or_default());
                    }
                })
            })
            .collect();
        let writers: Vec<_> = (0..3)
            .map(|w| {
                let client = &client;
                scope.spawn(move || {
                    let (mut kept, mut deleted) = (Vec::new(), Vec::new());
                    for i in 0..12 {
                        // Batches of two, one of them posted twice.
                        let body = json!({"items": [
                            {"text": text_for(w, i), "label": "machine", "model": "soak-lm", "family": "soak"},
                            {"text": text_for(w, i), "label": "machine", "model": "soak-lm", "family": "soak"},
                            {"text": text_for(w, 100 + i), "label": "human"},
                        ]});
                        let r = client
                            .post(s.url("/reference"))
                            .bearer_auth(ADMIN)
                            .json(&body)
                            .send()
                            .expect("reference answers");
                        let st = r.status().as_u16();
                        let b: Value = r.json().unwrap();
                        assert!(st == 200 || st == 201, "{st} {b}");
                        let items = b["items"].as_array().expect("items");
                        assert_eq!(items[0]["id"], items[1]["id"], "one row per text");
                        let id = items[0]["id"].as_i64().unwrap();
                        let other = items[2]["id"].as_i64().unwrap();
                        if i % 4 == 0 {
                            let r = client
                                .delete(s.url(&format!("/reference/{id}")))
                                .bearer_auth(ADMIN)
                                .send()
                                .expect("delete answers");
                            assert!(r.status().is_success(), "{}", r.status());
                            deleted.push((id, text_for(w, i)));
                        } else {
                            kept.push((id, text_for(w, i)));
                        }
                        kept.push((other, text_for(w, 100 + i)));
                    }
                    (kept, deleted)
                })
            })
            .collect();
        for d in detectors {
            d.join().unwrap();
        }
        let mut kept = Vec::new();
        let mut deleted = Vec::new();
        for w in writers {
            let (k, d) = w.join().unwrap();
            kept.extend(k);
            deleted.extend(d);
        }
        done.store(true, Ordering::Release);
        assert!(health.join().unwrap() > 0);
        (kept, deleted)
    });
    let ids: HashSet<i64> = kept.iter().map(|(id, _)| *id).collect();
    assert_eq!(ids.len(), kept.len(), "distinct texts, distinct ids");
    for (id, text) in &kept {
        let (st, got) = s.get(&format!("/reference/{id}"), Some(ADMIN));
        assert_eq!(st, 200, "{got}");
        assert_eq!(&got["text"], text);
        let near = nearest(s, text);
        assert_eq!(near[0], *id, "acknowledged reference {id} votes: {near:?}");
        assert_eq!(near.iter().filter(|&&n| n == *id).count(), 1);
    }
    for (id, text) in &deleted {
        assert!(
            !nearest(s, text).contains(id),
            "deleted reference {id} still votes"
        );
    }
}

#[test]
fn concurrent_detect_and_reference_traffic_on_sqlite() {
    let s = Server::start(&[]);
    soak(&s);
}

/// A fresh database on the test PostgreSQL, or `None` when none is set.
fn fresh_postgres() -> Option<String> {
    let Ok(url) = std::env::var("DETECTIVE_TEST_POSTGRES") else {
        assert!(
            std::env::var_os("CI").is_none(),
            "DETECTIVE_TEST_POSTGRES must be set in CI (.ci/run starts PostgreSQL)"
        );
        eprintln!("skipped: DETECTIVE_TEST_POSTGRES is not set");
        return None;
    };
    let name = format!("detective_replicas_{}", rand::random::<u32>());
    tokio::runtime::Runtime::new().unwrap().block_on(async {
        use sqlx::Connection;
        let mut c = sqlx::PgConnection::connect(&url).await.unwrap();
        sqlx::raw_sql(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
            .execute(&mut c)
            .await
            .unwrap();
    });
    let base = url.rsplit_once('/').expect("a database URL").0;
    Some(format!("{base}/{name}"))
}

/// A replica on `url`; with `snapshots`, it keeps an index snapshot in its
/// own folder, written after every change.
fn replica(url: &str, dir: &tempfile::TempDir, name: &str, snapshots: bool) -> Server {
    let hold: PathBuf = dir.path().join(format!("{name}.hold"));
    let snap_dir = dir.path().join(format!("{name}.index"));
    let snap_dir = snap_dir.to_str().unwrap();
    let args: &[&str] = if snapshots {
        &["--snapshot-dir", snap_dir, "--snapshot-every", "1"]
    } else {
        &[]
    };
    let s = Server::spawn_on(url, &hold, args);
    s.wait_ready();
    s
}

fn applied(s: &Server) -> i64 {
    let (_, info) = s.get("/info", Some(ADMIN));
    info["index"]["applied_seq"].as_i64().unwrap()
}

#[test]
fn concurrent_detect_and_reference_traffic_on_postgres() {
    let Some(url) = fresh_postgres() else { return };
    let dir = tempfile::tempdir().unwrap();
    let s = replica(&url, &dir, "a", false);
    soak(&s);
}

#[test]
fn replicas_on_one_postgres_see_each_others_writes() {
    let Some(url) = fresh_postgres() else { return };
    let dir = tempfile::tempdir().unwrap();
    let a = replica(&url, &dir, "a", false);
    let mut b = replica(&url, &dir, "b", true);

    // Added on A: votes on B.
    let x = text_for(1, 1);
    let (st, made) = a.post(
        "/reference",
        Some(ADMIN),
        &json!({"text": x, "label": "machine", "model": "replica-lm", "family": "replica"}),
    );
    assert_eq!(st, 201, "{made}");
    let xid = made["id"].as_i64().unwrap();
    assert_eq!(nearest(&a, &x)[0], xid, "read-your-writes on A");
    let seen = wait_until("B votes with A's reference", || nearest(&b, &x)[0] == xid);
    eprintln!("insert on A visible on B after {seen:?}");

    // Deleted on B: A stops.
    let (st, _) = b.delete(&format!("/reference/{xid}"), Some(ADMIN));
    assert!(st == 200 || st == 204, "{st}");
    assert!(!nearest(&b, &x).contains(&xid));
    let gone = wait_until("A stops voting with it", || !nearest(&a, &x).contains(&xid));
    eprintln!("delete on B visible on A after {gone:?}");

    // B down while A restores x with another label and adds y: B loads
    // its index snapshot and catches up from the snapshot's sequence
    // number when it starts again.
    b.wait_metric("detective_index_snapshot_seq", applied(&b) as f64);
    b.kill9();
    let y = text_for(2, 2);
    let (st, _) = a.post(
        "/reference",
        Some(ADMIN),
        &json!({"items": [
            {"text": x, "label": "human"},
            {"text": y, "label": "machine", "model": "replica-lm", "family": "replica"},
        ]}),
    );
    assert!(st == 200 || st == 201, "{st}");
    let b = replica(&url, &dir, "b", true);
    assert_eq!(b.log_count("index loaded from its snapshot"), 1);
    let (_, v) = b.post(
        "/detect",
        Some(ADMIN),
        &json!({"text": x, "k": 1, "explain": true}),
    );
    let top = &v["neighbours"][0];
    assert_eq!(top["id"].as_i64(), Some(xid), "restored under its id: {v}");
    assert_eq!(top["label"], "human", "with the label it was restored with");
    let yid = nearest(&a, &y)[0];
    assert_eq!(nearest(&b, &y)[0], yid);

    // Both replicas report the same position as the store.
    for s in [&a, &b] {
        wait_until("applied the whole feed", || {
            let (_, info) = s.get("/info", Some(ADMIN));
            info["index"]["applied_seq"] == info["references"]["store_seq"]
        });
    }
    let (_, ia) = a.get("/info", Some(ADMIN));
    let (_, ib) = b.get("/info", Some(ADMIN));
    assert_eq!(ia["index"]["voting"], ib["index"]["voting"]);
}
