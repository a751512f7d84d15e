//! Pretraining: the masked-gene task of the shared loop (`super::fit`).

use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicBool;
use std::time::{Duration, Instant};

use tch::{Device, Kind, Tensor};

use super::BatchSource;
use super::checkpoints::{TrainCheckpoints, read_optimizer, read_weights, write_tensors};
use super::fit::{
    Console, EpochEnd, Epochs, FitOptions, SingleProcess, StopReason, Strategy, Task, TrainWindow,
    fit,
};
use super::metrics::{MetricsLog, StepMetrics};
use super::optim::Optimizer;
use super::schedule::learning_rate;
use forge_core::batch::Batch;
use forge_core::config::{Precision, TrainingConfig};
use forge_core::error::{ForgeError, Result};
use forge_core::model::ForgeModel;
use forge_core::params::named_parameters;
use forge_core::precision::with_precision;
use forge_core::state_dict::state_dict;

/// How to run one training job (beyond what `training:` configures).
#[derive(Debug)]
pub struct TrainOptions<'a> {
    /// The `training` section.
    pub training: &'a TrainingConfig,
    /// Where the model's variables live; batches are moved there.
    pub device: Device,
    /// Checkpoint folder manager; `None` writes no checkpoints.
    pub checkpoints: Option<TrainCheckpoints>,
    /// Folder of the metrics log.
    pub log_dir: PathBuf,
    /// A training checkpoint folder to continue from.
    pub resume_from: Option<PathBuf>,
    /// Draw a progress bar (else print a line per logged record).
    pub progress_bar: bool,
    /// Stop after this many optimizer steps.
    pub max_steps: Option<i64>,
    /// Stop after this much wall time (checked between batches).
    pub max_duration: Option<Duration>,
    /// Set (e.g. by Ctrl-C) to stop at the next batch with a resumable
    /// checkpoint.
    pub stop: Option<&'a AtomicBool>,
    /// Benchmarks to run after each epoch (`eval.benchmarks`); their
    /// metrics go into the metrics log.
    pub assessment: Option<&'a dyn super::EpochAssessment>,
    /// How training is spread over processes; `None` is one process. With
    /// several, `train_data` and `val_data` must be this rank's shard.
    pub strategy: Option<&'a dyn Strategy>,
}

/// What a training run did.
#[derive(Debug, Clone)]
pub struct TrainSummary {
    /// Why it ended.
    pub stop: StopReason,
    /// Optimizer steps taken in total (resumed runs included).
    pub steps: i64,
    /// Epochs completed.
    pub epochs: usize,
    /// Every logged record, in order.
    pub metrics: Vec<StepMetrics>,
    /// Validation loss after each completed epoch.
    pub val_losses: Vec<f64>,
    /// Mean training throughput of this run.
    pub cells_per_s: f64,
}

/// Pretraining as a task of the shared loop: the model's masked-gene
/// loss, one optimizer over every trainable parameter, the metrics log
/// (train records every `log_every_n_steps` steps, a validation record and
/// the benchmarks after each epoch), and checkpoints of `model.safetensors`
/// and `optimizer.safetensors`.
struct Pretraining<'a> {
    model: &'a dyn ForgeModel,
    optimizer: Optimizer,
    val_data: Option<&'a dyn BatchSource>,
    assessment: Option<&'a dyn super::EpochAssessment>,
    training: &'a TrainingConfig,
    device: Device,
    log_dir: &'a Path,
    /// Opened by [`Task::start`].
    log: Option<MetricsLog>,
    val_losses: Vec<f64>,
    /// Throughput of the last validation.
    val_cells_per_s: f64,
    last_val: Option<f64>,
}

impl Pretraining<'_> {
    fn lr_at(&self, step: i64) -> f64 {
        learning_rate(
            self.training.optimizer.lr,
            self.training.scheduler.as_ref(),
            step,
        )
    }

    fn log(&mut self) -> &mut MetricsLog {
        self.log.as_mut().expect("the loop starts the task first")
    }

    fn record(&mut self, m: StepMetrics, console: &Console) -> Result<()> {
        console.line(&report(&m));
        self.log().record(m)
    }
}

