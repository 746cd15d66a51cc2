//! The router in process, over a stand-in model on the real encoder thread,
//! a real SQLite store and the real index: auth, bad input, the global
//! limits and the round trip of a reference, in milliseconds and without
//! timing races (the stand-in holds a batch exactly as long as a test says).
//! This module holds the harness; each sibling one concern.
mod auth;
mod input;
mod limits;
mod references;
mod segments;
use std::sync::mpsc::{channel, Receiver, Sender};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Body;
use axum::http::{header, Method, Request, StatusCode};
use axum::Router;
use serde_json::Value;
use tower::ServiceExt;

use super::{app, ApiConfig, AppState};
use crate::detect::keys::KeyRing;
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
            model: family.map(|f| format!("{f}-model")),
            family: family.map(str::to_owned),
            ..NewReference::plain(*text, *label, "test")
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
