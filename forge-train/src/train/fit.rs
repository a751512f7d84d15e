//! The one training loop, run by pretraining ([`super::run`]) and by
//! fine-tuning (`crate::finetune::run`). As in Lightning, what differs
//! between the two is the *task* (a [`Task`]: its loss, its optimizers, its
//! validation, its metrics and what its checkpoint holds); everything else
//! lives here once, read top to bottom in [`fit`]:
//!
//! 1. resume: `trainer_state.json` and the task's tensors from a checkpoint
//!    folder ([`super::checkpoints::load`]); a run resumed from its own
//!    `last/` deletes the epoch checkpoints its record does not name;
//! 2. epochs, and the batches of each in their deterministic order, those
//!    already consumed before a resume skipped;
//! 3. per batch: the loss under `training.precision`, the non-finite check,
//!    backward on the (16-mixed: scaled) loss divided by
//!    `gradient_accumulation`;
//! 4. when an accumulation window ends ([`super::step::window_ends`]): the
//!    strategy's gradient hook, then one optimizer step over all the task's
//!    optimizers ([`super::step::optimizer_step`]: unscale, joint clipping,
//!    step, zero);
//! 5. a train record every `log_every_n_steps` steps and at the end of an
//!    epoch (what the task writes, and where);
//! 6. stopping: the stop flag (Ctrl-C), `max_steps`, `max_duration`, each
//!    with a resumable `last/` checkpoint (stopped inside an accumulation
//!    window, it resumes at the window's first batch);
//! 7. after each epoch: validation, the task's epoch record, then `last/`
//!    and the best `save_top_k` epochs by validation loss
//!    ([`super::checkpoints::TrainCheckpoints::end_epoch`]).
//!
//! A [`Strategy`] says how training is spread over processes: one process
//! ([`SingleProcess`]) or data parallel over ranks
//! ([`super::parallel::DataParallel`]: DDP and ZeRO-2). With several ranks
//! the loop (on every rank alike) broadcasts rank 0's parameters before the
//! first batch, lets the strategy reduce the gradients of a finished
//! accumulation window (or step a sharded optimizer), sums the train and
//! validation losses over the ranks before they are recorded, and agrees
//! on stopping (Ctrl-C or `max_duration` on any rank stops all of them at
//! the same batch). Only rank 0 writes records, logs and checkpoints; the
//! others still take part in every collective.

use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use tch::{Device, Kind, Tensor};

use super::checkpoints::{self, ResumeState, TrainCheckpoints};
use super::optim::Optimizer;
use super::step::{non_finite_loss, optimizer_step, progress_bar, window_ends};
use forge_core::batch::Batch;
use forge_core::config::TrainingConfig;
use forge_core::error::Result;
use forge_core::precision::{LossScaler, with_precision};

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

/// How training is spread over processes: the place where distributed
/// data parallel plugs into the loop. Every method that talks to the other
/// processes is called on every rank at the same point of the loop.
pub trait Strategy: std::fmt::Debug {
    /// Called once per optimizer step, after the last backward pass of an
    /// accumulation window and before the gradients are unscaled and
    /// clipped, with every gradient the step will apply. Data parallel
    /// training averages them over the processes here.
    fn reduce_gradients(&self, grads: &[Tensor]) -> Result<()>;

    /// Whether this process writes records, logs and checkpoints (data
    /// parallel: rank 0).
    fn saves_checkpoints(&self) -> bool;

    /// Processes taking part.
    fn world_size(&self) -> usize {
        1
    }

    /// Makes every process start from rank 0's `params` (before the first
    /// batch).
    fn broadcast_parameters(&self, _params: &[Tensor]) -> Result<()> {
        Ok(())
    }

    /// Sums `values` element-wise over the processes (losses, counts).
    fn sum(&self, values: &[f64]) -> Result<Vec<f64>> {
        Ok(values.to_vec())
    }

    /// One optimizer step at the end of an accumulation window: by default
    /// [`Strategy::reduce_gradients`], then the ordinary step
    /// ([`optimizer_step`]). A sharded optimizer (ZeRO-2) replaces it.
    /// Returns the gradient norm before clipping (`None`: step skipped).
    fn optimizer_step(
        &self,
        scaler: &mut LossScaler,
        optimizers: &mut [(&mut Optimizer, f64)],
        clip: f64,
    ) -> Result<Option<f64>> {
        let grads: Vec<Tensor> = optimizers.iter().flat_map(|(o, _)| o.grads()).collect();
        self.reduce_gradients(&grads)?;
        Ok(optimizer_step(scaler, optimizers, clip))
    }

    /// Called on every process before a checkpoint is written (by rank 0),
    /// with the optimizers it holds: a sharded optimizer gathers its state
    /// into them here.
    fn gather_optimizer_state(&self, _optimizers: &mut [&mut Optimizer]) -> Result<()> {
        Ok(())
    }
}

