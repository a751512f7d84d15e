//! Losses shared by the reference models, computed only where there is a
//! target: a model gathers the hidden states at labelled positions and runs
//! its head there, instead of producing vocabulary logits at every position
//! and discarding most of them.

use tch::{Kind, Reduction, Tensor};

use crate::batch::special::IGNORE_INDEX;

/// Positions (B,S) bool that carry a label (`labels != -100`).
pub fn labelled(labels: &Tensor) -> Tensor {
    labels.ne(IGNORE_INDEX)
}

/// Mean cross-entropy of `logits` (N,C) against `targets` (N), ignoring
/// -100 targets (PyTorch's `F.cross_entropy(..., ignore_index=-100)`; NaN
/// when nothing is labelled, as in PyTorch).
pub fn cross_entropy(logits: &Tensor, targets: &Tensor) -> Tensor {
    logits.to_kind(Kind::Float).cross_entropy_loss::<Tensor>(
        targets,
        None,
        Reduction::Mean,
        IGNORE_INDEX,
        0.0,
    )
}

/// Rows of `hidden` where `mask` is true, as (N,H): `hidden` (B,S,H) with a
/// (B,S) mask, or packed rows (T,H) with a (T) mask.
pub fn select_positions(hidden: &Tensor, mask: &Tensor) -> Tensor {
    hidden.index(&[Some(mask.shallow_clone())])
}
