//! `scripts/keep_layers.py`: a model that reads only the first layers of
//! another. The Rust encoder's vectors of the new model match an
//! independent PyTorch computation (the GPU trainer's BERT, cut after the
//! same layer, on the source weights), its identity differs from the
//! source's, and its manifest carries the chosen view.
use std::path::PathBuf;
use std::process::Output;

use detective::encoder::Embed;
use serde_json::Value;

use crate::common::{cosine, load_encoder, models_dir, script, venv_python};

const TEXTS: [&str; 4] = [
    "The committee met on Tuesday and agreed to postpone the vote until spring.",
    "honestly this is the best pizza place in town, the crust is perfect!!",
    "In conclusion, renewable energy offers a sustainable path forward for future generations.",
    "Étude préliminaire : les résultats suggèrent une corrélation faible (r = 0,21).",
];

fn python(args: &[&str]) -> Output {
    venv_python()
        .args(args)
        .output()
        .expect("run .venv/bin/python (scripts/setup)")
}

/// Mean-pooled, unit-length states after `layers` layers of the model in
/// `weights`, from `scripts/gpu/train.py`'s BERT and the `tokenizers` package.
const REFERENCE: &str = r#"
import importlib.util, json, sys, torch
from tokenizers import Tokenizer
spec = importlib.util.spec_from_file_location("trainer", sys.argv[1])
trainer = importlib.util.module_from_spec(spec)
spec.loader.exec_module(trainer)
weights, layers, texts = sys.argv[2], int(sys.argv[3]), json.loads(sys.argv[4])
model = trainer.Bert(json.load(open(weights + "/config.json")))
model.load(trainer.read_safetensors(weights + "/model.safetensors"))
model.encoder["layer"] = model.encoder["layer"][:layers]
model.eval()
tok = Tokenizer.from_file(weights + "/tokenizer.json")
tok.enable_truncation(128)
out = []
with torch.inference_mode():
    for t in texts:
        enc = tok.encode(t)
        v = model(torch.tensor([enc.ids]), torch.tensor([enc.attention_mask]))[0]
        out.append((v / v.norm()).tolist())
print(json.dumps(out))
"#;

#[test]
fn a_model_of_the_first_layers_reads_like_the_source_cut_after_them() {
    let dir = tempfile::tempdir().unwrap();
    let model = dir.path().join("first4");
    let source = models_dir().join("detective-minilm");
    let keep_layers = script("keep_layers.py").display().to_string();
    let run = |layers: &str, out: &PathBuf| {
        python(&[
            &keep_layers,
            "--from",
            source.to_str().unwrap(),
            "--layers",
            layers,
            "--alpha",
            "0.8",
            "--name",
            "first4",
            "--out",
            out.to_str().unwrap(),
        ])
    };
    let refused = run("6", &dir.path().join("all"));
    assert!(!refused.status.success(), "keeping every layer is refused");
    assert!(
        String::from_utf8_lossy(&refused.stderr).contains("--layers must be within 1..5"),
        "{}",
        String::from_utf8_lossy(&refused.stderr)
    );
    let made = run("4", &model);
    assert!(
        made.status.success(),
        "{}",
        String::from_utf8_lossy(&made.stderr)
    );

    let manifest: Value =
        serde_json::from_str(&std::fs::read_to_string(model.join("manifest.json")).unwrap())
            .unwrap();
    assert_eq!(manifest["name"], "first4");
    assert_eq!(manifest["view"]["alpha"], 0.8);
    assert_eq!(manifest["layers_of"]["layers"], 4);
    // Two of six layers of 384 hidden units and 1,536 feed-forward units go.
    let per_layer = 4 * (384 * 384 + 384) + 2 * (384 * 1536) + 1536 + 384 + 2 * 2 * 384;
    assert_eq!(
        manifest["parameters"].as_u64().unwrap(),
        22_565_376 - 2 * per_layer as u64
    );

    let cut = load_encoder(model.to_str().unwrap(), 128);
    let full = load_encoder("detective-minilm", 128);
    assert_ne!(cut.id().checksum, full.id().checksum);
    let got = cut.embed(&TEXTS).unwrap();
    let whole = full.embed(&TEXTS).unwrap();

    let reference = python(&[
        "-c",
        REFERENCE,
        script("gpu/train.py").to_str().unwrap(),
        source.join("weights").to_str().unwrap(),
        "4",
        &serde_json::to_string(&TEXTS).unwrap(),
    ]);
    assert!(
        reference.status.success(),
        "{}",
        String::from_utf8_lossy(&reference.stderr)
    );
    let want: Vec<Vec<f32>> = serde_json::from_slice(&reference.stdout).unwrap();
    for (i, text) in TEXTS.iter().enumerate() {
        let c = cosine(&got[i], &want[i]);
        assert!(
            c > 0.999,
            "{text}: cosine {c} with the source cut after 4 layers"
        );
        let c6 = cosine(&got[i], &whole[i]);
        assert!(c6 < 0.99, "{text}: cosine {c6} with all six layers");
    }
}
