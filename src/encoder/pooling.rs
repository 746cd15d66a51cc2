//! Mean pooling over real tokens and L2 normalisation.
use tch::{Kind, Tensor};

/// Mean of token states where `mask` is 1; padding contributes nothing.
pub fn mean_pool(states: &Tensor, mask: &Tensor) -> Tensor {
    let m = mask.to_kind(states.kind()).unsqueeze(-1);
    let sum = (states * &m).sum_dim_intlist(1, false, states.kind());
    let count = m.sum_dim_intlist(1, false, states.kind()).clamp_min(1e-9);
    sum / count
}

/// Rows scaled to unit length (rows of zeros stay zero).
pub fn normalize(x: &Tensor) -> Tensor {
    let norm = x
        .norm_scalaropt_dim(2, [-1].as_slice(), true)
        .clamp_min(1e-12);
    (x / norm).to_kind(Kind::Float)
}
