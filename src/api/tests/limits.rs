//! The global limits: concurrency and request timeout, held deterministically
//! by the gated stand-in model.
use axum::body::Body;
use axum::http::{header, Method};
use serde_json::json;

use super::*;

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
