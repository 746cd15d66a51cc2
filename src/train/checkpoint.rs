//! Checkpoint directories: written to a temporary directory and renamed into
//! place, so a kill mid-write leaves the previous checkpoint intact.
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use tch::nn::VarStore;

use super::data::HeldOut;
use super::run::TrainConfig;
use super::validate::{DomainScore, SelectBy};
use super::TrainError;

/// What a run has done so far; `state.json` in each checkpoint.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct RunState {
    pub step: u64,
    pub best_step: Option<u64>,
    /// The best value of the validation that selects (`select_by`).
    pub best_avg_rec: Option<f64>,
    /// (step, held-out validation AvgRec in %).
    pub validations: Vec<(u64, f64)>,
    /// (step, leave-family-out validation AvgRec in %, fold mean).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub validations_unseen_family: Vec<(u64, f64)>,
    /// (step, the held-out domains' AvgRec in %, mean over them).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub validations_unseen_domain: Vec<(u64, DomainScore)>,
    pub texts_seen: u64,
    pub train_seconds: f64,
    pub config: serde_json::Value,
    /// Machine families among the training texts (absent in runs that did
    /// not record them): a benchmark fold of a family in this list is not
    /// unseen by the encoder.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub families: Option<Vec<String>>,
    /// Domains of the training texts (absent in runs that did not record
    /// them): a validation that leaves out a domain in this list measures
    /// one the encoder was trained on.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub domains: Option<Vec<String>>,
}

/// What an encoder was fine-tuned on, from the `training.json` (exported
/// model) or `state.json` (checkpoint) beside its weights: its machine
/// families ([`TrainedOn::families_of`]) or its domains
/// ([`TrainedOn::domains_of`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TrainedOn {
    /// No training record: a base model, never trained on these labels.
    Nothing,
    /// Trained here, on texts of these families (or domains).
    Recorded(Vec<String>),
    /// Trained here; the run did not record them.
    Unrecorded,
}

impl TrainedOn {
    /// The machine families the encoder in `dir` was trained on.
    pub fn families_of(dir: &Path) -> Self {
        Self::of_record(dir, |s| s.families)
    }

    /// The domains the encoder in `dir` was trained on.
    pub fn domains_of(dir: &Path) -> Self {
        Self::of_record(dir, |s| s.domains)
    }

    fn of_record(dir: &Path, pick: impl FnOnce(RunState) -> Option<Vec<String>>) -> Self {
        let Some(text) = training_record(dir) else {
            return Self::Nothing;
        };
        match serde_json::from_str::<RunState>(&text).ok().and_then(pick) {
            Some(names) => Self::Recorded(names),
            None => Self::Unrecorded,
        }
    }

    /// Whether the encoder saw `name` in training: `None` when unknown.
    pub fn saw(&self, name: &str) -> Option<bool> {
        match self {
            Self::Nothing => Some(false),
            Self::Recorded(names) => Some(names.iter().any(|x| x == name)),
            Self::Unrecorded => None,
        }
    }

    /// How a validation that leaves `domain` out of the references stands
    /// to these training domains, in words.
    pub fn domain_leak(&self, domain: &str) -> &'static str {
        match self.saw(domain) {
            Some(true) => "in the encoder's training: leaky",
            Some(false) => "not in the encoder's training",
            None => "the encoder's training did not record its domains: assume leaky",
        }
    }
}

/// The validation split the encoder's last training run held out (from
/// `training.json` or `state.json` beside its weights), if it recorded one.
/// A model trained in several runs keeps one split across them
/// (`train --val-seed`), so the last run's split is every run's.
pub fn held_out_of_model_dir(dir: &Path) -> Option<HeldOut> {
    let state: RunState = serde_json::from_str(&training_record(dir)?).ok()?;
    HeldOut::of_config(&state.config)
}

/// The training record beside a model's weights: `training.json` of an
/// exported model, else `state.json` of a checkpoint.
fn training_record(dir: &Path) -> Option<String> {
    ["training.json", "state.json"]
        .iter()
        .find_map(|f| std::fs::read_to_string(dir.join(f)).ok())
}

fn write_err(p: &Path) -> impl FnOnce(std::io::Error) -> TrainError + '_ {
    move |e| TrainError::Write(p.to_owned(), e)
}

