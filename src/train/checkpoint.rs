//! Checkpoint directories: written to a temporary directory and renamed into
//! place, so a kill mid-write leaves the previous checkpoint intact.
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use tch::nn::VarStore;

use super::data::HeldOut;
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
    pub texts_seen: u64,
    pub train_seconds: f64,
    pub config: serde_json::Value,
    /// Machine families among the training texts (absent in runs that did
    /// not record them): a benchmark fold of a family in this list is not
    /// unseen by the encoder.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub families: Option<Vec<String>>,
}

/// What an encoder was fine-tuned on, from the `training.json` (exported
/// model) or `state.json` (checkpoint) beside its weights.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TrainedOn {
    /// No training record: a base model, never trained on these labels.
    Nothing,
    /// Trained here, on texts of these machine families.
    Families(Vec<String>),
    /// Trained here; the run did not record its families.
    Unrecorded,
}

impl TrainedOn {
    pub fn of_model_dir(dir: &Path) -> Self {
        let Some(text) = training_record(dir) else {
            return Self::Nothing;
        };
        match serde_json::from_str::<RunState>(&text) {
            Ok(RunState {
                families: Some(f), ..
            }) => Self::Families(f),
            _ => Self::Unrecorded,
        }
    }

    /// Whether the encoder saw `family` in training: `None` when unknown.
    pub fn saw(&self, family: &str) -> Option<bool> {
        match self {
            Self::Nothing => Some(false),
            Self::Families(f) => Some(f.iter().any(|x| x == family)),
            Self::Unrecorded => None,
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
