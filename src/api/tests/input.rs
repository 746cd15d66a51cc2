//! Bad input: every shape and limit refused with the one error shape,
//! naming the field or the limit, and nothing stored.
use axum::body::Body;
use axum::http::{header, Method};
use serde_json::json;

use super::*;

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

/// The limits as the process tests configured them: items, characters,
/// body bytes and tokens (`--overlength reject`), each refused naming the
/// field or the limit.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_limit_and_shape_is_refused_naming_the_problem() {
    let config = ApiConfig {
        max_items: 8,
        max_text_chars: 20_000,
        max_body_bytes: 1_000_000,
        overlength: crate::api::Overlength::Reject,
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
