//! Prediction heads on top of hidden states (B,S,H).
//!
//! - [`MaskedGenePredictionHead`] (H -> V) and [`BinPredictionHead`]
//!   (H -> n_bins): Linear(H,H) -> GELU -> LayerNorm(1e-12) -> Linear(H,out);
//!   names `dense`, `layer_norm`, `decoder`.
//! - [`ExpressionPredictionHead`] (H -> 1, squeezed to (B,S)):
//!   Linear(H,H) -> GELU -> Linear(H,1); names `dense`, `output`.

use tch::{Tensor, nn};

use super::init;
use crate::params::{Parameters, join};

/// Transform-then-decode head producing a score per output class.
#[derive(Debug)]
pub struct MaskedGenePredictionHead {
    /// Linear(H,H).
    pub dense: nn::Linear,
    /// LayerNorm after the GELU.
    pub layer_norm: nn::LayerNorm,
    /// Linear(H,out).
    pub decoder: nn::Linear,
}

/// Bin prediction is the same architecture over `n_bins` outputs.
pub type BinPredictionHead = MaskedGenePredictionHead;

impl MaskedGenePredictionHead {
    /// Creates the head with `out_dim` outputs (V genes or n_bins bins).
    pub fn new(path: nn::Path, hidden_dim: i64, out_dim: i64) -> Self {
        MaskedGenePredictionHead {
            dense: init::linear(&path / "dense", hidden_dim, hidden_dim),
            layer_norm: init::layer_norm(&path / "layer_norm", hidden_dim),
            decoder: init::linear(&path / "decoder", hidden_dim, out_dim),
        }
    }

    /// (..., H) -> (..., out).
    pub fn forward(&self, hidden: &Tensor) -> Tensor {
        hidden
            .apply(&self.dense)
            .gelu("none")
            .apply(&self.layer_norm)
            .apply(&self.decoder)
    }
}

impl Parameters for MaskedGenePredictionHead {
    fn visit_parameters(&self, prefix: &str, f: &mut dyn FnMut(&str, &Tensor)) {
        self.dense.visit_parameters(&join(prefix, "dense"), f);
        self.layer_norm
            .visit_parameters(&join(prefix, "layer_norm"), f);
        self.decoder.visit_parameters(&join(prefix, "decoder"), f);
    }
}

/// Predicts one continuous value per position.
#[derive(Debug)]
pub struct ExpressionPredictionHead {
    /// Linear(H,H).
    pub dense: nn::Linear,
    /// Linear(H,1).
    pub output: nn::Linear,
}

impl ExpressionPredictionHead {
    /// Creates the head.
    pub fn new(path: nn::Path, hidden_dim: i64) -> Self {
        ExpressionPredictionHead {
            dense: init::linear(&path / "dense", hidden_dim, hidden_dim),
            output: init::linear(&path / "output", hidden_dim, 1),
        }
    }

    /// (B,S,H) -> (B,S).
    pub fn forward(&self, hidden: &Tensor) -> Tensor {
        hidden
            .apply(&self.dense)
            .gelu("none")
            .apply(&self.output)
            .squeeze_dim(-1)
    }
}

impl Parameters for ExpressionPredictionHead {
    fn visit_parameters(&self, prefix: &str, f: &mut dyn FnMut(&str, &Tensor)) {
        self.dense.visit_parameters(&join(prefix, "dense"), f);
        self.output.visit_parameters(&join(prefix, "output"), f);
    }
}
