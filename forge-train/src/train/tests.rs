//! Training-loop tests on small in-memory batches: learning, accumulation,
//! exact resume, interruption, top-k checkpoints and NaN handling.

use std::path::PathBuf;
use std::sync::atomic::AtomicBool;

use tch::{Device, Kind, Tensor, nn::VarStore};

use super::*;
use forge_core::config::{ModelConfig, Precision, SchedulerConfig, SchedulerName, TrainingConfig};
use forge_core::error::ForgeError;
use forge_core::model::Architecture;
use forge_core::models::TransformerEncoderModel;
use forge_core::params::named_parameters;
use forge_core::{Batch, ForgeModel};

/// Fixed batches: each epoch yields the same `n` batches of 4 cells whose
/// genes follow a learnable pattern (id = 4 + position).
struct Fixed {
    batches: usize,
    poison: bool,
}

/// Batches with no labelled position: every label is -100.
struct Unlabelled;

impl BatchSource for Unlabelled {
    fn batches(&self, _epoch: usize) -> Box<dyn Iterator<Item = forge_core::Result<Batch>> + '_> {
        Box::new((0..2).map(|_| {
            let ids = (Tensor::arange(8, (Kind::Int64, Device::Cpu)) + 4).repeat([4, 1]);
            let mask = Tensor::ones([4, 8], (Kind::Int64, Device::Cpu));
            let labels = Tensor::full([4, 8], -100, (Kind::Int64, Device::Cpu));
            let values = Tensor::ones([4, 8], (Kind::Float, Device::Cpu));
            Batch::builder(ids, mask)
                .values(values)
                .labels(labels)
                .build()
        }))
    }
    fn num_batches(&self) -> Option<usize> {
        Some(2)
    }
}

impl BatchSource for Fixed {
    fn batches(&self, _epoch: usize) -> Box<dyn Iterator<Item = forge_core::Result<Batch>> + '_> {
        Box::new((0..self.batches).map(move |i| {
            let ids = (Tensor::arange(8, (Kind::Int64, Device::Cpu)) + 4).repeat([4, 1]);
            let mask = Tensor::ones([4, 8], (Kind::Int64, Device::Cpu));
            let labels = ids.masked_fill(
                &(Tensor::arange(8, (Kind::Int64, Device::Cpu))
                    .remainder((i % 3 + 2) as i64)
                    .ne(0)),
                -100,
            );
            let fill = if self.poison { f64::NAN } else { 1.0 };
            let values = Tensor::full([4, 8], fill, (Kind::Float, Device::Cpu));
            Batch::builder(ids.masked_fill(&labels.ne(-100), 2), mask)
                .values(values)
                .labels(labels)
                .build()
        }))
    }
    fn num_batches(&self) -> Option<usize> {
        Some(self.batches)
    }
}

fn model(vs: &VarStore) -> TransformerEncoderModel {
    tch::manual_seed(0);
    let config = ModelConfig {
        vocab_size: Some(16),
        hidden_dim: 16,
        num_layers: 1,
        num_heads: 2,
        dropout: 0.0,
        max_seq_len: 8,
        ..ModelConfig::default()
    };
    TransformerEncoderModel::from_config(&vs.root(), &config).unwrap()
}

fn training(epochs: i64) -> TrainingConfig {
    let mut t = TrainingConfig {
        max_epochs: epochs,
        precision: Precision::Fp32True,
        log_every_n_steps: 1,
        gradient_clip: 1.0,
        scheduler: Some(SchedulerConfig {
            name: SchedulerName::CosineWarmup,
            warmup_steps: 2,
            total_steps: 40,
        }),
        ..TrainingConfig::default()
    };
    t.optimizer.lr = 1e-2;
    t
}

fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("forge-train-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    dir
}

