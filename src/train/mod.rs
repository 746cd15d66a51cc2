//! Contrastive fine-tuning of the encoder (DeTeCtive): the multi-level
//! loss, a batch sampler that gives every level positives, and the
//! training loop with validation, checkpoints and resume.
//!
//! A checkpoint is a model directory like the base model's (`config.json`,
//! `tokenizer.json`, `model.safetensors`), so `--model DIR` loads it like
//! any other; the classifier head and the run state sit beside it.
//! Validation is kNN AvgRec on a split carved by group from the training
//! file, never on a test file: against references of every family, and
//! leave-family-out (each family's held-out texts against references
//! without it), and on domains held out of training altogether
//! (`--holdout-domain`); the best checkpoint by the chosen one is kept,
//! the starting model included.
//! A killed run resumes from `last/`: the weights and step are restored,
//! and the sampler's draw depends only on the seed and the step, so the
//! remaining batches are those of an uninterrupted run (AdamW's moments
//! restart from zero).
pub mod checkpoint;
pub mod data;
pub mod loss;
pub mod run;
pub mod sampler;
pub mod validate;

use std::path::PathBuf;

pub use loss::{contrastive, Classes, Levels, LossWeights};
pub use run::{batch_loss, train, Event, TrainConfig};
pub use validate::{DomainScore, SelectBy, Validation};

#[derive(Debug, thiserror::Error)]
pub enum TrainError {
    #[error("cannot read {0}")]
    Io(PathBuf, #[source] std::io::Error),
    #[error("{path}:{line}: {reason}")]
    Record {
        path: PathBuf,
        line: usize,
        reason: String,
    },
    #[error("{0} holds no records")]
    Empty(PathBuf),
    #[error("{0}")]
    Config(String),
    #[error(transparent)]
    Encoder(#[from] crate::encoder::EncoderError),
    #[error(transparent)]
    Torch(#[from] tch::TchError),
    #[error(transparent)]
    Detect(#[from] crate::detect::DetectError),
    #[error("cannot write checkpoint {0}")]
    Write(PathBuf, #[source] std::io::Error),
    #[error("invalid run state {0}: {1}")]
    State(PathBuf, String),
}
