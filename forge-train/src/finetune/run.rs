//! Fine-tuning: the backbone with its task head, and the fine-tuning task
//! of the shared training loop (`crate::train::fit`).

use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicBool;

use tch::nn::VarStore;
use tch::{Device, Kind, Reduction, Tensor};

use super::head::TaskHead;
use super::labels::Targets;
use super::lora::Lora;
use super::metrics::{EpochMetrics, FinetuneLog, StepMetrics};
use crate::train::TrainCheckpoints;
use crate::train::checkpoints::{read_optimizer, read_tensors, read_weights, write_tensors};
use crate::train::fit::{
    Console, EpochEnd, Epochs, FitOptions, SingleProcess, StopReason, Strategy, Task, TrainWindow,
    fit,
};
use crate::train::optim::Optimizer;
use crate::train::run::{MODEL_FILE, OPTIMIZER_FILE};
use crate::train::schedule::learning_rate;
use forge_core::batch::Batch;
use forge_core::config::{FinetuneConfig, FinetuneTask, TrainingConfig};
use forge_core::error::{ForgeError, Result};
use forge_core::model::ForgeModel;
use forge_core::params::{Parameters, join, named_parameters};
use forge_core::precision::with_precision;
use forge_core::state_dict::state_dict;
use forge_data::DataLoader;

/// A backbone with a task head (and, optionally, LoRA adapters).
pub struct Finetuner {
    /// The pretrained model; only its contract is used.
    pub backbone: Box<dyn ForgeModel>,
    /// The task head.
    pub head: TaskHead,
    /// LoRA adapters, when `finetune.lora.enabled`.
    pub lora: Option<Lora>,
    /// Classification or regression.
    pub task: FinetuneTask,
    /// Names of the backbone parameters that were trainable when loaded
    /// (freezing and unfreezing toggle only these).
    trainable: Vec<String>,
    _head_vars: VarStore,
}

impl std::fmt::Debug for Finetuner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Finetuner")
            .field("backbone", &self.backbone.registry_name())
            .field("head", &self.head)
            .field("lora", &self.lora.as_ref().map(|l| l.adapted().len()))
            .field("task", &self.task)
            .finish_non_exhaustive()
    }
}

impl Finetuner {
    /// Puts a fresh head (and LoRA adapters when enabled) on `backbone`,
    /// whose `encode` gives `input_dim`-wide embeddings, for `n_outputs`
    /// outputs, on `device`. Draws from the global RNG (seed it first).
    pub fn new(
        backbone: Box<dyn ForgeModel>,
        input_dim: i64,
        n_outputs: i64,
        cfg: &FinetuneConfig,
        device: Device,
    ) -> Result<Finetuner> {
        let vs = VarStore::new(device);
        let head = TaskHead::new(&vs.root(), input_dim, n_outputs, &cfg.head);
        let lora = if cfg.lora.enabled {
            Some(Lora::attach(backbone.as_ref(), &cfg.lora)?)
        } else {
            None
        };
        Ok(Self::with_head(backbone, head, lora, cfg.head.task, vs))
    }

    pub(crate) fn with_head(
        backbone: Box<dyn ForgeModel>,
        head: TaskHead,
        lora: Option<Lora>,
        task: FinetuneTask,
        head_vars: VarStore,
    ) -> Finetuner {
        let trainable = named_parameters(backbone.as_ref())
            .into_iter()
            .filter(|(_, t)| t.requires_grad())
            .map(|(n, _)| n)
            .collect();
        Finetuner {
            backbone,
            head,
            lora,
            task,
            trainable,
            _head_vars: head_vars,
        }
    }

    /// Head outputs for `batch` (logits or values, `(B, n_outputs)`), head
    /// dropout when `train`.
    pub fn forward(&self, batch: &Batch, train: bool) -> Tensor {
        let emb = self.backbone.encode(batch).to_kind(Kind::Float);
        self.head.forward(&emb, train)
    }

