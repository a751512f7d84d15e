//! The metrics log of a training run: one JSON object per line (JSON lines)
//! or one CSV row per record, appended as training goes so a crash keeps
//! everything logged so far; with `logger: tensorboard` also a TensorBoard
//! event file (see [`super::tensorboard`]).

use std::fs::{File, OpenOptions};
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

use serde::Serialize;

use super::tensorboard::{EventWriter, next_version_dir};
use forge_core::config::{ConfigErrors, OptimizerName, TrainingConfig};
use forge_core::error::{ForgeError, Result};

/// The metrics logger `training.logger` names (case does not matter, as in
/// scModelForge).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LoggerKind {
    /// `metrics.csv` in the log folder.
    Csv,
    /// TensorBoard event files in `<log_dir>/<run_name>/version_<N>`, and
    /// `metrics.jsonl` in the log folder.
    Tensorboard,
    /// Weights & Biases: its server cannot be reached from forge, so this
    /// logs as `csv` does, with a warning.
    Wandb,
}

impl LoggerKind {
    /// The accepted values of `training.logger`.
    pub const ACCEPTED: &'static [&'static str] = &["csv", "tensorboard", "wandb"];

    /// Reads `training.logger`; any other value is refused, naming the
    /// accepted ones.
    pub fn from_config(training: &TrainingConfig) -> std::result::Result<Self, ConfigErrors> {
        match training.logger.to_ascii_lowercase().as_str() {
            "csv" => Ok(LoggerKind::Csv),
            "tensorboard" => Ok(LoggerKind::Tensorboard),
            "wandb" => Ok(LoggerKind::Wandb),
            _ => Err(ConfigErrors::single(
                "config",
                "training.logger",
                format!(
                    "invalid value \"{}\"; forge logs with: {} (wandb logs as csv does)",
                    training.logger,
                    Self::ACCEPTED.join(", ")
                ),
            )),
        }
    }

    /// The one-line warning this logger needs, if any: `wandb` (no server
    /// to reach), or a `run_name` that only `tensorboard` uses.
    pub fn warning(self, training: &TrainingConfig) -> Option<String> {
        match self {
            LoggerKind::Wandb => {
                let mut unused = Vec::new();
                if let Some(p) = &training.wandb_project {
                    unused.push(format!("wandb_project \"{p}\""));
                }
                if let Some(r) = &training.run_name {
                    unused.push(format!("run_name \"{r}\""));
                }
                let unused = match unused.len() {
                    0 => String::new(),
                    1 => format!(" ({} is not used)", unused[0]),
                    _ => format!(" ({} are not used)", unused.join(" and ")),
                };
                Some(format!(
                    "warning: training.logger: wandb cannot reach its server from here; forge \
                     logs to metrics.csv as `logger: csv` does{unused}"
                ))
            }
            LoggerKind::Csv => training.run_name.as_deref().map(|r| {
                format!(
                    "warning: training.run_name \"{r}\" names the run folder of `logger: \
                     tensorboard` only; with csv forge writes metrics.csv in the log folder"
                )
            }),
            LoggerKind::Tensorboard => None,
        }
    }
}

/// The name Lightning's `LearningRateMonitor` gives the learning rate of
/// each of the optimizer's two parameter groups (decayed, not decayed).
fn lr_tags(name: OptimizerName) -> [&'static str; 2] {
    match name {
        OptimizerName::Adamw => ["lr-AdamW/pg1", "lr-AdamW/pg2"],
        OptimizerName::Adam => ["lr-Adam/pg1", "lr-Adam/pg2"],
        OptimizerName::Sgd => ["lr-SGD/pg1", "lr-SGD/pg2"],
    }
}

/// One logged record.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct StepMetrics {
    /// Optimizer steps taken.
    pub step: i64,
    /// Epoch (0-based).
    pub epoch: usize,
    /// `train` or `val`.
    pub split: &'static str,
    /// Mean loss over the records since the last one.
    pub loss: f64,
    /// exp(loss): meaningful for cross-entropy losses.
    pub perplexity: f64,
    /// Learning rate at the last step.
    pub lr: f64,
    /// Gradient norm before clipping (train only).
    pub grad_norm: Option<f64>,
    /// Throughput since the last record.
    pub cells_per_s: f64,
}

/// An append-only metrics file: `metrics.csv` (with a header line when new)
/// or `metrics.jsonl`, flushed after every line. Shared by the pretraining
/// and fine-tuning logs.
#[derive(Debug)]
pub(crate) struct LogFile {
    path: PathBuf,
    out: BufWriter<File>,
    csv: bool,
}

