// Config keys are checked against ModelConfig, with the compiler's suggestion.
use forge_core::components::TransformerEncoder;
use forge_core::tch::Tensor;
use forge_core::{Architecture, Batch, ForgeModel, ModelOutput, Pass};

#[derive(ForgeModel)]
#[forge(name = "misspelt")]
struct Misspelt {
    encoder: TransformerEncoder,
    #[forge(config = hiden_dim)]
    width: i64,
}

impl Architecture for Misspelt {
    fn run(&self, _: &Batch, _: Pass) -> ModelOutput {
        ModelOutput::default()
    }
    fn encode(&self, batch: &Batch) -> Tensor {
        batch.values().unwrap().shallow_clone()
    }
}

fn main() {}
