//! Faults: the database stopped and started under traffic, a batch killed
//! inside its transaction, a read-only store and a full disk.
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use super::server::{code, Server, ADMIN, HUMANISH};

#[track_caller]
fn wait_until(what: &str, within: Duration, mut ok: impl FnMut() -> bool) {
    let started = Instant::now();
    while !ok() {
        assert!(started.elapsed() < within, "{what}: not within {within:?}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// A PostgreSQL cluster of this test's own, which it may stop and start.
struct Cluster {
    bin: PathBuf,
    data: tempfile::TempDir,
    port: u16,
}

impl Cluster {
    /// Starts one with the binaries in `DETECTIVE_TEST_PGBIN` (set by
    /// `.ci/run`); `None` where that is not set outside CI.
    fn start() -> Option<Self> {
        let Some(bin) = std::env::var_os("DETECTIVE_TEST_PGBIN") else {
            assert!(
                std::env::var_os("CI").is_none(),
                "DETECTIVE_TEST_PGBIN must be set in CI (.ci/run sets it)"
            );
            eprintln!("skipped: DETECTIVE_TEST_PGBIN is not set");
            return None;
        };
        let data = tempfile::tempdir().expect("tempdir");
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("free port")
            .port();
        let c = Self {
            bin: PathBuf::from(bin),
            data,
            port,
        };
        if is_root() {
            let ok = Command::new("chown")
                .args(["-R", "postgres"])
                .arg(c.data.path())
                .status()
                .expect("chown")
                .success();
            assert!(ok, "chown the cluster directory");
        }
        let initdb = c.bin.join("initdb");
        c.run(&format!(
            "{} -D {} -A trust -U postgres",
            initdb.display(),
            c.dir().display()
        ));
        c.ctl("start -w");
        c.run(&format!(
            "{} -h 127.0.0.1 -p {} -U postgres -qc 'CREATE DATABASE faults'",
            c.bin.join("psql").display(),
            c.port
        ));
        Some(c)
    }

    fn dir(&self) -> &Path {
        self.data.path()
    }

    fn url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:{}/faults", self.port)
    }

    /// `pg_ctl ARGS` on this cluster.
    fn ctl(&self, args: &str) {
        self.run(&format!(
            "{} -D {} -l {}/server.log -o '-c listen_addresses=127.0.0.1 -p {} -k {}' {args}",
            self.bin.join("pg_ctl").display(),
            self.dir().display(),
            self.dir().display(),
            self.port,
            self.dir().display()
        ));
    }

    /// A shell command as the `postgres` user when running as root (the
    /// server refuses to run as root), else as ourselves.
    fn run(&self, cmd: &str) {
        let status = as_postgres(cmd)
            .stdout(std::process::Stdio::null())
            .status()
            .expect("run a PostgreSQL command");
        assert!(status.success(), "{cmd}: {status}");
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        let cmd = format!(
            "{} -D {} -m immediate stop",
            self.bin.join("pg_ctl").display(),
            self.dir().display()
        );
        let _ = as_postgres(&cmd).status();
    }
}

fn as_postgres(cmd: &str) -> Command {
    let mut c = if is_root() {
        let mut c = Command::new("su");
        c.args(["postgres", "-c"]);
        c
    } else {
        let mut c = Command::new("sh");
        c.arg("-c");
        c
    };
    c.arg(cmd);
    c
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| o.stdout.trim_ascii() == b"0")
}

/// The id of the nearest reference to `text`.
fn nearest(s: &Server, text: &str) -> i64 {
    let (st, v) = s.post(
        "/detect",
        Some(ADMIN),
        &json!({"text": text, "k": 1, "explain": true}),
    );
    assert_eq!(st, 200, "{v}");
    v["neighbours"][0]["id"].as_i64().expect("a neighbour")
}

/// PostgreSQL stops under traffic: writes fail fast with 503
/// `store_unavailable` (not 500, not a hang), detection goes on from
/// memory (with keys checked shortly before), probes answer; once the
/// database is back, writes succeed and replicate without a restart of
/// `detective`.
#[test]
fn postgres_stopped_and_started_under_traffic() {
    let Some(pg) = Cluster::start() else { return };
    let hold = pg.dir().join("detective.hold");
    let s = Server::spawn_on(&pg.url(), &hold, &["--key-cache-seconds", "1"]);
    s.wait_ready();
    let key = s.create_key("detect");
    let (st, v) = s.post("/detect", Some(&key), &json!({"text": HUMANISH}));
    assert_eq!(st, 200, "{v}");

    pg.ctl("-m fast stop -w");
    let text = "Written while the database was down, then again once it was back up.";
    let item = json!({"text": text, "label": "machine", "model": "outage-lm", "family": "outage"});
    for _ in 0..3 {
        let (st, v) = s.post("/reference", Some(ADMIN), &item);
        assert_eq!((st, code(&v)), (503, "store_unavailable"), "{v}");
    }
    // The key was last checked over a second ago: its answer is reused
    // while the store cannot be asked.
    std::thread::sleep(Duration::from_millis(1100));
    for k in [ADMIN, key.as_str()] {
        let (st, v) = s.post("/detect", Some(k), &json!({"texts": [HUMANISH, text]}));
        assert_eq!(st, 200, "detection from memory: {v}");
    }
    let (st, v) = s.post(
        "/detect",
        Some("dtk_unknownkey0000000000000000"),
        &json!({"text": "x"}),
    );
    assert!(
        (st, code(&v)) == (503, "store_unavailable") || (st, code(&v)) == (401, "unauthorized"),
        "an unknown key is never let in: {st} {v}"
    );
    assert_eq!(s.get("/health", None).0, 200);
    assert_eq!(s.get("/ready", None).0, 200);
    let (st, v) = s.get("/info", None);
    assert!(
        st == 200 || (st, code(&v)) == (503, "store_unavailable"),
        "{st} {v}"
    );

    pg.ctl("start -w");
    let mut created = Value::Null;
    wait_until("a write succeeds again", Duration::from_secs(120), || {
        let (st, v) = s.post("/reference", Some(ADMIN), &item);
        assert!(st == 201 || st == 503, "{st} {v}");
        created = v;
        st == 201
    });
    let id = created["id"].as_i64().expect("id");
    assert_eq!(nearest(&s, text), id, "the new reference votes");
    // The change feed follows the store again.
    wait_until("the feed caught up", Duration::from_secs(120), || {
        let (st, info) = s.get("/info", Some(ADMIN));
        st == 200 && info["index"]["applied_seq"] == info["references"]["store_seq"]
    });
    let (st, v) = s.post("/detect", Some(&key), &json!({"text": HUMANISH}));
    assert_eq!(st, 200, "{v}");
}

/// `kill -9` while a batch is inside its transaction (rows written, not
/// committed): after a restart nothing of it is stored; the retry stores
/// each item once, and a second retry creates nothing.
#[test]
fn a_batch_killed_inside_its_transaction_is_all_or_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("d.db");
    let items: Vec<Value> = (0..3)
        .map(|i| {
            json!({"text": format!("Batch item {i} of a write cut short, with a style all its own."),
                   "label": "machine", "model": "crash-lm", "family": "crash"})
        })
        .collect();
    let body = json!({ "items": items });
    let mut s = Server::spawn(&db, &[]);
    s.wait_ready();
    let total = |s: &Server| s.get("/info", Some(ADMIN)).1["references"]["total"].as_i64();
    let before = total(&s);
    std::fs::write(&s.hold, "only insert").unwrap();
    let client = s.client.clone();
    let url = s.url("/reference");
    let sent = body.clone();
    let pending = std::thread::spawn(move || {
        client
            .post(url)
            .bearer_auth(ADMIN)
            .json(&sent)
            .send()
            .map(|r| r.status().as_u16())
    });
    s.wait_log("held at insert", 0);
    s.kill9();
    assert!(
        pending.join().unwrap().is_err(),
        "no answer from a killed server"
    );
    s.release();

    let s = Server::spawn(&db, &[]);
    s.wait_ready();
    assert_eq!(total(&s), before, "nothing of the batch was kept");
    let (st, first) = s.post("/reference", Some(ADMIN), &body);
    assert_eq!(st, 201, "{first}");
    assert!(first["items"]
        .as_array()
        .unwrap()
        .iter()
        .all(|i| i["created"] == true));
    let (st, again) = s.post("/reference", Some(ADMIN), &body);
    assert_eq!(st, 200, "{again}");
    assert_eq!(again["ids"], first["ids"]);
    assert!(again["items"]
        .as_array()
        .unwrap()
        .iter()
        .all(|i| i["created"] == false));
    assert_eq!(total(&s), before.map(|n| n + 3));
}

