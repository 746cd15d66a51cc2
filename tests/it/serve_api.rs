//! `detective serve` over real HTTP on loopback with the real encoder and
//! SQLite: the API contract, auth with keys made by the CLI, and the
//! OpenAPI document, all on one server. Bad input is tested in process
//! (`src/api/tests.rs`), and fuzzed against a real server in `serve_fuzz`.
use std::collections::BTreeSet;
use std::process::Command;

use serde_json::{json, Value};

use super::server::{code, message, Server, ADMIN, HUMANISH};

#[test]
fn api_contract_on_one_server() {
    let s = Server::start(&[
        "--max-items",
        "8",
        "--max-text-chars",
        "20000",
        "--max-body-bytes",
        "1000000",
        "--overlength",
        "reject",
    ]);
    detect_single_batch_and_explain(&s);
    references_lifecycle_and_idempotency(&s);
    auth_missing_wrong_and_underscoped_keys(&s);
    openapi_matches_routes_and_wire_types(&s);
    info_and_metrics(&s);
}

fn detect_single_batch_and_explain(s: &Server) {
    let a = "The mitochondria is the powerhouse of the cell, converting nutrients into energy.";
    let (st, one) = s.post("/detect", Some(ADMIN), &json!({ "text": a }));
    assert_eq!(st, 200, "{one}");
    assert!(["human", "machine"].contains(&one["label"].as_str().unwrap()));
    let score = one["score"].as_f64().unwrap();
    assert!((0.0..=1.0).contains(&score), "{score}");
    // The default model, with its view in the identity.
    assert!(one["encoder"]
        .as_str()
        .unwrap()
        .starts_with(&format!("{}+char2-4x", detective::config::DEFAULT_MODEL)));
    assert!(one["novel"].is_boolean() && one["attribution"]["families"].is_array());
    assert!(
        one.get("neighbours").is_none(),
        "neighbours only with explain"
    );
    assert_eq!(one["truncated"], false);

    // A batch answers in input order with the same verdicts as single calls.
    let (st, single_b) = s.post("/detect", Some(ADMIN), &json!({ "text": HUMANISH }));
    assert_eq!(st, 200);
    let (st, batch) = s.post(
        "/detect",
        Some(ADMIN),
        &json!({ "texts": [a, HUMANISH, a] }),
    );
    assert_eq!(st, 200, "{batch}");
    let r = batch["results"].as_array().unwrap();
    assert_eq!(r.len(), 3);
    for (got, want) in [(&r[0], &one), (&r[1], &single_b), (&r[2], &one)] {
        let (g, w) = (
            got["score"].as_f64().unwrap(),
            want["score"].as_f64().unwrap(),
        );
        assert!((g - w).abs() < 1e-6, "batch {g} vs single {w}");
        assert_eq!(got["label"], want["label"]);
    }

    let (st, ex) = s.post(
        "/detect",
        Some(ADMIN),
        &json!({ "text": a, "k": 3, "explain": true }),
    );
    assert_eq!(st, 200, "{ex}");
    assert_eq!(ex["k"], 3);
    let n = ex["neighbours"].as_array().unwrap();
    assert_eq!(n.len(), 3);
    let sims: Vec<f64> = n
        .iter()
        .map(|x| x["similarity"].as_f64().unwrap())
        .collect();
    assert!(
        sims.windows(2).all(|w| w[0] >= w[1]),
        "most similar first: {sims:?}"
    );
}

fn neighbour_ids(s: &Server, text: &str) -> Vec<i64> {
    let (st, ex) = s.post(
        "/detect",
        Some(ADMIN),
        &json!({ "text": text, "k": 5, "explain": true }),
    );
    assert_eq!(st, 200, "{ex}");
    ex["neighbours"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n["id"].as_i64().unwrap())
        .collect()
}

