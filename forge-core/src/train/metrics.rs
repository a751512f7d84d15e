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
        std::fs::create_dir_all(dir).map_err(|e| ForgeError::io(dir, e))?;
        let csv = logger == "csv";
        let path = dir.join(if csv { "metrics.csv" } else { "metrics.jsonl" });
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

/// Appends metrics to `metrics.csv` or `metrics.jsonl` in the log folder.
#[derive(Debug)]
pub struct MetricsLog {
    file: LogFile,
    pub(crate) records: Vec<StepMetrics>,
}

impl MetricsLog {
    /// Opens (appending) `dir/metrics.csv` when `logger` is "csv", else
    /// `dir/metrics.jsonl`.
    pub fn open(dir: &Path, logger: &str) -> Result<Self> {
        let header = "step,epoch,split,loss,perplexity,lr,grad_norm,cells_per_s";
        Ok(MetricsLog {
            file: LogFile::open(dir, logger, header)?,
            records: Vec::new(),
        })
    }

    /// The log file.
    pub fn path(&self) -> &Path {
        self.file.path()
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
        self.records.push(m);
        Ok(())
    }
}
