//! The running server's life cycle: a saturated queue, readiness before
//! the index is built, graceful shutdown, durability across `kill -9`, and
//! the bootstrap key kept out of the log.
use std::process::Command;
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use super::server::{code, long_text, message, Server, ADMIN, HUMANISH};

#[test]
fn full_queue_answers_429_and_gone_clients_are_not_encoded() {
    // The encoder thread is held with a job in hand: one more job fills the
    // queue (capacity 1), and every further request must be refused. No
    // step depends on how fast the machine encodes.
    let s = Server::start(&["--queue-capacity", "1", "--coalesce-tokens", "1"]);
    let held = s.log_count("held at encoder");
    s.hold();
    let body = json!({ "texts": (0..4).map(long_text).collect::<Vec<_>>() });
    let cancelled = "detective_jobs_cancelled_total";
    let abandoned = "detective_http_abandoned_total{route=\"/detect\"}";
    let before = s.metric(cancelled);
    std::thread::scope(|scope| {
        let first = scope.spawn(|| s.post("/detect", Some(ADMIN), &body));
        s.wait_log("held at encoder", held);
        // Queued behind the held job by a client that gives up.
        let impatient = scope.spawn(|| {
            reqwest::blocking::Client::builder()
                .timeout(Duration::from_millis(300))
                .build()
                .unwrap()
                .post(s.url("/detect"))
                .bearer_auth(ADMIN)
                .json(&json!({"text": long_text(99)}))
                .send()
        });
        s.wait_metric("detective_queue_depth", 1.0);
        for _ in 0..3 {
            let r = s
                .client
                .post(s.url("/detect"))
                .bearer_auth(ADMIN)
                .json(&body)
                .send()
                .unwrap();
            assert_eq!(r.status(), 429);
            assert!(
                r.headers().get("retry-after").is_some(),
                "429 carries Retry-After"
            );
            let b: Value = r.json().unwrap();
            assert_eq!(code(&b), "queue_full");
        }
        assert!(
            impatient.join().unwrap().is_err(),
            "the impatient client times out while queued"
        );
        // The server has dropped the abandoned request before the encoder
        // moves on, so its job must be skipped, not encoded.
        s.wait_metric(abandoned, 1.0);
        s.release();
        let (st, b) = first.join().unwrap();
        assert_eq!(st, 200, "the held request is served: {b}");
    });
    s.wait_metric(cancelled, before + 1.0);
    assert!(s.metric("detective_queue_rejected_total") >= 3.0);
    let (st, _) = s.post("/detect", Some(ADMIN), &json!({"text": HUMANISH}));
    assert_eq!(st, 200, "still serving");
}

#[test]
fn not_ready_until_the_index_is_built() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("d.db");
    // Start-up holds just before it declares itself ready.
    std::fs::write(Server::hold_path(&db), b"").unwrap();
    let s = Server::spawn(&db, &[]);
    s.wait_log("held at ready", 0);
    let r = s.client.get(s.url("/health")).send().unwrap();
    assert_eq!(r.status(), 200, "alive while starting");
    let r = s.client.get(s.url("/ready")).send().unwrap();
    assert_eq!(r.status(), 503);
    assert!(r.headers().get("retry-after").is_some());
    let (st, b) = s.post("/detect", Some(ADMIN), &json!({"text": HUMANISH}));
    assert_eq!((st, code(&b)), (503, "not_ready"));
    s.release();
    s.wait_ready();
    let (st, _) = s.post("/detect", Some(ADMIN), &json!({"text": HUMANISH}));
    assert_eq!(st, 200);
}

