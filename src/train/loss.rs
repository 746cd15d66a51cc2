//! The DeTeCtive multi-level contrastive loss.
//!
//! For each query, cosine similarities to the keys (detached embeddings of
//! the batch, optionally with a queue of recent ones) divided by a
//! temperature give logits. Four levels, each a cross-entropy with the
//! level's positive logit at index 0:
//!
//! | level | queries | positives | negatives |
//! |---|---|---|---|
//! | model | machine | same generator | other generators |
//! | family | machine | same family, other generator | other families |
//! | label | machine | machine, other family | human |
//! | human | human | human | machine |
//!
//! A level's positive logit is the mean of the logits over its positives
//! (0 when there are none); the negatives keep their logits and a zero
//! stands in each position that is not a negative, exactly as the reference
//! implementation builds one `[batch, 1 + keys]` matrix per level. The total
//! is `a*model + b*family + c*label + (a+b+c)*human + d*classifier`.
use tch::{Kind, Tensor};

/// Per-key or per-query class ids; `label` is 1 for human, 0 for machine.
pub struct Classes<'a> {
    pub model: &'a Tensor,
    pub family: &'a Tensor,
    pub label: &'a Tensor,
}

/// The four contrastive levels (scalars).
pub struct Levels {
    pub model: Tensor,
    pub family: Tensor,
    pub label: Tensor,
    pub human: Tensor,
}

#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct LossWeights {
    pub a: f64,
    pub b: f64,
    pub c: f64,
    pub d: f64,
}

impl Default for LossWeights {
    fn default() -> Self {
        Self {
            a: 1.0,
            b: 1.0,
            c: 1.0,
            d: 1.0,
        }
    }
}

impl Levels {
    /// `a*model + b*family + c*label + (a+b+c)*human + d*classifier`.
    pub fn total(&self, w: &LossWeights, classifier: Option<&Tensor>) -> Tensor {
        let mut t = &self.model * w.a
            + &self.family * w.b
            + &self.label * w.c
            + &self.human * (w.a + w.b + w.c);
        if let Some(cls) = classifier {
            t += cls * w.d;
        }
        t
    }
}

/// Computes the levels for `queries` `[n, d]` against `keys` `[m, d]`.
pub fn contrastive(
    queries: &Tensor,
    keys: &Tensor,
    q: &Classes,
    k: &Classes,
    temperature: f64,
) -> Levels {
    let qn = normalize(queries);
    let kn = normalize(keys);
    let logits = qn.matmul(&kn.transpose(0, 1)) / temperature;
    let kind = logits.kind();
    let same = |a: &Tensor, b: &Tensor| a.view([-1, 1]).eq_tensor(&b.view([1, -1]));
    let same_model = same(q.model, k.model);
    let same_family = same(q.family, k.family);
    let same_label = same(q.label, k.label);
    let is_human = q.label.eq(1);
    let is_machine = q.label.eq(0);

    let level = |positives: &Tensor, negatives: &Tensor, rows: &Tensor| -> Tensor {
        let pos = positives.to_kind(kind);
        let count = pos.sum_dim_intlist(1, false, kind).clamp_min(1.0);
        let pos_logit = (&logits * &pos).sum_dim_intlist(1, false, kind) / count;
        let neg = &logits * negatives.to_kind(kind);
        let all = Tensor::cat(&[pos_logit.unsqueeze(1), neg], 1);
        cross_entropy_at_zero(&all, rows)
    };
    Levels {
        model: level(&same_model, &same_model.logical_not(), &is_machine),
        family: level(
            &same_family.logical_xor(&same_model),
            &same_family.logical_not(),
            &is_machine,
        ),
        label: level(
            &same_label.logical_xor(&same_family),
            &same_label.logical_not(),
            &is_machine,
        ),
        human: level(&same_label, &same_label.logical_not(), &is_human),
    }
}

fn normalize(x: &Tensor) -> Tensor {
    let norm = x
        .norm_scalaropt_dim(2, [-1].as_slice(), true)
        .clamp_min(1e-12);
    x / norm
}

/// Mean over the selected rows of `-log softmax(row)[0]`; 0 with no rows.
fn cross_entropy_at_zero(logits: &Tensor, rows: &Tensor) -> Tensor {
    let idx = rows.nonzero().squeeze_dim(1);
    if idx.size()[0] == 0 {
        return Tensor::zeros([], (logits.kind(), logits.device()));
    }
    let selected = logits.index_select(0, &idx);
    -selected
        .log_softmax(-1, selected.kind())
        .select(1, 0)
        .mean(selected.kind())
}

/// Cross-entropy of the auxiliary classifier's logits `[n, 2]` against the
/// labels (1 human, 0 machine).
pub fn classifier_loss(logits: &Tensor, label: &Tensor) -> Tensor {
    logits.cross_entropy_for_logits(label)
}

/// Which label a tensor of class ids uses for humans.
pub const HUMAN: i64 = 1;
pub const MACHINE: i64 = 0;

/// A scalar tensor as f64.
pub fn scalar(t: &Tensor) -> f64 {
    t.to_kind(Kind::Double).double_value(&[])
}
