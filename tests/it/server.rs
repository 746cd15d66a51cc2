//! A real `detective serve` process on loopback for HTTP tests.
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{mpsc, Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::Value;

pub const ADMIN: &str = "admin-test-key-0123456789";

pub const HUMANISH: &str = "honestly i dont know what to tell you, the bus was late again and \
    i missed the first half of the lecture. anyone have notes??";

/// A few hundred tokens of text.
pub fn long_text(seed: usize) -> String {
    (0..120)
        .map(|i| format!("word{} sentence{} ", (i * 7 + seed) % 97, i % 13))
        .collect()
}

pub struct Server {
    pub child: Child,
    pub base: String,
    pub db: PathBuf,
    /// While this file exists the server holds (see `detective::hold`).
    pub hold: PathBuf,
    _dir: Option<tempfile::TempDir>,
    pub client: reqwest::blocking::Client,
    /// Every line the server wrote to stderr so far.
    pub log: Arc<Mutex<Vec<String>>>,
}

impl Server {
    /// Starts a server on a fresh SQLite store and waits until it is ready.
    #[track_caller]
    pub fn start(extra: &[&str]) -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        let db = dir.path().join("detective.db");
        let mut s = Self::spawn(&db, extra);
        s._dir = Some(dir);
        s.wait_ready();
        s
    }

    /// Starts a server on `db` without waiting for readiness.
    #[track_caller]
    pub fn spawn(db: &Path, extra: &[&str]) -> Self {
        Self::spawn_on(
            db.to_str().expect("utf-8 path"),
            &Self::hold_path(db),
            extra,
        )
    }

    /// Starts a server on the store at `db` (a path or a database URL),
    /// held while `hold` exists, without waiting for readiness.
    #[track_caller]
    pub fn spawn_on(db: &str, hold: &Path, extra: &[&str]) -> Self {
        Self::spawn_keyed(db, hold, extra, Some(ADMIN))
    }

    /// [`Server::spawn_on`] with `admin` (or no key at all) as
    /// `DETECTIVE_ADMIN_KEY`.
    #[track_caller]
    pub fn spawn_keyed(db: &str, hold: &Path, extra: &[&str], admin: Option<&str>) -> Self {
        let mut cmd = Command::new(super::common::bin());
        match admin {
            Some(k) => cmd.env("DETECTIVE_ADMIN_KEY", k),
            None => cmd.env_remove("DETECTIVE_ADMIN_KEY"),
        };
        let mut child = cmd
            .args(["serve", "--listen", "127.0.0.1:0", "--db", db])
            .args(extra)
            .env("DETECTIVE_HOLD_FILE", hold)
            .env("DETECTIVE_THREADS", "2")
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start detective serve");
        let stderr = child.stderr.take().expect("stderr");
        let (tx, rx) = mpsc::channel();
        let log = Arc::new(Mutex::new(Vec::new()));
        let sink = log.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                sink.lock().unwrap().push(line.clone());
                if let Some(rest) = line.strip_prefix("listening on http://") {
                    let addr = rest
                        .split_whitespace()
                        .next()
                        .unwrap_or_default()
                        .to_owned();
                    let _ = tx.send(addr);
                }
                eprintln!("[server] {line}");
            }
        });
        let addr = rx
            .recv_timeout(Duration::from_secs(120))
            .expect("server prints its address");
        Self {
            child,
            base: format!("http://{addr}"),
            db: PathBuf::from(db),
            hold: hold.to_owned(),
            _dir: None,
            client: reqwest::blocking::Client::builder()
                .timeout(Duration::from_secs(300))
                .build()
                .expect("client"),
            log,
        }
    }

    /// The hold file of a server on `db`.
    pub fn hold_path(db: &Path) -> PathBuf {
        db.with_extension("hold")
    }

    /// Holds the encoder thread (and start-up) until [`Server::release`].
    pub fn hold(&self) {
        std::fs::write(&self.hold, b"").expect("create the hold file");
    }

    pub fn release(&self) {
        let _ = std::fs::remove_file(&self.hold);
    }

    /// Log lines so far that contain `needle`.
    pub fn log_count(&self, needle: &str) -> usize {
        let log = self.log.lock().expect("log");
        log.iter().filter(|l| l.contains(needle)).count()
    }

    /// Waits until the server has logged `needle` more than `seen` times.
    #[track_caller]
    pub fn wait_log(&self, needle: &str, seen: usize) {
        let deadline = Instant::now() + Duration::from_secs(120);
        while self.log_count(needle) <= seen {
            assert!(Instant::now() < deadline, "server never logged {needle:?}");
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// The value of a metric series (the first line starting with
    /// `series`), 0 when absent.
    pub fn metric(&self, series: &str) -> f64 {
        self.metrics()
            .lines()
            .find(|l| l.starts_with(series))
            .and_then(|l| l.split_whitespace().last())
            .and_then(|v| v.parse().ok())
            .unwrap_or(0.0)
    }

    /// Waits until `series` reaches `value`.
    #[track_caller]
    pub fn wait_metric(&self, series: &str, value: f64) {
        let deadline = Instant::now() + Duration::from_secs(120);
        while self.metric(series) < value {
            assert!(Instant::now() < deadline, "{series} never reached {value}");
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// Waits until the classifier is fitted on every change the index has
    /// applied (its refits run in the background); returns `/info`.
    #[track_caller]
    pub fn wait_classifier(&self) -> Value {
        let deadline = Instant::now() + Duration::from_secs(300);
        loop {
            let (st, info) = self.get("/info", None);
            assert_eq!(st, 200, "{info}");
            let fitted = info["classifier"]["applied"].as_i64();
            if fitted.is_some() && fitted == info["index"]["applied_seq"].as_i64() {
                return info;
            }
            assert!(
                Instant::now() < deadline,
                "the classifier never caught up: {info}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    #[track_caller]
    pub fn wait_ready(&self) {
        let deadline = Instant::now() + Duration::from_secs(600);
        loop {
            if let Ok(r) = self.client.get(self.url("/ready")).send() {
                if r.status() == 200 {
                    return;
                }
            }
            assert!(Instant::now() < deadline, "server not ready in time");
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    /// The `/metrics` text.
    #[track_caller]
    pub fn metrics(&self) -> String {
        let resp = self
            .client
            .get(self.url("/metrics"))
            .send()
            .expect("metrics");
        resp.text().expect("metrics body")
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// POSTs JSON with a key; returns (status, body).
    #[track_caller]
    pub fn post(&self, path: &str, key: Option<&str>, body: &Value) -> (u16, Value) {
        self.send(self.client.post(self.url(path)).json(body), key)
    }

    #[track_caller]
    pub fn post_raw(&self, path: &str, key: Option<&str>, body: Vec<u8>) -> (u16, Value) {
        let req = self
            .client
            .post(self.url(path))
            .header("content-type", "application/json")
            .body(body);
        self.send(req, key)
    }

    #[track_caller]
    pub fn get(&self, path: &str, key: Option<&str>) -> (u16, Value) {
        self.send(self.client.get(self.url(path)), key)
    }

    #[track_caller]
    pub fn delete(&self, path: &str, key: Option<&str>) -> (u16, Value) {
        self.send(self.client.delete(self.url(path)), key)
    }

    #[track_caller]
    fn send(&self, mut req: reqwest::blocking::RequestBuilder, key: Option<&str>) -> (u16, Value) {
        if let Some(k) = key {
            req = req.bearer_auth(k);
        }
        let resp = req.send().expect("request");
        let status = resp.status().as_u16();
        let text = resp.text().expect("body");
        let body = serde_json::from_str(&text).unwrap_or(Value::String(text));
        (status, body)
    }

    /// Creates a key with the CLI against the server's store.
    #[track_caller]
    pub fn create_key(&self, scopes: &str) -> String {
        let out = Command::new(super::common::bin())
            .args(["keys", "--db"])
            .arg(&self.db)
            .args(["create", "--name", "test", "--scope", scopes])
            .output()
            .expect("keys create");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout)
            .expect("utf8")
            .trim()
            .to_owned()
    }

    /// Waits until the process exits on its own; returns its status.
    #[track_caller]
    pub fn wait_exit(&mut self, within: Duration) -> std::process::ExitStatus {
        let deadline = Instant::now() + within;
        loop {
            if let Some(status) = self.child.try_wait().expect("try_wait") {
                return status;
            }
            assert!(Instant::now() < deadline, "the server did not exit");
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    pub fn kill9(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The error code of an error body.
pub fn code(body: &Value) -> &str {
    body["error"]["code"].as_str().unwrap_or("<no error code>")
}

pub fn message(body: &Value) -> &str {
    body["error"]["message"].as_str().unwrap_or("")
}
