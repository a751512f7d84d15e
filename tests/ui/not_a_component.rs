// A field without attributes must be a Component; the error is on its type.
use forge_core::tch::{Tensor, nn};
use forge_core::{Architecture, Batch, ForgeModel, ModelOutput, Pass};

#[derive(ForgeModel)]
#[forge(name = "plain_linear")]
struct PlainLinear {
    proj: nn::Linear,
}

impl Architecture for PlainLinear {
    fn run(&self, _: &Batch, _: Pass) -> ModelOutput {
        ModelOutput::default()
    }
    fn encode(&self, batch: &Batch) -> Tensor {
        batch.values().unwrap().shallow_clone()
    }
}

fn main() {}
