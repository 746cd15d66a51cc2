//! The router in process, over a stand-in model on the real encoder thread,
//! a real SQLite store and the real index: auth, bad input, the global
//! limits and the round trip of a reference, in milliseconds and without
//! timing races (the stand-in holds a batch exactly as long as a test says).
use std::sync::mpsc::{channel, Receiver, Sender};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Body;
use axum::http::{header, Method, Request, StatusCode};
use axum::Router;
use serde_json::{json, Value};
use tower::ServiceExt;

use super::{app, ApiConfig, AppState};
use crate::detect::keys::{create_key, KeyRing, Scope};
use crate::detect::live::Live;
use crate::detect::{startup, Decision, Detector, Languages, References, VoteConfig};
use crate::encoder::worker::Model;
use crate::encoder::{EncoderError, EncoderHandle, EncoderId, Tokenizer, View, WorkerConfig};
use crate::index::IndexKind;
use crate::store::{Label, NewReference, SqliteStore, Store};

const ADMIN: &str = "in-process-admin-key-0123456789";
const DIM: usize = 64;

/// Hashed bag of token ids: similar texts get similar vectors. With a
/// gate, each batch waits until the test lets it through.
struct Stand {
    id: EncoderId,
    tokenizer: Tokenizer,
    gate: Option<Gate>,
}

/// Tells the test a batch arrived, then waits for its go.
struct Gate {
    arrived: Sender<()>,
    go: Mutex<Receiver<()>>,
}

impl Model for Stand {
    fn id(&self) -> &EncoderId {
        &self.id
    }

    fn dim(&self) -> usize {
        DIM
    }

    fn tokenizer(&self) -> &Tokenizer {
        &self.tokenizer
    }

    fn embed_tokens(&self, seqs: &[Vec<i64>]) -> Result<Vec<Vec<f32>>, EncoderError> {
        if let Some(g) = &self.gate {
            let _ = g.arrived.send(());
            let _ = g.go.lock().unwrap().recv();
        }
        Ok(seqs.iter().map(|s| bag(s)).collect())
    }
}

fn bag(ids: &[i64]) -> Vec<f32> {
    let mut v = vec![0f32; DIM];
    for id in ids {
        v[(id.unsigned_abs() as usize * 2_654_435_761) % DIM] += 1.0;
    }
    let n = v.iter().map(|x| x * x).sum::<f32>().sqrt().max(1e-6);
    v.iter().map(|x| x / n).collect()
}

/// The test's handles on a running app.
struct Harness {
    app: Router,
    store: Arc<dyn Store>,
    /// Batches that reached the gated stand-in.
    arrived: Option<Receiver<()>>,
    /// Lets one batch through.
    go: Option<Sender<()>>,
    _dir: tempfile::TempDir,
}

const REFERENCES: &[(&str, Label, Option<&str>)] = &[
    ("honestly the bus was late again and i missed half the lecture lol", Label::Human, None),
    ("my grandmother's garden always smelled of tomatoes in august", Label::Human, None),
    ("In conclusion, it is important to note that effective communication fosters collaboration.", Label::Machine, Some("gpt")),
    ("Overall, this comprehensive approach ensures a seamless and robust experience for all users.", Label::Machine, Some("llama")),
];

