//! `detective import` and `detective detect` as a user runs them.
use std::collections::HashSet;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use detective::store::{self, text_sha256};

use crate::common::{bin, models_dir, shared_dir};

fn cmd(args: &[&str]) -> Command {
    let mut c = Command::new(bin());
    c.args(args)
        .env("DETECTIVE_MODELS", models_dir())
        .env_remove("DATABASE_URL")
        .stdin(Stdio::null());
    c
}

fn count(db: &str) -> i64 {
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async { store::open(db).await.unwrap().counts().await.unwrap().total })
}

/// An import killed with SIGKILL mid-way and rerun ends with exactly the
/// records of the file, once each.
#[test]
fn killed_import_resumes_without_duplicates_or_loss() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("refs.db");
    let db = db.to_str().unwrap();
    let file = shared_dir().join("corpus/tiny.jsonl");
    let file = file.to_str().unwrap();
    // Short texts first would make batches fast; the file order is kept.
    let args = [
        "import",
        "--db",
        db,
        "--batch",
        "8",
        "--max-length",
        "128",
        "--no-calibrate",
        file,
    ];
    count(db); // create the schema so the poller can read it
               // The import holds after each committed batch while the hold file
               // exists, so the kill lands mid-way however fast the machine is.
    let hold = dir.path().join("import.hold");
    std::fs::write(&hold, b"").unwrap();
    let mut child = cmd(&args)
        .env("DETECTIVE_HOLD_FILE", &hold)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let started = Instant::now();
    let mut at_kill = 0;
    while at_kill == 0 {
        assert!(
            started.elapsed() < Duration::from_secs(300),
            "nothing imported"
        );
        std::thread::sleep(Duration::from_millis(20));
        at_kill = count(db);
    }
    child.kill().unwrap();
    child.wait().unwrap();
    let at_kill = at_kill.max(count(db));
    assert!(
        (1..=8).contains(&at_kill),
        "killed after its first batch of 8, with {at_kill} stored"
    );
    let out = cmd(&args).output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let rt = tokio::runtime::Runtime::new().unwrap();
    let rows = rt.block_on(async {
        let s = store::open(db).await.unwrap();
        let mut texts = Vec::new();
        let mut after = 0;
        loop {
            let page = s.texts(after, 1000).await.unwrap();
            let Some(last) = page.last() else { break };
            after = last.0;
            texts.extend(page.into_iter().map(|(_, t)| t));
        }
        texts
    });
    let expected: HashSet<String> = std::fs::read_to_string(file)
        .unwrap()
        .lines()
        .map(|l| {
            serde_json::from_str::<serde_json::Value>(l).unwrap()["text"]
                .as_str()
                .unwrap()
                .to_owned()
        })
        .map(|t| text_sha256(&t))
        .collect();
    let stored: Vec<String> = rows.iter().map(|t| text_sha256(t)).collect();
    let unique: HashSet<String> = stored.iter().cloned().collect();
    assert_eq!(stored.len(), unique.len(), "duplicates after resume");
    assert_eq!(unique, expected, "stored texts differ from the file");
    let summary = String::from_utf8_lossy(&out.stderr);
    assert!(
        summary.contains(&format!("{at_kill} already stored")),
        "{summary}"
    );
}

#[test]
fn malformed_line_stops_before_its_batch_or_is_skipped() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("refs.db");
    let db = db.to_str().unwrap();
    let input = dir.path().join("in.jsonl");
    std::fs::write(
        &input,
        "{\"text\":\"A first human text.\",\"label\":\"human\"}\n\
         {\"text\":\"A machine text.\",\"label\":\"machine\",\"model\":\"gpt-4\",\"family\":\"openai\"}\n\
         {\"text\":\"Bad label.\",\"label\":\"robot\"}\n",
    )
    .unwrap();
    let input = input.to_str().unwrap();
    let out = cmd(&["import", "--db", db, "--no-calibrate", input])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("line 3") && err.contains("unknown label"),
        "{err}"
    );
    assert_eq!(count(db), 0, "nothing of the bad batch is written");
    let out = cmd(&[
        "import",
        "--db",
        db,
        "--no-calibrate",
        "--skip-invalid",
        input,
    ])
    .output()
    .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stderr).contains("1 invalid skipped"));
    assert_eq!(count(db), 2);
}

