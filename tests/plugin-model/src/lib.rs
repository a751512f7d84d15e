//! An example plugin: a model defined outside forge-core with
//! `#[derive(ForgeModel)]`. Linking this crate (e.g. `use
//! forge_plugin_example as _;`) is all it takes for
//! `forge_core::registry` to know `example_plugin_model`.
//!
//! The architecture is deliberately small: embedding, one-layer encoder
//! built from an expression, a value-prediction head, mean pooling, and a
//! learned scale, and a width read from the model's own option.

// Models that forge-gen adds to this crate (`forge-gen new NAME --crate
// tests/plugin-model`) are declared between these lines.
// forge-gen: model-modules begin
// forge-gen: model-modules end

use forge_core::components::{
    ExpressionPredictionHead, GeneExpressionEmbedding, TransformerEncoder, init,
};
use forge_core::config::options::{ModelOptions, OptionChecks};
use forge_core::config::{ModelConfig, Pooling};
use forge_core::tch::{Reduction, Tensor, nn};
use forge_core::{Architecture, Batch, ForgeModel, ModelOutput, Pass};

forge_core::model_options! {
    /// Options of `example_plugin_model` (keys of the YAML section `model`).
    pub struct ExamplePluginOptions {
        /// Width of the model's `width` field; `null` means
        /// `hidden_dim / 2`.
        plugin_width: Option<i64> = None,
    }
}

impl ModelOptions for ExamplePluginOptions {
    fn check(&self, _model: &ModelConfig, c: &mut OptionChecks<'_>) {
        if let Some(w) = self.plugin_width
            && w < 1
        {
            c.fail("plugin_width", format!("must be at least 1, got {w}"));
        }
    }
}

/// A tiny value-regression model.
#[derive(Debug, ForgeModel)]
#[forge(name = "example_plugin_model", options = ExamplePluginOptions)]
pub struct ExamplePluginModel {
    /// Token embedding.
    pub embedding: GeneExpressionEmbedding,
    /// One encoder layer, whatever `num_layers` says.
    #[forge(build = TransformerEncoder::new(
        path, 1, config.hidden_dim, config.num_heads,
        config.ffn_dim_or_default(), config.dropout, config.activation,
    ))]
    pub encoder: TransformerEncoder,
    /// Predicts each position's value.
    pub head: ExpressionPredictionHead,
    /// A learned output scale, (1).
    #[forge(build = root.var("scale", &[1], nn::Init::Const(1.0)))]
    pub scale: Tensor,
    /// Extra projection with its own init helper.
    #[forge(build = init::linear(path, config.hidden_dim, config.hidden_dim))]
    pub proj: nn::Linear,
    /// Pooling, from `model.pooling`.
    #[forge(config)]
    pub pooling: Pooling,
    /// Width from the model's own optional `plugin_width`, defaulted.
    #[forge(option = plugin_width, default = config.hidden_dim / 2)]
    pub width: i64,
    /// Bookkeeping that holds no parameters.
    #[forge(skip)]
    pub calls: std::cell::Cell<u64>,
}

impl Architecture for ExamplePluginModel {
    fn run(&self, batch: &Batch, pass: Pass) -> ModelOutput {
        self.calls.set(self.calls.get() + 1);
        let x = self.embedding.forward(batch, pass.train);
        let hidden = self
            .encoder
            .forward(&x, false, pass.train)
            .map(|rows| rows.apply(&self.proj));
        let at = batch.labels().map(|labels| labels.ne(-100));
        let (loss, logits) = hidden.head_loss(
            pass,
            at.as_ref().zip(batch.values()),
            |rows| self.head.forward(rows) * &self.scale,
            |predicted, values| predicted.mse_loss(values, Reduction::Mean),
        );
        hidden.output(pass, self.pooling, loss, logits)
    }
}
