//! The fine-tuning loop.

use std::path::PathBuf;
use std::time::Instant;

use tch::nn::VarStore;
use tch::{Device, Kind, Reduction, Tensor};

use super::head::TaskHead;
use super::labels::Targets;
use super::lora::Lora;
use super::metrics::{EpochMetrics, FinetuneLog};
use crate::train::optim::Optimizer;
use crate::train::schedule::learning_rate;
use crate::train::step::{non_finite_loss, optimizer_step, progress_bar, window_ends};
use forge_core::batch::Batch;
use forge_core::config::{FinetuneConfig, FinetuneTask, TrainingConfig};
use forge_core::error::{ForgeError, Result};
use forge_core::model::ForgeModel;
use forge_core::params::{Parameters, join, named_parameters};
use forge_core::precision::{LossScaler, with_precision};
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
}

/// What a fine-tuning run did.
#[derive(Debug, Clone)]
pub struct FinetuneSummary {
    /// One record per epoch.
    pub epochs: Vec<EpochMetrics>,
    /// Optimizer steps taken.
    pub steps: i64,
    /// The metrics file, when one was written.
    pub log_path: Option<PathBuf>,
}

/// Whether the backbone trains in `epoch` (0-based).
pub fn backbone_trains(cfg: &FinetuneConfig, epoch: usize) -> bool {
    !cfg.freeze_backbone && epoch as i64 >= cfg.freeze_backbone_epochs.max(0)
}

/// Fine-tunes `ft` on the cells of `train` (every one labelled in
/// `targets`), validating on `val` after each epoch.
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
    let cfg = opts.training;
    let fcfg = opts.finetune;
    forge_core::precision::check(cfg.precision, opts.device, None)?;
    let mut scaler = LossScaler::new(cfg.precision, opts.device);
    let accumulation = cfg.gradient_accumulation.max(1) as usize;
    let base_lr = cfg.optimizer.lr;
    let head_lr = fcfg.head_lr.unwrap_or(base_lr);
    let backbone_lr = fcfg.backbone_lr.unwrap_or(base_lr);
    let lr_at = |lr: f64, step: i64| learning_rate(lr, cfg.scheduler.as_ref(), step);
    let mut head_opt = Optimizer::new(&cfg.optimizer, ft.head_parameters());
    let mut backbone_opt: Option<Optimizer> = None;
    let mut log = opts
        .log_dir
        .as_ref()
        .map(|d| FinetuneLog::open(d, cfg))
        .transpose()?;
    let max_epochs = cfg.max_epochs.max(0) as usize;
    let mut step: i64 = 0;
    let mut records = Vec::new();
    let progress = (opts.verbose && std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .then(|| progress_bar(Some(train.n_batches())));
    let mut backbone_on = backbone_trains(fcfg, 0);
    ft.set_backbone_trainable(backbone_on);
    ft.merge();

    for epoch in 0..max_epochs {
        let start = Instant::now();
        let on = backbone_trains(fcfg, epoch);
        if on != backbone_on {
            ft.set_backbone_trainable(on);
            backbone_on = on;
        }
        if on && backbone_opt.is_none() {
            backbone_opt = Some(Optimizer::new(&cfg.optimizer, ft.backbone_parameters()));
        }
        let (mut loss_sum, mut batches, mut cells, mut pending) = (0.0, 0usize, 0usize, 0usize);
        let mut do_step = |head_opt: &mut Optimizer,
                           backbone_opt: &mut Option<Optimizer>,
                           scaler: &mut LossScaler| {
            if let Some(l) = ft.lora.as_ref().filter(|_| on) {
                l.backward();
            }
            let mut optimizers = vec![(&mut *head_opt, lr_at(head_lr, step))];
            if let Some(b) = backbone_opt.as_mut().filter(|_| on) {
                optimizers.push((b, lr_at(backbone_lr, step)));
            }
            optimizer_step(scaler, &mut optimizers, cfg.gradient_clip);
            ft.merge();
            step += 1;
        };
        if let Some(pb) = &progress {
            pb.set_position(0);
            pb.set_message(format!("epoch {}/{max_epochs}", epoch + 1));
        }
        let n_batches = train.n_batches();
        let mut it = train.epoch(epoch as u64);
        while let Some(next) = it.next_with_cells() {
            let (cell_ids, batch) = next?;
            let batch = batch.to_device(opts.device);
            let y = targets.batch(&cell_ids, opts.device);
            let out = with_precision(cfg.precision, opts.device, || ft.forward(&batch, true));
            let loss = ft.loss(&out, &y);
            let value = loss.double_value(&[]);
            if !value.is_finite() {
                return Err(non_finite_loss(&batch, value, step, epoch));
            }
            scaler.scale_loss(&(loss / accumulation as f64)).backward();
            loss_sum += value;
            batches += 1;
            cells += cell_ids.len();
            pending += 1;
            if window_ends(batches, accumulation, batches == n_batches) {
                do_step(&mut head_opt, &mut backbone_opt, &mut scaler);
                pending = 0;
            }
            if let Some(pb) = &progress {
                pb.inc(1);
            }
        }
        if pending > 0 {
            do_step(&mut head_opt, &mut backbone_opt, &mut scaler);
        }
        let train_secs = start.elapsed().as_secs_f64().max(1e-9);
        let eval = match val {
            Some(v) if v.n_cells() > 0 => Some(evaluate(ft, targets, v, &opts)?),
            _ => None,
        };
        let last = step.max(1) - 1;
        let m = EpochMetrics {
            epoch,
            step,
            train_loss: loss_sum / batches.max(1) as f64,
            val_loss: eval.as_ref().map(|e| e.loss),
            accuracy: eval.as_ref().and_then(|e| e.accuracy),
            f1_macro: eval.as_ref().and_then(|e| e.f1_macro),
            mse: eval.as_ref().and_then(|e| e.mse),
            head_lr: lr_at(head_lr, last),
            backbone_lr: if on { lr_at(backbone_lr, last) } else { 0.0 },
            backbone_trained: on,
            cells_per_s: cells as f64 / train_secs,
            seconds: start.elapsed().as_secs_f64(),
        };
        match &progress {
            Some(pb) => pb.println(m.line(max_epochs)),
            None if opts.verbose => eprintln!("{}", m.line(max_epochs)),
            None => {}
        }
        if let Some(log) = log.as_mut() {
            log.record(&m)?;
        }
        records.push(m);
    }
    if let Some(pb) = progress {
        pb.finish_and_clear();
    }
    // Leave the backbone as it was loaded (with LoRA, its weights merged).
    ft.restore_trainable();
    Ok(FinetuneSummary {
        epochs: records,
        steps: step,
        log_path: log.map(|l| l.path().to_path_buf()),
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