#[test]
fn sigterm_finishes_requests_in_flight() {
    let s = Server::start(&[]);
    let texts: Vec<String> = (0..16).map(long_text).collect();
    let pid = s.child.id().to_string();
    s.hold();
    std::thread::scope(|scope| {
        let inflight = scope.spawn(|| s.post("/detect", Some(ADMIN), &json!({ "texts": texts })));
        // The request is on the encoder thread when the signal arrives.
        s.wait_log("held at encoder", 0);
        // The shell's built-in kill: no procps needed on the test machine.
        let term = format!("kill -TERM {pid}");
        let sent = Command::new("sh").args(["-c", &term]).status().unwrap();
        assert!(sent.success());
        s.wait_log("shutting down", 0);
        s.release();
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

/// The encoder thread dies (the hold file asks it to panic, as a libtorch
/// error would): the request in hand is not answered 200, and the process
/// exits non-zero, so a supervisor restarts it, rather than answering 503
/// forever while `/ready` says 200.
#[test]
fn a_dead_encoder_thread_makes_the_process_exit_non_zero() {
    let mut s = Server::start(&[]);
    std::fs::write(&s.hold, "panic").unwrap();
    let answer = s
        .client
        .post(s.url("/detect"))
        .bearer_auth(ADMIN)
        .json(&json!({"text": HUMANISH}))
        .send();
    if let Ok(r) = answer {
        assert_eq!(r.status().as_u16(), 503, "{:?}", r.text());
    }
    let status = s.wait_exit(Duration::from_secs(60));
    assert!(!status.success(), "{status:?}");
    s.wait_log("the encoder thread died", 0);
    s.release();
}

/// A panic while loading (the hold file asks the start-up's last step to
/// panic): the process exits non-zero instead of staying not-ready forever.
#[test]
fn a_panic_while_loading_makes_the_process_exit_non_zero() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("detective.db");
    std::fs::write(Server::hold_path(&db), "panic").unwrap();
    let mut s = Server::spawn(&db, &[]);
    let status = s.wait_exit(Duration::from_secs(300));
    assert!(!status.success(), "{status:?}");
    s.wait_log("loading the model and the index panicked", 0);
}

/// A fresh store's first admin key goes to an owner-only file, never to
/// the log; a short bootstrap key is refused; a key file is read.
#[test]
fn secrets_stay_out_of_the_log() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("detective.db");
    let hold = dir.path().join("none.hold");
    let db_str = db.to_str().unwrap();
    let s = Server::spawn_keyed(db_str, &hold, &[], None);
    s.wait_ready();
    let file = dir.path().join("detective-admin.key");
    let key = std::fs::read_to_string(&file)
        .expect("the key file")
        .trim()
        .to_owned();
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&file).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600, "owner-only: {mode:o}");
    }
    let log = s.log.lock().unwrap().join("\n");
    assert!(log.contains("created an admin API key in"), "{log}");
    assert!(!log.contains(&key), "the key is not in the log");
    let (st, v) = s.post(
        "/reference",
        Some(&key),
        &json!({"text": "Added with the bootstrap key from its file.", "label": "human"}),
    );
    assert_eq!(st, 201, "{v}");
    drop(s);

    // Too short to be a secret: refused at start, with the rule.
    let out = Command::new(super::common::bin())
        .args(["serve", "--listen", "127.0.0.1:0", "--db", db_str])
        .env("DETECTIVE_ADMIN_KEY", "short-key")
        .output()
        .expect("run detective serve");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{err}");
    assert!(err.contains("at least 24 characters"), "{err}");
    assert!(
        !err.contains("short-key"),
        "the refused key is not echoed: {err}"
    );

    // From a file (a mounted secret), with its trailing newline.
    let secret = dir.path().join("admin-secret");
    std::fs::write(&secret, "file-admin-key-0123456789abcdef\n").unwrap();
    let s = Server::spawn_keyed(
        db_str,
        &hold,
        &["--admin-key-file", secret.to_str().unwrap()],
        None,
    );
    s.wait_ready();
    let (st, v) = s.get("/reference/1", Some("file-admin-key-0123456789abcdef"));
    assert!(st == 200 || st == 404, "{st} {v}");
    let (st, v) = s.get("/reference/1", Some("wrong-admin-key-0123456789abcdef"));
    assert_eq!((st, code(&v)), (401, "unauthorized"), "{}", message(&v));
}
