//! The web page in a real browser: Debian's `chromium` driven headless over
//! WebDriver (`chromedriver`) against `detective serve` on loopback. The
//! page must render exactly what `POST /detect` answers for the same text
//! (verdict, score, families, segments, nearest references), keep the key
//! out of persistent storage, and add a reference that then shows as the
//! nearest neighbour. Outside CI the test is skipped when the browser is
//! missing; in CI (`.ci/run` installs it) a missing browser fails it.
//! `DETECTIVE_SCREENSHOT=PATH` keeps a screenshot of the rendered page.
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use fantoccini::{Client, ClientBuilder, Locator};
use serde_json::{json, Value};

use super::common::{free_port, shared_dir, Killed};
use super::server::{Server, ADMIN};

/// Generous: the page waits on the real encoder, and CI machines are slow.
const PATIENCE: Duration = Duration::from_secs(300);

fn tools() -> Option<(PathBuf, PathBuf)> {
    let find = |names: &[&str]| {
        names.iter().find_map(|n| {
            std::env::var_os("PATH").and_then(|p| {
                std::env::split_paths(&p)
                    .map(|d| d.join(n))
                    .find(|f| f.is_file())
            })
        })
    };
    match (
        find(&["chromium", "chromium-browser"]),
        find(&["chromedriver"]),
    ) {
        (Some(b), Some(d)) => Some((b, d)),
        _ => {
            assert!(
                std::env::var_os("CI").is_none(),
                "chromium and chromedriver must be installed in CI (.ci/run installs them)"
            );
            eprintln!("skipped: chromium or chromedriver not found");
            None
        }
    }
}

/// A human text followed by a machine text of the same domain, from
/// `test.jsonl`: a paste-in the page should split.
fn mixed_text() -> String {
    let path = shared_dir().join("corpus").join("test.jsonl");
    let text = std::fs::read_to_string(&path).unwrap();
    let rows: Vec<Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let pick = |label: &str| {
        rows.iter()
            .find(|r| {
                let t = r["text"].as_str().unwrap();
                r["domain"] == "xsum" && r["label"] == label && (600..1500).contains(&t.len())
            })
            .map(|r| r["text"].as_str().unwrap().trim().to_owned())
            .expect("an xsum text")
    };
    format!("{}\n\n{}", pick("human"), pick("machine"))
}

async fn wait_css(c: &Client, css: &str) -> fantoccini::elements::Element {
    c.wait()
        .at_most(PATIENCE)
        .for_element(Locator::Css(css))
        .await
        .unwrap_or_else(|e| panic!("{css} never appeared: {e}"))
}

async fn text_of(c: &Client, css: &str) -> String {
    c.find(Locator::Css(css))
        .await
        .unwrap()
        .text()
        .await
        .unwrap()
}

async fn click(c: &Client, id: &str) {
    c.find(Locator::Id(id))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
}

async fn type_into(c: &Client, id: &str, text: &str) {
    c.find(Locator::Id(id))
        .await
        .unwrap()
        .send_keys(text)
        .await
        .unwrap();
}

async fn js(c: &Client, script: &str, args: Vec<Value>) -> Value {
    c.execute(script, args).await.unwrap()
}

#[test]
fn the_page_shows_what_the_api_says_and_adds_references() {
    let Some((browser, driver)) = tools() else {
        return;
    };
    let s = Server::start(&[]);
    let key = s.create_key("detect,reference:write");
    let port = free_port();
    let _driver = Killed(
        Command::new(&driver)
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start chromedriver"),
    );
    let text = mixed_text();
    // What the API says about the text, to hold the page to.
    let (st, api) = s.post(
        "/detect",
        Some(ADMIN),
        &json!({"text": text, "explain": true, "segments": true}),
    );
    assert_eq!(st, 200, "{api}");
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let c = connect(port, &browser).await;
        let result = drive(&c, &s, &key, &text, &api).await;
        let _ = c.close().await;
        result
    });
}