/// A SQLite file the service may only read (`PATH?mode=ro`; a read-only
/// mount or a full disk answer the same way): detection works, every
/// write is 503 `store_unavailable`, and nothing is half-written.
#[test]
fn a_read_only_store_detects_and_refuses_writes_with_503() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("ro.db");
    let text = "Stored while the file was writable, and still voting once it is not.";
    let id = {
        let s = Server::spawn(&db, &[]);
        s.wait_ready();
        let (st, v) = s.post(
            "/reference",
            Some(ADMIN),
            &json!({"text": text, "label": "machine", "model": "ro-lm", "family": "ro"}),
        );
        assert_eq!(st, 201, "{v}");
        v["id"].as_i64().unwrap()
    };
    let ro = format!("{}?mode=ro", db.display());
    let s = Server::spawn_on(&ro, &dir.path().join("ro.hold"), &[]);
    s.wait_ready();
    let (_, info) = s.get("/info", Some(ADMIN));
    let total = info["references"]["total"].clone();
    assert_eq!(nearest(&s, text), id);
    let (st, v) = s.post(
        "/reference",
        Some(ADMIN),
        &json!({"items": [{"text": "one", "label": "human"}, {"text": "two", "label": "human"}]}),
    );
    assert_eq!((st, code(&v)), (503, "store_unavailable"), "{v}");
    let (st, v) = s.delete(&format!("/reference/{id}"), Some(ADMIN));
    assert_eq!((st, code(&v)), (503, "store_unavailable"), "{v}");
    let (_, info) = s.get("/info", Some(ADMIN));
    assert_eq!(info["references"]["total"], total, "nothing written");
    assert_eq!(nearest(&s, text), id, "still voting");
}

