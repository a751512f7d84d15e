//! The pretraining loop.

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use tch::{Device, Kind};

use super::BatchSource;
use super::checkpoints::{self, ResumeState, TrainCheckpoints};
use super::metrics::{MetricsLog, StepMetrics};
use super::optim::Optimizer;
use super::schedule::learning_rate;
use super::step::{non_finite_loss, optimizer_step, progress_bar, window_ends};
use forge_core::config::{Precision, TrainingConfig};
use forge_core::error::{ForgeError, Result};
use forge_core::model::ForgeModel;
use forge_core::params::named_parameters;
use forge_core::precision::{LossScaler, with_precision};

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
}

/// Why training ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StopReason {
    /// Ran `max_epochs`.
    Completed,
    /// `max_steps` reached.
    StepLimit,
    /// `max_duration` reached.
    TimeLimit,
    /// The stop flag was set; `last/` holds a resumable checkpoint.
    Interrupted,
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

/// Running sums between two log records.
#[derive(Default)]
struct Window {
    loss_sum: f64,
    batches: usize,
    cells: usize,
    started: Option<Instant>,
}

/// Trains `model` on `train_data`, validating on `val_data` after every
/// epoch. The model's trainable parameters are optimized with the
/// configured optimizer and schedule; gradients are clipped to
/// `gradient_clip` and accumulated over `gradient_accumulation` batches (a
/// partial window at the end of an epoch is stepped, as in fine-tuning;
/// see `super::step`).
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
    forge_core::precision::check(cfg.precision, opts.device, None)?;
    let mut scaler = LossScaler::new(cfg.precision, opts.device);
    let accumulation = cfg.gradient_accumulation.max(1) as usize;
    let mut optimizer = Optimizer::new(&cfg.optimizer, named_parameters(model));
    let mut state = match &opts.resume_from {
        Some(dir) => checkpoints::load(dir, model, &mut optimizer)?,
        None => ResumeState::default(),
    };
    if let (Some(dir), Some(ckpt)) = (&opts.resume_from, &opts.checkpoints)
        && ckpt.is_last(dir)
    {
        for epoch in ckpt.reconcile(&state)? {
            eprintln!(
                "removed {}: not among the best {} recorded in {}",
                ckpt.epoch_dir(epoch).display(),
                state.best.len(),
                dir.display()
            );
        }
    }
    let mut log = MetricsLog::open(&opts.log_dir, cfg)?;
    if let Some(warning) = log.logger().warning(cfg) {
        eprintln!("{warning}");
    }
    let progress = opts
        .progress_bar
        .then(|| progress_bar(train_data.num_batches()));
    let run_start = Instant::now();
    let mut run_cells = 0usize;
    let mut window = Window::default();
    let mut val_losses = Vec::new();
    let mut last_grad_norm = None;
    let lr_at = |step: i64| learning_rate(cfg.optimizer.lr, cfg.scheduler.as_ref(), step);
    optimizer.zero_grad();

    let stop = 'epochs: loop {
        let epoch = state.epoch;
        if epoch >= cfg.max_epochs.max(0) as usize {
            break StopReason::Completed;
        }
        if let Some(pb) = &progress {
            pb.set_position(state.batch_in_epoch as u64);
            pb.set_message(format!("epoch {}/{}", epoch + 1, cfg.max_epochs));
        }
        let skip = state.batch_in_epoch;
        let mut batches = train_data.batches(epoch).enumerate().skip(skip).peekable();
        while let Some((index, batch)) = batches.next() {
            let batch = batch?.to_device(opts.device);
            let cells = batch.batch_size() as usize;
            window.started.get_or_insert_with(Instant::now);
            let Some(loss) = with_precision(cfg.precision, opts.device, || model.loss(&batch))
            else {
                return Err(ForgeError::Batch {
                    key: "labels",
                    message: "is missing: pretraining batches need masked labels".into(),
                });
            };
            let loss = loss.to_kind(Kind::Float);
            let value = loss.double_value(&[]);
            if !value.is_finite() {
                return Err(non_finite_loss(&batch, value, state.step, epoch));
            }
            scaler.scale_loss(&(loss / accumulation as f64)).backward();
            window.loss_sum += value;
            window.batches += 1;
            window.cells += cells;
            run_cells += cells;
            state.batch_in_epoch = index + 1;
            if window_ends(state.batch_in_epoch, accumulation, batches.peek().is_none()) {
                let lr = lr_at(state.step);
                let norm =
                    optimizer_step(&mut scaler, &mut [(&mut optimizer, lr)], cfg.gradient_clip);
                last_grad_norm = norm.or(last_grad_norm);
                state.step += 1;
                if state.step % cfg.log_every_n_steps.max(1) == 0 {
                    let m = flush_window(
                        &mut window,
                        &state,
                        epoch,
                        lr_at(state.step - 1),
                        last_grad_norm,
                    );
                    report(&progress, &m);
                    log.record(m)?;
                }
            }
            if let Some(pb) = &progress {
                pb.set_position(state.batch_in_epoch as u64);
            }
            let limit = if opts.stop.is_some_and(|s| s.load(Ordering::SeqCst)) {
                Some(StopReason::Interrupted)
            } else if opts.max_steps.is_some_and(|m| state.step >= m) {
                Some(StopReason::StepLimit)
            } else if opts.max_duration.is_some_and(|d| run_start.elapsed() >= d) {
                Some(StopReason::TimeLimit)
            } else {
                None
            };
            if let Some(reason) = limit {
                if let Some(ckpt) = &opts.checkpoints {
                    ckpt.save_last(model, &optimizer, &state)?;
                }
                break 'epochs reason;
            }
        }
        if window.batches > 0 {
            let m = flush_window(
                &mut window,
                &state,
                epoch,
                lr_at(state.step.max(1) - 1),
                last_grad_norm,
            );
            report(&progress, &m);
            log.record(m)?;
        }
        state.epoch = epoch + 1;
        state.batch_in_epoch = 0;
        let val = match val_data {
            Some(v) => validate(model, v, opts.device, cfg.precision)?,
            None => None,
        };
        if let Some((val_loss, cells_per_s)) = val {
            val_losses.push(val_loss);
            state.last_val_loss = Some(val_loss);
            let m = StepMetrics {
                step: state.step,
                epoch,
                split: "val",
                loss: val_loss,
                perplexity: val_loss.exp(),
                lr: lr_at(state.step.max(1) - 1),
                grad_norm: None,
                cells_per_s,
            };
            report(&progress, &m);
            log.record(m)?;
        }
        if let Some(assessment) = opts.assessment {
            let metrics = assessment.after_epoch(model, epoch, state.step)?;
            log.record_assessment(&metrics)?;
        }
        if let Some(ckpt) = &opts.checkpoints {
            let val_loss = val.map(|(loss, _)| loss);
            ckpt.end_epoch(model, &optimizer, &mut state, epoch, val_loss)?;
        }
    };
    if let Some(pb) = progress {
        pb.finish_and_clear();
    }
    let elapsed = run_start.elapsed().as_secs_f64().max(1e-9);
    Ok(TrainSummary {
        stop,
        steps: state.step,
        epochs: state.epoch,
        metrics: log.records.clone(),
        val_losses,
        cells_per_s: run_cells as f64 / elapsed,
    })
}

