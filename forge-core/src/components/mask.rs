//! Attention masks.
//!
//! scModelForge passes PyTorch a boolean key-padding mask and, for causal
//! models, a float (S,S) mask with -inf above the diagonal. forge folds both
//! into one additive bias for fused scaled-dot-product attention. Masked
//! entries get a large finite negative ([`MASKED`]) instead of -inf: for any
//! row with at least one visible key the softmax is bit-identical (the
//! exponent underflows to exactly 0), and a row with none (an all-padding
//! cell) gives finite values instead of NaN.

use tch::{Device, Kind, Tensor};

/// Additive bias of a masked attention entry.
pub const MASKED: f64 = -1e9;

/// PyTorch-style causal mask: (S,S) float, -inf above the diagonal, 0 on and
/// below it.
pub fn causal_mask(seq_len: i64, device: Device) -> Tensor {
    Tensor::full([seq_len, seq_len], f64::NEG_INFINITY, (Kind::Float, device)).triu(1)
}

/// Additive attention bias from an attention mask (B,S) (1 real, 0 pad),
/// optionally causal. Shape (B,1,1,S), or (B,1,S,S) when causal; dtype
/// `kind`.
pub fn attention_bias(attention_mask: &Tensor, causal: bool, kind: Kind) -> Tensor {
    let (b, s) = attention_mask.size2().expect("attention_mask is (B, S)");
    let mut allowed = attention_mask.ne(0).view([b, 1, 1, s]);
    if causal {
        let lower = Tensor::ones([s, s], (Kind::Bool, attention_mask.device())).tril(0);
        allowed = allowed.logical_and(&lower.view([1, 1, s, s]));
    }
    Tensor::zeros(allowed.size(), (kind, attention_mask.device()))
        .masked_fill(&allowed.logical_not(), MASKED)
}