async fn harness(config: ApiConfig, gated: bool) -> Harness {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("t.db");
    let store: Arc<dyn Store> = Arc::new(SqliteStore::open(path.to_str().unwrap()).await.unwrap());
    let tokenizer = Tokenizer::from_file(
        &std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("models/detective-minilm/weights/tokenizer.json"),
        64,
    )
    .unwrap();
    let (arrived_tx, arrived) = channel();
    let (go, go_rx) = channel();
    let stand = Stand {
        id: EncoderId {
            name: "stand-in".into(),
            checksum: "0".repeat(64),
            max_length: 64,
        },
        tokenizer: tokenizer.clone(),
        gate: gated.then(|| Gate {
            arrived: arrived_tx,
            go: Mutex::new(go_rx),
        }),
    };
    let items: Vec<NewReference> = REFERENCES
        .iter()
        .map(|(text, label, family)| NewReference {
            label: *label,
            model: family.map(|f| format!("{f}-model")),
            family: family.map(str::to_owned),
            source: None,
            domain: None,
            attack: None,
            lang: None,
            group: None,
            added_by: "test".into(),
            text: (*text).to_owned(),
        })
        .collect();
    let texts: Vec<&str> = REFERENCES.iter().map(|r| r.0).collect();
    let vectors: Vec<Vec<f32>> = tokenizer
        .encode_batch(&texts)
        .unwrap()
        .iter()
        .map(|ids| bag(ids))
        .collect();
    let view = View::neural();
    let id = view.id(&stand.id);
    store.insert(&items, &vectors, &id).await.unwrap();
    let refs = References::new(IndexKind::Exact, DIM, 16);
    startup::catch_up(store.as_ref(), &refs).await.unwrap();
    let live = Arc::new(Live::new(store.clone(), refs, IndexKind::Exact));
    let handle = EncoderHandle::spawn(stand, view, WorkerConfig::default());
    let vote = VoteConfig {
        k: 3,
        ..VoteConfig::default()
    };
    let detector = Detector::new(
        store.clone(),
        handle,
        live,
        vote,
        Decision::Majority,
        Languages::Any,
    );
    let state = Arc::new(AppState::new(
        KeyRing::new(store.clone(), Some(ADMIN)),
        config,
    ));
    assert!(state.detector.set(Arc::new(detector)).is_ok());
    Harness {
        app: app(state),
        store,
        arrived: gated.then_some(arrived),
        go: gated.then_some(go),
        _dir: dir,
    }
}

/// Sends one request; returns status, headers and the body as JSON (or as
/// a string when it is not JSON).
async fn send(
    app: &Router,
    method: Method,
    path: &str,
    key: Option<&str>,
    body: impl Into<Body>,
) -> (StatusCode, axum::http::HeaderMap, Value) {
    let mut req = Request::builder()
        .method(method)
        .uri(path)
        .header(header::CONTENT_TYPE, "application/json");
    if let Some(k) = key {
        req = req.header(header::AUTHORIZATION, format!("Bearer {k}"));
    }
    let resp = app
        .clone()
        .oneshot(req.body(body.into()).unwrap())
        .await
        .unwrap();
    let (parts, body) = resp.into_parts();
    let bytes = axum::body::to_bytes(body, usize::MAX).await.unwrap();
    let v = serde_json::from_slice(&bytes)
        .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into_owned()));
    (parts.status, parts.headers, v)
}