/// A small filesystem of the test's own (tmpfs), unmounted when dropped.
struct Tmpfs {
    dir: tempfile::TempDir,
}

impl Tmpfs {
    /// `None` where this process may not mount (not root, or no
    /// CAP_SYS_ADMIN in a container).
    fn mount(size: &str) -> Option<Self> {
        let dir = tempfile::tempdir().ok()?;
        let ok = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(dir.path())
            .stderr(std::process::Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        ok.then_some(Self { dir })
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount")
            .arg("-l")
            .arg(self.dir.path())
            .status();
    }
}

/// The disk under a SQLite store fills up: writes are 503
/// `store_unavailable` and leave nothing behind, detection goes on, and
/// once space is freed the same write succeeds without a restart.
#[test]
fn a_full_disk_refuses_writes_with_503_and_recovers() {
    let Some(fs) = Tmpfs::mount("256m") else {
        eprintln!("skipped: cannot mount a tmpfs here (needs root with CAP_SYS_ADMIN)");
        return;
    };
    let db = fs.dir.path().join("full.db");
    let s = Server::spawn(&db, &["--snapshot-dir", "none"]);
    s.wait_ready();
    let total = |s: &Server| s.get("/info", Some(ADMIN)).1["references"]["total"].clone();
    let before = total(&s);
    // Fill what is left of the filesystem.
    let filler = fs.dir.path().join("filler");
    {
        use std::io::Write;
        let mut f = std::fs::File::create(&filler).unwrap();
        let chunk = vec![0u8; 1 << 20];
        while f.write_all(&chunk).and_then(|()| f.sync_all()).is_ok() {}
    }
    // Batches of 8 texts of about 50 kB: the journal's free pages take the
    // first ones; then the disk refuses.
    let batch = |i: usize| {
        let items: Vec<Value> = (0..8)
            .map(|j| {
                json!({"text": format!("Written to a full disk, batch {i} item {j}: {}",
                                       super::server::long_text(i * 8 + j).repeat(20)),
                       "label": "machine", "model": "full-lm", "family": "full"})
            })
            .collect();
        json!({ "items": items })
    };
    let mut acknowledged = 0;
    let mut refused = None;
    for i in 0..1000 {
        let (st, v) = s.post("/reference", Some(ADMIN), &batch(i));
        match st {
            201 => acknowledged += 8,
            _ => {
                assert_eq!((st, code(&v)), (503, "store_unavailable"), "{v}");
                refused = Some(i);
                break;
            }
        }
    }
    let refused = refused.expect("the full disk refused a write");
    // Retried, on whichever pooled connection: refused every time, never
    // acknowledged while the disk is full.
    for attempt in 0..6 {
        let (st, v) = s.post("/reference", Some(ADMIN), &batch(refused));
        assert_eq!(
            (st, code(&v)),
            (503, "store_unavailable"),
            "attempt {attempt}: {v}"
        );
    }
    let (st, v) = s.post("/detect", Some(ADMIN), &json!({"text": HUMANISH}));
    assert_eq!(st, 200, "detection needs no disk: {v}");
    std::fs::remove_file(&filler).unwrap();
    wait_until(
        "a write succeeds once space is free",
        Duration::from_secs(60),
        || {
            let (st, v) = s.post("/reference", Some(ADMIN), &batch(refused));
            assert!(st == 201 || st == 503, "{st} {v}");
            st == 201
        },
    );
    let after = total(&s);
    assert_eq!(
        after.as_i64(),
        before.as_i64().map(|n| n + acknowledged + 8),
        "every acknowledged item kept, nothing of the refused batches"
    );
    drop(s);
    drop(fs);
}
