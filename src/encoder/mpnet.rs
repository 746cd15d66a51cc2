//! MPNet encoder (all-mpnet-base-v2).
//!
//! Differs from BERT in three ways that matter for parity: position ids are
//! RoBERTa-style (counted from `pad_token_id + 1` over real tokens only), there
//! are no token-type embeddings, and every layer adds a learned, bucketed
//! relative-position bias (shared across layers) to its attention scores.
use tch::nn::{self, Module};
use tch::{Kind, Tensor};

use super::config::ModelConfig;
use super::layers::{layer_norm, padding_bias, sub, Block, MPNET_ATTENTION};

const MAX_DISTANCE: f64 = 128.0;

#[derive(Debug)]
pub struct MpNet {
    word: nn::Embedding,
    position: nn::Embedding,
    norm: nn::LayerNorm,
    relative_bias: nn::Embedding,
    layers: Vec<Block>,
    padding_idx: i64,
    buckets: i64,
    dropout: f64,
}

impl MpNet {
    pub fn new(root: &nn::Path, cfg: &ModelConfig) -> Self {
        let d = cfg.block_dims();
        let emb = root / "embeddings";
        let e =
            |name: &str, n: i64| nn::embedding(sub(&emb, name), n, d.hidden, Default::default());
        let encoder = root / "encoder";
        let buckets = cfg.relative_attention_num_buckets;
        let layers = (0..cfg.num_hidden_layers)
            .map(|i| Block::new(&(&encoder / "layer" / i), &MPNET_ATTENTION, &d))
            .collect();
        Self {
            word: e("word_embeddings", cfg.vocab_size),
            position: e("position_embeddings", cfg.max_position_embeddings),
            norm: layer_norm(sub(&emb, "LayerNorm"), &d),
            relative_bias: nn::embedding(
                sub(&encoder, "relative_attention_bias"),
                buckets,
                cfg.num_attention_heads,
                Default::default(),
            ),
            layers,
            padding_idx: cfg.pad_token_id,
            buckets,
            dropout: d.hidden_dropout,
        }
    }

    /// The transformer layers, to switch their arithmetic.
    pub fn blocks_mut(&mut self) -> &mut [Block] {
        &mut self.layers
    }

    pub fn forward(&self, ids: &Tensor, mask: &Tensor, train: bool) -> Tensor {
        let real = mask.to_kind(Kind::Int64);
        let positions = real.cumsum(1, Kind::Int64) * &real + self.padding_idx;
        let x = self.word.forward(ids) + self.position.forward(&positions);
        let mut x = x.apply(&self.norm).dropout(self.dropout, train);
        let t = ids.size()[1];
        let bias = self.position_bias(t, ids.device()) + padding_bias(mask, x.kind());
        for layer in &self.layers {
            x = layer.forward(&x, &bias, train);
        }
        x
    }

    /// Relative-position bias `[1, heads, t, t]`, the same for every layer.
    fn position_bias(&self, t: i64, device: tch::Device) -> Tensor {
        let pos = Tensor::arange(t, (Kind::Int64, device));
        let relative = pos.unsqueeze(0) - pos.unsqueeze(1);
        let bucket = relative_position_bucket(&relative, self.buckets);
        self.relative_bias
            .forward(&bucket)
            .permute([2, 0, 1])
            .unsqueeze(0)
    }
}

/// T5/MPNet bucketing of signed distances: exact buckets for short
/// distances, logarithmic ones up to `MAX_DISTANCE`, half the buckets per
/// direction. Computed with tensor ops so the float rounding matches the
/// reference implementation exactly.
fn relative_position_bucket(relative: &Tensor, buckets: i64) -> Tensor {
    let half = buckets / 2;
    let n = -relative;
    let ret = n.lt(0).to_kind(Kind::Int64) * half;
    let n = n.abs();
    let max_exact = half / 2;
    let is_small = n.lt(max_exact);
    let scaled = (n.to_kind(Kind::Float) / max_exact as f64).log()
        / (MAX_DISTANCE / max_exact as f64).ln()
        * (half - max_exact) as f64;
    let large = (scaled.to_kind(Kind::Int64) + max_exact).clamp_max(half - 1);
    ret + n.where_self(&is_small, &large)
}
