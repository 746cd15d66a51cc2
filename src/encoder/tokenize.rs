//! Tokenization with our own length limit.
//!
//! The shipped `tokenizer.json` files hard-code truncation and padding at 128
//! tokens; both are replaced here: truncation at the encoder's `max_length`,
//! and no padding, because batches are padded dynamically to their longest
//! member when they are assembled.
use std::path::Path;

use tokenizers::{TruncationDirection, TruncationParams, TruncationStrategy};

use super::EncoderError;

#[derive(Clone)]
pub struct Tokenizer {
    inner: tokenizers::Tokenizer,
    max_length: usize,
}

impl Tokenizer {
    pub fn from_file(path: &Path, max_length: usize) -> Result<Self, EncoderError> {
        let inner = tokenizers::Tokenizer::from_file(path).map_err(|e| EncoderError::Config {
            path: path.to_owned(),
            reason: e.to_string(),
        })?;
        let mut tok = Self {
            inner,
            max_length: 0,
        };
        tok.set_max_length(max_length)?;
        Ok(tok)
    }

    pub fn max_length(&self) -> usize {
        self.max_length
    }

    pub fn set_max_length(&mut self, max_length: usize) -> Result<(), EncoderError> {
        let params = TruncationParams {
            direction: TruncationDirection::Right,
            max_length,
            strategy: TruncationStrategy::LongestFirst,
            stride: 0,
        };
        self.inner
            .with_truncation(Some(params))
            .map_err(|e| EncoderError::Tokenize(e.to_string()))?;
        self.inner.with_padding(None);
        self.max_length = max_length;
        Ok(())
    }

    /// Token ids with special tokens, truncated to `max_length`.
    pub fn encode_batch(&self, texts: &[&str]) -> Result<Vec<Vec<i64>>, EncoderError> {
        Ok(self
            .encode_batch_flagged(texts)?
            .into_iter()
            .map(|(ids, _)| ids)
            .collect())
    }

    /// Like [`encode_batch`](Self::encode_batch), with whether each text was
    /// longer than `max_length` (and so truncated).
    pub fn encode_batch_flagged(
        &self,
        texts: &[&str],
    ) -> Result<Vec<(Vec<i64>, bool)>, EncoderError> {
        let inputs: Vec<tokenizers::EncodeInput> = texts.iter().map(|t| (*t).into()).collect();
        let encodings = self
            .inner
            .encode_batch(inputs, true)
            .map_err(|e| EncoderError::Tokenize(e.to_string()))?;
        Ok(encodings
            .iter()
            .map(|e| {
                let ids = e.get_ids().iter().map(|&i| i64::from(i)).collect();
                (ids, !e.get_overflowing().is_empty())
            })
            .collect())
    }

    /// Id used to pad batches (the tokenizer's own pad token).
    pub fn pad_id(&self) -> i64 {
        ["[PAD]", "<pad>"]
            .iter()
            .find_map(|t| self.inner.token_to_id(t))
            .map_or(0, i64::from)
    }
}
