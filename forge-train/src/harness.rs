//! Runs a config's `eval.benchmarks` with a model on the cells of a data
//! pipeline, as scModelForge's `EvalHarness` does: embeddings are computed
//! once per dataset (`eval.batch_size` cells per batch), then every
//! benchmark runs on them.
//!
//! Used during pretraining (every `eval.every_n_epochs` epochs, on all the
//! training data under the dataset name `val`, as scModelForge's
//! `AssessmentCallback`) and by `forge assess --config` (scModelForge's
//! `benchmark` command, dataset name `data`).
//!
//! The benchmarks themselves are pure functions in
//! [`forge_assess::benchmarks`]; this module only embeds cells and reads
//! obs columns.

use tch::Device;

use crate::embed::embed_cells;
use crate::train::AssessmentMetric;
use forge_assess::benchmarks::{self, Benchmark, BenchmarkResult};
use forge_assess::ndarray::ArrayView2;
use forge_core::config::{ConfigError, ConfigErrors, EvalConfig};
use forge_core::error::{ForgeError, Result};
use forge_core::model::ForgeModel;
use forge_data::DataPipeline;

/// The benchmarks of a config, ready to run.
#[derive(Debug, Clone)]
pub struct Harness {
    benchmarks: Vec<Benchmark>,
    every_n_epochs: i64,
    batch_size: usize,
}

/// One label per cell of `pipeline` (files in order) from obs column `key`,
/// or `None` when some file has no such column.
pub fn obs_labels(pipeline: &DataPipeline, key: &str) -> Option<Vec<String>> {
    let corpus = pipeline.corpus();
    let mut out = Vec::with_capacity(corpus.n_cells());
    for i in 0..corpus.n_files() {
        let column = corpus.file(i).obs_column(key).ok()?;
        out.extend((0..column.len()).map(|c| column.label(c).unwrap_or("NA").to_string()));
    }
    Some(out)
}

impl Harness {
    /// The benchmarks of `eval` (`[linear_probe]` when the list is empty).
    pub fn from_config(eval: &EvalConfig) -> std::result::Result<Self, ConfigErrors> {
        Ok(Harness {
            benchmarks: benchmarks::from_config(eval)?,
            every_n_epochs: eval.every_n_epochs,
            batch_size: eval.batch_size.max(1) as usize,
        })
    }

    /// The benchmarks.
    pub fn benchmarks(&self) -> &[Benchmark] {
        &self.benchmarks
    }

    /// Whether the benchmarks run after `epoch` (0-based) during training:
    /// when `epoch` is a multiple of `every_n_epochs`, as scModelForge's
    /// callback decides (so after the first epoch, then every n-th).
    pub fn due(&self, epoch: usize) -> bool {
        self.every_n_epochs > 0 && epoch as i64 % self.every_n_epochs == 0
    }

    /// Refuses, before any training, when the data lacks an obs column a
    /// benchmark needs, naming the columns it has.
    pub fn check_data(&self, pipeline: &DataPipeline) -> Result<()> {
        let mut errors = ConfigErrors::new("config");
        for (i, b) in self.benchmarks.iter().enumerate() {
            for key in b.required_obs_keys() {
                if obs_labels(pipeline, key).is_none() {
                    let have: Vec<String> = (0..pipeline.corpus().n_files())
                        .flat_map(|f| pipeline.corpus().file(f).obs_columns())
                        .map(|c| c.name)
                        .collect();
                    errors.push(
                        format!("eval.benchmarks[{i}]"),
                        format!(
                            "{} needs obs column `{key}`, which the data does not have; \
                             set its params (e.g. cell_type_key) to one of: {}",
                            b.name(),
                            have.join(", ")
                        ),
                    );
                }
            }
        }
        errors.into_result(()).map_err(ForgeError::Config)
    }

    /// Embeds every cell of `pipeline` with `model` and runs each benchmark
    /// on the embedding, naming the results `dataset_name`.
    pub fn run(
        &self,
        model: &dyn ForgeModel,
        pipeline: &DataPipeline,
        dataset_name: &str,
        device: Device,
    ) -> Result<Vec<BenchmarkResult>> {
        let emb = embed_cells(model, pipeline, self.batch_size, device)?;
        let view = ArrayView2::from_shape((emb.n_cells, emb.dim), &emb.values).map_err(|e| {
            ForgeError::Config(ConfigErrors {
                source_name: "config".into(),
                errors: vec![ConfigError::new("embedding", e.to_string())],
            })
        })?;
        let obs = |key: &str| obs_labels(pipeline, key);
        let mut results = Vec::with_capacity(self.benchmarks.len());
        for (i, b) in self.benchmarks.iter().enumerate() {
            let r = b.run(view, &obs, dataset_name).map_err(|e| {
                ForgeError::Config(ConfigErrors {
                    source_name: "config".into(),
                    errors: vec![ConfigError::new(
                        format!("eval.benchmarks[{i}]"),
                        format!("{}: {e}", b.name()),
                    )],
                })
            })?;
            results.push(r);
        }
        Ok(results)
    }
}

/// The results as metrics-log records at `step` / `epoch`.
pub fn as_metrics(results: &[BenchmarkResult], step: i64, epoch: usize) -> Vec<AssessmentMetric> {
    results
        .iter()
        .flat_map(|r| {
            r.metrics
                .iter()
                .map(move |(metric, value)| AssessmentMetric {
                    step,
                    epoch,
                    benchmark: r.benchmark_name.clone(),
                    dataset: r.dataset_name.clone(),
                    metric: metric.clone(),
                    value: *value,
                })
        })
        .collect()
}

/// The benchmarks as the training loop runs them: after every epoch that
/// is [`Harness::due`], on all cells of `pipeline` under the dataset name
/// `val` (scModelForge's `AssessmentCallback`), printing one summary line
/// per benchmark.
pub struct TrainingAssessment<'a> {
    /// The benchmarks.
    pub harness: &'a Harness,
    /// The training data.
    pub pipeline: &'a DataPipeline,
    /// Where the model lives.
    pub device: Device,
}

impl std::fmt::Debug for TrainingAssessment<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TrainingAssessment")
            .field("harness", self.harness)
            .field("device", &self.device)
            .finish_non_exhaustive()
    }
}

impl crate::train::EpochAssessment for TrainingAssessment<'_> {
    fn after_epoch(
        &self,
        model: &dyn ForgeModel,
        epoch: usize,
        step: i64,
    ) -> Result<Vec<AssessmentMetric>> {
        if !self.harness.due(epoch) {
            return Ok(Vec::new());
        }
        let results = self.harness.run(model, self.pipeline, "val", self.device)?;
        for r in &results {
            eprintln!("epoch {} assessment {}", epoch + 1, r.summary());
        }
        Ok(as_metrics(&results, step, epoch))
    }
}
