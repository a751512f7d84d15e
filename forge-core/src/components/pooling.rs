//! Pooling of hidden states (B,S,H) into cell embeddings (B,H).

use tch::Tensor;

use crate::config::Pooling;

/// The hidden state of the first token (CLS): `hidden[:, 0]`.
pub fn cls_pool(hidden: &Tensor, _attention_mask: &Tensor) -> Tensor {
    hidden.select(1, 0)
}

/// Mean over real tokens (mask 1); the divisor is clamped to >= 1 so an
/// all-padding row gives zeros, not NaN.
pub fn mean_pool(hidden: &Tensor, attention_mask: &Tensor) -> Tensor {
    let mask = attention_mask.to_kind(hidden.kind()).unsqueeze(-1);
    let summed = (hidden * &mask).sum_dim_intlist(1, false, hidden.kind());
    let count = mask.sum_dim_intlist(1, false, hidden.kind()).clamp_min(1.0);
    summed / count
}

/// Applies the configured pooling strategy.
pub fn pool(strategy: Pooling, hidden: &Tensor, attention_mask: &Tensor) -> Tensor {
    match strategy {
        Pooling::Cls => cls_pool(hidden, attention_mask),
        Pooling::Mean => mean_pool(hidden, attention_mask),
    }
}