    /// Predictions without gradients or dropout.
    pub fn predict(&self, batch: &Batch) -> Tensor {
        tch::no_grad(|| self.forward(batch, false))
    }

    /// The task loss: cross-entropy (labels -100 ignored) or MSE.
    pub fn loss(&self, output: &Tensor, targets: &Tensor) -> Tensor {
        let output = output.to_kind(Kind::Float);
        match self.task {
            FinetuneTask::Classification => {
                output.cross_entropy_loss::<Tensor>(targets, None, Reduction::Mean, -100, 0.0)
            }
            FinetuneTask::Regression => output.mse_loss(targets, Reduction::Mean),
        }
    }

    /// The head's parameters, named `head.*`.
    pub fn head_parameters(&self) -> Vec<(String, Tensor)> {
        let mut out = Vec::new();
        self.head.visit_parameters("head", &mut |n, t| {
            out.push((n.to_string(), t.shallow_clone()))
        });
        out
    }

    /// What the backbone optimizer trains: the adapters (and `lora.bias`
    /// biases), or every backbone parameter that was trainable.
    pub fn backbone_parameters(&self) -> Vec<(String, Tensor)> {
        match &self.lora {
            Some(l) => l.trainable(),
            None => named_parameters(self.backbone.as_ref())
                .into_iter()
                .filter(|(n, _)| self.trainable.contains(n))
                .map(|(n, t)| (join("backbone", &n), t))
                .collect(),
        }
    }

    /// Freezes (`on = false`) or unfreezes the backbone: sets
    /// `requires_grad` of its parameters (with LoRA: of the adapted weights
    /// and trained biases only; the rest stays frozen).
    pub fn set_backbone_trainable(&self, on: bool) {
        match &self.lora {
            Some(l) => l.set_trainable(self.backbone.as_ref(), on),
            None => {
                for (n, t) in named_parameters(self.backbone.as_ref()) {
                    let _ = t.set_requires_grad(on && self.trainable.contains(&n));
                }
            }
        }
    }

    /// Sets `requires_grad` of every backbone parameter back to how it was
    /// when the backbone was loaded.
    pub fn restore_trainable(&self) {
        for (n, t) in named_parameters(self.backbone.as_ref()) {
            let _ = t.set_requires_grad(self.trainable.contains(&n));
        }
    }

    /// Writes the adapters into the backbone's weights (no-op without
    /// LoRA): the backbone then computes the adapted model.
    pub fn merge(&self) {
        if let Some(l) = &self.lora {
            l.merge();
        }
    }
}

/// How to run one fine-tuning job (beyond the config sections).
#[derive(Debug)]
pub struct FinetuneOptions<'a> {
    /// `training` (epochs, optimizer, scheduler, clipping, accumulation,
    /// precision, logger).
    pub training: &'a TrainingConfig,
    /// `finetune` (freezing, learning rates).
    pub finetune: &'a FinetuneConfig,
    /// Where the model lives; batches are moved there.
    pub device: Device,
    /// Folder of the metrics log; `None` writes none.
    pub log_dir: Option<PathBuf>,
    /// Print a line per epoch to stderr.
    pub verbose: bool,
    /// Checkpoint folder manager (`last/` and the best `save_top_k`
    /// epochs by validation loss); `None` writes no checkpoints.
    pub checkpoints: Option<TrainCheckpoints>,
    /// A fine-tuning checkpoint folder to continue from.
    pub resume_from: Option<PathBuf>,
    /// Stop after this many optimizer steps (a resumable checkpoint is
    /// written).
    pub max_steps: Option<i64>,
    /// Set (e.g. by Ctrl-C) to stop at the next batch with a resumable
    /// checkpoint.
    pub stop: Option<&'a AtomicBool>,
    /// How training is spread over processes; `None` is one process. With
    /// several, `train` must be this rank's shard (validation is not
    /// sharded).
    pub strategy: Option<&'a dyn Strategy>,
}

