//! A bounded black-box fuzz of the running server: random and mutated
//! bodies, headers, methods and paths from a seeded generator, then a flood
//! of maximal bodies. No answer may be a 5xx, every error has the one JSON
//! shape, the process survives, `/health` answers throughout, and resident
//! memory stays bounded. `DETECTIVE_FUZZ_REQUESTS` and `DETECTIVE_FUZZ_SEED`
//! change the run's size and seed.
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use reqwest::blocking::Client;
use reqwest::Method;
use serde_json::{json, Value};

use super::server::{Server, ADMIN, HUMANISH};

const ROUTES: &[&str] = &[
    "/detect",
    "/reference",
    "/reference/1",
    "/reference/0",
    "/reference/-1",
    "/reference/%FF",
    "/reference/99999999999999999999",
    "/health",
    "/ready",
    "/info",
    "/metrics",
    "/openapi.json",
    "/",
    "/detect/",
    "//detect",
    "/detect?k=3",
    "/../etc/passwd",
    "/reference/1/extra",
];

fn method(rng: &mut StdRng) -> Method {
    match rng.gen_range(0..10) {
        0..=4 => Method::POST,
        5 | 6 => Method::GET,
        7 => Method::DELETE,
        8 => {
            [Method::PUT, Method::PATCH, Method::HEAD, Method::OPTIONS][rng.gen_range(0..4)].clone()
        }
        _ => Method::from_bytes(format!("X{}", rng.gen::<u32>()).as_bytes()).unwrap(),
    }
}

fn path(rng: &mut StdRng) -> String {
    match rng.gen_range(0..10) {
        0..=6 => ROUTES[rng.gen_range(0..ROUTES.len())].to_owned(),
        7 => format!("/reference/{}", rng.gen::<i64>()),
        8 => format!("/{}", "a/".repeat(rng.gen_range(1..2000))),
        _ => format!("/{:x}", rng.gen::<u64>()),
    }
}

fn auth(rng: &mut StdRng) -> Option<String> {
    match rng.gen_range(0..8) {
        0..=3 => Some(format!("Bearer {ADMIN}")),
        4 => Some(format!("bEaReR {ADMIN}")),
        5 => None,
        6 => Some(format!("Bearer dtk_{:x}", rng.gen::<u128>())),
        _ => Some(
            ["Basic YWxhZGRpbjpvcGVuc2VzYW1l", "Bearer", "Bearer  ", "x"][rng.gen_range(0..4)]
                .to_owned(),
        ),
    }
}

/// A valid body of some route, to be mutated.
fn seed_body(rng: &mut StdRng) -> Value {
    let text = [
        HUMANISH,
        "",
        " ",
        "\u{200B}\u{FEFF}",
        "a\u{0}b",
        "Ünïcödé \u{1F600} 日本語のテキスト",
        "The committee reviewed the proposal and found it thorough.",
    ][rng.gen_range(0..7)];
    match rng.gen_range(0..6) {
        0 => json!({"text": text}),
        1 => {
            json!({"texts": [text, HUMANISH], "k": rng.gen_range(0..200), "explain": rng.gen::<bool>()})
        }
        2 => {
            let label = ["human", "machine", "robot"][rng.gen_range(0..3)];
            json!({"text": text, "label": label, "model": "fuzz-lm",
                   "family": "x".repeat(rng.gen_range(0..400))})
        }
        3 => {
            json!({"items": [{"text": format!("{text} {}", rng.gen::<u32>()), "label": "machine"}]})
        }
        4 => {
            json!({"texts": (0..rng.gen_range(0..100)).map(|i| format!("t{i}")).collect::<Vec<_>>()})
        }
        _ => json!({"text": text, "unknown": 1}),
    }
}

fn body(rng: &mut StdRng) -> Vec<u8> {
    let mut b = serde_json::to_vec(&seed_body(rng)).unwrap();
    match rng.gen_range(0..10) {
        0..=3 => {}
        4 => b.truncate(rng.gen_range(0..=b.len())),
        5 => {
            for _ in 0..rng.gen_range(1..4) {
                let i = rng.gen_range(0..b.len());
                b[i] = rng.gen();
            }
        }
        6 => {
            let i = rng.gen_range(0..b.len());
            let junk: &[u8] = [
                &b"\\ud800"[..],
                b"[[[[",
                b"}",
                b"1e999999",
                b"\"",
                b"\xff\xfe",
                b"null",
            ][rng.gen_range(0..7)];
            b.splice(i..i, junk.iter().copied());
        }
        7 => b = (0..rng.gen_range(0..512)).map(|_| rng.gen()).collect(),
        8 => {
            let depth = rng.gen_range(1..5000);
            b = format!("{{\"texts\": {}{}}}", "[".repeat(depth), "]".repeat(depth)).into_bytes();
        }
        _ => b.clear(),
    }
    b
}

