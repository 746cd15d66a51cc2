//! The GPU trainer's round trip, run on the CPU: pack a payload, train a few
//! steps with `scripts/gpu/train.py`, reassemble the split weights with
//! `scripts/gpu_unpack.py`, load them in Rust, and compare with the
//! trainer's own embeddings. Needs the set-up's Python packages
//! (`DETECTIVE_SETUP_TRAINER=1 scripts/setup`, which `scripts/test` runs).
use std::path::Path;
use std::process::{Command, Output};

use detective::encoder::Embed;
use serde_json::Value;

use crate::common::{bin, cosine, load_encoder, root, shared_dir, venv_python};

const PAYLOAD_LIMIT: u64 = 64 << 20;
const PART_LIMIT: u64 = 16 << 20;

#[track_caller]
fn python(args: &[&str]) -> Output {
    let out = venv_python()
        .args(args)
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
    crate::common::script(name).display().to_string()
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
        "--matched-humans",
        "0.5",
        "--val-every",
        "2",
        "--val-queries",
        "40",
        "--val-refs",
        "100",
        "--holdout-refs",
        "4",
        "--holdout-domain",
        "yelp,xsum",
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
    let validations = report["validations"].as_array().unwrap();
    assert!(validations.len() >= 2);
    // Each held-out domain is a validation of its own.
    for domain in ["yelp", "xsum"] {
        let key = format!("unseen_domain_tfia:{domain}");
        assert!(validations.iter().all(|v| v[&key].is_number()), "{key}");
    }

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

#[track_caller]
fn git(dir: &Path, args: &[&str]) -> String {
    let out = Command::new("git")
        .arg("-C")
        .arg(dir)
        .args(args)
        .output()
        .expect("run git");
    assert!(out.status.success(), "git {args:?}: {out:?}");
    String::from_utf8(out.stdout).unwrap()
}

fn travel(dir: &Path, args: &[&str]) -> Output {
    venv_python()
        .arg(script("gpu_travel.py"))
        .args(args)
        .arg("--root")
        .arg(dir)
        .output()
        .expect("run scripts/gpu_travel.py")
}

#[test]
fn large_tracked_files_stay_behind_for_the_run_and_come_back_unchanged() {
    let dir = tempfile::tempdir().unwrap();
    let repo = dir.path();
    git(repo, &["init", "-q"]);
    git(repo, &["config", "user.email", "ci@detective.invalid"]);
    git(repo, &["config", "user.name", "ci"]);
    let weights: Vec<u8> = (0..3u32 << 20).map(|i| (i * 7 % 251) as u8).collect();
    std::fs::create_dir_all(repo.join("models/m")).unwrap();
    std::fs::write(repo.join("models/m/weights.bin"), &weights).unwrap();
    std::fs::write(repo.join("README.md"), "small\n").unwrap();
    std::fs::write(repo.join(".gitignore"), "/payload/\n").unwrap();
    git(repo, &["add", "-A"]);
    git(repo, &["commit", "-q", "-m", "tree"]);
    std::fs::create_dir_all(repo.join("payload")).unwrap();
    std::fs::write(repo.join("payload/data.bin"), vec![1u8; 2 << 20]).unwrap();

    // With the weights the tree is over a 4 MiB limit; set aside, it fits.
    let size = travel(repo, &["size", "--carry", "payload", "--limit-mib", "4"]);
    assert!(!size.status.success(), "{size:?}");
    let light = travel(repo, &["light", "--carry", "payload", "--limit-mib", "4"]);
    assert!(light.status.success(), "{light:?}");
    let printed = String::from_utf8_lossy(&light.stdout);
    assert!(printed.contains("models/m/weights.bin"), "{printed}");
    assert!(printed.contains("2.0 MiB travel"), "{printed}");
    assert!(!repo.join("models/m/weights.bin").exists());
    assert!(!git(repo, &["ls-files"]).contains("weights.bin"));

    let back = travel(repo, &["restore"]);
    assert!(back.status.success(), "{back:?}");
    assert_eq!(
        std::fs::read(repo.join("models/m/weights.bin")).unwrap(),
        weights
    );
    assert_eq!(
        git(repo, &["status", "--porcelain", "--untracked-files=no"]),
        ""
    );
    // A second restore has nothing to do and changes nothing.
    assert!(travel(repo, &["restore"]).status.success());

    // Changes not committed are never set aside: HEAD could not bring them back.
    let mut edited = weights.clone();
    edited[0] ^= 0xff;
    std::fs::write(repo.join("models/m/weights.bin"), &edited).unwrap();
    let refused = travel(repo, &["light"]);
    assert!(!refused.status.success(), "{refused:?}");
    assert!(String::from_utf8_lossy(&refused.stderr).contains("changed since HEAD"));
    assert_eq!(
        std::fs::read(repo.join("models/m/weights.bin")).unwrap(),
        edited
    );
    assert!(git(repo, &["ls-files"]).contains("weights.bin"));
}

/// The run on a GPU box carries the 512-token payload (49.8 MiB) beside
/// what stays of the tree once the large files are set aside; together
/// they must fit the 64 MiB the device machine accepts.
#[test]
fn the_light_tree_leaves_room_for_the_payload() {
    let listed = git(&root(), &["ls-files", "-z"]);
    let small: u64 = listed
        .split('\0')
        .filter(|rel| !rel.is_empty())
        .filter_map(|rel| std::fs::metadata(root().join(rel)).ok())
        .map(|m| m.len())
        .filter(|&len| len < 1 << 20)
        .sum();
    let payload = 50 << 20;
    assert!(
        small + payload <= PAYLOAD_LIMIT,
        "tracked files under 1 MiB: {:.1} MiB; with a 50 MiB payload the run is over 64 MiB",
        small as f64 / f64::from(1 << 20)
    );
}