/// What a fine-tuning run did.
#[derive(Debug, Clone)]
pub struct FinetuneSummary {
    /// Why it ended; only a completed run is a finished model.
    pub stop: StopReason,
    /// One record per epoch this run completed.
    pub epochs: Vec<EpochMetrics>,
    /// Optimizer steps taken (resumed runs included).
    pub steps: i64,
    /// The metrics file, when one was written.
    pub log_path: Option<PathBuf>,
}

/// Whether the backbone trains in `epoch` (0-based).
pub fn backbone_trains(cfg: &FinetuneConfig, epoch: usize) -> bool {
    !cfg.freeze_backbone && epoch as i64 >= cfg.freeze_backbone_epochs.max(0)
}

/// A fine-tuning checkpoint's head weights (`hidden.*`, `output.*`).
pub const HEAD_CHECKPOINT_FILE: &str = "head.safetensors";
/// A fine-tuning checkpoint's LoRA adapters (when enabled).
pub const LORA_CHECKPOINT_FILE: &str = "lora.safetensors";
/// A fine-tuning checkpoint's backbone optimizer state (once the backbone
/// trains); the head's is `optimizer.safetensors`.
pub const BACKBONE_OPTIMIZER_FILE: &str = "backbone_optimizer.safetensors";

/// Fine-tuning as a task of the shared loop (`crate::train::fit`): the
/// head's loss on the backbone's embeddings, a head optimizer and (once
/// the backbone trains) a backbone or adapter optimizer, per-epoch
/// records with the validation metrics, and checkpoints holding
/// `model.safetensors` (the backbone, adapters merged), `head.safetensors`,
/// `lora.safetensors` (adapters and the frozen weights under them),
/// `optimizer.safetensors` (head) and `backbone_optimizer.safetensors`.
struct Finetuning<'a> {
    ft: &'a Finetuner,
    targets: &'a Targets,
    val: Option<&'a DataLoader>,
    opts: &'a FinetuneOptions<'a>,
    head_opt: Optimizer,
    backbone_opt: Option<Optimizer>,
    /// Whether the backbone trains in the current epoch.
    backbone_on: bool,
    log: Option<FinetuneLog>,
    eval: Option<Evaluation>,
    records: Vec<EpochMetrics>,
}

impl Finetuning<'_> {
    /// The head's and the backbone's learning rates at the last step before
    /// `step` (the backbone's is 0 while it is frozen).
    fn rates_before(&self, step: i64) -> (f64, f64) {
        let last = step.max(1) - 1;
        let backbone = if self.backbone_on {
            self.lr_at(self.opts.finetune.backbone_lr, last)
        } else {
            0.0
        };
        (self.lr_at(self.opts.finetune.head_lr, last), backbone)
    }

    fn lr_at(&self, base: Option<f64>, step: i64) -> f64 {
        let cfg = self.opts.training;
        learning_rate(
            base.unwrap_or(cfg.optimizer.lr),
            cfg.scheduler.as_ref(),
            step,
        )
    }

    fn new_backbone_optimizer(&self) -> Optimizer {
        Optimizer::new(&self.opts.training.optimizer, self.ft.backbone_parameters())
    }
}

