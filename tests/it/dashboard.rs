//! The shipped operations files against real components: `promtool check
//! config` on `docker/prometheus/prometheus.yml`; a real Prometheus scraping
//! a real `detective serve` (JSON logs) with that config while traffic flows
//! (detections, references, bad requests); then every query of the Grafana
//! dashboard evaluated through Prometheus's HTTP API must succeed and return
//! data.
//!
//! Prometheus comes from `$DETECTIVE_TEST_PROMETHEUS` (a folder holding
//! `prometheus` and `promtool`) or the PATH (`.ci/run` installs Debian's).
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use super::common::{free_port, Killed};
use super::server::{Server, ADMIN, HUMANISH};

/// `$__rate_interval` as Grafana would set it for the test's 1 s scrapes.
const RATE_INTERVAL: &str = "10s";

fn repo(path: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(path)
}

/// `prometheus` and `promtool`, or `None` (skip) outside CI.
fn prometheus_tools() -> Option<(PathBuf, PathBuf)> {
    let dirs: Vec<PathBuf> = match std::env::var_os("DETECTIVE_TEST_PROMETHEUS") {
        Some(d) => vec![PathBuf::from(d)],
        None => std::env::split_paths(&std::env::var_os("PATH").unwrap_or_default()).collect(),
    };
    let found = dirs.iter().find_map(|d| {
        let (p, t) = (d.join("prometheus"), d.join("promtool"));
        (p.is_file() && t.is_file()).then_some((p, t))
    });
    if found.is_none() {
        assert!(
            std::env::var_os("CI").is_none(),
            "prometheus and promtool must be installed in CI (.ci/run installs them)"
        );
        eprintln!("skipped: prometheus/promtool not found (set DETECTIVE_TEST_PROMETHEUS)");
    }
    found
}

/// Every (panel title, query) of the dashboard.
fn dashboard_queries() -> Vec<(String, String)> {
    let text = std::fs::read_to_string(repo("docker/grafana/dashboards/detective.json")).unwrap();
    let dash: Value = serde_json::from_str(&text).unwrap();
    let mut out = Vec::new();
    let panels = dash["panels"].as_array().expect("panels");
    assert!(!panels.is_empty());
    for p in panels {
        let title = p["title"].as_str().unwrap().to_owned();
        let targets = p["targets"].as_array().expect("every panel has targets");
        assert!(!targets.is_empty(), "panel {title} has no query");
        assert_eq!(
            p["datasource"]["uid"], "prometheus",
            "panel {title} uses the provisioned data source"
        );
        for t in targets {
            out.push((title.clone(), t["expr"].as_str().unwrap().to_owned()));
        }
    }
    out
}

/// Detections, reference writes and bad requests until `stop`.
fn traffic(s: &Server, stop: &AtomicBool) -> usize {
    let writer = s.create_key("reference:write");
    let mut i = 0usize;
    while !stop.load(Ordering::Relaxed) {
        i += 1;
        let text = format!(
            "In conclusion, sample {i} demonstrates that effective communication \
             fosters collaboration and drives meaningful outcomes across diverse teams."
        );
        let (st, _) = s.post("/detect", Some(ADMIN), &json!({ "text": text }));
        assert_eq!(st, 200);
        let texts = [HUMANISH.to_owned(), format!("{HUMANISH} {i}"), text.clone()];
        let (st, _) = s.post("/detect", Some(ADMIN), &json!({ "texts": texts }));
        assert_eq!(st, 200);
        let (st, added) = s.post(
            "/reference",
            Some(&writer),
            &json!({ "text": format!("{text} (reference {i})"), "label": "machine",
                     "model": "probe-1", "family": "probe" }),
        );
        assert_eq!(st, 201, "{added}");
        if i.is_multiple_of(3) {
            let id = added["id"].as_i64().unwrap();
            let (st, _) = s.delete(&format!("/reference/{id}"), Some(ADMIN));
            assert_eq!(st, 200);
        }
        let (st, _) = s.post_raw("/detect", Some(ADMIN), b"{not json".to_vec());
        assert_eq!(st, 400);
        let (st, _) = s.post("/detect", None, &json!({ "text": "no key" }));
        assert_eq!(st, 401);
        let (st, _) = s.get("/no-such-route", None);
        assert_eq!(st, 404);
    }
    i
}

fn query(client: &reqwest::blocking::Client, base: &str, expr: &str) -> Value {
    client
        .get(format!("{base}/api/v1/query"))
        .query(&[("query", expr)])
        .send()
        .and_then(|r| r.json())
        .unwrap_or_else(|e| json!({ "status": "error", "error": e.to_string() }))
}