fn references_lifecycle_and_idempotency(s: &Server) {
    let text = "Certainly! Here is a concise overview of the topic, structured for clarity \
                and written in a neutral, informative tone.";
    let item = json!({"text": text, "label": "machine", "model": "novel-lm-2", "family": "novel"});
    let (st, made) = s.post("/reference", Some(ADMIN), &item);
    assert_eq!(st, 201, "{made}");
    assert_eq!(made["created"], true);
    let id = made["id"].as_i64().unwrap();

    // The same text (whitespace aside) is the same reference.
    let spaced = json!({"text": format!("  {}  ", text.replace(' ', "  ")), "label": "machine"});
    let (st, again) = s.post("/reference", Some(ADMIN), &spaced);
    assert_eq!(
        (st, again["id"].as_i64(), &again["created"]),
        (200, Some(id), &json!(false))
    );

    let (st, got) = s.get(&format!("/reference/{id}"), Some(ADMIN));
    assert_eq!(st, 200, "{got}");
    assert_eq!(got["text"], text);
    assert_eq!(got["model"], "novel-lm-2");
    assert_eq!(got["deleted_at"], Value::Null);

    // The very next detection sees it, with its attribution.
    let (st, v) = s.post("/detect", Some(ADMIN), &json!({ "text": text, "k": 1 }));
    assert_eq!(st, 200);
    assert_eq!(v["attribution"]["family"], "novel", "{v}");
    assert_eq!(neighbour_ids(s, text)[0], id);

    // Batch add.
    let batch = json!({"items": [
        {"text": "First batch reference, written by a person on a phone lol", "label": "human"},
        {"text": "Second batch reference: In conclusion, the aforementioned factors interplay.", "label": "machine", "family": "novel"}
    ]});
    let (st, b) = s.post("/reference", Some(ADMIN), &batch);
    assert_eq!(st, 201, "{b}");
    assert_eq!(b["ids"].as_array().unwrap().len(), 2);
    let (_, human) = s.get(&format!("/reference/{}", b["ids"][0]), Some(ADMIN));
    assert_eq!(human["family"], "human");

    // Delete: stops voting at once; a second delete is 404.
    let (st, d) = s.delete(&format!("/reference/{id}"), Some(ADMIN));
    assert_eq!((st, &d["deleted"]), (200, &json!(true)), "{d}");
    assert!(!neighbour_ids(s, text).contains(&id));
    let (st, d) = s.delete(&format!("/reference/{id}"), Some(ADMIN));
    assert_eq!((st, code(&d)), (404, "not_found"));
    let (_, got) = s.get(&format!("/reference/{id}"), Some(ADMIN));
    assert!(got["deleted_at"].is_string(), "{got}");

    // Adding it again restores the same id and it votes again.
    let (st, back) = s.post("/reference", Some(ADMIN), &item);
    assert!(st == 200 || st == 201, "{back}");
    assert_eq!(back["id"].as_i64(), Some(id));
    assert_eq!(neighbour_ids(s, text)[0], id);
}

fn auth_missing_wrong_and_underscoped_keys(s: &Server) {
    let body = json!({"text": HUMANISH});
    let reference = json!({"text": "auth test reference text", "label": "human"});
    for key in [
        None,
        Some("wrong"),
        Some("dtk_0123456789abcdef0123456789abcdef"),
    ] {
        let (st, b) = s.post("/detect", key, &body);
        assert_eq!((st, code(&b)), (401, "unauthorized"), "{key:?}");
        let (st, _) = s.post("/reference", key, &reference);
        assert_eq!(st, 401);
        let (st, _) = s.get("/reference/1", key);
        assert_eq!(st, 401);
        let (st, _) = s.delete("/reference/1", key);
        assert_eq!(st, 401);
    }
    let detect_only = s.create_key("detect");
    let (st, _) = s.post("/detect", Some(&detect_only), &body);
    assert_eq!(st, 200);
    let (st, b) = s.post("/reference", Some(&detect_only), &reference);
    assert_eq!((st, code(&b)), (403, "forbidden"));
    assert!(message(&b).contains("reference:write"), "{b}");

    let writer = s.create_key("reference:write");
    let (st, made) = s.post("/reference", Some(&writer), &reference);
    assert!(st == 201 || st == 200, "{made}");
    let id = made["id"].as_i64().unwrap();
    let (st, _) = s.get(&format!("/reference/{id}"), Some(&writer));
    assert_eq!(st, 200);
    let (st, b) = s.delete(&format!("/reference/{id}"), Some(&writer));
    assert_eq!((st, code(&b)), (403, "forbidden"), "deleting needs admin");

    // A revoked key stops working.
    let out = Command::new(super::common::bin())
        .args(["keys", "--db"])
        .arg(&s.db)
        .arg("list")
        .output()
        .unwrap();
    let listing = String::from_utf8_lossy(&out.stdout).to_string();
    let prefix = &detect_only[4..12];
    assert!(!listing.contains(&detect_only), "secrets are never listed");
    let id = listing
        .lines()
        .find(|l| l.contains(prefix))
        .and_then(|l| l.split_whitespace().next())
        .expect("key listed");
    let st = Command::new(super::common::bin())
        .args(["keys", "--db"])
        .arg(&s.db)
        .args(["revoke", id])
        .status()
        .unwrap();
    assert!(st.success());
    // Key lookups are cached for --key-cache-seconds (5): the revoked key
    // stops working once its cached answer expires.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    loop {
        let (st, _) = s.post("/detect", Some(&detect_only), &body);
        if st == 401 {
            break;
        }
        assert_eq!(st, 200);
        assert!(
            std::time::Instant::now() < deadline,
            "the revoked key still works"
        );
        std::thread::sleep(std::time::Duration::from_millis(250));
    }
}

