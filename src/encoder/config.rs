//! The subset of a checkpoint's `config.json` the encoder needs.
use serde::Deserialize;

use super::layers::BlockDims;
use super::EncoderError;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Architecture {
    Bert,
    MpNet,
}

impl Architecture {
    pub fn name(self) -> &'static str {
        match self {
            Self::Bert => "bert",
            Self::MpNet => "mpnet",
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
pub struct ModelConfig {
    pub model_type: String,
    pub vocab_size: i64,
    pub hidden_size: i64,
    pub num_hidden_layers: i64,
    pub num_attention_heads: i64,
    pub intermediate_size: i64,
    pub max_position_embeddings: i64,
    #[serde(default = "default_eps")]
    pub layer_norm_eps: f64,
    #[serde(default)]
    pub type_vocab_size: i64,
    #[serde(default)]
    pub pad_token_id: i64,
    #[serde(default = "default_buckets")]
    pub relative_attention_num_buckets: i64,
    #[serde(default = "default_dropout")]
    pub hidden_dropout_prob: f64,
    #[serde(default = "default_dropout")]
    pub attention_probs_dropout_prob: f64,
    #[serde(default = "default_act")]
    pub hidden_act: String,
}

fn default_eps() -> f64 {
    1e-12
}
fn default_buckets() -> i64 {
    32
}
fn default_dropout() -> f64 {
    0.1
}
fn default_act() -> String {
    "gelu".into()
}

impl ModelConfig {
    pub fn from_file(path: &std::path::Path) -> Result<Self, EncoderError> {
        let text = std::fs::read_to_string(path).map_err(|source| EncoderError::Read {
            path: path.to_owned(),
            source,
        })?;
        let cfg: Self = serde_json::from_str(&text).map_err(|e| EncoderError::Config {
            path: path.to_owned(),
            reason: e.to_string(),
        })?;
        cfg.validate(path)?;
        Ok(cfg)
    }

    fn validate(&self, path: &std::path::Path) -> Result<(), EncoderError> {
        let bad = |reason: String| EncoderError::Config {
            path: path.to_owned(),
            reason,
        };
        self.architecture().ok_or_else(|| {
            bad(format!(
                "model_type {:?} is not supported (bert, mpnet)",
                self.model_type
            ))
        })?;
        if self.hidden_act != "gelu" {
            return Err(bad(format!(
                "hidden_act {:?} is not supported",
                self.hidden_act
            )));
        }
        if self.num_attention_heads <= 0 || self.hidden_size % self.num_attention_heads != 0 {
            return Err(bad(
                "hidden_size must be a multiple of num_attention_heads".into()
            ));
        }
        Ok(())
    }

    pub fn architecture(&self) -> Option<Architecture> {
        match self.model_type.as_str() {
            "bert" => Some(Architecture::Bert),
            "mpnet" => Some(Architecture::MpNet),
            _ => None,
        }
    }

    /// Longest input the position table allows (MPNet reserves the first
    /// `pad_token_id + 1` rows).
    pub fn max_tokens(&self) -> usize {
        let reserved = match self.architecture() {
            Some(Architecture::MpNet) => self.pad_token_id + 1,
            _ => 0,
        };
        (self.max_position_embeddings - reserved).max(0) as usize
    }

    pub fn block_dims(&self) -> BlockDims {
        BlockDims {
            hidden: self.hidden_size,
            heads: self.num_attention_heads,
            intermediate: self.intermediate_size,
            layer_norm_eps: self.layer_norm_eps,
            hidden_dropout: self.hidden_dropout_prob,
            attention_dropout: self.attention_probs_dropout_prob,
        }
    }

    /// Multiply-accumulate count of one forward pass over `tokens` tokens in
    /// a sequence of length `seq`, times two: the FLOPs that matter on CPU.
    pub fn flops(&self, tokens: u64, seq: u64) -> u64 {
        let h = self.hidden_size as u64;
        let i = self.intermediate_size as u64;
        let per_token = 4 * h * h + 2 * h * i + 2 * seq * h;
        2 * per_token * tokens * self.num_hidden_layers as u64
    }
}
