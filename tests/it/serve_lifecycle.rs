//! The running server's life cycle: a saturated queue, readiness before
//! the index is built, graceful shutdown, and durability across `kill -9`.
use std::process::Command;
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use super::server::{code, long_text, Server, ADMIN, HUMANISH};

#[test]
fn full_queue_answers_429_and_gone_clients_are_not_encoded() {
    let s = Server::start(&["--queue-capacity", "1", "--coalesce-tokens", "1"]);
    let texts: Vec<String> = (0..6).map(long_text).collect();
    let body = json!({ "texts": texts });
    let mut statuses = Vec::new();
    std::thread::scope(|scope| {
        let handles: Vec<_> = (0..12)
            .map(|_| {
                scope.spawn(|| {
                    let r = s
                        .client
                        .post(s.url("/detect"))
                        .bearer_auth(ADMIN)
                        .json(&body)
                        .send()
                        .unwrap();
                    let retry = r.headers().get("retry-after").is_some();
                    let st = r.status().as_u16();
                    let b: Value = r.json().unwrap();
                    (st, retry, b)
                })
            })
            .collect();
        statuses = handles.into_iter().map(|h| h.join().unwrap()).collect();
    });
    let busy: Vec<_> = statuses.iter().filter(|(st, _, _)| *st == 429).collect();
    let ok = statuses.iter().filter(|(st, _, _)| *st == 200).count();
    assert!(!busy.is_empty(), "a saturated queue answers 429");
    assert!(ok >= 1, "queued requests are served");
    assert_eq!(
        busy.len() + ok,
        statuses.len(),
        "only 200 or 429: {statuses:?}"
    );
    for (_, retry, b) in &busy {
        assert!(*retry, "429 carries Retry-After");
        assert_eq!(code(b), "queue_full");
    }

    // A request whose client gives up while queued is dropped unencoded.
    let cancelled = |s: &Server| -> f64 {
        s.metrics()
            .lines()
            .find(|l| l.starts_with("detective_jobs_cancelled_total"))
            .and_then(|l| l.split_whitespace().last())
            .and_then(|v| v.parse().ok())
            .unwrap_or(0.0)
    };
    let before = cancelled(&s);
    let big = json!({ "texts": (0..12).map(long_text).collect::<Vec<_>>() });
    std::thread::scope(|scope| {
        let busy = scope.spawn(|| s.post("/detect", Some(ADMIN), &big));
        std::thread::sleep(Duration::from_millis(500));
        let impatient = reqwest::blocking::Client::builder()
            .timeout(Duration::from_millis(200))
            .build()
            .unwrap();
        let r = impatient
            .post(s.url("/detect"))
            .bearer_auth(ADMIN)
            .json(&json!({"text": long_text(99)}))
            .send();
        assert!(r.is_err(), "the impatient client times out while queued");
        let (st, _) = busy.join().unwrap();
        assert_eq!(st, 200);
    });
    let deadline = Instant::now() + Duration::from_secs(30);
    while cancelled(&s) <= before {
        assert!(Instant::now() < deadline, "the abandoned job was encoded");
        std::thread::sleep(Duration::from_millis(100));
    }
    let (st, _) = s.post("/detect", Some(ADMIN), &json!({"text": HUMANISH}));
    assert_eq!(st, 200, "still serving");
}

#[test]
fn not_ready_until_the_index_is_built() {
    let dir = tempfile::tempdir().unwrap();
    let s = Server::spawn(&dir.path().join("d.db"), &[]);
    let deadline = Instant::now() + Duration::from_secs(60);
    while s
        .client
        .get(s.url("/health"))
        .send()
        .map(|r| r.status() != 200)
        .unwrap_or(true)
    {
        assert!(Instant::now() < deadline);
        std::thread::sleep(Duration::from_millis(20));
    }
    // Seeding the default references and building the index take seconds.
    let r = s.client.get(s.url("/ready")).send().unwrap();
    assert_eq!(r.status(), 503);
    assert!(r.headers().get("retry-after").is_some());
    let (st, b) = s.post("/detect", Some(ADMIN), &json!({"text": HUMANISH}));
    assert_eq!((st, code(&b)), (503, "not_ready"));
    s.wait_ready();
    let (st, _) = s.post("/detect", Some(ADMIN), &json!({"text": HUMANISH}));
    assert_eq!(st, 200);
}

#[test]
fn sigterm_finishes_requests_in_flight() {
    let s = Server::start(&[]);
    let texts: Vec<String> = (0..16).map(long_text).collect();
    let pid = s.child.id().to_string();
    std::thread::scope(|scope| {
        let inflight = scope.spawn(|| s.post("/detect", Some(ADMIN), &json!({ "texts": texts })));
        std::thread::sleep(Duration::from_millis(400));
        // The shell's built-in kill: no procps needed on the test machine.
        let term = format!("kill -TERM {pid}");
        let sent = Command::new("sh").args(["-c", &term]).status().unwrap();
        assert!(sent.success());
        let (st, b) = inflight.join().unwrap();
        assert_eq!(st, 200, "{b}");
        assert_eq!(b["results"].as_array().unwrap().len(), 16);
    });
    let mut s = s;
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Some(status) = s.child.try_wait().unwrap() {
            assert!(status.success(), "clean exit after SIGTERM: {status}");
            break;
        }
        assert!(Instant::now() < deadline, "server did not stop");
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn acknowledged_reference_survives_kill_9() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("d.db");
    let text = "A reference acknowledged just before the crash, in a style all its own.";
    let mut s = Server::spawn(&db, &[]);
    s.wait_ready();
    let (st, made) = s.post(
        "/reference",
        Some(ADMIN),
        &json!({"text": text, "label": "machine", "model": "crash-lm", "family": "crash"}),
    );
    assert_eq!(st, 201, "{made}");
    let id = made["id"].as_i64().unwrap();
    s.kill9();

    let s = Server::spawn(&db, &[]);
    s.wait_ready();
    let (st, got) = s.get(&format!("/reference/{id}"), Some(ADMIN));
    assert_eq!(st, 200, "{got}");
    assert_eq!(got["text"], text);
    let (st, again) = s.post(
        "/reference",
        Some(ADMIN),
        &json!({"text": text, "label": "machine"}),
    );
    assert_eq!(
        (st, again["id"].as_i64(), &again["created"]),
        (200, Some(id), &json!(false))
    );
    let (_, v) = s.post(
        "/detect",
        Some(ADMIN),
        &json!({"text": text, "k": 3, "explain": true}),
    );
    let ids: Vec<i64> = v["neighbours"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n["id"].as_i64().unwrap())
        .collect();
    assert_eq!(
        ids.iter().filter(|&&i| i == id).count(),
        1,
        "stored once: {ids:?}"
    );
    assert_eq!(ids[0], id, "and it votes");
}
