//! Losses shared by the models, computed only where there is a target:
//! [`crate::components::Tokens::head_loss`] runs a head at the labelled
//! rows and hands these the outputs there, instead of producing vocabulary
//! logits at every position and discarding most of them.

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
