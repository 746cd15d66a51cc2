//! A reference's round trip: added, found again whatever its spacing, voting
//! at once, deleted.
use axum::body::Body;
use axum::http::Method;
use serde_json::json;

use super::*;

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