impl LogFile {
    /// Opens (appending) `dir/metrics.csv` when `logger` is "csv", writing
    /// `csv_header` first if the file is new; else `dir/metrics.jsonl`.
    pub(crate) fn open(dir: &Path, logger: &str, csv_header: &str) -> Result<Self> {
        Self::open_named(dir, "metrics", logger, csv_header)
    }

    /// As [`LogFile::open`], for `dir/<stem>.csv` or `dir/<stem>.jsonl`.
    pub(crate) fn open_named(
        dir: &Path,
        stem: &str,
        logger: &str,
        csv_header: &str,
    ) -> Result<Self> {
        std::fs::create_dir_all(dir).map_err(|e| ForgeError::io(dir, e))?;
        let csv = logger == "csv";
        let path = dir.join(format!("{stem}.{}", if csv { "csv" } else { "jsonl" }));
        let fresh = !path.exists();
        let file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
            .map_err(|e| ForgeError::io(&path, e))?;
        let mut log = LogFile {
            path,
            out: BufWriter::new(file),
            csv,
        };
        if csv && fresh {
            log.write_line(csv_header)?;
        }
        Ok(log)
    }

    pub(crate) fn path(&self) -> &Path {
        &self.path
    }

    /// Whether lines are CSV rows (else JSON objects).
    pub(crate) fn is_csv(&self) -> bool {
        self.csv
    }

    /// Appends `line` and flushes.
    pub(crate) fn write_line(&mut self, line: &str) -> Result<()> {
        writeln!(self.out, "{line}")
            .and_then(|_| self.out.flush())
            .map_err(|e| ForgeError::io(&self.path, e))
    }
}

/// One metric of one benchmark on one dataset, as logged during training
/// under `assessment/<benchmark>/<dataset>/<metric>`.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct AssessmentMetric {
    /// Optimizer steps taken when the benchmark ran.
    pub step: i64,
    /// Epoch (0-based) after which it ran.
    pub epoch: usize,
    /// Benchmark name, e.g. `linear_probe`.
    pub benchmark: String,
    /// Dataset name (`val` during training, as in scModelForge).
    pub dataset: String,
    /// Metric name, e.g. `accuracy`.
    pub metric: String,
    /// Its value.
    pub value: f64,
}

impl AssessmentMetric {
    /// The TensorBoard tag: `assessment/<benchmark>/<dataset>/<metric>`.
    pub fn tag(&self) -> String {
        format!(
            "assessment/{}/{}/{}",
            self.benchmark, self.dataset, self.metric
        )
    }
}

/// Appends metrics to `metrics.csv` or `metrics.jsonl` in the log folder,
/// benchmark results to `assessment.csv` / `assessment.jsonl` beside it,
/// and both to a TensorBoard event file with `logger: tensorboard`.
#[derive(Debug)]
pub struct MetricsLog {
    dir: PathBuf,
    logger: LoggerKind,
    lr_tags: [&'static str; 2],
    file: LogFile,
    assessment: Option<LogFile>,
    events: Option<EventWriter>,
    pub(crate) records: Vec<StepMetrics>,
}

impl MetricsLog {
    /// Opens (appending) the metrics file in `dir`: `metrics.csv` for
    /// `logger: csv` and `wandb`, `metrics.jsonl` for `tensorboard`, which
    /// also starts an event file in `dir/<run_name or "default">/version_<N>`.
    /// An unknown logger is refused.
    pub fn open(dir: &Path, training: &TrainingConfig) -> Result<Self> {
        let logger = LoggerKind::from_config(training)?;
        let header = "step,epoch,split,loss,perplexity,lr,grad_norm,cells_per_s";
        let format = if logger == LoggerKind::Tensorboard {
            "jsonl"
        } else {
            "csv"
        };
        let events = match logger {
            LoggerKind::Tensorboard => {
                let name = training.run_name.as_deref().unwrap_or("default");
                Some(EventWriter::create(&next_version_dir(dir, name))?)
            }
            _ => None,
        };
        Ok(MetricsLog {
            dir: dir.to_path_buf(),
            logger,
            lr_tags: lr_tags(training.optimizer.name),
            file: LogFile::open(dir, format, header)?,
            assessment: None,
            events,
            records: Vec::new(),
        })
    }

    /// The log file.
    pub fn path(&self) -> &Path {
        self.file.path()
    }

    /// The logger in use.
    pub fn logger(&self) -> LoggerKind {
        self.logger
    }

    /// The TensorBoard event file, with `logger: tensorboard`.
    pub fn event_file(&self) -> Option<&Path> {
        self.events.as_ref().map(|e| e.path())
    }

