//! The GPU trainer's round trip, run on the CPU: pack a payload, train a few
//! steps with `scripts/gpu/train.py`, reassemble the split weights with
//! `scripts/gpu_unpack.py`, load them in Rust, and compare with the
//! trainer's own embeddings. Needs the set-up's Python packages
//! (`DETECTIVE_SETUP_TRAINER=1 scripts/setup`, which `scripts/test` runs).
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use detective::encoder::Embed;
use serde_json::Value;

use crate::common::{bin, cosine, load_encoder, shared_dir};

const PAYLOAD_LIMIT: u64 = 64 << 20;
const PART_LIMIT: u64 = 16 << 20;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

#[track_caller]
fn python(args: &[&str]) -> Output {
    let out = Command::new(root().join(".venv/bin/python"))
        .args(args)
        .env("PYTHONUNBUFFERED", "1")
        .output()
        .expect("run .venv/bin/python (scripts/setup)");
    assert!(
        out.status.success(),
        "python {args:?} failed:\n{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

fn script(name: &str) -> String {
    root().join("scripts").join(name).display().to_string()
}

fn folder_bytes(dir: &Path) -> u64 {
    std::fs::read_dir(dir)
        .unwrap()
        .flatten()
        .map(|e| {
            let m = e.metadata().unwrap();
            if m.is_dir() {
                folder_bytes(&e.path())
            } else {
                m.len()
            }
        })
        .sum()
}

#[test]
fn trainer_loss_matches_the_reference_values() {
    let fixture = shared_dir().join("fixtures/contrastive-loss.json");
    let out = python(&[
        &script("gpu/train.py"),
        "loss-parity",
        fixture.to_str().unwrap(),
    ]);
    let report: Value = serde_json::from_slice(&out.stdout).expect("one JSON line");
    assert_eq!(report["cases"], 5);
    assert!(report["max_rel_error"].as_f64().unwrap() < 1e-4, "{report}");
}

#[test]
fn pack_train_split_unpack_and_load_in_rust() {
    let dir = tempfile::tempdir().unwrap();
    let payload = dir.path().join("payload");
    let out = dir.path().join("out");
    let model = dir.path().join("model");
    let data = shared_dir().join("corpus/tiny.jsonl");
    let packed = python(&[
        &script("gpu_pack.py"),
        "--out",
        payload.to_str().unwrap(),
        "--data",
        data.to_str().unwrap(),
        "--max-length",
        "64",
    ]);
    let said = String::from_utf8_lossy(&packed.stdout);
    assert!(said.contains("MiB (240 texts"), "{said}");
    let size = folder_bytes(&payload);
    assert!(size < PAYLOAD_LIMIT, "payload is {size} bytes");

    // The trainer runs from the payload alone.
    python(&[
        payload.join("train.py").to_str().unwrap(),
        "--payload",
        payload.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
        "--cpu",
        "--steps",
        "3",
        "--batch-size",
        "16",
        "--per-model",
        "2",
        "--val-every",
        "2",
        "--val-queries",
        "40",
        "--val-refs",
        "100",
        "--holdout-refs",
        "4",
    ]);
    let parts: Vec<u64> = std::fs::read_dir(&out)
        .unwrap()
        .flatten()
        .filter(|e| {
            e.file_name()
                .to_string_lossy()
                .starts_with("model.safetensors.part-")
        })
        .map(|e| e.metadata().unwrap().len())
        .collect();
    assert!(parts.len() > 1, "45 MB of f16 weights come back in pieces");
    assert!(parts.iter().all(|&p| p <= PART_LIMIT), "{parts:?}");
    let report: Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("training.json")).unwrap()).unwrap();
    assert_eq!(report["steps"], 3);
    assert!(report["validations"].as_array().unwrap().len() >= 2);

    python(&[
        &script("gpu_unpack.py"),
        "--from",
        out.to_str().unwrap(),
        "--name",
        "round-trip",
        "--out",
        model.to_str().unwrap(),
        "--detective",
        bin(),
    ]);
    let manifest: Value =
        serde_json::from_str(&std::fs::read_to_string(model.join("manifest.json")).unwrap())
            .unwrap();
    assert_eq!(manifest["max_length"], 64);
    assert_eq!(manifest["base_model"], "minilm");

    let probe: Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("probe.json")).unwrap()).unwrap();
    let texts: Vec<&str> = probe["texts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t.as_str().unwrap())
        .collect();
    let want: Vec<Vec<f32>> = serde_json::from_value(probe["embeddings"].clone()).unwrap();
    assert_eq!(texts.len(), 8);
    let encoder = load_encoder(model.to_str().unwrap(), 64);
    let got = encoder.embed(&texts).unwrap();
    for (i, (g, w)) in got.iter().zip(&want).enumerate() {
        let c = cosine(g, w);
        assert!(c > 0.999, "probe text {i}: cosine {c}");
    }
}
