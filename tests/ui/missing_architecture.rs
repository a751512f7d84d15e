// A derived model must implement the forward/encode half of the contract.
use forge_core::ForgeModel;
use forge_core::components::TransformerEncoder;

#[derive(ForgeModel)]
#[forge(name = "no_forward")]
struct NoForward {
    encoder: TransformerEncoder,
}

fn main() {}
