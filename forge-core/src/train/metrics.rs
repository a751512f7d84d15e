//! The metrics log of a training run: one JSON object per line (JSON lines)
//! or one CSV row per record, appended as training goes so a crash keeps
//! everything logged so far.

use std::fs::{File, OpenOptions};
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::error::{ForgeError, Result};

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

/// Appends metrics to `metrics.csv` or `metrics.jsonl` in the log folder.
#[derive(Debug)]
pub struct MetricsLog {
    path: PathBuf,
    out: BufWriter<File>,
    csv: bool,
    pub(crate) records: Vec<StepMetrics>,
}

impl MetricsLog {
    /// Opens (appending) `dir/metrics.csv` when `logger` is "csv", else
    /// `dir/metrics.jsonl`.
    pub fn open(dir: &Path, logger: &str) -> Result<Self> {
        std::fs::create_dir_all(dir).map_err(|e| ForgeError::io(dir, e))?;
        let csv = logger == "csv";
        let path = dir.join(if csv { "metrics.csv" } else { "metrics.jsonl" });
        let fresh = !path.exists();
        let file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
            .map_err(|e| ForgeError::io(&path, e))?;
        let mut log = MetricsLog {
            path,
            out: BufWriter::new(file),
            csv,
            records: Vec::new(),
        };
        if csv && fresh {
            log.write_line("step,epoch,split,loss,perplexity,lr,grad_norm,cells_per_s")?;
        }
        Ok(log)
    }

    /// The log file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Appends one record and flushes.
    pub fn record(&mut self, m: StepMetrics) -> Result<()> {
        let line = if self.csv {
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
        self.write_line(&line)?;
        self.records.push(m);
        Ok(())
    }

    fn write_line(&mut self, line: &str) -> Result<()> {
        writeln!(self.out, "{line}")
            .and_then(|_| self.out.flush())
            .map_err(|e| ForgeError::io(&self.path, e))
    }
}