/// Resident memory now and at its peak, in MiB, from `/proc`.
fn memory(pid: u32) -> (f64, f64) {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let field = |name: &str| {
        status
            .lines()
            .find(|l| l.starts_with(name))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|v| v.parse::<f64>().ok())
            .map_or(0.0, |kb| kb / 1024.0)
    };
    (field("VmRSS:"), field("VmHWM:"))
}

/// Resets the process's peak resident memory (`VmHWM`) to its current
/// resident memory; `false` where the kernel does not allow it.
fn reset_peak(pid: u32) -> bool {
    std::fs::write(format!("/proc/{pid}/clear_refs"), "5").is_ok()
}

/// Checks one answer; returns its status.
fn check(resp: reqwest::blocking::Response, head: bool, what: &str) -> u16 {
    let status = resp.status().as_u16();
    let ctype = resp
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_owned();
    let text = resp.text().unwrap_or_default();
    assert!(status < 500, "{what}: {status} {text}");
    if status >= 400 && !head {
        assert!(
            ctype.starts_with("application/json"),
            "{what}: {status} {ctype} {text}"
        );
        let v: Value =
            serde_json::from_str(&text).unwrap_or_else(|e| panic!("{what}: {e}: {text}"));
        let e = &v["error"];
        assert!(
            e["code"].is_string() && e["message"].is_string() && v.as_object().unwrap().len() == 1,
            "{what}: not the error shape: {text}"
        );
    }
    status
}