    /// Appends one record and flushes.
    pub fn record(&mut self, m: StepMetrics) -> Result<()> {
        let line = if self.file.is_csv() {
            format!(
                "{},{},{},{},{},{},{},{}",
                m.step,
                m.epoch,
                m.split,
                m.loss,
                m.perplexity,
                m.lr,
                m.grad_norm.map(|g| g.to_string()).unwrap_or_default(),
                m.cells_per_s
            )
        } else {
            serde_json::to_string(&m).expect("metrics serialize")
        };
        self.file.write_line(&line)?;
        if let Some(events) = &mut self.events {
            // Lightning's names: `<split>/loss`, `<split>/perplexity`, the
            // LearningRateMonitor's `lr-<Optimizer>/pg<N>`,
            // `train/grad_norm` and `perf/cells_per_sec`.
            let loss_tag = format!("{}/loss", m.split);
            let ppl_tag = format!("{}/perplexity", m.split);
            let mut scalars: Vec<(&str, f64)> = vec![
                (&loss_tag, m.loss),
                (&ppl_tag, m.perplexity),
                ("epoch", m.epoch as f64),
            ];
            if m.split == "train" {
                scalars.push((self.lr_tags[0], m.lr));
                scalars.push((self.lr_tags[1], m.lr));
                scalars.push(("perf/cells_per_sec", m.cells_per_s));
            }
            if let Some(g) = m.grad_norm {
                scalars.push(("train/grad_norm", g));
            }
            events.scalars(m.step, &scalars)?;
        }
        self.records.push(m);
        Ok(())
    }

    /// Appends benchmark results: to `assessment.csv` (columns step, epoch,
    /// benchmark, dataset, metric, value) or `assessment.jsonl` beside the
    /// metrics file, and as `assessment/<benchmark>/<dataset>/<metric>`
    /// scalars to the TensorBoard event file.
    pub fn record_assessment(&mut self, metrics: &[AssessmentMetric]) -> Result<()> {
        if metrics.is_empty() {
            return Ok(());
        }
        let format = if self.file.is_csv() { "csv" } else { "jsonl" };
        if self.assessment.is_none() {
            let header = "step,epoch,benchmark,dataset,metric,value";
            self.assessment = Some(LogFile::open_named(
                &self.dir,
                "assessment",
                format,
                header,
            )?);
        }
        let file = self.assessment.as_mut().expect("opened above");
        for m in metrics {
            let line = if file.is_csv() {
                format!(
                    "{},{},{},{},{},{}",
                    m.step, m.epoch, m.benchmark, m.dataset, m.metric, m.value
                )
            } else {
                serde_json::to_string(m).expect("metrics serialize")
            };
            file.write_line(&line)?;
        }
        if let Some(events) = &mut self.events {
            let tags: Vec<String> = metrics.iter().map(AssessmentMetric::tag).collect();
            let scalars: Vec<(&str, f64)> = tags
                .iter()
                .zip(metrics)
                .map(|(t, m)| (t.as_str(), m.value))
                .collect();
            events.scalars(metrics[0].step, &scalars)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loggers_parse_refuse_and_warn() {
        let mut t = TrainingConfig {
            logger: "TensorBoard".into(),
            ..TrainingConfig::default()
        };
        assert_eq!(
            LoggerKind::from_config(&t).unwrap(),
            LoggerKind::Tensorboard
        );
        assert_eq!(LoggerKind::Tensorboard.warning(&t), None);
        t.logger = "mlflow".into();
        let err = LoggerKind::from_config(&t).unwrap_err().to_string();
        assert!(
            err.contains("training.logger: invalid value \"mlflow\"; forge logs with: csv, tensorboard, wandb"),
            "{err}"
        );
        t.logger = "wandb".into();
        // scModelForge's default project is set; with none, the warning
        // names nothing unused.
        t.wandb_project = None;
        assert_eq!(LoggerKind::from_config(&t).unwrap(), LoggerKind::Wandb);
        let w = LoggerKind::Wandb.warning(&t).unwrap();
        assert!(
            w.starts_with("warning: training.logger: wandb") && w.ends_with("does"),
            "{w}"
        );
        t.run_name = Some("r1".into());
        assert!(
            LoggerKind::Wandb
                .warning(&t)
                .unwrap()
                .ends_with("(run_name \"r1\" is not used)")
        );
        t.wandb_project = Some("p".into());
        assert!(
            LoggerKind::Wandb
                .warning(&t)
                .unwrap()
                .ends_with("(wandb_project \"p\" and run_name \"r1\" are not used)")
        );
        let w = LoggerKind::Csv.warning(&t).unwrap();
        assert!(w.starts_with("warning: training.run_name \"r1\""), "{w}");
        t.run_name = None;
        assert_eq!(LoggerKind::Csv.warning(&t), None);
    }
}