impl Task for Finetuning<'_> {
    type Item = (Batch, Tensor);

    fn batch(item: &(Batch, Tensor)) -> &Batch {
        &item.0
    }

    fn start(&mut self, writes: bool) -> Result<()> {
        self.log = self
            .opts
            .log_dir
            .as_ref()
            .filter(|_| writes)
            .map(|d| FinetuneLog::open(d, self.opts.training))
            .transpose()?;
        self.ft.merge();
        Ok(())
    }

    fn begin_epoch(&mut self, epoch: usize) -> Result<()> {
        self.backbone_on = backbone_trains(self.opts.finetune, epoch);
        self.ft.set_backbone_trainable(self.backbone_on);
        if self.backbone_on && self.backbone_opt.is_none() {
            self.backbone_opt = Some(self.new_backbone_optimizer());
        }
        Ok(())
    }

    fn loss(&self, (batch, y): &(Batch, Tensor)) -> Result<Tensor> {
        Ok(self.ft.loss(&self.ft.forward(batch, true), y))
    }

    fn gradients_ready(&self) {
        if let Some(l) = self.ft.lora.as_ref().filter(|_| self.backbone_on) {
            l.backward();
        }
    }

    fn optimizers(&mut self, step: i64) -> Vec<(&mut Optimizer, f64)> {
        let head_lr = self.lr_at(self.opts.finetune.head_lr, step);
        let backbone_lr = self.lr_at(self.opts.finetune.backbone_lr, step);
        let mut optimizers = vec![(&mut self.head_opt, head_lr)];
        if let Some(b) = self.backbone_opt.as_mut().filter(|_| self.backbone_on) {
            optimizers.push((b, backbone_lr));
        }
        optimizers
    }

    fn after_step(&self) {
        self.ft.merge();
    }

    /// A `train` row every `training.log_every_n_steps` optimizer steps.
    /// The loop also flushes a partial window at an epoch's end; the
    /// epoch row holds that (as Lightning logs a step metric only on its
    /// steps).
    fn log_train(&mut self, w: &TrainWindow, _console: &Console) -> Result<()> {
        if w.step % self.opts.training.log_every_n_steps.max(1) != 0 {
            return Ok(());
        }
        let (head_lr, backbone_lr) = self.rates_before(w.step);
        let m = StepMetrics {
            epoch: w.epoch,
            step: w.step,
            train_loss: w.loss,
            head_lr,
            backbone_lr,
            backbone_trained: self.backbone_on,
            cells_per_s: w.cells_per_s,
        };
        match self.log.as_mut() {
            Some(log) => log.record_step(&m),
            None => Ok(()),
        }
    }

    fn parameters(&self) -> Vec<Tensor> {
        let mut all = named_parameters(self.ft.backbone.as_ref());
        all.extend(self.ft.head_parameters());
        if let Some(l) = &self.ft.lora {
            all.extend(l.trainable());
        }
        all.into_iter().map(|(_, t)| t).collect()
    }

    fn all_optimizers(&mut self) -> Vec<&mut Optimizer> {
        let mut all = vec![&mut self.head_opt];
        all.extend(self.backbone_opt.as_mut());
        all
    }

    /// Every process validates all the validation cells (accuracy and F1
    /// need every prediction), so the result is the same on each and
    /// nothing is summed.
    fn validate(&mut self, _epoch: usize, _strategy: &dyn Strategy) -> Result<Option<f64>> {
        self.eval = match self.val {
            Some(v) if v.n_cells() > 0 => Some(evaluate(self.ft, self.targets, v, self.opts)?),
            _ => None,
        };
        Ok(self.eval.as_ref().map(|e| e.loss))
    }

    fn end_epoch(&mut self, end: &EpochEnd, console: &Console) -> Result<()> {
        let (head_lr, backbone_lr) = self.rates_before(end.step);
        let eval = self.eval.take();
        let m = EpochMetrics {
            epoch: end.epoch,
            step: end.step,
            train_loss: end.train_loss,
            val_loss: eval.as_ref().map(|e| e.loss),
            accuracy: eval.as_ref().and_then(|e| e.accuracy),
            f1_macro: eval.as_ref().and_then(|e| e.f1_macro),
            mse: eval.as_ref().and_then(|e| e.mse),
            head_lr,
            backbone_lr,
            backbone_trained: self.backbone_on,
            cells_per_s: end.cells_per_s,
            seconds: end.started.elapsed().as_secs_f64(),
        };
        console.line(&m.line(self.opts.training.max_epochs.max(0) as usize));
        if let Some(log) = self.log.as_mut() {
            log.record(&m)?;
        }
        self.records.push(m);
        Ok(())
    }

    fn write_checkpoint(&self, dir: &Path) -> Result<()> {
        write_tensors(
            &dir.join(MODEL_FILE),
            &state_dict(self.ft.backbone.as_ref()),
        )?;
        write_tensors(&dir.join(HEAD_CHECKPOINT_FILE), &state_dict(&self.ft.head))?;
        if let Some(l) = &self.ft.lora {
            write_tensors(&dir.join(LORA_CHECKPOINT_FILE), &l.state())?;
        }
        write_tensors(&dir.join(OPTIMIZER_FILE), &self.head_opt.state())?;
        if let Some(b) = &self.backbone_opt {
            write_tensors(&dir.join(BACKBONE_OPTIMIZER_FILE), &b.state())?;
        }
        Ok(())
    }

    fn read_checkpoint(&mut self, dir: &Path) -> Result<()> {
        read_weights(dir, MODEL_FILE, self.ft.backbone.as_ref())?;
        read_weights(dir, HEAD_CHECKPOINT_FILE, &self.ft.head)?;
        if let Some(l) = &self.ft.lora {
            let path = dir.join(LORA_CHECKPOINT_FILE);
            l.load_state(&read_tensors(dir, LORA_CHECKPOINT_FILE)?)
                .map_err(|e| ForgeError::checkpoint(&path, e))?;
        }
        read_optimizer(dir, OPTIMIZER_FILE, &mut self.head_opt)?;
        if dir.join(BACKBONE_OPTIMIZER_FILE).exists() {
            // The backbone trained before the checkpoint, so it trains from
            // here on: its optimizer covers the trainable parameters.
            self.ft.set_backbone_trainable(true);
            let mut b = self.new_backbone_optimizer();
            read_optimizer(dir, BACKBONE_OPTIMIZER_FILE, &mut b)?;
            self.backbone_opt = Some(b);
        }
        Ok(())
    }
}