/// One process, one device: nothing to reduce, and it saves.
#[derive(Debug, Clone, Copy, Default)]
pub struct SingleProcess;

impl Strategy for SingleProcess {
    fn reduce_gradients(&self, _grads: &[Tensor]) -> Result<()> {
        Ok(())
    }
    fn saves_checkpoints(&self) -> bool {
        true
    }
}

/// What the training records since the last one hold (the loop's train
/// window, flushed every `log_every_n_steps` steps and at an epoch's end).
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct TrainWindow {
    /// Optimizer steps taken.
    pub step: i64,
    /// Epoch (0-based).
    pub epoch: usize,
    /// Mean loss of the window's batches.
    pub loss: f64,
    /// Gradient norm before clipping at the last step that was taken.
    pub grad_norm: Option<f64>,
    /// Throughput of the window.
    pub cells_per_s: f64,
}

/// What one epoch did, for the task's epoch record.
#[derive(Debug, Clone, Copy)]
pub(crate) struct EpochEnd {
    /// The epoch (0-based).
    pub epoch: usize,
    /// Optimizer steps taken.
    pub step: i64,
    /// Mean training loss of the batches this run saw of the epoch.
    pub train_loss: f64,
    /// Training cells per second (validation excluded).
    pub cells_per_s: f64,
    /// When the epoch started (its records count validation in).
    pub started: Instant,
}

/// Where a loop's lines go: above the progress bar when there is one,
/// else to stderr when `verbose`.
#[derive(Debug)]
pub(crate) struct Console {
    bar: Option<indicatif::ProgressBar>,
    verbose: bool,
}

impl Console {
    /// Prints one line.
    pub fn line(&self, line: &str) {
        match &self.bar {
            Some(pb) => pb.println(line),
            None if self.verbose => eprintln!("{line}"),
            None => {}
        }
    }
}

/// What differs between pretraining and fine-tuning: the step and its
/// bookkeeping. The loop owns the order of things ([`fit`]).
pub(crate) trait Task {
    /// One unit of training data, on the device (a batch; for fine-tuning
    /// with its targets).
    type Item;

    /// The model inputs of `item` (cell counts, error messages).
    fn batch(item: &Self::Item) -> &Batch;

    /// Called once on every process, after a resumed state is read and
    /// before the first batch; `writes` (rank 0 only) opens the metrics
    /// log.
    fn start(&mut self, writes: bool) -> Result<()>;

    /// Called before the first batch of `epoch` (fine-tuning: freezing).
    fn begin_epoch(&mut self, epoch: usize) -> Result<()>;

    /// The training loss of `item`, a scalar; the loop runs this under
    /// `training.precision`.
    fn loss(&self, item: &Self::Item) -> Result<Tensor>;

    /// Called once a window's gradients are complete, before any
    /// optimizer sees them (LoRA turns weight gradients into adapter ones).
    fn gradients_ready(&self) {}

    /// The optimizers of the next step, each with its learning rate at
    /// optimizer step `step` (0-based).
    fn optimizers(&mut self, step: i64) -> Vec<(&mut Optimizer, f64)>;

    /// Called after each optimizer step (LoRA merges the adapters).
    fn after_step(&self) {}

    /// A train record is due.
    fn log_train(&mut self, window: &TrainWindow, console: &Console) -> Result<()>;

    /// Every parameter of the model (rank 0's are broadcast to the other
    /// processes before training).
    fn parameters(&self) -> Vec<Tensor>;

    /// Every optimizer the task holds, stepping or not (a sharded
    /// optimizer gathers its state into them before a checkpoint).
    fn all_optimizers(&mut self) -> Vec<&mut Optimizer>;

    /// Validation after `epoch`; the loss ranks the epoch checkpoints.
    /// `None` when there is nothing to validate on. Runs on every process;
    /// `strategy` sums what the processes validated.
    fn validate(&mut self, epoch: usize, strategy: &dyn Strategy) -> Result<Option<f64>>;

    /// The epoch's records, after validation.
    fn end_epoch(&mut self, end: &EpochEnd, console: &Console) -> Result<()>;

    /// Writes the task's part of a checkpoint (weights, optimizer states)
    /// into the folder `dir` being built.
    fn write_checkpoint(&self, dir: &Path) -> Result<()>;

    /// Reads back what [`Task::write_checkpoint`] wrote.
    fn read_checkpoint(&mut self, dir: &Path) -> Result<()>;
}

/// The batches a loop trains on.
pub(crate) trait Epochs<I> {
    /// The items of `epoch`, in an order fixed by the epoch (resume relies
    /// on it).
    fn epoch(&self, epoch: usize) -> Box<dyn Iterator<Item = Result<I>> + '_>;
    /// Items per epoch, when known (progress bar).
    fn len(&self) -> Option<usize>;
}

