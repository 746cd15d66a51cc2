//! Segments on the wire: offsets on sentence boundaries (in code points),
//! every sentence covered in order, sensible answers for one sentence, no
//! punctuation and mixed scripts, and the limit on windows.
use axum::http::Method;
use serde_json::{json, Value};

use super::*;

async fn segments_of(h: &Harness, text: &str) -> (Value, Vec<Value>) {
    let body = json!({"text": text, "segments": true}).to_string();
    let (st, _, v) = send(&h.app, Method::POST, "/detect", Some(ADMIN), body).await;
    assert_eq!(st, 200, "{v}");
    let segs = v["segments"].as_array().expect("segments").clone();
    (v, segs)
}

/// Offsets are code-point offsets on sentence boundaries, in order, and
/// the segments together hold every visible character.
fn check_cover(text: &str, segs: &[Value]) {
    let chars: Vec<char> = text.chars().collect();
    let mut at = 0;
    for s in segs {
        let (start, end) = (
            s["start"].as_u64().unwrap() as usize,
            s["end"].as_u64().unwrap() as usize,
        );
        assert!(at <= start && start < end && end <= chars.len(), "{segs:?}");
        assert!(
            chars[at..start].iter().all(|c| c.is_whitespace()),
            "gap at {at}..{start}"
        );
        assert!(!chars[start].is_whitespace() && !chars[end - 1].is_whitespace());
        assert!(["human", "machine"].contains(&s["label"].as_str().unwrap()));
        let score = s["score"].as_f64().unwrap();
        assert!((0.0..=1.0).contains(&score));
        at = end;
    }
    assert!(chars[at..].iter().all(|c| c.is_whitespace()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn segments_cover_the_text_on_sentence_boundaries() {
    let h = harness(ApiConfig::default(), false).await;
    let long: String = REFERENCES
        .iter()
        .cycle()
        .take(12)
        .map(|r| r.0)
        .collect::<Vec<_>>()
        .join(". ");
    for text in [
        long.as_str(),
        "One sentence only.",
        "no punctuation at all just words running on and on without any end in sight",
        "Ünïcödé first. Второе предложение! 第三句。 And English again.",
    ] {
        let (v, segs) = segments_of(&h, text).await;
        assert!(!segs.is_empty(), "{v}");
        check_cover(text, &segs);
        assert!(v["mixed"].is_boolean());
    }
    let (_, segs) = segments_of(&h, "One sentence only.").await;
    assert_eq!(segs.len(), 1);
    assert_eq!(
        (segs[0]["start"].as_u64(), segs[0]["end"].as_u64()),
        (Some(0), Some(18))
    );
    // Without the flag, no segments.
    let body = json!({"text": long}).to_string();
    let (_, _, v) = send(&h.app, Method::POST, "/detect", Some(ADMIN), body).await;
    assert!(
        v.get("segments").is_none() && v.get("mixed").is_none(),
        "{v}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn segments_are_limited_by_windows() {
    let config = ApiConfig {
        max_segment_windows: 3,
        ..ApiConfig::default()
    };
    let h = harness(config, false).await;
    let text = (0..40)
        .map(|i| format!("Sentence number {i} says something rather ordinary."))
        .collect::<Vec<_>>()
        .join(" ");
    let body = json!({"text": text, "segments": true}).to_string();
    let (st, _, v) = send(&h.app, Method::POST, "/detect", Some(ADMIN), body).await;
    assert_eq!((st.as_u16(), code(&v)), (422, "invalid_request"), "{v}");
    assert!(v["error"]["message"]
        .as_str()
        .unwrap()
        .contains("--max-segment-windows"));
}