/// Training cells of a fine-tuning run with their targets, on the device.
struct Labelled<'a> {
    loader: &'a DataLoader,
    targets: &'a Targets,
    device: Device,
}

impl Epochs<(Batch, Tensor)> for Labelled<'_> {
    fn epoch(&self, epoch: usize) -> Box<dyn Iterator<Item = Result<(Batch, Tensor)>> + '_> {
        let mut it = self.loader.epoch(epoch as u64);
        Box::new(
            std::iter::from_fn(move || it.next_with_cells()).map(|next| {
                let (cell_ids, batch) = next?;
                Ok((
                    batch.to_device(self.device),
                    self.targets.batch(&cell_ids, self.device),
                ))
            }),
        )
    }
    fn len(&self) -> Option<usize> {
        Some(self.loader.n_batches())
    }
}

/// Fine-tunes `ft` on the cells of `train` (every one labelled in
/// `targets`), validating on `val` after each epoch, in the loop
/// pretraining uses (`crate::train::fit`): accumulation, precision,
/// clipping, the non-finite check, checkpoints (`last/` and the best
/// `save_top_k` epochs by validation loss), resume and the stop flag work
/// as there.
///
/// The head trains at `finetune.head_lr`; the backbone (or its LoRA
/// adapters) at `finetune.backbone_lr`, both defaulting to
/// `training.optimizer.lr` and following `training.scheduler` by optimizer
/// step. With `freeze_backbone` the backbone never trains; with
/// `freeze_backbone_epochs: N` it is frozen for the first N epochs, then
/// unfrozen and added to the optimization. With LoRA the backbone's own
/// weights never train; "the backbone" above then means its adapters (and
/// the biases `lora.bias` selects). Gradients of head and backbone are
/// clipped together to `training.gradient_clip`.
pub fn finetune(
    ft: &Finetuner,
    targets: &Targets,
    train: &DataLoader,
    val: Option<&DataLoader>,
    opts: FinetuneOptions,
) -> Result<FinetuneSummary> {
    let mut task = Finetuning {
        ft,
        targets,
        val,
        opts: &opts,
        head_opt: Optimizer::new(&opts.training.optimizer, ft.head_parameters()),
        backbone_opt: None,
        backbone_on: false,
        log: None,
        eval: None,
        records: Vec::new(),
    };
    let fitted = fit(
        &mut task,
        &Labelled {
            loader: train,
            targets,
            device: opts.device,
        },
        FitOptions {
            training: opts.training,
            device: opts.device,
            checkpoints: opts.checkpoints.as_ref(),
            resume_from: opts.resume_from.as_deref(),
            progress_bar: opts.verbose && std::io::IsTerminal::is_terminal(&std::io::stderr()),
            verbose: opts.verbose,
            max_steps: opts.max_steps,
            max_duration: None,
            stop: opts.stop,
            strategy: opts.strategy.unwrap_or(&SingleProcess),
        },
    )?;
    // Leave the backbone as it was loaded (with LoRA, its weights merged).
    ft.restore_trainable();
    Ok(FinetuneSummary {
        stop: fitted.stop,
        epochs: task.records,
        steps: fitted.steps,
        log_path: task.log.map(|l| l.path().to_path_buf()),
    })
}