fn code(v: &Value) -> &str {
    v["error"]["code"].as_str().unwrap_or("<none>")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keys_scopes_and_schemes() {
    let h = harness(ApiConfig::default(), false).await;
    let (_, detect_only) = create_key(h.store.as_ref(), "bot", &[Scope::Detect])
        .await
        .unwrap();
    let body = json!({"text": "hello there"}).to_string();
    let (st, headers, v) = send(&h.app, Method::POST, "/detect", None, body.clone()).await;
    assert_eq!((st.as_u16(), code(&v)), (401, "unauthorized"));
    assert_eq!(headers[header::WWW_AUTHENTICATE], "Bearer");
    let (st, _, _) = send(
        &h.app,
        Method::POST,
        "/detect",
        Some("dtk_wrong"),
        body.clone(),
    )
    .await;
    assert_eq!(st, 401);
    let (st, _, v) = send(
        &h.app,
        Method::POST,
        "/detect",
        Some(&detect_only),
        body.clone(),
    )
    .await;
    assert_eq!(st, 200, "{v}");
    let reference = json!({"text": "a new one", "label": "human"}).to_string();
    let (st, _, v) = send(
        &h.app,
        Method::POST,
        "/reference",
        Some(&detect_only),
        reference,
    )
    .await;
    assert_eq!((st.as_u16(), code(&v)), (403, "forbidden"), "{v}");
    // The scheme is case-insensitive.
    let req = Request::post("/detect")
        .header(header::AUTHORIZATION, format!("bEARer {ADMIN}"))
        .body(Body::from(body))
        .unwrap();
    assert_eq!(h.app.clone().oneshot(req).await.unwrap().status(), 200);
}

/// Method, path, body, and the status, code and a part of the message.
type Case = (
    Method,
    &'static str,
    Vec<u8>,
    u16,
    &'static str,
    &'static str,
);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_input_gets_a_clear_4xx_and_stores_nothing() {
    let config = ApiConfig {
        max_items: 4,
        ..ApiConfig::default()
    };
    let h = harness(config, false).await;
    let long_family = "f".repeat(201);
    let many: Vec<String> = (0..5).map(|i| format!("t{i}")).collect();
    let cases: Vec<Case> = vec![
        (
            Method::POST,
            "/detect",
            b"{\"text\": ".to_vec(),
            400,
            "malformed_json",
            "malformed JSON",
        ),
        (
            Method::POST,
            "/detect",
            b"{\"texts\": [1, }".to_vec(),
            400,
            "malformed_json",
            "",
        ),
        (
            Method::POST,
            "/detect",
            b"".to_vec(),
            400,
            "malformed_json",
            "empty",
        ),
        (
            Method::POST,
            "/detect",
            b"[\"a\"]".to_vec(),
            422,
            "invalid_request",
            "not an array",
        ),
        (
            Method::POST,
            "/detect",
            b"{\"texts\": [0, 0, 0]}".to_vec(),
            422,
            "invalid_request",
            "texts[0]",
        ),
        (
            Method::POST,
            "/detect",
            json!({"texts": many}).to_string().into_bytes(),
            422,
            "invalid_request",
            "at most 4",
        ),
        (
            Method::POST,
            "/detect",
            json!({"text": "a\u{0}b"}).to_string().into_bytes(),
            422,
            "invalid_request",
            "NUL",
        ),
        (
            Method::POST,
            "/detect",
            json!({"text": "\u{200B}\u{FEFF} "})
                .to_string()
                .into_bytes(),
            422,
            "invalid_request",
            "empty",
        ),
        (
            Method::POST,
            "/detect",
            json!({"text": "a", "k": 0}).to_string().into_bytes(),
            422,
            "invalid_request",
            "k must be",
        ),
        (
            Method::POST,
            "/detect",
            json!({"text": "a", "mode": 1}).to_string().into_bytes(),
            422,
            "invalid_request",
            "unknown field `mode`",
        ),
        (
            Method::POST,
            "/reference",
            json!({"text": "a", "label": "robot"})
                .to_string()
                .into_bytes(),
            422,
            "invalid_request",
            "label: unknown variant",
        ),
        (
            Method::POST,
            "/reference",
            json!({"text": "a"}).to_string().into_bytes(),
            422,
            "invalid_request",
            "missing field `label`",
        ),
        (
            Method::POST,
            "/reference",
            json!({"text": "a", "label": "machine", "family": long_family})
                .to_string()
                .into_bytes(),
            422,
            "invalid_request",
            "family has 201 characters",
        ),
        (
            Method::POST,
            "/reference",
            json!({"items": [{"text": "a", "label": "human"}], "text": "b"})
                .to_string()
                .into_bytes(),
            422,
            "invalid_request",
            "not both",
        ),
        (
            Method::POST,
            "/reference",
            json!({"items": [{"text": "a", "label": "human", "model": "gpt-4"}]})
                .to_string()
                .into_bytes(),
            422,
            "invalid_request",
            "items[0].model",
        ),
        (
            Method::GET,
            "/reference/%FF",
            vec![],
            422,
            "invalid_request",
            "positive integer",
        ),
        (
            Method::GET,
            "/reference/0",
            vec![],
            422,
            "invalid_request",
            "positive integer",
        ),
        (
            Method::GET,
            "/reference/12345",
            vec![],
            404,
            "not_found",
            "12345",
        ),
        (
            Method::PUT,
            "/detect",
            vec![],
            405,
            "method_not_allowed",
            "",
        ),
        (
            Method::from_bytes(b"RANDOM123").unwrap(),
            "/detect",
            vec![],
            405,
            "method_not_allowed",
            "",
        ),
        (Method::GET, "/nowhere", vec![], 404, "not_found", "openapi"),
    ];
    for (method, path, body, status, want_code, needle) in cases {
        let what = format!("{method} {path} {}", String::from_utf8_lossy(&body));
        let (st, headers, v) = send(&h.app, method, path, Some(ADMIN), body).await;
        assert_eq!((st.as_u16(), code(&v)), (status, want_code), "{what}: {v}");
        assert!(
            v["error"]["message"].as_str().unwrap().contains(needle),
            "{what}: {v}"
        );
        assert_eq!(headers[header::CONTENT_TYPE], "application/json", "{what}");
    }
    let counts = h.store.counts().await.unwrap();
    assert_eq!(counts.total, REFERENCES.len() as i64, "nothing stored");
    // Invented methods fold into one metric label.
    let metrics = crate::metrics::render();
    assert!(!metrics.contains("RANDOM123"), "no series per method name");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reference_round_trip() {
    let h = harness(ApiConfig::default(), false).await;
    let text =
        "Furthermore, leveraging synergies across verticals unlocks transformative outcomes.";
    let item = json!({"text": text, "label": "machine", "model": "new-lm", "family": "newfam"})
        .to_string();
    let (st, _, made) = send(
        &h.app,
        Method::POST,
        "/reference",
        Some(ADMIN),
        item.clone(),
    )
    .await;
    assert_eq!(st, 201, "{made}");
    let id = made["id"].as_i64().unwrap();
    // Again, with other spacing: the same row.
    let spaced = json!({"text": format!("  {}  ", text.replace(' ', "   ")), "label": "machine"})
        .to_string();
    let (st, _, again) = send(&h.app, Method::POST, "/reference", Some(ADMIN), spaced).await;
    assert_eq!(
        (st.as_u16(), again["id"].as_i64(), &again["created"]),
        (200, Some(id), &json!(false))
    );
    let q = json!({"text": text, "k": 1, "explain": true}).to_string();
    let (st, _, v) = send(&h.app, Method::POST, "/detect", Some(ADMIN), q).await;
    assert_eq!(st, 200, "{v}");
    assert_eq!(v["neighbours"][0]["id"].as_i64(), Some(id), "{v}");
    assert_eq!(v["label"], "machine");
    assert_eq!(v["attribution"]["family"], "newfam", "{v}");
    let (st, _, v) = send(
        &h.app,
        Method::DELETE,
        &format!("/reference/{id}"),
        Some(ADMIN),
        Body::empty(),
    )
    .await;
    assert_eq!(st, 200, "{v}");
    let (st, _, v) = send(
        &h.app,
        Method::DELETE,
        &format!("/reference/{id}"),
        Some(ADMIN),
        Body::empty(),
    )
    .await;
    assert_eq!((st.as_u16(), code(&v)), (404, "not_found"));
}

/// With one request in progress and `max_concurrent` 1, the next is refused
/// at once with 503 `overloaded`; probes still answer; the first completes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_past_the_concurrency_limit_are_refused_and_probes_pass() {
    let config = ApiConfig {
        max_concurrent: 1,
        ..ApiConfig::default()
    };
    let mut h = harness(config, true).await;
    let body = json!({"text": "held in the model"}).to_string();
    let first = {
        let app = h.app.clone();
        let body = body.clone();
        tokio::spawn(async move { send(&app, Method::POST, "/detect", Some(ADMIN), body).await })
    };
    let arrived = h.arrived.take().unwrap();
    tokio::task::spawn_blocking(move || arrived.recv().unwrap())
        .await
        .unwrap();
    let (st, headers, v) = send(&h.app, Method::POST, "/detect", Some(ADMIN), body).await;
    assert_eq!((st.as_u16(), code(&v)), (503, "overloaded"), "{v}");
    assert_eq!(headers[header::RETRY_AFTER], "1");
    for probe in ["/health", "/ready", "/metrics"] {
        let (st, _, _) = send(&h.app, Method::GET, probe, None, Body::empty()).await;
        assert_eq!(st, 200, "{probe}");
    }
    h.go.as_ref().unwrap().send(()).unwrap();
    let (st, _, v) = first.await.unwrap();
    assert_eq!(st, 200, "{v}");
}

/// A request still running at `request_timeout` gets 503 `timeout`; the
/// service goes on.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_past_its_timeout_gets_503() {
    let config = ApiConfig {
        request_timeout: Some(Duration::from_millis(200)),
        ..ApiConfig::default()
    };
    let h = harness(config, true).await;
    let body = json!({"text": "held past its deadline"}).to_string();
    // The stand-in holds the batch until the answer is in: no race.
    let (st, _, v) = send(&h.app, Method::POST, "/detect", Some(ADMIN), body.clone()).await;
    assert_eq!((st.as_u16(), code(&v)), (503, "timeout"), "{v}");
    let go = h.go.clone().unwrap();
    let arrived = h.arrived.unwrap();
    // Let every batch through from now on.
    std::thread::spawn(move || {
        while arrived.recv().is_ok() {
            if go.send(()).is_err() {
                return;
            }
        }
    });
    let (st, _, v) = send(&h.app, Method::POST, "/detect", Some(ADMIN), body).await;
    assert_eq!(st, 200, "{v}");
}