/// Why a query result is unusable for a panel, if it is.
fn problem(v: &Value) -> Option<String> {
    if v["status"] != "success" {
        return Some(format!("error: {}", v["error"]));
    }
    let result = v["data"]["result"].as_array()?;
    if result.is_empty() {
        return Some("no data".into());
    }
    let finite = result.iter().any(|r| {
        r["value"][1]
            .as_str()
            .and_then(|x| x.parse::<f64>().ok())
            .is_some_and(f64::is_finite)
    });
    (!finite).then(|| format!("no finite value: {result:?}"))
}

#[test]
fn every_dashboard_query_returns_data_from_a_real_prometheus() {
    let Some((prometheus, promtool)) = prometheus_tools() else {
        return;
    };
    let shipped = repo("docker/prometheus/prometheus.yml");
    let check = Command::new(&promtool)
        .arg("check")
        .arg("config")
        .arg(&shipped)
        .output()
        .unwrap();
    assert!(
        check.status.success(),
        "promtool check config: {}{}",
        String::from_utf8_lossy(&check.stdout),
        String::from_utf8_lossy(&check.stderr)
    );

    let queries = dashboard_queries();
    let s = Server::start(&["--log-format", "json"]);
    for (title, expr) in &queries {
        let rest = expr.replace("$__rate_interval", "");
        assert!(
            !rest.contains('$'),
            "panel {title}: unknown variable in {expr}"
        );
    }

    let dir = tempfile::tempdir().unwrap();
    let target = s.base.trim_start_matches("http://").to_owned();
    let config = std::fs::read_to_string(&shipped)
        .unwrap()
        .replace("detective:8080", &target)
        .replace("15s", "1s");
    assert!(
        config.contains(&target),
        "the shipped config names detective:8080"
    );
    let config_path = dir.path().join("prometheus.yml");
    std::fs::write(&config_path, config).unwrap();
    let port = free_port();
    let prom_log = std::fs::File::create(dir.path().join("prometheus.log")).unwrap();
    let _prom = Killed(
        Command::new(&prometheus)
            .arg(format!("--config.file={}", config_path.display()))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.path().join("data").display()
            ))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .stdout(Stdio::null())
            .stderr(prom_log)
            .spawn()
            .expect("start prometheus"),
    );
    let base = format!("http://127.0.0.1:{port}");
    let client = reqwest::blocking::Client::builder()
        .timeout(Duration::from_secs(30))
        .build()
        .unwrap();

    let stop = AtomicBool::new(false);
    let (failures, rounds) = std::thread::scope(|scope| {
        let sender = scope.spawn(|| traffic(&s, &stop));
        // Wait for Prometheus to scrape the service, then let counters and
        // histograms build a rate window.
        let deadline = Instant::now() + Duration::from_secs(120);
        loop {
            let up = query(&client, &base, "up{job=\"detective\"} == 1");
            if up["data"]["result"]
                .as_array()
                .is_some_and(|r| !r.is_empty())
            {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "Prometheus never scraped the service: {up}\n{}",
                std::fs::read_to_string(dir.path().join("prometheus.log")).unwrap_or_default()
            );
            std::thread::sleep(Duration::from_millis(500));
        }
        std::thread::sleep(Duration::from_secs(15));
        let failures: Vec<String> = queries
            .iter()
            .filter_map(|(title, expr)| {
                let q = expr.replace("$__rate_interval", RATE_INTERVAL);
                problem(&query(&client, &base, &q)).map(|p| format!("{title}: {q}: {p}"))
            })
            .collect();
        stop.store(true, Ordering::Relaxed);
        (failures, sender.join().expect("traffic"))
    });
    assert!(rounds > 0);
    // Labelled metrics appear once observed, so names are checked after the
    // traffic: a misspelt name in a panel fails here even if Prometheus
    // would merely return nothing.
    let exported = s.metrics();
    for (title, expr) in &queries {
        for name in expr
            .split(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
            .filter(|w| w.starts_with("detective_"))
        {
            assert!(
                exported.lines().any(|l| l.starts_with(name)),
                "panel {title}: {name} is not exported by the service"
            );
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} dashboard queries failed:\n{}",
        failures.len(),
        queries.len(),
        failures.join("\n")
    );

    // JSON logs: one object per line, the request's id on its access line.
    let (st, _) = {
        let r = s
            .client
            .get(s.url("/health"))
            .header("x-request-id", "probe-request-42")
            .send()
            .unwrap();
        assert_eq!(r.headers()["x-request-id"], "probe-request-42");
        (r.status().as_u16(), ())
    };
    assert_eq!(st, 200);
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let found = s.log.lock().unwrap().iter().any(|l| {
            serde_json::from_str::<Value>(l).is_ok_and(|v| {
                v["message"] == "request done"
                    && v["span"]["id"] == "probe-request-42"
                    && v["status"] == 200
            })
        });
        if found {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "no JSON access line with the request id"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}