async fn connect(port: u16, browser: &std::path::Path) -> Client {
    let mut caps = serde_json::Map::new();
    caps.insert(
        "goog:chromeOptions".into(),
        json!({
            "binary": browser,
            "args": ["--headless=new", "--no-sandbox", "--disable-gpu",
                     "--disable-dev-shm-usage", "--window-size=1280,2400"],
        }),
    );
    let url = format!("http://127.0.0.1:{port}");
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let attempt = ClientBuilder::new(hyper_util::client::legacy::connect::HttpConnector::new())
            .capabilities(caps.clone())
            .connect(&url)
            .await;
        match attempt {
            Ok(c) => return c,
            // chromedriver is still starting.
            Err(e) if Instant::now() < deadline => {
                eprintln!("waiting for chromedriver: {e}");
                tokio::time::sleep(Duration::from_millis(250)).await;
            }
            Err(e) => panic!("chromedriver on {url}: {e}"),
        }
    }
}

async fn drive(c: &Client, s: &Server, key: &str, text: &str, api: &Value) {
    c.goto(&s.url("/")).await.unwrap();
    assert!(c.title().await.unwrap().starts_with("detective"));
    // Every form control has a label.
    let unlabelled = js(
        c,
        "return [...document.querySelectorAll('input, select, textarea')]\
           .filter(e => e.labels.length === 0).map(e => e.id || e.name);",
        vec![],
    )
    .await;
    assert_eq!(unlabelled, json!([]), "controls without labels");

    // A wrong key: the API's error, in words, on the page.
    type_into(c, "key", "not-a-valid-key-000000000000").await;
    click(c, "key-save").await;
    js(
        c,
        "const t = document.getElementById('text'); t.value = arguments[0]; \
         t.dispatchEvent(new Event('input'));",
        vec![json!(text)],
    )
    .await;
    click(c, "detect").await;
    wait_css(c, "#detect-status.error").await;
    let err = text_of(c, "#detect-status").await;
    assert!(err.contains("unknown API key"), "{err}");

    // The real key, kept for this tab only.
    click(c, "key-forget").await;
    type_into(c, "key", key).await;
    click(c, "key-save").await;
    let stored = js(
        c,
        "return [sessionStorage.getItem('detective.key'), localStorage.length, \
                 document.getElementById('key').value];",
        vec![],
    )
    .await;
    assert_eq!(stored, json!([key, 0, ""]));

    click(c, "detect").await;
    wait_css(c, "#detect-status.ok").await;
    check_rendering(c, text, api).await;

    // The page stays usable on a phone: no sideways scrolling.
    c.set_window_size(390, 844).await.unwrap();
    let overflow = js(
        c,
        "return document.documentElement.scrollWidth - document.documentElement.clientWidth;",
        vec![],
    )
    .await;
    assert!(overflow.as_i64().unwrap() <= 0, "{overflow} px too wide");
    c.set_window_size(1280, 2400).await.unwrap();

    if let Some(path) = std::env::var_os("DETECTIVE_SCREENSHOT") {
        let png = c.screenshot().await.unwrap();
        std::fs::write(&path, png).unwrap();
    }

    // A segment can be picked (by keyboard too) as what to add.
    let first = c.find(Locator::Css(".seg")).await.unwrap();
    first.send_keys("\u{e007}").await.unwrap(); // Enter
    assert_eq!(
        first.attr("aria-pressed").await.unwrap().as_deref(),
        Some("true")
    );
    let picked = js(
        c,
        "const r = document.getElementById('what-segment'); return [r.disabled, r.checked];",
        vec![],
    )
    .await;
    assert_eq!(picked, json!([false, true]));

    // Add the whole text as a machine reference: it becomes the nearest
    // neighbour, marked on the page.
    c.find(Locator::Css("input[name=what][value=text]"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    js(
        c,
        "document.getElementById('ref-label').value = 'machine';",
        vec![],
    )
    .await;
    for (id, value) in [("ref-model", "page-model-1"), ("ref-family", "page-family")] {
        let input = c.find(Locator::Id(id)).await.unwrap();
        input.clear().await.unwrap();
        input.send_keys(value).await.unwrap();
    }
    click(c, "add-submit").await;
    wait_css(c, "#add-status.ok").await;
    let added = text_of(c, "#add-status").await;
    assert!(added.contains("nearest neighbour 1"), "{added}");
    let id: i64 = added
        .split_whitespace()
        .skip_while(|w| *w != "reference")
        .nth(1)
        .and_then(|w| w.trim_end_matches(';').parse().ok())
        .unwrap_or_else(|| panic!("no id in {added:?}"));
    let row = wait_css(c, "#neighbours tbody tr.fresh").await;
    assert_eq!(row.attr("data-id").await.unwrap(), Some(id.to_string()));
    let cells = row.text().await.unwrap();
    assert!(
        cells.contains("page-model-1") && cells.contains("page-family") && cells.contains("1.000"),
        "{cells}"
    );
    let (st, stored) = s.get(&format!("/reference/{id}"), Some(ADMIN));
    assert_eq!(st, 200, "{stored}");
    assert_eq!(stored["text"], text);
    assert_eq!(stored["family"], "page-family");
}

/// The rendered result against the API's answer for the same text.
async fn check_rendering(c: &Client, text: &str, api: &Value) {
    let verdict = c.find(Locator::Id("verdict")).await.unwrap();
    assert_eq!(
        verdict.attr("data-label").await.unwrap().as_deref(),
        api["label"].as_str()
    );
    assert!(!verdict.text().await.unwrap().is_empty());
    let gauge = c.find(Locator::Id("gauge")).await.unwrap();
    let now: f64 = gauge
        .attr("aria-valuenow")
        .await
        .unwrap()
        .unwrap()
        .parse()
        .unwrap();
    assert!((now - api["score"].as_f64().unwrap()).abs() < 1e-3);
    let line = text_of(c, "#score-line").await;
    let threshold = api["operating_point"]["threshold"]
        .as_f64()
        .map_or("0.500".into(), |t| format!("{t:.3}"));
    assert!(line.contains(&threshold), "{line}");

    let families = api["attribution"]["families"].as_array().unwrap();
    let bars = c.find_all(Locator::Css("#families li")).await.unwrap();
    assert_eq!(bars.len(), families.len().max(1));
    for (bar, f) in bars.iter().zip(families) {
        let shown = bar.text().await.unwrap();
        assert!(shown.contains(f["name"].as_str().unwrap()), "{shown}");
    }

    // Segments: one highlighted span per segment, with its characters,
    // label, score and confidence; together with the gaps, the whole text.
    let segments = api["segments"].as_array().unwrap();
    assert!(!segments.is_empty());
    let spans = js(
        c,
        "return [...document.querySelectorAll('#segmented .seg')].map(e => \
           [e.textContent, e.dataset.label, e.dataset.score, e.className]);",
        vec![],
    )
    .await;
    let spans = spans.as_array().unwrap();
    assert_eq!(spans.len(), segments.len());
    let chars: Vec<char> = text.chars().collect();
    for (span, seg) in spans.iter().zip(segments) {
        let (start, end) = (
            seg["start"].as_u64().unwrap() as usize,
            seg["end"].as_u64().unwrap() as usize,
        );
        let want: String = chars[start..end].iter().collect();
        assert_eq!(span[0], json!(want));
        assert_eq!(span[1], seg["label"]);
        assert_eq!(
            span[2],
            json!(format!("{:.3}", seg["score"].as_f64().unwrap()))
        );
        let class = if seg["confident"] == true {
            seg["label"].as_str().unwrap()
        } else {
            "unsure"
        };
        assert_eq!(span[3], json!(format!("seg {class}")));
    }
    let whole = text_of(c, "#segmented").await;
    let squash = |s: &str| s.split_whitespace().collect::<Vec<_>>().join(" ");
    assert_eq!(squash(&whole), squash(text));
    let mixed = c.find(Locator::Id("mixed")).await.unwrap();
    assert_eq!(
        mixed.attr("hidden").await.unwrap().is_none(),
        api["mixed"] == true
    );

    // Nearest references, in the API's order.
    let ids = js(
        c,
        "return [...document.querySelectorAll('#neighbours tbody tr')].map(r => Number(r.dataset.id));",
        vec![],
    )
    .await;
    let want: Vec<Value> = api["neighbours"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n["id"].clone())
        .collect();
    assert_eq!(ids, Value::Array(want));
}
