//! Fine-tuning metrics and their log file (`metrics.csv` for
//! `training.logger` `csv` and `wandb`; `metrics.jsonl` plus TensorBoard
//! events in `<log_dir>/<run_name or "default">/version_<N>` for
//! `tensorboard`), appended as training goes.
//!
//! Two kinds of rows, told apart by `split`, as Lightning's logger mixes
//! them in scModelForge's fine-tuning: a `train` row every
//! `training.log_every_n_steps` optimizer steps (the mean loss of the steps
//! since the last one, TensorBoard tag `train/loss`), and an `epoch` row at
//! each epoch's end (the epoch's mean loss as `train/loss_epoch`, and the
//! validation metrics).

use std::path::Path;

use serde::Serialize;

use crate::train::metrics::{LogFile, LoggerKind};
use crate::train::tensorboard::{EventWriter, next_version_dir};
use forge_core::config::TrainingConfig;
use forge_core::error::Result;

/// What the optimizer steps since the last `train` row did.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct StepMetrics {
    /// Epoch, 0-based.
    pub epoch: usize,
    /// Optimizer steps taken so far.
    pub step: i64,
    /// Mean training loss of the window's batches.
    pub train_loss: f64,
    /// Head learning rate at the window's last step.
    pub head_lr: f64,
    /// Backbone (or adapter) learning rate at the window's last step; 0
    /// while frozen.
    pub backbone_lr: f64,
    /// Whether the backbone (or its adapters) trained.
    pub backbone_trained: bool,
    /// Training cells per second over the window.
    pub cells_per_s: f64,
}

/// What one epoch did.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct EpochMetrics {
    /// Epoch, 0-based.
    pub epoch: usize,
    /// Optimizer steps taken so far.
    pub step: i64,
    /// Mean training loss (cross-entropy or MSE).
    pub train_loss: f64,
    /// Mean validation loss, when there is a validation set.
    pub val_loss: Option<f64>,
    /// Validation accuracy (classification).
    pub accuracy: Option<f64>,
    /// Validation macro-F1 (classification).
    pub f1_macro: Option<f64>,
    /// Validation mean squared error (regression).
    pub mse: Option<f64>,
    /// Head learning rate at the epoch's last step.
    pub head_lr: f64,
    /// Backbone (or adapter) learning rate at the epoch's last step; 0
    /// while frozen.
    pub backbone_lr: f64,
    /// Whether the backbone (or its adapters) trained this epoch.
    pub backbone_trained: bool,
    /// Training cells per second.
    pub cells_per_s: f64,
    /// Wall time of the epoch, validation included.
    pub seconds: f64,
}

/// A duration in seconds for people: `12s` and `3.4s` as usual, and two
/// significant digits below a second (`0.042s`), so that a quick epoch
/// never reads `0.0s`.
pub fn seconds_text(seconds: f64) -> String {
    if !seconds.is_finite() || seconds <= 0.0 {
        return format!("{seconds:.1}s");
    }
    if seconds >= 10.0 {
        return format!("{seconds:.0}s");
    }
    if seconds >= 1.0 {
        return format!("{seconds:.1}s");
    }
    let digits = (1 - seconds.log10().floor() as i32).max(1) as usize;
    format!("{seconds:.digits$}s")
}

impl EpochMetrics {
    /// One line for the terminal.
    pub fn line(&self, max_epochs: usize) -> String {
        let opt =
            |name: &str, v: Option<f64>| v.map(|v| format!(" {name} {v:.4}")).unwrap_or_default();
        format!(
            "epoch {}/{} train loss {:.4}{}{}{}{} | backbone {} | {:.1} cells/s, {}",
            self.epoch + 1,
            max_epochs,
            self.train_loss,
            opt("val loss", self.val_loss),
            opt("accuracy", self.accuracy),
            opt("f1_macro", self.f1_macro),
            opt("mse", self.mse),
            if self.backbone_trained {
                "training"
            } else {
                "frozen"
            },
            self.cells_per_s,
            seconds_text(self.seconds)
        )
    }
}

const CSV_HEADER: &str = "epoch,step,split,train_loss,val_loss,accuracy,f1_macro,mse,head_lr,\
                          backbone_lr,backbone_trained,cells_per_s,seconds";

