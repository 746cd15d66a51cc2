//! The use cases: build the searchable reference set from the store, detect
//! (embed -> search -> vote), add and delete references.
//!
//! [`References`] pairs a nearest-neighbour index with the metadata of each slot and
//! its tombstones; [`live::Live`] keeps one in step with the store's change
//! feed and compacts it when deletions pile up.
pub mod blend_rule;
pub mod calibrate;
pub mod classifier;
pub mod group_vote;
pub mod import;
pub mod keys;
pub mod language;
pub mod live;
mod logistic;
pub mod novelty;
mod references;
pub mod seed;
pub mod segments;
mod service;
pub mod snapshot;
pub mod startup;
pub mod supervised;
pub mod tally;
pub mod vote;

use crate::encoder::EncoderId;
use crate::store::{Store, StoreError};
pub use calibrate::Calibration;
pub use language::{Abstention, Cause, Languages};
pub use novelty::{Novelty, NoveltyPolicy};
pub use references::References;
pub use service::{Decision, Detection, Detector, Prepped};
pub use vote::{vote, vote_sized, Neighbour, Verdict, VoteConfig};

#[derive(Debug, thiserror::Error)]
pub enum DetectError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(
        "the store holds {count} references embedded by {stored}, but the running encoder is {running}; \
         run `detective reindex` to re-embed them with the running encoder"
    )]
    EncoderMismatch {
        stored: String,
        running: String,
        count: i64,
    },
    #[error("embedding has {got} dimensions, the index {want}")]
    Dimension { got: usize, want: usize },
    #[error(transparent)]
    Worker(#[from] crate::encoder::WorkerError),
    #[error("tokenizer failed")]
    Tokenize(#[source] crate::encoder::EncoderError),
    #[error("the encoder failed")]
    Embed(#[source] crate::encoder::EncoderError),
    #[error("no references to vote")]
    NoReferences,
    #[error("{0} vectors for {1} items")]
    Count(usize, usize),
}

/// Fails when the store holds vectors from another encoder.
pub async fn check_encoder(store: &dyn Store, encoder: &EncoderId) -> Result<(), DetectError> {
    for (stored, count) in store.encoders().await? {
        if &stored != encoder {
            return Err(DetectError::EncoderMismatch {
                stored: stored.to_string(),
                running: encoder.to_string(),
                count,
            });
        }
    }
    Ok(())
}

/// Votes for each query vector; `texts` are the queries' texts, whose
/// lengths novelty is judged by.
pub fn detect_vectors(
    refs: &References,
    queries: &[Vec<f32>],
    texts: &[&str],
    cfg: &VoteConfig,
) -> Vec<Option<Verdict>> {
    queries
        .iter()
        .zip(texts)
        .map(|(q, t)| {
            let chars = t.chars().count();
            vote_sized(&refs.search(q, cfg.search_width()), cfg, Some(chars))
        })
        .collect()
}
