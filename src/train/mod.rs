//! Contrastive fine-tuning of the encoder (DeTeCtive): the multi-level
//! loss, a batch sampler that gives every level positives, and the
//! training loop with validation, checkpoints and resume.
pub mod loss;

pub use loss::{contrastive, Classes, Levels, LossWeights};
