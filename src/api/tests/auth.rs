//! Keys: missing, unknown, lacking a scope; the scheme in any case.
use axum::body::Body;
use axum::http::{header, Method, Request};
use serde_json::json;
use tower::ServiceExt;

use super::*;
use crate::detect::keys::{create_key, Scope};

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
