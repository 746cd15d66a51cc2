//! `detective export`: a training checkpoint as a named, shippable model
//! directory: `manifest.json` (checksums, base model, training summary) and
//! `weights/` with the encoder in f16 (half the size; loaded back into f32),
//! the base model's config, tokenizer and licence files, and the run's
//! `training.json`.
use std::collections::BTreeMap;
use std::path::PathBuf;

use anyhow::Context;
use clap::Args;
use serde_json::json;
use tch::{Kind, Tensor};

use crate::encoder::registry::{self, sha256_file};
use crate::encoder::ModelConfig;
use crate::train::checkpoint::load_state;

#[derive(Debug, Args)]
pub struct ExportArgs {
    /// Checkpoint directory written by `detective train` (e.g. RUN/best).
    #[arg(long)]
    pub checkpoint: PathBuf,
    /// Model name, used as `--model NAME`.
    #[arg(long)]
    pub name: String,
    /// Output folder (`models/NAME` makes it a named model).
    #[arg(long)]
    pub out: PathBuf,
    /// One line saying what the model is.
    #[arg(long, default_value = "")]
    pub description: String,
    /// Keep f32 weights instead of f16.
    #[arg(long)]
    pub full_precision: bool,
}

const COPIED: [&str; 2] = ["config.json", "tokenizer.json"];

pub fn run(args: &ExportArgs) -> anyhow::Result<()> {
    let state = load_state(&args.checkpoint)?;
    let encoder = &state.config["encoder"];
    let base = encoder["model"]
        .as_str()
        .context("checkpoint state.json names no base model")?;
    let max_length = encoder["max_length"]
        .as_u64()
        .context("checkpoint state.json names no max_length")?;
    let weights = args.out.join("weights");
    let tmp = args.out.join("weights.tmp");
    if tmp.exists() {
        std::fs::remove_dir_all(&tmp)?;
    }
    std::fs::create_dir_all(&tmp).with_context(|| format!("cannot create {}", tmp.display()))?;

    let kind = if args.full_precision {
        Kind::Float
    } else {
        Kind::Half
    };
    let tensors = Tensor::read_safetensors(args.checkpoint.join("model.safetensors"))?;
    let parameters: i64 = tensors.iter().map(|(_, t)| t.numel() as i64).sum();
    let converted: Vec<(String, Tensor)> = tensors
        .into_iter()
        .map(|(n, t)| (n, t.to_kind(kind)))
        .collect();
    Tensor::write_safetensors(&converted, tmp.join("model.safetensors"))?;
    for f in COPIED {
        std::fs::copy(args.checkpoint.join(f), tmp.join(f))
            .with_context(|| format!("cannot copy {f}"))?;
    }
    std::fs::copy(
        args.checkpoint.join("state.json"),
        tmp.join("training.json"),
    )?;
    // The base model's licence travels with its derivative.
    let mut license = String::new();
    if let Ok(files) = registry::resolve(base) {
        for f in ["LICENSE", "NOTICE"] {
            if files.path(f).is_file() {
                std::fs::copy(files.path(f), tmp.join(f))?;
            }
        }
        license = files.manifest.map(|m| m.license).unwrap_or_default();
    }

    let mut sums = BTreeMap::new();
    for f in registry::REQUIRED_FILES
        .into_iter()
        .chain(["training.json"])
    {
        sums.insert(f.to_owned(), sha256_file(&tmp.join(f))?);
    }
    let config = ModelConfig::from_file(&tmp.join("config.json"))?;
    let manifest = json!({
        "name": args.name,
        "description": args.description,
        "architecture": config.architecture().map(|a| format!("{a:?}").to_lowercase()),
        "parameters": parameters,
        "dtype": if args.full_precision { "f32" } else { "f16" },
        "max_length": max_length,
        "license": license,
        "base_model": base,
        "training": {
            "steps": state.step,
            "texts_seen": state.texts_seen,
            "train_seconds": state.train_seconds,
            "best_step": state.best_step,
            "best_validation_avg_rec": state.best_avg_rec,
            "validations": state.validations,
            "config": state.config,
        },
        "files": sums,
    });
    if weights.exists() {
        std::fs::remove_dir_all(&weights)?;
    }
    std::fs::rename(&tmp, &weights)?;
    std::fs::write(
        args.out.join("manifest.json"),
        serde_json::to_string_pretty(&manifest)? + "\n",
    )?;
    let size = std::fs::metadata(weights.join("model.safetensors"))?.len();
    eprintln!(
        "exported {} ({} parameters, {:.1} MB of weights, max_length {max_length}) to {}",
        args.name,
        parameters,
        size as f64 / 1e6,
        args.out.display()
    );
    Ok(())
}