fn flush_window(
    window: &mut Window,
    state: &ResumeState,
    epoch: usize,
    lr: f64,
    grad_norm: Option<f64>,
) -> StepMetrics {
    let w = std::mem::take(window);
    let loss = w.loss_sum / w.batches.max(1) as f64;
    let secs = w
        .started
        .map_or(0.0, |s| s.elapsed().as_secs_f64())
        .max(1e-9);
    StepMetrics {
        step: state.step,
        epoch,
        split: "train",
        loss,
        perplexity: loss.exp(),
        lr,
        grad_norm,
        cells_per_s: w.cells as f64 / secs,
    }
}

/// Mean validation loss (weighted by cells) and throughput, or `None` when
/// the model gives no loss on these batches. Takes the model's loss path
/// (`eval_loss`: packed, heads at labelled positions only for the reference
/// models) in evaluation mode, without gradients. Always the batches of epoch 0,
/// so every epoch is judged on the same masked cells.
fn validate(
    model: &dyn ForgeModel,
    data: &dyn BatchSource,
    device: Device,
    precision: Precision,
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
    if cells == 0 {
        return Ok(None);
    }
    Ok(Some((
        sum / cells as f64,
        cells as f64 / start.elapsed().as_secs_f64().max(1e-9),
    )))
}

fn report(progress: &Option<indicatif::ProgressBar>, m: &StepMetrics) {
    let line = format!(
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
    );
    match progress {
        Some(pb) => pb.println(line),
        None => eprintln!("{line}"),
    }
}
