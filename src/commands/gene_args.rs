//! Command-line overrides of how a file's genes are matched to a model's
//! vocabulary, shared by the commands that read cells with a checkpoint
//! (`embed`, `assess`). Unset flags keep what the checkpoint was trained
//! with (its `data` section), then the config defaults.

use std::path::Path;

use forge_core::checkpoint::{LoadedModel, load_pretrained};
use forge_core::config::DataConfig;
use forge_core::data::DataPipeline;
use forge_core::embed::checkpoint_pipeline;
use forge_core::tch::Device;

#[derive(Debug, Clone, Default, clap::Args)]
pub struct GeneArgs {
    /// Read adata.raw instead of X (default: as the model was trained).
    #[arg(long)]
    pub use_raw: Option<bool>,
    /// var column holding gene names (default: as the model was trained,
    /// else the var index).
    #[arg(long)]
    pub gene_key: Option<String>,
    /// Match gene symbols regardless of case.
    #[arg(long)]
    pub case_insensitive_genes: bool,
    /// Least share of the file's expression the vocabulary must cover, in
    /// [0, 1]; 0 disables the check (default: data.min_gene_coverage, 0.5).
    #[arg(long, value_parser = share)]
    pub min_gene_coverage: Option<f64>,
}

impl GeneArgs {
    /// `data` with the flags that were given applied.
    pub fn apply(&self, mut data: DataConfig) -> DataConfig {
        if let Some(raw) = self.use_raw {
            data.use_raw = raw;
        }
        if let Some(key) = &self.gene_key {
            data.gene_key = Some(key.clone());
        }
        data.case_insensitive_genes |= self.case_insensitive_genes;
        if let Some(share) = self.min_gene_coverage {
            data.min_gene_coverage = share;
        }
        data
    }

    /// `data` for cells read with the checkpoint in `dir`.
    pub fn checkpoint_data(&self, dir: &Path) -> anyhow::Result<DataConfig> {
        Ok(self.apply(forge_core::embed::checkpoint_data_config(dir)?))
    }

    /// Loads the checkpoint in `dir` onto `device` and a pipeline reading
    /// `cells` the way it was trained (these flags applied), printing the
    /// gene coverage line.
    pub fn open_checkpoint(
        &self,
        dir: &Path,
        cells: &Path,
        device: Device,
    ) -> anyhow::Result<(LoadedModel, DataPipeline)> {
        let loaded = load_pretrained(dir, device)?;
        let data = self.checkpoint_data(dir)?;
        let pipeline = checkpoint_pipeline(&loaded, dir, &data, &[cells.to_path_buf()])?;
        for cov in pipeline.coverage() {
            eprintln!("{cov}");
        }
        Ok((loaded, pipeline))
    }
}

fn share(s: &str) -> Result<f64, String> {
    let v: f64 = s
        .parse()
        .map_err(|_| format!("`{s}` is not a number; give a share in [0, 1], e.g. 0.5"))?;
    if (0.0..=1.0).contains(&v) {
        Ok(v)
    } else {
        Err(format!(
            "{v} is outside [0, 1]; e.g. 0.5 (half the expression), 0 (no check)"
        ))
    }
}