/// How to run a loop, besides the `training` section.
#[derive(Debug)]
pub(crate) struct FitOptions<'a> {
    /// The `training` section (epochs, accumulation, precision, clipping,
    /// `log_every_n_steps`).
    pub training: &'a TrainingConfig,
    /// Where the model lives.
    pub device: Device,
    /// The checkpoint folder; `None` writes no checkpoints.
    pub checkpoints: Option<&'a TrainCheckpoints>,
    /// A checkpoint folder to continue from.
    pub resume_from: Option<&'a Path>,
    /// Draw a progress bar.
    pub progress_bar: bool,
    /// Print the records' lines when there is no bar.
    pub verbose: bool,
    /// Stop after this many optimizer steps.
    pub max_steps: Option<i64>,
    /// Stop after this much wall time (checked between batches).
    pub max_duration: Option<Duration>,
    /// Set (e.g. by Ctrl-C) to stop at the next batch with a resumable
    /// checkpoint.
    pub stop: Option<&'a AtomicBool>,
    /// How training is spread over processes.
    pub strategy: &'a dyn Strategy,
}

/// What a loop did.
#[derive(Debug, Clone, Copy)]
pub(crate) struct FitSummary {
    /// Why it ended.
    pub stop: StopReason,
    /// Optimizer steps taken in total (resumed runs included).
    pub steps: i64,
    /// Epochs completed.
    pub epochs: usize,
    /// Mean training throughput of this run.
    pub cells_per_s: f64,
}

/// Running sums of the batches since a point (a log record, an epoch
/// start).
#[derive(Debug, Default)]
struct Sums {
    loss: f64,
    batches: usize,
    cells: usize,
    started: Option<Instant>,
}

impl Sums {
    fn add(&mut self, loss: f64, cells: usize) {
        self.started.get_or_insert_with(Instant::now);
        self.loss += loss;
        self.batches += 1;
        self.cells += cells;
    }
}

