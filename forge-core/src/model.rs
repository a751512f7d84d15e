//! The model contract: what every forge model provides and what pipelines
//! (pretraining, fine-tuning, assessment, checkpoints) rely on.
//!
//! A model author writes [`Architecture`] (`forward` and `encode`);
//! `#[derive(ForgeModel)]` writes the rest of [`ForgeModel`]
//! (`from_config`, the registry name, parameter counting) and registers the
//! model. Implementing both by hand is possible and is what the derive
//! expands to.

use tch::{Tensor, nn};

use crate::batch::Batch;
use crate::config::ModelConfig;
use crate::error::Result;
use crate::params::{ParameterTable, Parameters, count_parameters};

/// What a forward pass returns. Every field is optional: a model fills in
/// what it computes.
#[derive(Debug, Default)]
pub struct ModelOutput {
    /// Scalar training loss, present when the batch carries targets.
    pub loss: Option<Tensor>,
    /// Prediction scores, e.g. (B,S,V) gene logits or (B,S) values.
    pub logits: Option<Tensor>,
    /// Cell embeddings, (B,H).
    pub embeddings: Option<Tensor>,
    /// Last hidden states, (B,S,H), when a model exposes them.
    pub hidden_states: Option<Tensor>,
}

/// The half of the contract a model author writes: the architecture.
#[diagnostic::on_unimplemented(
    message = "`{Self}` does not implement the forward/encode half of the forge model contract",
    label = "`{Self}` needs `impl Architecture for {Self}`",
    note = "write `impl forge_core::Architecture for {Self} {{ fn forward(&self, batch: &Batch, train: bool) -> ModelOutput {{ .. }} fn encode(&self, batch: &Batch) -> Tensor {{ .. }} }}`"
)]
pub trait Architecture {
    /// Runs the model on a batch. With `train`, dropout is active and a loss
    /// is computed when the batch has targets (`labels`, `masked_positions`).
    fn forward(&self, batch: &Batch, train: bool) -> ModelOutput;

    /// The training loss alone (training mode), or `None` when the batch has
    /// no targets. Pretraining calls this instead of `forward`. The default
    /// takes the loss of `forward(batch, true)`; override it to skip work the
    /// loss does not need, such as vocabulary logits at unlabelled positions.
    fn loss(&self, batch: &Batch) -> Option<Tensor> {
        self.forward(batch, true).loss
    }

    /// The same loss in evaluation mode (no dropout): what validation
    /// computes, under `tch::no_grad`. The default takes the loss of
    /// `forward(batch, false)`; a model that overrides `loss` overrides this
    /// too, with the same path and dropout off.
    fn eval_loss(&self, batch: &Batch) -> Option<Tensor> {
        self.forward(batch, false).loss
    }

    /// Cell embeddings (B,H) without prediction heads, in evaluation mode.
    /// Callers wrap it in `tch::no_grad` when they do not need gradients.
    fn encode(&self, batch: &Batch) -> Tensor;
}

/// The full model contract used by every pipeline.
///
/// Implemented by `#[derive(ForgeModel)]`. The trait is object safe
/// (`Box<dyn ForgeModel>` is what the registry builds); `from_config` is
/// only callable on a concrete type.
pub trait ForgeModel: Architecture + Parameters + Send {
    /// The name the model is registered under (`transformer_encoder`).
    fn registry_name(&self) -> &'static str;

    /// Builds the model's variables under `path` from `config`. Fails with a
    /// message containing "vocab_size must be set" when `config.vocab_size`
    /// is unset.
    fn from_config(path: &nn::Path, config: &ModelConfig) -> Result<Self>
    where
        Self: Sized;

    /// Number of parameter scalars; with `trainable_only`, only those that
    /// require a gradient.
    fn num_parameters(&self, trainable_only: bool) -> i64 {
        count_parameters(self, trainable_only)
    }

    /// Parameter counts per top-level submodule, printable as a table.
    fn parameter_table(&self) -> ParameterTable {
        ParameterTable::of(self)
    }
}

impl<M: ForgeModel + ?Sized> Architecture for Box<M> {
    fn forward(&self, batch: &Batch, train: bool) -> ModelOutput {
        (**self).forward(batch, train)
    }
    fn loss(&self, batch: &Batch) -> Option<Tensor> {
        (**self).loss(batch)
    }
    fn eval_loss(&self, batch: &Batch) -> Option<Tensor> {
        (**self).eval_loss(batch)
    }
    fn encode(&self, batch: &Batch) -> Tensor {
        (**self).encode(batch)
    }
}
