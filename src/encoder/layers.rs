//! Transformer blocks shared by the BERT and MPNet encoders.
//!
//! Both architectures use the same post-norm block (attention, residual,
//! LayerNorm, GELU feed-forward, residual, LayerNorm); they differ only in the
//! checkpoint names of the attention projections and in how positions enter
//! the model. Callers pass the names so that variable paths mirror the
//! checkpoint's tensor names and loading is a plain lookup.
use tch::nn::{self, Module};
use tch::Tensor;

/// Sizes every block needs, read from the checkpoint's `config.json`.
#[derive(Debug, Clone, Copy)]
pub struct BlockDims {
    pub hidden: i64,
    pub heads: i64,
    pub intermediate: i64,
    pub layer_norm_eps: f64,
    pub hidden_dropout: f64,
    pub attention_dropout: f64,
}

/// Checkpoint names of one attention sub-layer.
pub struct AttentionNames {
    pub query: &'static str,
    pub key: &'static str,
    pub value: &'static str,
    pub output: &'static str,
    pub layer_norm: &'static str,
}

pub const BERT_ATTENTION: AttentionNames = AttentionNames {
    query: "self.query",
    key: "self.key",
    value: "self.value",
    output: "output.dense",
    layer_norm: "output.LayerNorm",
};

pub const MPNET_ATTENTION: AttentionNames = AttentionNames {
    query: "attn.q",
    key: "attn.k",
    value: "attn.v",
    output: "attn.o",
    layer_norm: "LayerNorm",
};

/// Builds a variable path from a dotted checkpoint name.
pub fn sub<'a>(p: &nn::Path<'a>, dotted: &str) -> nn::Path<'a> {
    dotted.split('.').fold(p.clone(), |acc, part| acc / part)
}

pub fn layer_norm(p: nn::Path, dims: &BlockDims) -> nn::LayerNorm {
    let cfg = nn::LayerNormConfig {
        eps: dims.layer_norm_eps,
        ..Default::default()
    };
    nn::layer_norm(p, vec![dims.hidden], cfg)
}

#[derive(Debug)]
struct Attention {
    query: nn::Linear,
    key: nn::Linear,
    value: nn::Linear,
    output: nn::Linear,
    norm: nn::LayerNorm,
    heads: i64,
    dropout: f64,
    hidden_dropout: f64,
}

impl Attention {
    fn new(p: &nn::Path, names: &AttentionNames, d: &BlockDims) -> Self {
        let lin = |name: &str| nn::linear(sub(p, name), d.hidden, d.hidden, Default::default());
        Self {
            query: lin(names.query),
            key: lin(names.key),
            value: lin(names.value),
            output: lin(names.output),
            norm: layer_norm(sub(p, names.layer_norm), d),
            heads: d.heads,
            dropout: d.attention_dropout,
            hidden_dropout: d.hidden_dropout,
        }
    }

    /// `bias` is added to the attention scores: the padding mask (large
    /// negative on padded keys), plus MPNet's relative-position bias.
    fn forward(&self, x: &Tensor, bias: &Tensor, train: bool) -> Tensor {
        let (b, t, h) = x
            .size3()
            .expect("hidden states are [batch, tokens, hidden]");
        let split = |y: Tensor| y.view([b, t, self.heads, h / self.heads]).transpose(1, 2);
        let q = split(x.apply(&self.query));
        let k = split(x.apply(&self.key));
        let v = split(x.apply(&self.value));
        let p = if train { self.dropout } else { 0.0 };
        let ctx =
            Tensor::scaled_dot_product_attention(&q, &k, &v, Some(bias), p, false, None, false);
        let ctx = ctx.transpose(1, 2).contiguous().view([b, t, h]);
        let out = ctx.apply(&self.output).dropout(self.hidden_dropout, train);
        (out + x).apply(&self.norm)
    }
}

/// One post-norm transformer layer: `encoder.layer.N` in both checkpoints.
#[derive(Debug)]
pub struct Block {
    attention: Attention,
    intermediate: nn::Linear,
    output: nn::Linear,
    norm: nn::LayerNorm,
    dropout: f64,
}

impl Block {
    pub fn new(p: &nn::Path, names: &AttentionNames, d: &BlockDims) -> Self {
        Self {
            attention: Attention::new(&(p / "attention"), names, d),
            intermediate: nn::linear(
                sub(p, "intermediate.dense"),
                d.hidden,
                d.intermediate,
                Default::default(),
            ),
            output: nn::linear(
                sub(p, "output.dense"),
                d.intermediate,
                d.hidden,
                Default::default(),
            ),
            norm: layer_norm(sub(p, "output.LayerNorm"), d),
            dropout: d.hidden_dropout,
        }
    }

    pub fn forward(&self, x: &Tensor, bias: &Tensor, train: bool) -> Tensor {
        let a = self.attention.forward(x, bias, train);
        let f = self.intermediate.forward(&a).gelu("none");
        let f = self.output.forward(&f).dropout(self.dropout, train);
        (f + a).apply(&self.norm)
    }
}

/// Additive attention bias `[batch, 1, 1, tokens]` from a 0/1 mask: zero on
/// real tokens, the dtype's minimum on padding, as the reference models do.
pub fn padding_bias(mask: &Tensor, kind: tch::Kind) -> Tensor {
    let min = match kind {
        tch::Kind::Half => f64::from(half_min()),
        tch::Kind::BFloat16 => -3.389_531_4e38,
        _ => f64::from(f32::MIN),
    };
    let m = mask.to_kind(kind).unsqueeze(1).unsqueeze(1);
    (1.0 - m) * min
}

fn half_min() -> f32 {
    -65504.0
}
