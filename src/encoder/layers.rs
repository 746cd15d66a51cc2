//! Transformer blocks shared by the BERT and MPNet encoders.
//!
//! Both architectures use the same post-norm block (attention, residual,
//! LayerNorm, GELU feed-forward, residual, LayerNorm); they differ only in the
//! checkpoint names of the attention projections and in how positions enter
//! the model. Callers pass the names so that variable paths mirror the
//! checkpoint's tensor names and loading is a plain lookup.
use tch::nn::{self, Module};
use tch::{Kind, Tensor};

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

/// A linear layer that can be switched to dynamic int8 quantization for
/// inference (see [`super::precision`]).
#[derive(Debug)]
pub struct Proj {
    linear: nn::Linear,
    int8: Option<Int8Weights>,
    /// While calibrating: the largest magnitude seen per input channel.
    observed: std::sync::Mutex<Option<Tensor>>,
}

#[derive(Debug)]
struct Int8Weights {
    /// `[in, out]`, symmetric per output channel, of the smoothed weights.
    weight_t: Tensor,
    /// `[out]`, fp32.
    scale: Tensor,
    /// `[in]`: activations are divided by the smoothing factors (and the
    /// weights multiplied by them) before quantization, so that a few
    /// outlier channels do not set every token's scale.
    smooth_inv: Tensor,
}

/// Largest magnitude of a symmetric int8 code.
const Q_MAX: f64 = 127.0;

impl Proj {
    pub fn new(p: nn::Path, inputs: i64, outputs: i64) -> Self {
        Self {
            linear: nn::linear(p, inputs, outputs, Default::default()),
            int8: None,
            observed: std::sync::Mutex::new(None),
        }
    }

    /// Starts recording the magnitude of inputs per channel (fp32 passes).
    pub fn observe(&mut self) {
        let inputs = self.linear.ws.size()[1];
        *self.observed.get_mut().expect("not poisoned") = Some(Tensor::zeros(
            [inputs],
            (Kind::Float, self.linear.ws.device()),
        ));
    }

    /// Quantizes the (loaded, fp32) weights per output channel; from now on
    /// activations are quantized per row at each call. With inputs observed
    /// ([`Proj::observe`]), the weights are smoothed first (SmoothQuant,
    /// alpha 0.5): channel j of the input is divided by
    /// sqrt(max|x_j| / max|w_j|) and column j of the weights multiplied by
    /// it, which leaves the product unchanged and balances the ranges.
    pub fn quantize_int8(&mut self) {
        let _guard = tch::no_grad_guard();
        let w = self.linear.ws.to_kind(Kind::Float);
        let observed = self.observed.get_mut().expect("not poisoned").take();
        let smooth = match observed {
            Some(act) => {
                let w_max = w.abs().amax([0].as_slice(), false).clamp_min(1e-8);
                (act.clamp_min(1e-8) / w_max).sqrt().clamp(1e-2, 1e2)
            }
            None => w.ones_like().select(0, 0),
        };
        let w = &w * smooth.unsqueeze(0);
        let scale = w.abs().amax([1].as_slice(), false).clamp_min(1e-12) / Q_MAX;
        let q = (&w / scale.unsqueeze(1))
            .round()
            .clamp(-Q_MAX, Q_MAX)
            .to_kind(Kind::Int8);
        self.int8 = Some(Int8Weights {
            weight_t: q.transpose(0, 1).contiguous(),
            scale,
            smooth_inv: smooth.reciprocal(),
        });
    }
}

impl Module for Proj {
    fn forward(&self, x: &Tensor) -> Tensor {
        let Some(q) = &self.int8 else {
            if let Some(seen) = self.observed.lock().expect("not poisoned").as_mut() {
                let dims: Vec<i64> = (0..x.dim() as i64 - 1).collect();
                let m = x.abs().amax(dims.as_slice(), false).to_kind(Kind::Float);
                *seen = seen.maximum(&m);
            }
            return x.apply(&self.linear);
        };
        let mut shape = x.size();
        let inputs = *shape
            .last()
            .expect("a linear layer's input has a last dimension");
        let rows = x.reshape([-1, inputs]).to_kind(Kind::Float) * &q.smooth_inv;
        let row_scale = rows.abs().amax([1].as_slice(), true).clamp_min(1e-12) / Q_MAX;
        let codes = (&rows / &row_scale)
            .round()
            .clamp(-Q_MAX, Q_MAX)
            .to_kind(Kind::Int8);
        let acc = codes.internal_int_mm(&q.weight_t).to_kind(Kind::Float);
        let mut y = acc * row_scale * q.scale.unsqueeze(0);
        if let Some(b) = &self.linear.bs {
            y += b;
        }
        *shape.last_mut().expect("checked") = q.scale.size()[0];
        y.reshape(shape)
    }
}

#[derive(Debug)]
struct Attention {
    query: Proj,
    key: Proj,
    value: Proj,
    output: Proj,
    norm: nn::LayerNorm,
    heads: i64,
    dropout: f64,
    hidden_dropout: f64,
}

impl Attention {
    fn new(p: &nn::Path, names: &AttentionNames, d: &BlockDims) -> Self {
        let lin = |name: &str| Proj::new(sub(p, name), d.hidden, d.hidden);
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
    intermediate: Proj,
    output: Proj,
    norm: nn::LayerNorm,
    dropout: f64,
}

impl Block {
    pub fn new(p: &nn::Path, names: &AttentionNames, d: &BlockDims) -> Self {
        Self {
            attention: Attention::new(&(p / "attention"), names, d),
            intermediate: Proj::new(sub(p, "intermediate.dense"), d.hidden, d.intermediate),
            output: Proj::new(sub(p, "output.dense"), d.intermediate, d.hidden),
            norm: layer_norm(sub(p, "output.LayerNorm"), d),
            dropout: d.hidden_dropout,
        }
    }

    /// The linear layers the int8 path quantizes: all but the feed-forward
    /// output, whose input (the GELU output, a long one-sided tail per
    /// token) loses too much in symmetric int8: with it quantized, the
    /// embeddings fall to cosine 0.997 of fp32; without, they stay above
    /// 0.999 (the parity test). It is a third of the block's linear work.
    pub fn quantizable(&mut self) -> [&mut Proj; 5] {
        let a = &mut self.attention;
        [
            &mut a.query,
            &mut a.key,
            &mut a.value,
            &mut a.output,
            &mut self.intermediate,
        ]
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