/// Saves encoder weights, head, model files and state into `dir`.
pub fn save(
    dir: &Path,
    base: &Path,
    encoder: &VarStore,
    head: &VarStore,
    state: &RunState,
) -> Result<(), TrainError> {
    let tmp = dir.with_extension("tmp");
    if tmp.exists() {
        std::fs::remove_dir_all(&tmp).map_err(write_err(&tmp))?;
    }
    std::fs::create_dir_all(&tmp).map_err(write_err(&tmp))?;
    encoder.save(tmp.join("model.safetensors"))?;
    head.save(tmp.join("head.safetensors"))?;
    for f in ["config.json", "tokenizer.json"] {
        std::fs::copy(base.join(f), tmp.join(f)).map_err(write_err(&tmp))?;
    }
    let body = serde_json::to_vec_pretty(state)
        .map_err(|e| TrainError::State(tmp.clone(), e.to_string()))?;
    std::fs::write(tmp.join("state.json"), body).map_err(write_err(&tmp))?;
    let old = dir.with_extension("old");
    if dir.exists() {
        if old.exists() {
            std::fs::remove_dir_all(&old).map_err(write_err(&old))?;
        }
        std::fs::rename(dir, &old).map_err(write_err(dir))?;
    }
    std::fs::rename(&tmp, dir).map_err(write_err(dir))?;
    if old.exists() {
        std::fs::remove_dir_all(&old).map_err(write_err(&old))?;
    }
    Ok(())
}

/// The checkpoint to resume from: `dir`, or its `.old` twin if a kill came
/// between the two renames.
pub fn latest(dir: &Path) -> Option<PathBuf> {
    [dir.to_owned(), dir.with_extension("old")]
        .into_iter()
        .find(|d| d.join("state.json").is_file() && d.join("model.safetensors").is_file())
}

pub fn load_state(dir: &Path) -> Result<RunState, TrainError> {
    let p = dir.join("state.json");
    let text = std::fs::read_to_string(&p).map_err(|e| TrainError::Io(p.clone(), e))?;
    serde_json::from_str(&text).map_err(|e| TrainError::State(p, e.to_string()))
}

/// The recipe settings a run must resume with, as JSON pointers into its
/// recorded configuration and the flags that set them: what draws its
/// batches, shapes its loss and schedule, and validates it. `--steps` (a
/// run may be extended), `--val-every`, `--data` (the file may move) and
/// the encoder's runtime settings may change.
const RECIPE: [(&str, &str); 21] = [
    ("/batch_size", "--batch-size"),
    ("/per_model", "--per-model"),
    ("/matched_humans", "--matched-humans"),
    ("/lr", "--lr"),
    ("/warmup", "--warmup"),
    ("/weight_decay", "--weight-decay"),
    ("/temperature", "--temperature"),
    ("/weights", "--loss-weights"),
    ("/freeze_embeddings", "--freeze-embeddings"),
    ("/seed", "--seed"),
    ("/val_seed", "--val-seed"),
    ("/val_fraction", "--val-fraction"),
    ("/val_queries", "--val-queries"),
    ("/val_refs", "--val-refs"),
    ("/queue", "--queue"),
    ("/grad_clip", "--grad-clip"),
    ("/select_by", "--select-by"),
    ("/crop_windows", "--crop-windows"),
    ("/holdout_domains", "--holdout-domain"),
    ("/holdout_refs", "--holdout-refs"),
    ("/encoder/max_length", "--max-length"),
];

/// The flags (with the recorded values) in which `cfg` differs from the
/// configuration a run recorded. A setting the run did not record (older
/// runs) is not compared, except `--select-by`, which then was held-out.
pub fn recipe_changes(recorded: &serde_json::Value, cfg: &TrainConfig) -> Vec<String> {
    let now = serde_json::to_value(cfg).unwrap_or_default();
    let held_out = serde_json::json!(SelectBy::HeldOut);
    RECIPE
        .iter()
        .filter_map(|&(pointer, flag)| {
            let was = match (pointer, recorded.pointer(pointer)) {
                ("/select_by", None) => &held_out,
                (_, was) => was?,
            };
            match was {
                _ if Some(was) == now.pointer(pointer) => None,
                serde_json::Value::Null | serde_json::Value::Bool(false) => {
                    Some(format!("no {flag}"))
                }
                serde_json::Value::Bool(true) => Some(flag.to_owned()),
                serde_json::Value::Array(a) if a.is_empty() => Some(format!("no {flag}")),
                _ => Some(format!("{flag} {}", flag_value(was))),
            }
        })
        .collect()
}

