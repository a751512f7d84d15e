//! The task head on the backbone's cell embedding, in scModelForge's
//! layout: an optional hidden layer (`Linear(H, hidden_dim)`, GELU,
//! dropout), then dropout and a projection to the outputs (`n_classes`
//! logits, or `output_dim` values). Parameter names: `hidden.{weight,bias}`
//! (when present) and `output.{weight,bias}`.

use tch::{Tensor, nn};

use forge_core::components::init;
use forge_core::config::FinetuneHeadConfig;
use forge_core::params::{Parameters, join};

/// A classification or regression head.
#[derive(Debug)]
pub struct TaskHead {
    hidden: Option<nn::Linear>,
    output: nn::Linear,
    dropout: f64,
    input_dim: i64,
    n_outputs: i64,
}

impl TaskHead {
    /// A freshly initialised head (xavier-uniform weights, zero biases) from
    /// embeddings of width `input_dim` to `n_outputs`.
    pub fn new(path: &nn::Path, input_dim: i64, n_outputs: i64, cfg: &FinetuneHeadConfig) -> Self {
        let (hidden, width) = match cfg.hidden_dim {
            Some(h) => (Some(init::linear(path / "hidden", input_dim, h)), h),
            None => (None, input_dim),
        };
        TaskHead {
            hidden,
            output: init::linear(path / "output", width, n_outputs),
            dropout: cfg.dropout,
            input_dim,
            n_outputs,
        }
    }

    /// Logits or values `(B, n_outputs)` from embeddings `(B, input_dim)`;
    /// dropout only when `train`.
    pub fn forward(&self, emb: &Tensor, train: bool) -> Tensor {
        let x = match &self.hidden {
            Some(h) => emb.apply(h).gelu("none"),
            None => emb.shallow_clone(),
        };
        x.dropout(self.dropout, train).apply(&self.output)
    }

    /// Width of the embeddings it takes.
    pub fn input_dim(&self) -> i64 {
        self.input_dim
    }

    /// Number of outputs.
    pub fn n_outputs(&self) -> i64 {
        self.n_outputs
    }
}

impl Parameters for TaskHead {
    fn visit_parameters(&self, prefix: &str, f: &mut dyn FnMut(&str, &Tensor)) {
        if let Some(h) = &self.hidden {
            h.visit_parameters(&join(prefix, "hidden"), f);
        }
        self.output.visit_parameters(&join(prefix, "output"), f);
    }
}