/// The limits as the process tests configured them: items, characters,
/// body bytes and tokens (`--overlength reject`), each refused naming the
/// field or the limit.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_limit_and_shape_is_refused_naming_the_problem() {
    let config = ApiConfig {
        max_items: 8,
        max_text_chars: 20_000,
        max_body_bytes: 1_000_000,
        overlength: super::Overlength::Reject,
        ..ApiConfig::default()
    };
    let h = harness(config, false).await;

    let many: Vec<String> = (0..9).map(|i| format!("text {i}")).collect();
    let words = "lorem ipsum dolor sit amet ".repeat(600); // ~3,000 words, < 20,000 chars
    let chars = "a".repeat(25_000);
    let model_tokens = "64 tokens".to_owned();
    let cases: Vec<(&str, Vec<u8>, u16, &str, &str)> = vec![
        (
            "/detect",
            br#"{"text":"#.to_vec(),
            400,
            "malformed_json",
            "malformed JSON",
        ),
        ("/detect", Vec::new(), 400, "malformed_json", "empty"),
        (
            "/detect",
            b"\xff\xfe\x00".to_vec(),
            400,
            "malformed_json",
            "malformed",
        ),
        (
            "/detect",
            br#"{"text": 5}"#.to_vec(),
            422,
            "invalid_request",
            "text: invalid type",
        ),
        (
            "/detect",
            br#"[1, 2]"#.to_vec(),
            422,
            "invalid_request",
            "must be a JSON object",
        ),
        (
            "/detect",
            br#"{"text": "a", "bogus": 1}"#.to_vec(),
            422,
            "invalid_request",
            "unknown field `bogus`",
        ),
        (
            "/detect",
            br#"{"text": "   "}"#.to_vec(),
            422,
            "invalid_request",
            "text is empty",
        ),
        (
            "/detect",
            br#"{"text": "a", "texts": ["b"]}"#.to_vec(),
            422,
            "invalid_request",
            "not both",
        ),
        (
            "/detect",
            br#"{}"#.to_vec(),
            422,
            "invalid_request",
            "missing field `text`",
        ),
        (
            "/detect",
            br#"{"texts": []}"#.to_vec(),
            422,
            "invalid_request",
            "texts is empty",
        ),
        (
            "/detect",
            br#"{"texts": ["ok", ""]}"#.to_vec(),
            422,
            "invalid_request",
            "texts[1] is empty",
        ),
        (
            "/detect",
            json!({"texts": many}).to_string().into_bytes(),
            422,
            "invalid_request",
            "at most 8",
        ),
        (
            "/detect",
            br#"{"text": "a", "k": 0}"#.to_vec(),
            422,
            "invalid_request",
            "k must be",
        ),
        (
            "/detect",
            br#"{"text": "a", "k": 1000}"#.to_vec(),
            422,
            "invalid_request",
            "k must be",
        ),
        (
            "/detect",
            br#"{"text": "a", "k": -1}"#.to_vec(),
            422,
            "invalid_request",
            "k: invalid value",
        ),
        (
            "/detect",
            br#"{"text": "a", "explain": "yes"}"#.to_vec(),
            422,
            "invalid_request",
            "explain: invalid type",
        ),
        (
            "/detect",
            json!({"text": chars}).to_string().into_bytes(),
            413,
            "too_large",
            "25000 characters",
        ),
        (
            "/detect",
            json!({"text": words}).to_string().into_bytes(),
            422,
            "too_many_tokens",
            &model_tokens,
        ),
        (
            "/detect",
            vec![b' '; 1_100_000],
            413,
            "too_large",
            "--max-body-bytes",
        ),
        (
            "/reference",
            br#"{"text": "t", "label": "robot"}"#.to_vec(),
            422,
            "invalid_request",
            "label: unknown variant `robot`",
        ),
        (
            "/reference",
            br#"{"text": "t"}"#.to_vec(),
            422,
            "invalid_request",
            "missing field `label`",
        ),
        (
            "/reference",
            br#"{"text": "t", "label": "human", "model": "gpt-4"}"#.to_vec(),
            422,
            "invalid_request",
            "model",
        ),
        (
            "/reference",
            br#"{"items": [{"text": "t", "label": "human"}, {"text": "", "label": "human"}]}"#
                .to_vec(),
            422,
            "invalid_request",
            "items[1].text is empty",
        ),
        (
            "/reference",
            br#"{"items": [{"text": "t", "lable": "human"}]}"#.to_vec(),
            422,
            "invalid_request",
            "items[0]",
        ),
        (
            "/reference",
            br#"{"items": []}"#.to_vec(),
            422,
            "invalid_request",
            "items is empty",
        ),
    ];
    for (path, body, status, want_code, needle) in cases {
        let shown = String::from_utf8_lossy(&body[..body.len().min(60)]).to_string();
        let (st, _, b) = send(&h.app, Method::POST, path, Some(ADMIN), body).await;
        let st = st.as_u16();
        assert_eq!(st, status, "{path} {shown}: {b}");
        assert_eq!(code(&b), want_code, "{path} {shown}: {b}");
        assert!(
            b["error"]["message"]
                .as_str()
                .unwrap_or("")
                .contains(needle),
            "{path} {shown}: {b} lacks {needle:?}"
        );
    }
    for (path, status, want) in [
        ("/reference/abc", 422, "invalid_request"),
        ("/reference/0", 422, "invalid_request"),
        ("/reference/99999999", 404, "not_found"),
        ("/nope", 404, "not_found"),
    ] {
        let (st, _, b) = send(&h.app, Method::GET, path, Some(ADMIN), Body::empty()).await;
        assert_eq!((st.as_u16(), code(&b)), (status, want), "{path}: {b}");
    }
    let (st, _, b) = send(&h.app, Method::PUT, "/detect", Some(ADMIN), Body::empty()).await;
    assert_eq!((st.as_u16(), code(&b)), (405, "method_not_allowed"));
}
