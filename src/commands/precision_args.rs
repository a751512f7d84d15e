//! `--fp32` of `forge embed` and `forge assess`: by default a checkpoint
//! runs in the precision it was trained in (`training.precision` of its
//! `forge_config.yaml`; float32 for folders without one).

use std::path::Path;

use forge_core::config::Precision;
use forge_core::precision::autocast_kind;
use forge_core::tch::Device;
use forge_train::embed::inference_precision;

#[derive(Debug, Clone, clap::Args)]
pub struct PrecisionArgs {
    /// Run the model in float32 instead of the checkpoint's training
    /// precision (e.g. bf16-mixed).
    #[arg(long)]
    pub fp32: bool,
}

impl PrecisionArgs {
    /// The precision to run the checkpoint in `dir` on `device`, with a
    /// note on stderr when it is not plain float32.
    pub fn resolve(&self, dir: &Path, device: Device) -> anyhow::Result<Precision> {
        let precision = inference_precision(dir, self.fp32)?;
        if autocast_kind(precision, device).is_some() {
            eprintln!(
                "running in {precision} (the checkpoint's training.precision); --fp32 for float32"
            );
        }
        Ok(precision)
    }
}