/// Runs `task` over `data` for `training.max_epochs` epochs (see the
/// module docs for the order of things).
///
/// A loss that is not a number stops the run with an error (a batch with
/// no labelled position says so); `last/` keeps the last good state.
pub(crate) fn fit<T: Task>(
    task: &mut T,
    data: &dyn Epochs<T::Item>,
    opts: FitOptions,
) -> Result<FitSummary> {
    let cfg = opts.training;
    forge_core::precision::check(cfg.precision, opts.device, None)?;
    let mut scaler = LossScaler::new(cfg.precision, opts.device);
    let accumulation = cfg.gradient_accumulation.max(1) as usize;
    let log_every = cfg.log_every_n_steps.max(1);
    let mut state = match opts.resume_from {
        Some(dir) => checkpoints::load(dir, &mut |d| task.read_checkpoint(d))?,
        None => ResumeState::default(),
    };
    let strategy = opts.strategy;
    let main = strategy.saves_checkpoints();
    let saving = opts.checkpoints.filter(|_| main);
    if let (Some(dir), Some(ckpt)) = (opts.resume_from, saving)
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
    task.start(main)?;
    strategy.broadcast_parameters(&task.parameters())?;
    let console = Console {
        bar: (main && opts.progress_bar).then(|| progress_bar(data.len())),
        verbose: main && opts.verbose,
    };
    let run_start = Instant::now();
    let mut run_cells = 0usize;
    let mut window = Sums::default();
    let mut last_grad_norm = None;
    for (optimizer, _) in task.optimizers(state.step) {
        optimizer.zero_grad();
    }

    let stop = 'epochs: loop {
        let epoch = state.epoch;
        if epoch >= cfg.max_epochs.max(0) as usize {
            break StopReason::Completed;
        }
        task.begin_epoch(epoch)?;
        if let Some(pb) = &console.bar {
            pb.set_position(state.batch_in_epoch as u64);
            pb.set_message(format!("epoch {}/{}", epoch + 1, cfg.max_epochs));
        }
        let epoch_start = Instant::now();
        let mut this_epoch = Sums::default();
        // Batches whose gradients wait for the window's optimizer step.
        let mut pending = 0usize;
        let skip = state.batch_in_epoch;
        let mut items = data.epoch(epoch).enumerate().skip(skip).peekable();
        while let Some((index, item)) = items.next() {
            let item = item?;
            let batch = T::batch(&item);
            let cells = batch.batch_size() as usize;
            window.started.get_or_insert_with(Instant::now);
            let loss = with_precision(cfg.precision, opts.device, || task.loss(&item))?
                .to_kind(Kind::Float);
            let value = loss.double_value(&[]);
            if !value.is_finite() {
                return Err(non_finite_loss(batch, value, state.step, epoch));
            }
            scaler.scale_loss(&(loss / accumulation as f64)).backward();
            window.add(value, cells);
            this_epoch.add(value, cells);
            run_cells += cells;
            state.batch_in_epoch = index + 1;
            pending += 1;
            if window_ends(state.batch_in_epoch, accumulation, items.peek().is_none()) {
                pending = 0;
                task.gradients_ready();
                let mut optimizers = task.optimizers(state.step);
                let norm =
                    strategy.optimizer_step(&mut scaler, &mut optimizers, cfg.gradient_clip)?;
                task.after_step();
                last_grad_norm = norm.or(last_grad_norm);
                state.step += 1;
                if state.step % log_every == 0 {
                    let w = flush(&mut window, &state, epoch, last_grad_norm, strategy)?;
                    if main {
                        task.log_train(&w, &console)?;
                    }
                }
            }
            if let Some(pb) = &console.bar {
                pb.set_position(state.batch_in_epoch as u64);
            }
            let mut interrupted = opts.stop.is_some_and(|s| s.load(Ordering::SeqCst));
            let mut timed_out = opts.max_duration.is_some_and(|d| run_start.elapsed() >= d);
            if strategy.world_size() > 1 && (opts.stop.is_some() || opts.max_duration.is_some()) {
                // Any rank's Ctrl-C or clock stops every rank at this batch.
                let any = strategy.sum(&[f64::from(interrupted), f64::from(timed_out)])?;
                (interrupted, timed_out) = (any[0] > 0.0, any[1] > 0.0);
            }
            let limit = if interrupted {
                Some(StopReason::Interrupted)
            } else if opts.max_steps.is_some_and(|m| state.step >= m) {
                Some(StopReason::StepLimit)
            } else if timed_out {
                Some(StopReason::TimeLimit)
            } else {
                None
            };
            if let Some(reason) = limit {
                strategy.gather_optimizer_state(&mut task.all_optimizers())?;
                if let Some(ckpt) = saving {
                    // The gradients of an unfinished accumulation window are
                    // not saved: the checkpoint resumes at the window's
                    // first batch, which trains again.
                    let at = ResumeState {
                        batch_in_epoch: state.batch_in_epoch - pending,
                        ..state.clone()
                    };
                    ckpt.save_last(&|dir| task.write_checkpoint(dir), &at)?;
                }
                break 'epochs reason;
            }
        }
        if window.batches > 0 {
            let w = flush(&mut window, &state, epoch, last_grad_norm, strategy)?;
            if main {
                task.log_train(&w, &console)?;
            }
        }
        let epoch_secs = epoch_start.elapsed().as_secs_f64().max(1e-9);
        let totals = strategy.sum(&[
            this_epoch.loss,
            this_epoch.batches as f64,
            this_epoch.cells as f64,
        ])?;
        state.epoch = epoch + 1;
        state.batch_in_epoch = 0;
        let val_loss = task.validate(epoch, strategy)?;
        if val_loss.is_some() {
            state.last_val_loss = val_loss;
        }
        let end = EpochEnd {
            epoch,
            step: state.step,
            train_loss: totals[0] / totals[1].max(1.0),
            cells_per_s: totals[2] / epoch_secs,
            started: epoch_start,
        };
        if main {
            task.end_epoch(&end, &console)?;
        }
        strategy.gather_optimizer_state(&mut task.all_optimizers())?;
        if let Some(ckpt) = saving {
            ckpt.end_epoch(
                &|dir| task.write_checkpoint(dir),
                &mut state,
                epoch,
                val_loss,
            )?;
        }
    };
    if let Some(pb) = &console.bar {
        pb.finish_and_clear();
    }
    let elapsed = run_start.elapsed().as_secs_f64().max(1e-9);
    Ok(FitSummary {
        stop,
        steps: state.step,
        epochs: state.epoch,
        cells_per_s: run_cells as f64 / elapsed,
    })
}

/// The train record of the window, which starts anew: its loss is the
/// mean over the batches of every process, its throughput that of all of
/// them.
fn flush(
    window: &mut Sums,
    state: &ResumeState,
    epoch: usize,
    grad_norm: Option<f64>,
    strategy: &dyn Strategy,
) -> Result<TrainWindow> {
    let w = std::mem::take(window);
    let secs = w
        .started
        .map_or(0.0, |s| s.elapsed().as_secs_f64())
        .max(1e-9);
    let t = strategy.sum(&[w.loss, w.batches as f64, w.cells as f64])?;
    Ok(TrainWindow {
        step: state.step,
        epoch,
        loss: t[0] / t[1].max(1.0),
        grad_norm,
        cells_per_s: t[2] / secs,
    })
}
