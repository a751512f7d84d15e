//! How the commands that read cells with a checkpoint (`embed`, `assess`)
//! read them, and command-line overrides of how a file's genes are matched
//! to the model's vocabulary.
//!
//! The `data` settings come from, in order: `--config FILE` (the `data`
//! section of a training YAML, forge's or scModelForge's); the checkpoint's
//! own record (`forge_config.yaml`, written by `forge train`); else, for a
//! checkpoint with no record (one written by scModelForge), the way
//! scModelForge's evaluation reads cells: `X` as stored, no preprocessing,
//! which is said in one line. Flags given on top override single keys.

use std::path::{Path, PathBuf};

use forge_core::ForgeConfig;
use forge_core::checkpoint::{LoadedModel, load_pretrained};
use forge_core::config::DataConfig;
use forge_core::tch::Device;
use forge_data::DataPipeline;
use forge_train::embed::{
    TRAINING_CONFIG_FILE, checkpoint_data_config, checkpoint_pipeline, unrecorded_data_config,
};

#[derive(Debug, Clone, Default, clap::Args)]
pub struct GeneArgs {
    /// Training config (forge's or scModelForge's YAML) whose `data`
    /// section says how to read cells: `X` or raw, preprocessing, gene
    /// column (default: the checkpoint's record of its training; with
    /// none, `X` as stored, as scModelForge's evaluation reads it).
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
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

    /// `data` for cells read with the checkpoint in `dir`: `--config`, the
    /// checkpoint's record, or scModelForge's evaluation reading (said on
    /// stderr), with the flags applied.
    pub fn checkpoint_data(&self, dir: &Path) -> anyhow::Result<DataConfig> {
        let data = match &self.config {
            Some(path) => ForgeConfig::load(path)?.data,
            None => match checkpoint_data_config(dir)? {
                Some(recorded) => recorded,
                None => {
                    eprintln!(
                        "note: {} has no {TRAINING_CONFIG_FILE} recording how its cells were \
                         preprocessed; reading X as stored, as scModelForge's evaluation does \
                         (give --config TRAINING.yaml to read cells as its data section says, \
                         or --use-raw true for adata.raw)",
                        dir.display()
                    );
                    unrecorded_data_config()
                }
            },
        };
        Ok(self.apply(data))
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
        for key in &loaded.ignored_keys {
            eprintln!("warning: {}: skipped {key}", dir.display());
        }
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