fn openapi_matches_routes_and_wire_types(s: &Server) {
    let (st, doc) = s.get("/openapi.json", None);
    assert_eq!(st, 200);
    let mut documented = BTreeSet::new();
    for (path, item) in doc["paths"].as_object().unwrap() {
        for method in ["get", "post", "put", "delete", "patch"] {
            if item.get(method).is_some() {
                documented.insert((method.to_owned(), path.clone()));
            }
        }
    }
    let routes: BTreeSet<(String, String)> = detective::api::ROUTES
        .iter()
        .map(|(m, p)| ((*m).to_owned(), (*p).to_owned()))
        .collect();
    assert_eq!(documented, routes, "openapi.json paths vs api::ROUTES");
    // Every route exists on the live server.
    for (method, path) in &routes {
        let url = s.url(&path.replace("{id}", "1").replace("{file}", "app.js"));
        let req = match method.as_str() {
            "get" => s.client.get(url),
            "post" => s.client.post(url).body("{}"),
            "delete" => s.client.delete(url),
            other => panic!("{other}"),
        };
        let resp = req.bearer_auth(ADMIN).send().unwrap();
        let st = resp.status().as_u16();
        let text = resp.text().unwrap();
        assert!(
            st != 405 && !text.contains("no such route"),
            "{method} {path}: {st}"
        );
    }
    let schema = |name: &str| doc["components"]["schemas"][name].clone();
    let props = |name: &str| -> BTreeSet<String> {
        schema(name)["properties"]
            .as_object()
            .unwrap()
            .keys()
            .cloned()
            .collect()
    };
    // A request using every documented field is accepted...
    let (st, r) = s.post(
        "/detect",
        Some(ADMIN),
        &json!({"text": "All the documented fields. In two sentences.", "k": 2, "explain": true,
                "segments": true}),
    );
    assert_eq!(st, 200, "{r}");
    assert_eq!(
        props("DetectRequest"),
        ["text", "texts", "k", "explain", "segments"]
            .iter()
            .map(|s| s.to_string())
            .collect()
    );
    // ... and every response field is documented, every required one present.
    let check = |value: &Value, name: &str| {
        let keys: BTreeSet<String> = value.as_object().unwrap().keys().cloned().collect();
        let documented = props(name);
        let extra: Vec<_> = keys.difference(&documented).collect();
        assert!(extra.is_empty(), "{name}: undocumented {extra:?}");
        for req in schema(name)["required"].as_array().unwrap() {
            assert!(
                keys.contains(req.as_str().unwrap()),
                "{name}: missing {req}"
            );
        }
    };
    check(&r, "DetectResult");
    if let Some(a) = r.get("abstained") {
        check(a, "Abstention");
    }
    check(&r["attribution"], "Attribution");
    check(&r["neighbours"][0], "Neighbour");
    for segment in r["segments"].as_array().expect("segments") {
        check(segment, "Segment");
    }
    let item = json!({"text": "Every documented reference field.", "label": "machine",
        "model": "m", "family": "f", "source": "s", "domain": "d", "attack": "a", "lang": "en"});
    let item_keys: BTreeSet<String> = item.as_object().unwrap().keys().cloned().collect();
    assert_eq!(item_keys, props("ReferenceItem"));
    let (st, made) = s.post("/reference", Some(ADMIN), &item);
    assert_eq!(st, 201, "{made}");
    check(&made, "ReferenceCreated");
    let (_, got) = s.get(&format!("/reference/{}", made["id"]), Some(ADMIN));
    check(&got, "Reference");
    let (_, batch) = s.post("/reference", Some(ADMIN), &json!({"items": [item]}));
    check(&batch, "ReferenceBatchCreated");
    let (_, err) = s.post("/detect", Some(ADMIN), &json!({}));
    check(&err, "Error");
    let error_schema = schema("Error");
    let codes: Vec<&str> = error_schema["properties"]["error"]["properties"]["code"]["enum"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    assert!(codes.contains(&code(&err)));
}

fn info_and_metrics(s: &Server) {
    let (st, info) = s.get("/info", None);
    assert_eq!(st, 200);
    // The neural view's 384 dimensions, plus the lexical view's if fused.
    let lexical = info["encoder"]["view"]["lexical"]["dim"]
        .as_u64()
        .unwrap_or(0);
    assert_eq!(info["encoder"]["dimensions"], 384 + lexical);
    assert!(info["references"]["by_label"]["human"].as_i64().unwrap() > 1000);
    assert!(info["k"].as_u64().unwrap() >= 1);
    let text = s.metrics();
    for name in [
        "detective_http_requests_total{method=\"post\",route=\"/detect\",status=\"200\"}",
        "detective_stage_duration_seconds_bucket{stage=\"inference\"",
        "detective_verdicts_total",
        "detective_references_added_total",
        "detective_queue_depth",
    ] {
        assert!(text.contains(name), "/metrics lacks {name}");
    }
}

/// Input that is valid JSON but hostile to the store or the metrics gets a
/// clear 4xx in the one error shape, and nothing is stored.
#[test]
fn hostile_input_gets_a_clear_error() {
    let s = Server::start(&[]);
    let before = s.get("/info", Some(ADMIN)).1["references"]["total"].clone();
    for (path, body, field) in [
        ("/detect", json!({"text": "a\u{0}b"}), "text"),
        (
            "/reference",
            json!({"text": "nul in family", "label": "machine", "family": "x\u{0}"}),
            "family",
        ),
        (
            "/detect",
            json!({"text": "\u{200B}\u{200B} \u{2060}\u{FEFF}"}),
            "text",
        ),
    ] {
        let (st, b) = s.post(path, Some(ADMIN), &body);
        assert_eq!((st, code(&b)), (422, "invalid_request"), "{b}");
        assert!(message(&b).contains(field), "{b}");
    }
    assert_eq!(s.get("/info", Some(ADMIN)).1["references"]["total"], before);

    // The scheme is case-insensitive.
    let r = s
        .client
        .post(s.url("/detect"))
        .header("authorization", format!("bearer {ADMIN}"))
        .json(&json!({"text": HUMANISH}))
        .send()
        .unwrap();
    assert_eq!(r.status(), 200);

    // A path segment that is not UTF-8: the JSON error shape.
    let (st, b) = s.get("/reference/%FF", Some(ADMIN));
    assert_eq!((st, code(&b)), (422, "invalid_request"), "{b}");

    // Made-up methods do not become label values.
    for m in ["RANDOM123", "RANDOM456"] {
        let method = reqwest::Method::from_bytes(m.as_bytes()).unwrap();
        let r = s.client.request(method, s.url("/health")).send().unwrap();
        assert!(r.status().is_client_error());
    }
    let metrics = s.metrics();
    assert!(!metrics.to_lowercase().contains("random123"));
    assert!(metrics.contains("method=\"other\""));
}