impl Task for Pretraining<'_> {
    type Item = Batch;

    fn batch(item: &Batch) -> &Batch {
        item
    }

    fn start(&mut self, writes: bool) -> Result<()> {
        if !writes {
            return Ok(());
        }
        let log = MetricsLog::open(self.log_dir, self.training)?;
        if let Some(warning) = log.logger().warning(self.training) {
            eprintln!("{warning}");
        }
        self.log = Some(log);
        Ok(())
    }

    fn begin_epoch(&mut self, _epoch: usize) -> Result<()> {
        Ok(())
    }

    fn loss(&self, batch: &Batch) -> Result<Tensor> {
        self.model.loss(batch).ok_or_else(|| ForgeError::Batch {
            key: "labels",
            message: "is missing: pretraining batches need masked labels".into(),
        })
    }

    fn optimizers(&mut self, step: i64) -> Vec<(&mut Optimizer, f64)> {
        let lr = self.lr_at(step);
        vec![(&mut self.optimizer, lr)]
    }

    fn log_train(&mut self, w: &TrainWindow, console: &Console) -> Result<()> {
        let m = StepMetrics {
            step: w.step,
            epoch: w.epoch,
            split: "train",
            loss: w.loss,
            perplexity: w.loss.exp(),
            lr: self.lr_at(w.step.max(1) - 1),
            grad_norm: w.grad_norm,
            cells_per_s: w.cells_per_s,
        };
        self.record(m, console)
    }

    fn parameters(&self) -> Vec<Tensor> {
        named_parameters(self.model)
            .into_iter()
            .map(|(_, t)| t)
            .collect()
    }

    fn all_optimizers(&mut self) -> Vec<&mut Optimizer> {
        vec![&mut self.optimizer]
    }

    fn validate(&mut self, _epoch: usize, strategy: &dyn Strategy) -> Result<Option<f64>> {
        let val = match self.val_data {
            Some(v) => validate(
                self.model,
                v,
                self.device,
                self.training.precision,
                strategy,
            )?,
            None => None,
        };
        self.last_val = val.map(|(loss, _)| loss);
        if let Some((loss, cells_per_s)) = val {
            self.val_losses.push(loss);
            self.val_cells_per_s = cells_per_s;
        }
        Ok(self.last_val)
    }

    fn end_epoch(&mut self, end: &EpochEnd, console: &Console) -> Result<()> {
        if let Some(val_loss) = self.last_val {
            let m = StepMetrics {
                step: end.step,
                epoch: end.epoch,
                split: "val",
                loss: val_loss,
                perplexity: val_loss.exp(),
                lr: self.lr_at(end.step.max(1) - 1),
                grad_norm: None,
                cells_per_s: self.val_cells_per_s,
            };
            self.record(m, console)?;
        }
        if let Some(assessment) = self.assessment {
            let metrics = assessment.after_epoch(self.model, end.epoch, end.step)?;
            self.log().record_assessment(&metrics)?;
        }
        Ok(())
    }

    fn write_checkpoint(&self, dir: &Path) -> Result<()> {
        write_tensors(&dir.join(MODEL_FILE), &state_dict(self.model))?;
        write_tensors(&dir.join(OPTIMIZER_FILE), &self.optimizer.state())
    }

    fn read_checkpoint(&mut self, dir: &Path) -> Result<()> {
        read_weights(dir, MODEL_FILE, self.model)?;
        read_optimizer(dir, OPTIMIZER_FILE, &mut self.optimizer)
    }
}

/// A training checkpoint's model weights.
pub(crate) const MODEL_FILE: &str = "model.safetensors";
/// A training checkpoint's optimizer state.
pub(crate) const OPTIMIZER_FILE: &str = "optimizer.safetensors";

/// Pretraining batches, moved to the device.
struct OnDevice<'a>(&'a dyn BatchSource, Device);

