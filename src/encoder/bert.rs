//! BERT encoder (all-MiniLM-L6-v2 and other `model_type: bert` checkpoints).
//!
//! Variable paths mirror the checkpoint (`embeddings.word_embeddings.weight`,
//! `encoder.layer.0.attention.self.query.weight`, ...).
use tch::nn::{self, Module};
use tch::{Kind, Tensor};

use super::config::ModelConfig;
use super::layers::{layer_norm, padding_bias, sub, Block, BERT_ATTENTION};

#[derive(Debug)]
pub struct Bert {
    word: nn::Embedding,
    position: nn::Embedding,
    token_type: nn::Embedding,
    norm: nn::LayerNorm,
    layers: Vec<Block>,
    dropout: f64,
}

impl Bert {
    pub fn new(root: &nn::Path, cfg: &ModelConfig) -> Self {
        let d = cfg.block_dims();
        let emb = root / "embeddings";
        let e =
            |name: &str, n: i64| nn::embedding(sub(&emb, name), n, d.hidden, Default::default());
        let layers = (0..cfg.num_hidden_layers)
            .map(|i| Block::new(&(root / "encoder" / "layer" / i), &BERT_ATTENTION, &d))
            .collect();
        Self {
            word: e("word_embeddings", cfg.vocab_size),
            position: e("position_embeddings", cfg.max_position_embeddings),
            token_type: e("token_type_embeddings", cfg.type_vocab_size.max(1)),
            norm: layer_norm(sub(&emb, "LayerNorm"), &d),
            layers,
            dropout: d.hidden_dropout,
        }
    }

    /// Token states `[batch, tokens, hidden]` for ids and a 0/1 mask.
    /// The transformer layers, to switch their arithmetic.
    pub fn blocks_mut(&mut self) -> &mut [Block] {
        &mut self.layers
    }

    pub fn forward(&self, ids: &Tensor, mask: &Tensor, train: bool) -> Tensor {
        let t = ids.size()[1];
        let positions = Tensor::arange(t, (Kind::Int64, ids.device())).unsqueeze(0);
        let types = ids.zeros_like();
        let x = self.word.forward(ids)
            + self.position.forward(&positions)
            + self.token_type.forward(&types);
        let mut x = x.apply(&self.norm).dropout(self.dropout, train);
        let bias = padding_bias(mask, x.kind());
        for layer in &self.layers {
            x = layer.forward(&x, &bias, train);
        }
        x
    }
}