/// Validation results.
#[derive(Debug, Clone, PartialEq)]
pub struct Evaluation {
    /// Mean loss per cell.
    pub loss: f64,
    /// Accuracy (classification).
    pub accuracy: Option<f64>,
    /// Macro-F1 (classification).
    pub f1_macro: Option<f64>,
    /// Mean squared error (regression).
    pub mse: Option<f64>,
    /// Cells evaluated.
    pub n_cells: usize,
}

/// Loss and metrics of `ft` on the cells of `data` (no dropout, no
/// gradients).
pub fn evaluate(
    ft: &Finetuner,
    targets: &Targets,
    data: &DataLoader,
    opts: &FinetuneOptions,
) -> Result<Evaluation> {
    let (mut sum, mut n) = (0.0, 0usize);
    let (mut truth, mut pred) = (Vec::new(), Vec::new());
    let mut it = data.epoch(0);
    while let Some(next) = it.next_with_cells() {
        let (cell_ids, batch) = next?;
        let batch = batch.to_device(opts.device);
        let y = targets.batch(&cell_ids, opts.device);
        let out = tch::no_grad(|| {
            with_precision(opts.training.precision, opts.device, || {
                ft.forward(&batch, false)
            })
        })
        .to_kind(Kind::Float);
        let loss = tch::no_grad(|| ft.loss(&out, &y)).double_value(&[]);
        sum += loss * cell_ids.len() as f64;
        n += cell_ids.len();
        if ft.task == FinetuneTask::Classification {
            let p: Vec<i64> = Vec::try_from(out.argmax(-1, false).to_device(Device::Cpu))?;
            let t: Vec<i64> = Vec::try_from(y.to_device(Device::Cpu))?;
            for (p, t) in p.into_iter().zip(t) {
                if t >= 0 {
                    truth.push(t as usize);
                    pred.push(p as usize);
                }
            }
        }
    }
    let loss = sum / n.max(1) as f64;
    Ok(match ft.task {
        FinetuneTask::Classification => {
            let (acc, f1, _) = forge_assess::probe::classification_scores(&truth, &pred);
            Evaluation {
                loss,
                accuracy: Some(acc),
                f1_macro: Some(f1),
                mse: None,
                n_cells: n,
            }
        }
        FinetuneTask::Regression => Evaluation {
            loss,
            accuracy: None,
            f1_macro: None,
            mse: Some(loss),
            n_cells: n,
        },
    })
}

/// Width of `model.encode` on the first batch of `data`.
pub fn embedding_dim(model: &dyn ForgeModel, data: &DataLoader, device: Device) -> Result<i64> {
    let mut it = data.epoch(0);
    let Some(first) = it.next() else {
        return Err(ForgeError::Batch {
            key: "input_ids",
            message: "the training set has no cell".into(),
        });
    };
    let batch = first?.to_device(device);
    let emb = tch::no_grad(|| model.encode(&batch));
    if emb.dim() != 2 {
        return Err(ForgeError::Batch {
            key: "input_ids",
            message: format!(
                "`{}`.encode gave a tensor of shape {:?}; fine-tuning needs (batch, dim)",
                model.registry_name(),
                emb.size()
            ),
        });
    }
    Ok(emb.size()[1])
}