#[test]
fn detect_votes_with_imported_references() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("refs.db");
    let db = db.to_str().unwrap();
    let file = shared_dir().join("corpus/tiny.jsonl");
    let out = cmd(&[
        "import",
        "--db",
        db,
        "--max-length",
        "128",
        file.to_str().unwrap(),
    ])
    .output()
    .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // A stored text finds itself as nearest neighbour and takes its label.
    let first: serde_json::Value = serde_json::from_str(
        std::fs::read_to_string(&file)
            .unwrap()
            .lines()
            .nth(3)
            .unwrap(),
    )
    .unwrap();
    let text = first["text"].as_str().unwrap();
    let out = cmd(&[
        "detect",
        "--db",
        db,
        "--max-length",
        "128",
        "--format",
        "json",
        "--explain",
        text,
    ])
    .output()
    .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(v["neighbours"][0]["similarity"].as_f64().unwrap() > 0.999);
    assert_eq!(v["neighbours"][0]["label"], first["label"]);
    let score = v["score"].as_f64().unwrap();
    assert!((0.0..=1.0).contains(&score));
    assert!(v["encoder"]
        .as_str()
        .unwrap()
        .starts_with(&format!("{}+char2-4x", detective::config::DEFAULT_MODEL)));
    assert!(
        v["operating_point"]["threshold"].is_number(),
        "calibrated at import: {v}"
    );
    // Segments, as the HTTP API gives them: in order, on the text's
    // sentences, covering all of it (code-point offsets).
    let two = format!("{text}\n\nÜnïcödé sentence here. Another one follows!");
    let out = cmd(&[
        "detect",
        "--db",
        db,
        "--max-length",
        "128",
        "--format",
        "json",
        "--segments",
        &two,
    ])
    .output()
    .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(v["mixed"].is_boolean(), "{v}");
    let segs = v["segments"].as_array().expect("segments");
    let chars: Vec<char> = two.chars().collect();
    let mut at = 0;
    for s in segs {
        let (a, b) = (
            s["start"].as_u64().unwrap() as usize,
            s["end"].as_u64().unwrap() as usize,
        );
        assert!(at <= a && a < b && b <= chars.len(), "{v}");
        assert!(chars[at..a].iter().all(|c| c.is_whitespace()), "{v}");
        at = b;
    }
    assert_eq!(at, chars.len(), "to the end: {v}");
    // Another encoder identity (max_length, or another style view) is
    // refused with the fix named.
    for other in [
        &["--max-length", "256"][..],
        &["--max-length", "128", "--lexical-dim", "0"],
        &["--max-length", "128", "--alpha", "0.5"],
    ] {
        let mut args = vec!["detect", "--db", db];
        args.extend_from_slice(other);
        args.push("hello");
        let out = cmd(&args).output().unwrap();
        assert!(!out.status.success(), "{other:?} accepted");
        assert!(
            String::from_utf8_lossy(&out.stderr).contains("detective reindex"),
            "{other:?}"
        );
    }
    // reindex fixes it.
    let out = cmd(&["reindex", "--db", db, "--max-length", "256"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = cmd(&[
        "detect",
        "--db",
        db,
        "--max-length",
        "256",
        "--format",
        "json",
        text,
    ])
    .output()
    .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // The table: a header, then one row per text with both labels.
    let out = cmd(&[
        "detect",
        "--db",
        db,
        "--max-length",
        "256",
        "--format",
        "table",
        text,
    ])
    .output()
    .unwrap();
    let table = String::from_utf8_lossy(&out.stdout);
    let lines: Vec<&str> = table.lines().collect();
    assert_eq!(lines.len(), 2, "{table}");
    assert!(
        lines[0].starts_with("label    majority op.point  score"),
        "{table}"
    );
    let cols: Vec<&str> = lines[1].split_whitespace().collect();
    for label in &cols[..2] {
        assert!(["human", "machine"].contains(label), "{table}");
    }
    // The default decision, as in `serve`: the label is the majority.
    assert_eq!(cols[0], cols[1], "{table}");
    assert!(["human", "machine", "-"].contains(&cols[2]), "{table}");
    let score: f64 = cols[3].parse().unwrap();
    assert!((0.0..=1.0).contains(&score), "{table}");
}

/// On an empty store, `detect` loads the shipped default references with
/// their shipped embeddings (no re-embedding) and answers.
#[test]
fn empty_store_is_seeded_with_default_references() {
    let defaults = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("references/default");
    let manifest: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(defaults.join("manifest.json")).unwrap())
            .unwrap();
    let records = manifest["records"].as_i64().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("refs.db");
    let db = db.to_str().unwrap();
    let out = cmd(&[
        "detect",
        "--db",
        db,
        "--format",
        "json",
        "The committee reviewed the proposal in detail.",
    ])
    .output()
    .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{err}");
    assert!(
        err.contains(&format!("seeded with {records} default references")),
        "{err}"
    );
    assert!(
        !err.contains("embedding"),
        "shipped embeddings must be used: {err}"
    );
    assert_eq!(count(db), records);
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(v["label"] == "human" || v["label"] == "machine");
    assert!(v["operating_point"]["threshold"].is_number());
}