#[test]
fn fuzzed_requests_and_a_flood_of_large_bodies_get_no_5xx_and_bounded_memory() {
    let requests: usize = std::env::var("DETECTIVE_FUZZ_REQUESTS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(3000);
    let seed: u64 = std::env::var("DETECTIVE_FUZZ_SEED")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(20_261_128);
    let s = Server::start(&["--max-items", "16"]);
    let pid = s.child.id();
    let (rss_ready, _) = memory(pid);

    // Phase 1: fuzz from 8 clients.
    let counts = Arc::new(Mutex::new(BTreeMap::<String, usize>::new()));
    let threads: Vec<_> = (0..8u64)
        .map(|t| {
            let (base, counts) = (s.base.clone(), counts.clone());
            std::thread::spawn(move || {
                let client = Client::builder()
                    .timeout(Duration::from_secs(300))
                    .build()
                    .unwrap();
                let mut rng = StdRng::seed_from_u64(seed.wrapping_add(t));
                for i in 0..requests / 8 {
                    let m = method(&mut rng);
                    // Most bodies go where a body is read.
                    let p = if m == Method::POST && rng.gen_bool(0.8) {
                        ["/detect", "/reference"][rng.gen_range(0..2)].to_owned()
                    } else {
                        path(&mut rng)
                    };
                    let (a, b) = (auth(&mut rng), body(&mut rng));
                    let head = m == Method::HEAD;
                    let what = format!(
                        "#{t}.{i} {m} {} ({} body bytes)",
                        &p[..p.len().min(60)],
                        b.len()
                    );
                    let mut req = client.request(m, format!("{base}{p}")).body(b);
                    if rng.gen_bool(0.9) {
                        req = req.header("content-type", "application/json");
                    }
                    if let Some(a) = a {
                        req = req.header("authorization", a);
                    }
                    if rng.gen_bool(0.1) {
                        req = req.header("x-request-id", "x".repeat(rng.gen_range(0..200)));
                    }
                    let resp = req.send().unwrap_or_else(|e| panic!("{what}: {e}"));
                    let status = check(resp, head, &what);
                    *counts
                        .lock()
                        .unwrap()
                        .entry(status.to_string())
                        .or_default() += 1;
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    let counts = counts.lock().unwrap().clone();
    let sent: usize = counts.values().sum();
    eprintln!("fuzz: {sent} requests, by status: {counts:?}");
    assert_eq!(sent, requests / 8 * 8);
    assert!(counts.keys().all(|c| !c.starts_with('5')), "{counts:?}");
    assert!(
        counts.contains_key("200"),
        "some requests were valid: {counts:?}"
    );
    let (_, peak_fuzz) = memory(pid);
    // The fuzz's reference writes trigger classifier refits in the
    // background; the flood is measured once they are done, from a reset
    // peak, so that it counts what the bodies cost and nothing else.
    s.wait_classifier();
    let (rss_settled, _) = memory(pid);
    let reset = reset_peak(pid);

    // Phase 2: 16 clients each post maximal (8 MiB) bodies while a probe
    // checks /health.
    let max = 8 << 20;
    let bodies: Arc<Vec<Vec<u8>>> = Arc::new(vec![
        {
            let mut b = b"{\"texts\":[0".to_vec();
            b.extend(b",0".repeat((max - 16) / 2));
            b.extend(b"]}");
            b
        },
        {
            let mut b = b"{\"texts\":[\"a\"".to_vec();
            b.extend(b",\"a\"".repeat((max - 16) / 4));
            b.extend(b"]}");
            b
        },
        format!("{{\"text\":\"{}\"}}", "word ".repeat((max - 16) / 5)).into_bytes(),
        format!(
            "{{\"texts\":{}{}}}",
            "[".repeat((max - 16) / 2),
            "]".repeat((max - 16) / 2)
        )
        .into_bytes(),
    ]);
    assert!(bodies.iter().all(|b| b.len() <= max));
    let done = Arc::new(AtomicBool::new(false));
    let probes = Arc::new(AtomicU64::new(0));
    let probe = {
        let (base, done, probes) = (s.base.clone(), done.clone(), probes.clone());
        std::thread::spawn(move || {
            let client = Client::new();
            while !done.load(Ordering::Acquire) {
                let r = client
                    .get(format!("{base}/health"))
                    .send()
                    .expect("/health answers");
                assert_eq!(r.status().as_u16(), 200);
                probes.fetch_add(1, Ordering::Relaxed);
            }
        })
    };
    let flooders: Vec<_> = (0..16usize)
        .map(|t| {
            let (base, bodies) = (s.base.clone(), bodies.clone());
            std::thread::spawn(move || {
                let client = Client::builder()
                    .timeout(Duration::from_secs(300))
                    .build()
                    .unwrap();
                let mut by_status = BTreeMap::<u16, usize>::new();
                for i in 0..8 {
                    let b = bodies[(t + i) % bodies.len()].clone();
                    let resp = client
                        .post(format!("{base}/detect"))
                        .bearer_auth(ADMIN)
                        .header("content-type", "application/json")
                        .body(b)
                        .send()
                        .expect("flood request");
                    *by_status.entry(check(resp, false, "flood")).or_default() += 1;
                }
                by_status
            })
        })
        .collect();
    let mut flood = BTreeMap::<u16, usize>::new();
    for f in flooders {
        for (k, v) in f.join().unwrap() {
            *flood.entry(k).or_default() += v;
        }
    }
    done.store(true, Ordering::Release);
    probe.join().unwrap();
    let (rss_after, peak) = memory(pid);
    eprintln!(
        "flood: 128 bodies of 8 MiB at concurrency 16, by status {flood:?}; /health answered {} times; \
         resident memory: {rss_ready:.0} MiB ready, {peak_fuzz:.0} MiB peak after the fuzz, \
         {rss_settled:.0} MiB once refits were done, {peak:.0} MiB peak during the flood{}, \
         {rss_after:.0} MiB now",
        probes.load(Ordering::Relaxed),
        if reset { "" } else { " (peak not resettable: since start)" }
    );
    assert!(probes.load(Ordering::Relaxed) > 0);
    // What the flood costs beyond the loaded model, index and classifier:
    // bodies are bounded (16 x 8 MiB in flight), parsed values are bounded,
    // nothing is kept.
    let base = if reset { rss_settled } else { rss_ready };
    assert!(
        peak - base < 384.0,
        "the flood grew resident memory from {base:.0} to {peak:.0} MiB"
    );
    // And the whole run, refits included, stays bounded.
    assert!(
        peak_fuzz.max(peak) - rss_ready < 640.0,
        "resident memory grew from {rss_ready:.0} to {:.0} MiB",
        peak_fuzz.max(peak)
    );
    let mut child = s;
    assert!(
        child.child.try_wait().unwrap().is_none(),
        "the server is alive"
    );
    assert_eq!(child.get("/health", None).0, 200);
    child.kill9();
}
