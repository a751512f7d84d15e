// Option keys are checked against the model's own options struct, with the
// compiler's suggestion, on the user's token.
use forge_core::components::TransformerEncoder;
use forge_core::config::options::ModelOptions;
use forge_core::tch::Tensor;
use forge_core::{Architecture, Batch, ForgeModel, ModelOutput, Pass};

forge_core::model_options! {
    /// Options of `misspelt_option`.
    pub struct MisspeltOptions {
        /// A scale.
        output_scale: f64 = 1.0,
    }
}

impl ModelOptions for MisspeltOptions {}

#[derive(ForgeModel)]
#[forge(name = "misspelt_option", options = MisspeltOptions)]
struct MisspeltOption {
    encoder: TransformerEncoder,
    #[forge(option = output_scal)]
    scale: f64,
}

impl Architecture for MisspeltOption {
    fn run(&self, _: &Batch, _: Pass) -> ModelOutput {
        ModelOutput::default()
    }
    fn encode(&self, batch: &Batch) -> Tensor {
        batch.values().unwrap().shallow_clone()
    }
}

fn main() {}