/// The metrics file of a fine-tuning run.
#[derive(Debug)]
pub struct FinetuneLog {
    file: LogFile,
    events: Option<EventWriter>,
}

impl FinetuneLog {
    /// Opens `dir/metrics.csv` (`logger` `csv` or `wandb`, which warns) or
    /// `dir/metrics.jsonl` and an event file (`tensorboard`) for appending.
    /// Any other logger is refused.
    pub fn open(dir: &Path, training: &TrainingConfig) -> Result<Self> {
        let logger = LoggerKind::from_config(training)?;
        if let Some(warning) = logger.warning(training) {
            eprintln!("{warning}");
        }
        let (format, events) = match logger {
            LoggerKind::Tensorboard => {
                let name = training.run_name.as_deref().unwrap_or("default");
                let events = EventWriter::create(&next_version_dir(dir, name))?;
                ("jsonl", Some(events))
            }
            _ => ("csv", None),
        };
        Ok(FinetuneLog {
            file: LogFile::open(dir, format, CSV_HEADER)?,
            events,
        })
    }

    /// The file.
    pub fn path(&self) -> &Path {
        self.file.path()
    }

    /// Appends one `train` row and flushes.
    pub fn record_step(&mut self, m: &StepMetrics) -> Result<()> {
        let line = if self.file.is_csv() {
            format!(
                "{},{},train,{},,,,,{},{},{},{},",
                m.epoch,
                m.step,
                m.train_loss,
                m.head_lr,
                m.backbone_lr,
                m.backbone_trained,
                m.cells_per_s
            )
        } else {
            with_split(m, "train")
        };
        self.file.write_line(&line)?;
        if let Some(events) = &mut self.events {
            events.scalars(m.step, &[("train/loss", m.train_loss)])?;
        }
        Ok(())
    }

    /// Appends one `epoch` row and flushes.
    pub fn record(&mut self, m: &EpochMetrics) -> Result<()> {
        let line = if self.file.is_csv() {
            let o = |v: Option<f64>| v.map(|v| v.to_string()).unwrap_or_default();
            format!(
                "{},{},epoch,{},{},{},{},{},{},{},{},{},{}",
                m.epoch,
                m.step,
                m.train_loss,
                o(m.val_loss),
                o(m.accuracy),
                o(m.f1_macro),
                o(m.mse),
                m.head_lr,
                m.backbone_lr,
                m.backbone_trained,
                m.cells_per_s,
                m.seconds
            )
        } else {
            with_split(m, "epoch")
        };
        self.file.write_line(&line)?;
        if let Some(events) = &mut self.events {
            // scModelForge's fine-tuning names: `train/loss` (per step, in
            // `record_step`), `val/loss`, `val/accuracy`; the epoch's mean
            // training loss as Lightning names an epoch aggregate; forge's
            // other metrics beside them.
            let mut scalars = vec![
                ("train/loss_epoch", m.train_loss),
                ("epoch", m.epoch as f64),
                ("lr/head", m.head_lr),
                ("lr/backbone", m.backbone_lr),
            ];
            for (tag, v) in [
                ("val/loss", m.val_loss),
                ("val/accuracy", m.accuracy),
                ("val/f1_macro", m.f1_macro),
                ("val/mse", m.mse),
            ] {
                if let Some(v) = v {
                    scalars.push((tag, v));
                }
            }
            events.scalars(m.step, &scalars)?;
        }
        Ok(())
    }
}

/// One JSON line: the record's fields after `"split"`.
fn with_split(m: &impl Serialize, split: &str) -> String {
    let mut row = serde_json::Map::new();
    row.insert("split".into(), split.into());
    if let Ok(serde_json::Value::Object(fields)) = serde_json::to_value(m) {
        row.extend(fields);
    }
    serde_json::Value::Object(row).to_string()
}

#[cfg(test)]
mod tests {
    use super::seconds_text;

    /// A quick epoch never reads `0.0s`.
    #[test]
    fn seconds_keep_two_significant_digits_below_one() {
        assert_eq!(seconds_text(0.0423), "0.042s");
        assert_eq!(seconds_text(0.00051), "0.00051s");
        assert_eq!(seconds_text(0.5), "0.50s");
        assert_eq!(seconds_text(3.44), "3.4s");
        assert_eq!(seconds_text(42.4), "42s");
        assert_eq!(seconds_text(0.0), "0.0s");
    }
}