impl Epochs<Batch> for OnDevice<'_> {
    fn epoch(&self, epoch: usize) -> Box<dyn Iterator<Item = Result<Batch>> + '_> {
        let device = self.1;
        Box::new(
            self.0
                .batches(epoch)
                .map(move |b| b.map(|b| b.to_device(device))),
        )
    }
    fn len(&self) -> Option<usize> {
        self.0.num_batches()
    }
}

/// Trains `model` on `train_data`, validating on `val_data` after every
/// epoch, in the shared loop ([`super::fit`]). The model's trainable
/// parameters are optimized with the configured optimizer and schedule;
/// gradients are clipped to `gradient_clip` and accumulated over
/// `gradient_accumulation` batches (a partial window at the end of an
/// epoch is stepped; see `super::step`).
///
/// A loss that is not a number stops the run; when the batch had no
/// labelled position at all the error says so (a mean over nothing), else
/// it points at the learning rate and the data.
pub fn train(
    model: &dyn ForgeModel,
    train_data: &dyn BatchSource,
    val_data: Option<&dyn BatchSource>,
    opts: TrainOptions,
) -> Result<TrainSummary> {
    let cfg = opts.training;
    let mut task = Pretraining {
        model,
        optimizer: Optimizer::new(&cfg.optimizer, named_parameters(model)),
        val_data,
        assessment: opts.assessment,
        training: cfg,
        device: opts.device,
        log_dir: &opts.log_dir,
        log: None,
        val_losses: Vec::new(),
        val_cells_per_s: 0.0,
        last_val: None,
    };
    let fitted = fit(
        &mut task,
        &OnDevice(train_data, opts.device),
        FitOptions {
            training: cfg,
            device: opts.device,
            checkpoints: opts.checkpoints.as_ref(),
            resume_from: opts.resume_from.as_deref(),
            progress_bar: opts.progress_bar,
            verbose: true,
            max_steps: opts.max_steps,
            max_duration: opts.max_duration,
            stop: opts.stop,
            strategy: opts.strategy.unwrap_or(&SingleProcess),
        },
    )?;
    Ok(TrainSummary {
        stop: fitted.stop,
        steps: fitted.steps,
        epochs: fitted.epochs,
        metrics: task.log.map(|l| l.records).unwrap_or_default(),
        val_losses: task.val_losses,
        cells_per_s: fitted.cells_per_s,
    })
}

/// Mean validation loss (weighted by cells, summed over the processes of
/// `strategy`, each validating its shard) and throughput (of all of them),
/// or `None` when the model gives no loss on these batches. Takes the
/// model's loss path
/// (`eval_loss`: packed, heads at labelled positions only for the reference
/// models) in evaluation mode, without gradients. Always the batches of epoch 0,
/// so every epoch is judged on the same masked cells.
fn validate(
    model: &dyn ForgeModel,
    data: &dyn BatchSource,
    device: Device,
    precision: Precision,
    strategy: &dyn Strategy,
) -> Result<Option<(f64, f64)>> {
    let start = Instant::now();
    let (mut sum, mut cells) = (0.0, 0usize);
    for batch in data.batches(0) {
        let batch = batch?.to_device(device);
        let n = batch.batch_size() as usize;
        let loss = tch::no_grad(|| with_precision(precision, device, || model.eval_loss(&batch)));
        if let Some(loss) = loss {
            sum += loss.to_kind(Kind::Float).double_value(&[]) * n as f64;
            cells += n;
        }
    }
    let secs = start.elapsed().as_secs_f64().max(1e-9);
    let t = strategy.sum(&[sum, cells as f64])?;
    if t[1] == 0.0 {
        return Ok(None);
    }
    Ok(Some((t[0] / t[1], t[1] / secs)))
}

/// The terminal line of a record.
fn report(m: &StepMetrics) -> String {
    format!(
        "epoch {} step {} {} loss {:.4} lr {:.2e}{} {:.1} cells/s",
        m.epoch + 1,
        m.step,
        m.split,
        m.loss,
        m.lr,
        m.grad_norm
            .map(|g| format!(" grad_norm {g:.3}"))
            .unwrap_or_default(),
        m.cells_per_s
    )
}
