//! The model contract: what every forge model provides and what pipelines
//! (pretraining, fine-tuning, assessment, checkpoints) rely on.
//!
//! A model author writes [`Architecture`] (one forward pass, `run`);
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
    /// Prediction scores, e.g. (B,S,V) gene logits or (B,S) values; zero
    /// at padding, where a model built on [`crate::components::Tokens`]
    /// computes nothing.
    pub logits: Option<Tensor>,
    /// Cell embeddings, (B,H).
    pub embeddings: Option<Tensor>,
    /// Last hidden states, (B,S,H), when a model exposes them (zero at
    /// padding, as `logits`).
    pub hidden_states: Option<Tensor>,
}

/// What one run of a model is for: whether it trains (dropout on) and which
/// outputs the caller needs, so the model computes nothing else (no
/// vocabulary logits at unlabelled positions when only the loss is wanted,
/// no heads at all for embeddings).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Pass {
    /// Training mode: dropout is active.
    pub train: bool,
    /// The outputs wanted.
    pub wants: Wants,
}

/// Which outputs a [`Pass`] needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Wants {
    /// Only the loss (training, validation): heads run at labelled
    /// positions only.
    Loss,
    /// Only the cell embeddings: no heads.
    Embeddings,
    /// Every output of [`ModelOutput`]: loss, logits at every real
    /// position, embeddings and hidden states (inspection, parity tests).
    Everything,
}

impl Pass {
    /// Every output, in training mode or not (`Architecture::forward`).
    pub fn everything(train: bool) -> Self {
        Pass {
            train,
            wants: Wants::Everything,
        }
    }

    /// Only the loss (`Architecture::loss`, `Architecture::eval_loss`).
    pub fn loss(train: bool) -> Self {
        Pass {
            train,
            wants: Wants::Loss,
        }
    }

    /// Only the embeddings, in evaluation mode (`Architecture::encode`).
    pub fn encode() -> Self {
        Pass {
            train: false,
            wants: Wants::Embeddings,
        }
    }

    /// Whether the caller wants the loss.
    pub fn wants_loss(&self) -> bool {
        self.wants != Wants::Embeddings
    }

    /// Whether the caller wants cell embeddings.
    pub fn wants_embeddings(&self) -> bool {
        self.wants != Wants::Loss
    }

    /// Whether the caller wants every output (logits at every position,
    /// hidden states).
    pub fn wants_everything(&self) -> bool {
        self.wants == Wants::Everything
    }
}

/// The half of the contract a model author writes: the architecture, as
/// one forward pass ([`Architecture::run`]). Everything else is derived from
/// it: `forward` (every output), `loss` and `eval_loss` (the loss alone,
/// with and without dropout) and `encode` (embeddings alone).
///
/// A model built from the shared components runs on the real tokens of the
/// batch only ([`crate::components::Tokens`]): padding costs nothing, and
/// [`crate::components::Tokens::head`] runs a head only where the pass needs
/// it.
#[diagnostic::on_unimplemented(
    message = "`{Self}` does not implement the forward half of the forge model contract",
    label = "`{Self}` needs `impl Architecture for {Self}`",
    note = "write `impl forge_core::Architecture for {Self} {{ fn run(&self, batch: &Batch, pass: Pass) -> ModelOutput {{ .. }} }}`"
)]
pub trait Architecture {
    /// The model's forward pass on a batch. With `pass.train`, dropout is
    /// active; `pass.wants` says which outputs to compute (the others may be
    /// left `None`). A loss is computed when the batch has targets
    /// (`labels`, `masked_positions`) and the pass wants it.
    fn run(&self, batch: &Batch, pass: Pass) -> ModelOutput;

    /// Every output: [`Architecture::run`] with [`Pass::everything`].
    fn forward(&self, batch: &Batch, train: bool) -> ModelOutput {
        self.run(batch, Pass::everything(train))
    }

    /// The training loss alone (training mode), or `None` when the batch has
    /// no targets. Pretraining calls this.
    fn loss(&self, batch: &Batch) -> Option<Tensor> {
        self.run(batch, Pass::loss(true)).loss
    }

    /// The same loss in evaluation mode (no dropout): what validation
    /// computes, under `tch::no_grad`.
    fn eval_loss(&self, batch: &Batch) -> Option<Tensor> {
        self.run(batch, Pass::loss(false)).loss
    }

    /// Cell embeddings (B,H) without prediction heads, in evaluation mode.
    /// Callers wrap it in `tch::no_grad` when they do not need gradients.
    ///
    /// # Panics
    /// When `run` gives no embeddings for [`Pass::encode`] (a bug in the
    /// model, named in the message).
    fn encode(&self, batch: &Batch) -> Tensor {
        self.run(batch, Pass::encode())
            .embeddings
            .unwrap_or_else(|| {
                panic!(
                    "{}::run returned no embeddings for Pass::encode()",
                    std::any::type_name::<Self>()
                )
            })
    }
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
    fn run(&self, batch: &Batch, pass: Pass) -> ModelOutput {
        (**self).run(batch, pass)
    }
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