fn options<'a>(cfg: &'a TrainingConfig, dir: &std::path::Path) -> TrainOptions<'a> {
    TrainOptions {
        training: cfg,
        device: Device::Cpu,
        checkpoints: Some(TrainCheckpoints::new(dir.join("ckpt"), cfg.save_top_k)),
        log_dir: dir.join("logs"),
        resume_from: None,
        progress_bar: false,
        max_steps: None,
        max_duration: None,
        stop: None,
        assessment: None,
        strategy: None,
    }
}

fn weights(m: &dyn ForgeModel) -> Vec<Tensor> {
    named_parameters(m)
        .into_iter()
        .map(|(_, t)| t.copy())
        .collect()
}

fn max_diff(a: &[Tensor], b: &[Tensor]) -> f64 {
    a.iter()
        .zip(b)
        .map(|(x, y)| (x - y).abs().max().double_value(&[]))
        .fold(0.0, f64::max)
}

#[test]
fn loss_goes_down_and_metrics_are_logged() {
    let dir = scratch("learn");
    let vs = VarStore::new(Device::Cpu);
    let m = model(&vs);
    let cfg = training(6);
    let data = Fixed {
        batches: 3,
        poison: false,
    };
    let summary = train(&m, &data, Some(&data), options(&cfg, &dir)).unwrap();
    assert_eq!(summary.stop, StopReason::Completed);
    assert_eq!((summary.steps, summary.epochs), (18, 6));
    let train_losses: Vec<f64> = summary
        .metrics
        .iter()
        .filter(|m| m.split == "train")
        .map(|m| m.loss)
        .collect();
    assert!(
        train_losses.last().unwrap() < &(train_losses[0] * 0.5),
        "{train_losses:?}"
    );
    assert_eq!(summary.val_losses.len(), 6);
    let csv = std::fs::read_to_string(dir.join("logs/metrics.csv")).unwrap();
    assert!(csv.starts_with("step,epoch,split,loss,perplexity,lr,grad_norm,cells_per_s"));
    assert_eq!(csv.lines().count(), 1 + summary.metrics.len());
    // Top-3 epoch checkpoints and `last` exist; others were pruned.
    let mut kept: Vec<String> = std::fs::read_dir(dir.join("ckpt"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    kept.sort();
    assert_eq!(kept.len(), 4, "{kept:?}");
    assert!(kept.contains(&"last".to_string()));
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn gradient_accumulation_counts_steps_per_accumulated_batches() {
    let dir = scratch("accum");
    let vs = VarStore::new(Device::Cpu);
    let m = model(&vs);
    let mut cfg = training(2);
    cfg.gradient_accumulation = 2;
    let data = Fixed {
        batches: 4,
        poison: false,
    };
    let summary = train(&m, &data, None, options(&cfg, &dir)).unwrap();
    assert_eq!(summary.steps, 4, "8 batches / 2 per step");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn resume_continues_exactly_where_it_stopped() {
    let data = Fixed {
        batches: 3,
        poison: false,
    };
    let cfg = training(2);
    // Straight through.
    let dir_a = scratch("resume-a");
    let vs_a = VarStore::new(Device::Cpu);
    let a = model(&vs_a);
    train(&a, &data, None, options(&cfg, &dir_a)).unwrap();
    // Stopped after 4 steps (mid second epoch), then resumed.
    let dir_b = scratch("resume-b");
    let vs_b = VarStore::new(Device::Cpu);
    let b = model(&vs_b);
    let mut first = options(&cfg, &dir_b);
    first.max_steps = Some(4);
    let s = train(&b, &data, None, first).unwrap();
    assert_eq!(s.stop, StopReason::StepLimit);
    let vs_c = VarStore::new(Device::Cpu);
    let c = model(&vs_c);
    let mut second = options(&cfg, &dir_b);
    second.resume_from = Some(dir_b.join("ckpt/last"));
    let s = train(&c, &data, None, second).unwrap();
    assert_eq!((s.stop, s.steps), (StopReason::Completed, 6));
    let d = max_diff(&weights(&a), &weights(&c));
    assert!(d < 1e-6, "resumed weights differ by {d}");
    std::fs::remove_dir_all(&dir_a).unwrap();
    std::fs::remove_dir_all(&dir_b).unwrap();
}

#[test]
fn stop_flag_saves_a_resumable_checkpoint() {
    let dir = scratch("stop");
    let vs = VarStore::new(Device::Cpu);
    let m = model(&vs);
    let cfg = training(5);
    let flag = AtomicBool::new(true);
    let mut opts = options(&cfg, &dir);
    opts.stop = Some(&flag);
    let s = train(
        &m,
        &Fixed {
            batches: 3,
            poison: false,
        },
        None,
        opts,
    )
    .unwrap();
    assert_eq!(s.stop, StopReason::Interrupted);
    let state: ResumeState = serde_json::from_str(
        &std::fs::read_to_string(dir.join("ckpt/last/trainer_state.json")).unwrap(),
    )
    .unwrap();
    assert_eq!((state.epoch, state.batch_in_epoch, state.step), (0, 1, 1));
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn nan_loss_stops_with_a_clear_error_and_keeps_the_last_checkpoint() {
    let dir = scratch("nan");
    let vs = VarStore::new(Device::Cpu);
    let m = model(&vs);
    let cfg = training(1);
    train(
        &m,
        &Fixed {
            batches: 2,
            poison: false,
        },
        None,
        options(&cfg, &dir),
    )
    .unwrap();
    let before = std::fs::read(dir.join("ckpt/last/model.safetensors")).unwrap();
    let cfg3 = training(3);
    let mut opts = options(&cfg3, &dir);
    opts.resume_from = Some(dir.join("ckpt/last"));
    let err = train(
        &m,
        &Fixed {
            batches: 2,
            poison: true,
        },
        None,
        opts,
    )
    .unwrap_err();
    assert!(matches!(err, ForgeError::NonFiniteLoss { .. }), "{err}");
    assert!(
        err.to_string().contains("last good checkpoint is kept"),
        "{err}"
    );
    assert_eq!(
        std::fs::read(dir.join("ckpt/last/model.safetensors")).unwrap(),
        before
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

/// A NaN loss from a batch with nothing to predict says so instead of
/// blaming the learning rate.
#[test]
fn nan_loss_without_labelled_positions_names_the_cause() {
    let dir = scratch("unlabelled");
    let vs = VarStore::new(Device::Cpu);
    let m = model(&vs);
    let cfg = training(1);
    let err = train(&m, &Unlabelled, None, options(&cfg, &dir)).unwrap_err();
    assert!(
        matches!(err, ForgeError::NoLabelledPosition { step: 0, epoch: 0 }),
        "{err}"
    );
    let text = err.to_string();
    assert!(text.contains("no labelled position"), "{text}");
    assert!(text.contains("not the learning rate"), "{text}");
    assert!(!text.contains("Lower training.optimizer.lr"), "{text}");
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn resume_from_a_missing_folder_names_it() {
    let dir = scratch("missing");
    let vs = VarStore::new(Device::Cpu);
    let m = model(&vs);
    let cfg = training(1);
    let mut opts = options(&cfg, &dir);
    opts.resume_from = Some(dir.join("nope"));
    let err = train(
        &m,
        &Fixed {
            batches: 1,
            poison: false,
        },
        None,
        opts,
    )
    .unwrap_err()
    .to_string();
    assert!(err.contains("nope") && err.contains("resume_from"), "{err}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn mixed_precisions_learn_as_fp32_does_with_float32_weights() {
    for precision in [Precision::Bf16Mixed, Precision::Fp16Mixed] {
        let dir = scratch(&format!("mixed-{precision}"));
        let vs = VarStore::new(Device::Cpu);
        let m = model(&vs);
        let mut cfg = training(6);
        cfg.precision = precision;
        let data = Fixed {
            batches: 3,
            poison: false,
        };
        let summary = train(&m, &data, Some(&data), options(&cfg, &dir)).unwrap();
        assert_eq!(summary.steps, 18);
        let losses: Vec<f64> = summary
            .metrics
            .iter()
            .filter(|m| m.split == "train")
            .map(|m| m.loss)
            .collect();
        assert!(
            losses.last().unwrap() < &(losses[0] * 0.5),
            "{precision}: {losses:?}"
        );
        assert!(summary.val_losses.iter().all(|v| v.is_finite()));
        // Master weights stay float32.
        for (name, p) in named_parameters(&m) {
            assert_eq!(p.kind(), Kind::Float, "{precision}: {name}");
        }
        std::fs::remove_dir_all(&dir).unwrap();
    }
}

#[test]
fn true_16_bit_precisions_are_refused_naming_the_key() {
    let dir = scratch("true16");
    let vs = VarStore::new(Device::Cpu);
    let m = model(&vs);
    let mut cfg = training(1);
    cfg.precision = Precision::Bf16True;
    let data = Fixed {
        batches: 1,
        poison: false,
    };
    let err = train(&m, &data, None, options(&cfg, &dir))
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("training.precision") && err.contains("bf16-mixed"),
        "{err}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

/// The `epoch-*` entries of a checkpoint folder, sorted.
pub(crate) fn epoch_folders(dir: &std::path::Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with("epoch-"))
        .collect();
    names.sort();
    names
}

/// `last/trainer_state.json` of the checkpoint folder `dir`, and the
/// epoch folders its record of the best names, sorted.
pub(crate) fn recorded_folders(dir: &std::path::Path) -> (ResumeState, Vec<String>) {
    let state: ResumeState = serde_json::from_str(
        &std::fs::read_to_string(dir.join("last/trainer_state.json")).unwrap(),
    )
    .unwrap();
    let mut names: Vec<String> = state
        .best
        .iter()
        .map(|b| format!("epoch-{:03}", b.1))
        .collect();
    names.sort();
    (state, names)
}

#[test]
fn reconcile_deletes_epoch_checkpoints_missing_from_the_record() {
    let dir = scratch("reconcile");
    for name in [
        "epoch-000",
        "epoch-001",
        "epoch-002",
        "epoch-003",
        "epoch-004",
        "epoch-005",
        "last",
    ] {
        std::fs::create_dir_all(dir.join(name)).unwrap();
        std::fs::write(dir.join(name).join("trainer_state.json"), "{}").unwrap();
    }
    // Not an epoch checkpoint: left alone.
    std::fs::write(dir.join("epoch-notes.txt"), "mine").unwrap();
    let ckpt = TrainCheckpoints::new(&dir, 3);
    let state = ResumeState {
        epoch: 6,
        best: vec![(0.5, 4), (0.6, 1), (0.7, 5)],
        ..ResumeState::default()
    };
    assert_eq!(ckpt.reconcile(&state).unwrap(), vec![0, 2, 3]);
    assert_eq!(
        epoch_folders(&dir),
        ["epoch-001", "epoch-004", "epoch-005", "epoch-notes.txt"]
    );
    assert!(dir.join("last/trainer_state.json").exists());
    // Already reconciled: nothing more to delete.
    assert!(ckpt.reconcile(&state).unwrap().is_empty());
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn a_run_resumed_from_last_removes_checkpoints_a_crash_left_behind() {
    let data = Fixed {
        batches: 2,
        poison: false,
    };
    let dir = scratch("crash-top-k");
    let mut cfg = training(3);
    cfg.save_top_k = 2;
    let vs = VarStore::new(Device::Cpu);
    let m = model(&vs);
    train(&m, &data, Some(&data), options(&cfg, &dir)).unwrap();
    let ckpt = dir.join("ckpt");
    // `last/` records the epoch folders that exist.
    let (state, recorded) = recorded_folders(&ckpt);
    assert_eq!(state.best.len(), 2);
    assert_eq!(epoch_folders(&ckpt), recorded);
    // A run killed after writing a checkpoint and before deleting the one
    // that fell out leaves a folder the record does not name.
    let stray = ckpt.join("epoch-009");
    std::fs::create_dir_all(&stray).unwrap();
    std::fs::copy(
        ckpt.join("last/trainer_state.json"),
        stray.join("trainer_state.json"),
    )
    .unwrap();
    cfg.max_epochs = 4;
    let vs = VarStore::new(Device::Cpu);
    let m = model(&vs);
    let mut opts = options(&cfg, &dir);
    opts.resume_from = Some(ckpt.join("last"));
    let s = train(&m, &data, Some(&data), opts).unwrap();
    assert_eq!((s.stop, s.epochs, s.steps), (StopReason::Completed, 4, 8));
    assert!(!stray.exists());
    let (state, recorded) = recorded_folders(&ckpt);
    assert_eq!(state.best.len(), 2);
    assert_eq!(epoch_folders(&ckpt), recorded);
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn validation_loss_is_the_padded_eval_loss_on_the_packed_path() {
    let vs = VarStore::new(Device::Cpu);
    tch::manual_seed(0);
    // Dropout on, so a pass in training mode would differ.
    let config = ModelConfig {
        vocab_size: Some(16),
        hidden_dim: 16,
        num_layers: 1,
        num_heads: 2,
        dropout: 0.3,
        max_seq_len: 8,
        ..ModelConfig::default()
    };
    let m = TransformerEncoderModel::from_config(&vs.root(), &config).unwrap();
    // Two cells, the second padded after 5 tokens.
    let ids = (Tensor::arange(8, (Kind::Int64, Device::Cpu)) + 4).repeat([2, 1]);
    let mask = Tensor::ones([2, 8], (Kind::Int64, Device::Cpu));
    let _ = mask.get(1).narrow(0, 5, 3).fill_(0);
    let labels = ids.masked_fill(&mask.eq(0), -100);
    let labels = labels.masked_fill(
        &Tensor::arange(8, (Kind::Int64, Device::Cpu))
            .remainder(2)
            .eq(0)
            .repeat([2, 1]),
        -100,
    );
    let batch = Batch::builder(ids, mask)
        .values(Tensor::ones([2, 8], (Kind::Float, Device::Cpu)))
        .labels(labels)
        .build()
        .unwrap();
    let padded = tch::no_grad(|| m.forward(&batch, false).loss.unwrap()).double_value(&[]);
    let packed = tch::no_grad(|| m.eval_loss(&batch).unwrap()).double_value(&[]);
    assert!(
        (padded - packed).abs() < 1e-5,
        "eval_loss {packed} != forward loss {padded}"
    );
    // Evaluation mode: no dropout, so two passes agree exactly, where the
    // training-mode loss does not.
    let again = tch::no_grad(|| m.eval_loss(&batch).unwrap()).double_value(&[]);
    assert_eq!(packed, again);
    let train = tch::no_grad(|| m.loss(&batch).unwrap()).double_value(&[]);
    assert!(
        (train - packed).abs() > 1e-6,
        "training loss {train} has no dropout"
    );
}

#[test]
fn a_partial_accumulation_window_at_the_end_of_an_epoch_is_stepped() {
    let dir = scratch("partial-window");
    let vs = VarStore::new(Device::Cpu);
    let m = model(&vs);
    let mut cfg = training(2);
    cfg.gradient_accumulation = 2;
    let data = Fixed {
        batches: 3,
        poison: false,
    };
    let summary = train(&m, &data, None, options(&cfg, &dir)).unwrap();
    assert_eq!(
        summary.steps, 4,
        "per epoch: one full window and one of 1 batch"
    );
    std::fs::remove_dir_all(&dir).unwrap();
}
