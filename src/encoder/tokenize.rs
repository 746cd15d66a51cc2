//! Tokenization with our own length limit.
//!
//! The shipped `tokenizer.json` files hard-code truncation and padding at 128
//! tokens; both are replaced here: truncation at what the encoder reads,
//! and no padding, because batches are padded dynamically to their longest
//! member when they are assembled. The encoder reads `max_length` tokens
//! (its window), or with `windows` > 1 up to that many windows' worth of
//! the text: `windows * (max_length - 2) + 2` tokens, cut into windows by
//! the encoder (see [`read_length`](Tokenizer::read_length)).
//!
//! A long text is tokenized from a prefix: the text cut at a whitespace some
//! `PREFIX_BYTES_PER_TOKEN * max_length` bytes in. Normalisation,
//! pre-tokenization and word pieces never look across whitespace, so when
//! the prefix alone overflows `max_length`, its truncated ids are exactly
//! the whole text's (tested against whole-text tokenization on the corpus);
//! when it does not, the whole text is tokenized. This keeps tokenizing a
//! 100,000-character text as cheap as a 1,000-character one.
use std::path::Path;

use tokenizers::{TruncationDirection, TruncationParams, TruncationStrategy};

use super::EncoderError;

/// Bytes of text per kept token in the prefix (English word pieces average
/// about 4-5 bytes).
const PREFIX_BYTES_PER_TOKEN: usize = 8;

/// Most windows read per text.
const MAX_WINDOWS: usize = 16;

/// `text` cut before the last whitespace within `limit` bytes, if it is
/// longer than that and has one.
fn prefix(text: &str, limit: usize) -> Option<&str> {
    if text.len() <= limit {
        return None;
    }
    let mut end = limit;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    let cut = text[..end].rfind(char::is_whitespace)?;
    (cut > 0).then(|| &text[..cut])
}

#[derive(Clone)]
pub struct Tokenizer {
    inner: tokenizers::Tokenizer,
    max_length: usize,
    windows: usize,
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
            windows: 1,
        };
        tok.set_max_length(max_length)?;
        Ok(tok)
    }

    /// Tokens of one window (one forward pass), special tokens included.
    pub fn max_length(&self) -> usize {
        self.max_length
    }

    /// Windows of `max_length` tokens read per text.
    pub fn windows(&self) -> usize {
        self.windows
    }

    /// Tokens read per text, special tokens included: one window, or
    /// `windows` windows' content between one pair of special tokens.
    pub fn read_length(&self) -> usize {
        if self.windows <= 1 {
            self.max_length
        } else {
            self.windows * self.max_length.saturating_sub(2) + 2
        }
    }

    pub fn set_max_length(&mut self, max_length: usize) -> Result<(), EncoderError> {
        self.max_length = max_length;
        self.truncate()
    }

    /// Reads up to `windows` windows per text (1: the first window only).
    pub fn set_windows(&mut self, windows: usize) -> Result<(), EncoderError> {
        if windows == 0 || windows > MAX_WINDOWS {
            return Err(EncoderError::Tokenize(format!(
                "windows must be within 1..={MAX_WINDOWS}, not {windows}"
            )));
        }
        if windows > 1 && self.specials() != 2 {
            return Err(EncoderError::Tokenize(
                "reading several windows needs a tokenizer that adds one special token at \
                 each end of a text"
                    .into(),
            ));
        }
        self.windows = windows;
        self.truncate()
    }

    fn truncate(&mut self) -> Result<(), EncoderError> {
        let params = TruncationParams {
            direction: TruncationDirection::Right,
            max_length: self.read_length(),
            strategy: TruncationStrategy::LongestFirst,
            stride: 0,
        };
        self.inner
            .with_truncation(Some(params))
            .map_err(|e| EncoderError::Tokenize(e.to_string()))?;
        self.inner.with_padding(None);
        Ok(())
    }

    /// Special tokens the tokenizer adds to a single text.
    fn specials(&self) -> usize {
        self.inner.encode("", true).map_or(0, |e| e.get_ids().len())
    }

    /// Token ids with special tokens, truncated to [`read_length`](Self::read_length).
    pub fn encode_batch(&self, texts: &[&str]) -> Result<Vec<Vec<i64>>, EncoderError> {
        Ok(self
            .encode_batch_flagged(texts)?
            .into_iter()
            .map(|(ids, _)| ids)
            .collect())
    }

    /// Like [`encode_batch`](Self::encode_batch), with whether each text was
    /// longer than what is read (and so truncated).
    pub fn encode_batch_flagged(
        &self,
        texts: &[&str],
    ) -> Result<Vec<(Vec<i64>, bool)>, EncoderError> {
        let limit = self.read_length().saturating_mul(PREFIX_BYTES_PER_TOKEN);
        let cut: Vec<&str> = texts
            .iter()
            .map(|t| prefix(t, limit).unwrap_or(t))
            .collect();
        let mut out = self.encode_whole(&cut)?;
        // A prefix that did not overflow says nothing about the rest.
        let redo: Vec<usize> = (0..texts.len())
            .filter(|&i| cut[i].len() < texts[i].len() && !out[i].1)
            .collect();
        if !redo.is_empty() {
            let whole: Vec<&str> = redo.iter().map(|&i| texts[i]).collect();
            for (i, enc) in redo.into_iter().zip(self.encode_whole(&whole)?) {
                out[i] = enc;
            }
        }
        Ok(out)
    }

    /// Tokenizes every text whole (the reference for the prefix path).
    pub fn encode_whole(&self, texts: &[&str]) -> Result<Vec<(Vec<i64>, bool)>, EncoderError> {
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

#[cfg(test)]
mod tests {
    use super::prefix;

    #[test]
    fn prefix_cuts_before_whitespace_on_a_char_boundary() {
        assert_eq!(prefix("short", 10), None);
        assert_eq!(prefix("one two three four", 10), Some("one two"));
        assert_eq!(prefix("nowhitespaceatall", 5), None);
        // 'é' is two bytes: the limit falls inside it.
        assert_eq!(prefix("ab cdé fgh", 6), Some("ab"));
        assert_eq!(prefix(" leading", 3), None);
    }
}