/// A recorded setting as it is written on the command line.
fn flag_value(v: &serde_json::Value) -> String {
    match v {
        serde_json::Value::String(s) => s.clone(),
        serde_json::Value::Array(a) => a.iter().map(flag_value).collect::<Vec<_>>().join(","),
        // The loss weights, in their flag's order.
        serde_json::Value::Object(o) => o.values().map(flag_value).collect::<Vec<_>>().join(","),
        serde_json::Value::Number(n) if n.is_f64() => format!("{}", n.as_f64().unwrap_or_default()),
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::EncoderConfig;
    use crate::train::loss::LossWeights;

    fn recipe() -> TrainConfig {
        TrainConfig {
            data: "train.jsonl".into(),
            out: "run".into(),
            encoder: EncoderConfig::default(),
            batch_size: 32,
            per_model: 4,
            matched_humans: 0.0,
            steps: 400,
            lr: 3e-5,
            warmup: 0.06,
            weight_decay: 1e-4,
            temperature: 0.07,
            weights: LossWeights::default(),
            freeze_embeddings: false,
            seed: 45,
            val_seed: Some(42),
            val_fraction: 0.05,
            val_every: 100,
            val_queries: 400,
            val_refs: 1500,
            queue: 128,
            grad_clip: 1.0,
            select_by: SelectBy::UnseenFamily,
            crop_windows: 1,
            holdout_domains: Vec::new(),
            holdout_refs: 32,
        }
    }

    #[test]
    fn left_out_domains_are_marked_by_the_training_record() {
        let dir = tempfile::tempdir().unwrap();
        // No record: a base model, trained on no domain.
        let seen = TrainedOn::domains_of(dir.path());
        assert_eq!(seen, TrainedOn::Nothing);
        assert_eq!(seen.domain_leak("xsum"), "not in the encoder's training");
        // A record without domains (an older run): unknown, assumed leaky.
        let mut state = RunState {
            families: Some(vec!["openai".into()]),
            ..RunState::default()
        };
        std::fs::write(
            dir.path().join("training.json"),
            serde_json::to_vec(&state).unwrap(),
        )
        .unwrap();
        let seen = TrainedOn::domains_of(dir.path());
        assert_eq!(seen, TrainedOn::Unrecorded);
        assert!(seen.domain_leak("xsum").ends_with("assume leaky"));
        assert_eq!(
            TrainedOn::families_of(dir.path()),
            TrainedOn::Recorded(vec!["openai".into()])
        );
        // A record with its domains.
        state.domains = Some(vec!["tweet".into(), "xsum".into()]);
        std::fs::write(
            dir.path().join("training.json"),
            serde_json::to_vec(&state).unwrap(),
        )
        .unwrap();
        let seen = TrainedOn::domains_of(dir.path());
        assert_eq!(seen.domain_leak("xsum"), "in the encoder's training: leaky");
        assert_eq!(
            seen.domain_leak("writing_prompts"),
            "not in the encoder's training"
        );
    }

    #[test]
    fn a_run_resumes_only_with_its_recipe() {
        let started = recipe();
        let recorded = serde_json::to_value(&started).unwrap();
        // Extending a run, validating more often or moving its data is
        // resuming it.
        let extended = TrainConfig {
            steps: 800,
            val_every: 50,
            data: "elsewhere/train.jsonl".into(),
            ..recipe()
        };
        assert!(recipe_changes(&recorded, &extended).is_empty());
        // A setting the run was started without is named as absent.
        let unset = TrainConfig {
            val_seed: None,
            ..recipe()
        };
        let without = serde_json::to_value(&unset).unwrap();
        assert_eq!(recipe_changes(&without, &recipe()), ["no --val-seed"]);
        // A switch is named as the flag, or its absence.
        let frozen = TrainConfig {
            freeze_embeddings: true,
            ..recipe()
        };
        assert_eq!(
            recipe_changes(&recorded, &frozen),
            ["no --freeze-embeddings"]
        );
        let was_frozen = serde_json::to_value(&frozen).unwrap();
        assert_eq!(
            recipe_changes(&was_frozen, &recipe()),
            ["--freeze-embeddings"]
        );
        // So is a list: the domains held out of training, or none.
        let held = TrainConfig {
            holdout_domains: vec!["xsum".into(), "tweet".into()],
            ..recipe()
        };
        assert_eq!(recipe_changes(&recorded, &held), ["no --holdout-domain"]);
        let was_held = serde_json::to_value(&held).unwrap();
        assert_eq!(
            recipe_changes(&was_held, &recipe()),
            ["--holdout-domain xsum,tweet"]
        );
        // Anything that draws other batches, another schedule or another
        // validation is named, with the value the run was started with.
        let changed = TrainConfig {
            lr: 5e-5,
            val_seed: Some(7),
            weights: LossWeights {
                d: 0.5,
                ..LossWeights::default()
            },
            crop_windows: 4,
            encoder: EncoderConfig {
                max_length: 256,
                ..EncoderConfig::default()
            },
            ..recipe()
        };
        assert_eq!(
            recipe_changes(&recorded, &changed),
            [
                "--lr 0.00003",
                "--loss-weights 1,1,1,1",
                "--val-seed 42",
                "--crop-windows 1",
                "--max-length 512"
            ]
        );
        // A run recorded before a setting existed is not held to it, except
        // the validation it selected by, which was the held-out one.
        let mut old = recorded.clone();
        let old_map = old.as_object_mut().unwrap();
        old_map.remove("crop_windows");
        old_map.remove("select_by");
        let later = TrainConfig {
            crop_windows: 4,
            ..recipe()
        };
        assert_eq!(recipe_changes(&old, &later), ["--select-by held-out"]);
        let held_out = TrainConfig {
            select_by: SelectBy::HeldOut,
            ..later
        };
        assert!(recipe_changes(&old, &held_out).is_empty());
    }
}
