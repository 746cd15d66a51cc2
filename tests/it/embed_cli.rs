use std::io::Write;
use std::process::{Command, Output, Stdio};

use serde_json::Value;

use crate::common::{bin, cosine, golden, models_dir};

fn embed(args: &[&str], stdin: &str) -> Output {
    let mut child = Command::new(bin())
        .arg("embed")
        .args(args)
        .env("DETECTIVE_MODELS", models_dir())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn detective");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(stdin.as_bytes())
        .unwrap();
    child.wait_with_output().unwrap()
}

fn lines(out: &Output) -> Vec<Value> {
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).expect("each output line is JSON"))
        .collect()
}

#[track_caller]
fn assert_one_line_error(out: &Output, needle: &str) {
    assert!(!out.status.success(), "expected failure");
    let err = String::from_utf8_lossy(&out.stderr);
    let err_lines: Vec<&str> = err.lines().filter(|l| !l.trim().is_empty()).collect();
    assert_eq!(err_lines.len(), 1, "one-line error expected, got: {err}");
    assert!(err_lines[0].starts_with("error: "), "{err}");
    assert!(err.contains(needle), "{needle:?} not in {err:?}");
    assert!(!err.contains("panicked"), "{err}");
}

#[test]
fn plain_lines_in_input_order_with_reference_vectors() {
    let g = golden("golden-minilm.json");
    let cases: Vec<_> = g
        .cases
        .iter()
        .filter(|c| c.max_length == 128 && !c.text.contains('\n'))
        .collect();
    let input: String = cases.iter().map(|c| format!("{}\n", c.text)).collect();
    let out = embed(&["--model", "minilm", "--max-length", "128"], &input);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let rows = lines(&out);
    assert_eq!(rows.len(), cases.len());
    for (row, case) in rows.iter().zip(&cases) {
        assert_eq!(row["text"], case.text.as_str());
        let v: Vec<f32> = serde_json::from_value(row["embedding"].clone()).unwrap();
        assert!(cosine(&v, &case.embedding) >= 0.99999, "{}", case.case);
    }
}

#[test]
fn jsonl_fields_pass_through() {
    let input = "{\"id\":\"a\",\"text\":\"first text\",\"label\":\"human\"}\n\n{\"id\":\"b\",\"text\":\"second\"}\n";
    let out = embed(&["--lexical-dim", "0"], input);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let rows = lines(&out);
    assert_eq!(rows.len(), 2);
    assert_eq!(rows[0]["id"], "a");
    assert_eq!(rows[0]["label"], "human");
    assert_eq!(rows[0]["text"], "first text");
    assert_eq!(rows[1]["id"], "b");
    assert_eq!(rows[0]["embedding"].as_array().unwrap().len(), 384);
    // With the lexical view fused in, vectors grow by its dimensions and
    // stay unit length.
    let out = embed(&["--lexical-dim", "512", "--alpha", "0.5"], input);
    let rows = lines(&out);
    let v: Vec<f32> = serde_json::from_value(rows[0]["embedding"].clone()).unwrap();
    assert_eq!(v.len(), 384 + 512);
    let norm = v.iter().map(|x| x * x).sum::<f32>().sqrt();
    assert!((norm - 1.0).abs() < 1e-4, "norm {norm}");
}

#[test]
fn reads_a_file_argument() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("in.txt");
    std::fs::write(&path, "one\ntwo\nthree\n").unwrap();
    let out = embed(&[path.to_str().unwrap()], "");
    assert!(out.status.success());
    let texts: Vec<_> = lines(&out)
        .iter()
        .map(|r| r["text"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(texts, ["one", "two", "three"]);
}

#[test]
fn unknown_model_is_a_one_line_error() {
    let out = embed(&["--model", "no-such-model"], "hi\n");
    assert_one_line_error(&out, "unknown model \"no-such-model\"");
}

#[test]
fn unreadable_input_is_a_one_line_error() {
    let out = embed(&["/no/such/file.jsonl"], "");
    assert_one_line_error(&out, "cannot read /no/such/file.jsonl");
}

#[test]
fn malformed_jsonl_names_the_line() {
    let out = embed(&[], "{\"text\":\"ok\"}\n{\"text\": 5}\n");
    assert_one_line_error(&out, "line 2: field \"text\" must be a string");
    let out = embed(&[], "{\"text\":\"ok\"}\n{\"text\": \"x\"\n");
    assert_one_line_error(&out, "line 2: invalid JSON");
    let out = embed(&[], "{\"id\":1}\n");
    assert_one_line_error(&out, "line 1: missing field \"text\"");
}

/// A model directory whose weights do not match its manifest is refused.
#[test]
fn wrong_checksum_and_missing_files_are_one_line_errors() {
    let dir = tempfile::tempdir().unwrap();
    let model = dir.path().join("broken");
    let weights = model.join("weights");
    std::fs::create_dir_all(&weights).unwrap();
    let src = models_dir().join("minilm");
    std::fs::copy(src.join("manifest.json"), model.join("manifest.json")).unwrap();
    for f in ["config.json", "tokenizer.json"] {
        std::fs::copy(src.join("weights").join(f), weights.join(f)).unwrap();
    }
    let out = embed(&["--model", model.to_str().unwrap()], "hi\n");
    assert_one_line_error(&out, "missing");
    std::fs::write(weights.join("model.safetensors"), b"not weights").unwrap();
    let out = embed(&["--model", model.to_str().unwrap()], "hi\n");
    assert_one_line_error(&out, "checksum mismatch");
}

/// A centred lexical view changes the lexical half of the vector only,
/// keeps it unit length, and is refused for a shape without a shipped mean.
#[test]
fn centred_lexical_view_from_the_command_line() {
    let input = "It is important to note that the results are preliminary.\n";
    let vector = |args: &[&str]| -> Vec<f32> {
        let out = embed(args, input);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        serde_json::from_value(lines(&out)[0]["embedding"].clone()).unwrap()
    };
    let plain = vector(&["--lexical-dim", "1024", "--alpha", "0.5"]);
    let centred = vector(&[
        "--lexical-dim",
        "1024",
        "--alpha",
        "0.5",
        "--lexical-centre",
        "0.5",
    ]);
    assert_eq!(centred.len(), 384 + 1024);
    assert_eq!(plain[..384], centred[..384], "the neural half is untouched");
    assert_ne!(plain[384..], centred[384..]);
    let norm = centred.iter().map(|x| x * x).sum::<f32>().sqrt();
    assert!((norm - 1.0).abs() < 1e-4, "norm {norm}");
    let out = embed(&["--lexical-dim", "512", "--lexical-centre", "0.5"], input);
    assert_one_line_error(
        &out,
        "no reference mean ships for the lexical view char2-4x512",
    );
}
