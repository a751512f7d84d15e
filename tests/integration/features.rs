//! scModelForge features through the `forge` binary: the TensorBoard
//! logger (read back with the `tensorboard` package), benchmarks during
//! training and `assess --config`, `preprocess` (read back with anndata,
//! highly variable genes checked against the numpy reference), weighted
//! sampling and batch-level gene selection. Tiny models, a few steps.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::cli::forge;

fn run(args: &[&str]) -> (bool, String, String) {
    let out = forge(args);
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(!stderr.contains("panicked"), "{stderr}");
    (out.status.success(), stdout, stderr)
}

fn ok(args: &[&str]) -> (String, String) {
    let (success, stdout, stderr) = run(args);
    assert!(success, "forge {args:?} failed\n{stdout}\n{stderr}");
    (stdout, stderr)
}

fn refused(args: &[&str]) -> String {
    let (success, stdout, stderr) = run(args);
    assert!(!success, "forge {args:?} should have failed:\n{stdout}");
    stderr
}

fn scratch(name: &str) -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("features-{name}"));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// The venv's python, or `None` (the test then says it skips).
fn python() -> Option<PathBuf> {
    let p = Path::new(env!("CARGO_MANIFEST_DIR")).join(".venv/bin/python");
    if p.exists() {
        Some(p)
    } else {
        eprintln!(
            "skipping the Python check: {} not found (run scripts/setup.sh)",
            p.display()
        );
        None
    }
}

fn run_python(python: &Path, script: &str, args: &[&str]) -> String {
    let out = Command::new(python)
        .arg("-c")
        .arg(script)
        .args(args)
        .env(
            "PYTHONPATH",
            Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts"),
        )
        .output()
        .expect("python runs");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "python failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

fn synth(dir: &Path) -> PathBuf {
    let data = dir.join("cells.h5ad");
    ok(&[
        "synth",
        "--cells",
        "120",
        "--genes",
        "60",
        "--types",
        "3",
        "--batches",
        "2",
        "--out",
        s(&data),
    ]);
    data
}

/// A tiny config over `data`; `extra` is appended to the `training`
/// section, `tail` after it (whole sections).
fn config(data: &Path, extra_data: &str, extra_training: &str, tail: &str) -> String {
    format!(
        "data:
  paths: [{}]
  max_genes: 32
{extra_data}tokenizer:
  strategy: rank_value
  max_genes: 32
model:
  architecture: transformer_encoder
  hidden_dim: 16
  num_layers: 1
  num_heads: 2
  ffn_dim: 32
  dropout: 0.0
  max_seq_len: 32
training:
  batch_size: 16
  max_epochs: 2
  seed: 1
  precision: 32-true
  optimizer: {{name: adamw, lr: 1.0e-3}}
  scheduler: {{name: cosine_warmup, warmup_steps: 2, total_steps: 20}}
  log_every_n_steps: 2
  val_split: 0.2
  num_workers: 1
{extra_training}{tail}",
        data.display()
    )
}

const BENCHMARKS: &str = "eval:
  every_n_epochs: 1
  batch_size: 32
  benchmarks:
    - {name: linear_probe, params: {cell_type_key: cell_type}}
    - {name: embedding_quality, dataset: cells, cell_type_key: cell_type, batch_key: batch}
";

const READ_EVENTS: &str = r#"
import glob, math, sys
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
files = glob.glob(sys.argv[1] + "/events.out.tfevents.*")
assert len(files) == 1, files
acc = EventAccumulator(files[0])
acc.Reload()
tags = set(acc.Tags()["scalars"])
for tag in ["train/loss", "train/perplexity", "val/loss", "lr-AdamW/pg1", "train/grad_norm",
            "perf/cells_per_sec", "assessment/linear_probe/val/accuracy",
            "assessment/embedding_quality/val/nmi", "assessment/embedding_quality/val/asw_batch"]:
    assert tag in tags, (tag, sorted(tags))
    for e in acc.Scalars(tag):
        assert math.isfinite(e.value), (tag, e)
print("train_loss_points", len(acc.Scalars("train/loss")))
print("assessments", len(acc.Scalars("assessment/linear_probe/val/accuracy")))
print("first_lr", acc.Scalars("lr-AdamW/pg1")[0].value)
"#;

#[test]
fn tensorboard_logger_and_benchmarks_during_training() {
    let dir = scratch("tensorboard");
    let data = synth(&dir);
    let cfg = dir.join("tb.yaml");
    std::fs::write(
        &cfg,
        config(
            &data,
            "",
            "  logger: TensorBoard\n  run_name: tb-run\n",
            BENCHMARKS,
        ),
    )
    .unwrap();
    let out = dir.join("run");
    let (_, stderr) = ok(&["train", "--config", s(&cfg), "--out", s(&out)]);
    assert!(
        stderr.contains("assessment: 2 benchmark(s) every 1 epoch(s)"),
        "{stderr}"
    );
    assert!(
        stderr.contains("assessment [linear_probe] val: accuracy="),
        "{stderr}"
    );
    let version = out.join("logs/tb-run/version_0");
    assert!(version.is_dir(), "{stderr}");
    // The benchmark results are in the log beside the metrics (JSON lines
    // for tensorboard): 2 epochs x (3 + 6) metrics.
    let lines = std::fs::read_to_string(out.join("logs/assessment.jsonl")).unwrap();
    assert_eq!(lines.lines().count(), 18, "{lines}");
    if let Some(py) = python() {
        let text = run_python(&py, READ_EVENTS, &[s(&version)]);
        assert!(text.contains("assessments 2"), "{text}");
        assert!(!text.contains("train_loss_points 0"), "{text}");
    }
    // A second run numbers its folder on, as Lightning does.
    ok(&["train", "--config", s(&cfg), "--out", s(&out)]);
    assert!(out.join("logs/tb-run/version_1").is_dir());

    // forge assess --config runs the config's benchmarks, as scModelForge's
    // `benchmark` does, and writes them as JSON.
    let report = dir.join("report");
    let (stdout, _) = ok(&[
        "assess",
        "--config",
        s(&cfg),
        "--model",
        s(&out.join("pretrained")),
        "--data",
        s(&data),
        "--out",
        s(&report),
    ]);
    assert!(
        stdout.contains("[linear_probe] data: accuracy="),
        "{stdout}"
    );
    let json: serde_json::Value =
        serde_json::from_slice(&std::fs::read(report.join("benchmarks.json")).unwrap()).unwrap();
    let list = json.as_array().unwrap();
    assert_eq!(list.len(), 2);
    assert_eq!(list[0]["benchmark_name"], "linear_probe");
    assert_eq!(list[0]["dataset_name"], "data");
    let acc = list[0]["metrics"]["accuracy"].as_f64().unwrap();
    assert!((0.0..=1.0).contains(&acc), "{json}");
    assert!(
        list[1]["metrics"]["graph_connectivity"].is_number(),
        "{json}"
    );
}

#[test]
fn loggers_and_benchmarks_forge_lacks_are_named() {
    let dir = scratch("loggers");
    let data = synth(&dir);
    let cfg = dir.join("c.yaml");
    // wandb: a one-line warning naming the project, then csv.
    std::fs::write(
        &cfg,
        config(
            &data,
            "",
            "  logger: wandb\n  wandb_project: my-proj\n",
            "eval:\n  every_n_epochs: 2\n  benchmarks: [linear_probe]\n",
        ),
    )
    .unwrap();
    let out = dir.join("run");
    let (_, stderr) = ok(&["train", "--config", s(&cfg), "--out", s(&out)]);
    // One line for the logger (the synthetic cells may add a data warning).
    let warning: Vec<&str> = stderr
        .lines()
        .filter(|l| l.starts_with("warning:") && l.contains("training.logger"))
        .collect();
    assert_eq!(warning.len(), 1, "{stderr}");
    assert!(warning[0].contains("training.logger: wandb") && warning[0].contains("my-proj"));
    assert!(out.join("logs/metrics.csv").is_file());
    // linear_probe's default cell_type_key is "cell_type", which the
    // synthetic cells have; every_n_epochs 2 runs it after epoch 0 only.
    let rows = std::fs::read_to_string(out.join("logs/assessment.csv")).unwrap();
    assert!(
        rows.starts_with("step,epoch,benchmark,dataset,metric,value\n"),
        "{rows}"
    );
    assert!(rows.contains(",0,linear_probe,val,accuracy,"), "{rows}");

    for (training, tail, expect) in [
        (
            "  logger: mlflow\n",
            "",
            "training.logger: invalid value \"mlflow\"; accepted values: csv, tensorboard, wandb",
        ),
        (
            "",
            "eval:\n  benchmarks: [linear_probe, perturbation]\n",
            "forge has no benchmark \"perturbation\"; available: embedding_quality, linear_probe",
        ),
        (
            "",
            "eval:\n  benchmarks: [{name: linear_probe, params: {cell_type_key: tissue}}]\n",
            "linear_probe needs obs column `tissue`",
        ),
    ] {
        std::fs::write(&cfg, config(&data, "", training, tail)).unwrap();
        let err = refused(&["train", "--config", s(&cfg), "--out", s(&dir.join("bad"))]);
        assert!(err.contains(expect), "{err}");
    }
}

const CHECK_PREPROCESSED: &str = r#"
import sys
import anndata as ad
import numpy as np
import scipy.sparse as sp
from make_hvg_fixture import seurat
raw = ad.read_h5ad(sys.argv[1])
out = ad.read_h5ad(sys.argv[2])
n_top = int(sys.argv[3])
x = raw.X.toarray() if sp.issparse(raw.X) else np.asarray(raw.X)
x = x.astype(np.float64)
tot = x.sum(axis=1, keepdims=True)
tot[tot == 0] = 1
logn = np.log1p(x / tot * 1e4).astype(np.float32)
mean, disp, norm, selected = seurat(logn, n_top)
assert out.n_obs == raw.n_obs, (out.n_obs, raw.n_obs)
assert list(out.obs_names) == list(raw.obs_names)
assert list(out.obs["cell_type"]) == list(raw.obs["cell_type"])
got = [list(raw.var_names).index(g) for g in out.var_names]
finite = np.sort(norm[~np.isnan(norm)])[::-1]
cut = finite[min(n_top, finite.size) - 1]
for g in set(got) ^ set(selected.tolist()):
    assert abs(norm[g] - cut) < 1e-9, ("hvg differs", g, norm[g], cut)
y = out.X.toarray() if sp.issparse(out.X) else np.asarray(out.X)
assert np.allclose(y, logn[:, got], atol=1e-5), np.abs(y - logn[:, got]).max()
assert np.allclose(out.var["dispersions_norm"].to_numpy(), norm[got], equal_nan=True)
print("ok", out.n_vars)
"#;

#[test]
fn preprocess_selects_genes_once_and_training_does_not() {
    let dir = scratch("preprocess");
    let data = synth(&dir);
    let cfg = dir.join("p.yaml");
    std::fs::write(
        &cfg,
        config(&data, "  preprocessing: {hvg_selection: 20}\n", "", ""),
    )
    .unwrap();
    let pre = dir.join("pre.h5ad");
    let (stdout, _) = ok(&[
        "preprocess",
        "--config",
        s(&cfg),
        "--data",
        s(&data),
        "--out",
        s(&pre),
    ]);
    assert!(stdout.contains("60 -> "), "{stdout}");
    assert!(
        !dir.read_dir().unwrap().any(|e| e
            .unwrap()
            .file_name()
            .to_string_lossy()
            .contains("partial"))
    );
    if let Some(py) = python() {
        let text = run_python(&py, CHECK_PREPROCESSED, &[s(&data), s(&pre), "20"]);
        assert!(text.starts_with("ok"), "{text}");
    }
    let err = refused(&[
        "preprocess",
        "--config",
        s(&cfg),
        "--data",
        s(&data),
        "--out",
        s(&data),
    ]);
    assert!(err.contains("is the input file"), "{err}");

    // Training with hvg_selection set keeps every gene and says where the
    // selection happens.
    let (_, stderr) = ok(&[
        "train",
        "--config",
        s(&cfg),
        "--out",
        s(&dir.join("run")),
        "--max-steps",
        "1",
    ]);
    assert!(
        stderr
            .contains("note: data.preprocessing.hvg_selection (20) is not applied during training"),
        "{stderr}"
    );
    assert!(stderr.contains("forge preprocess --config"), "{stderr}");
    assert!(stderr.contains("vocabulary 60 genes"), "{stderr}");
}

#[test]
fn weighted_sampling_and_gene_selection_train() {
    let dir = scratch("sampling");
    let data = synth(&dir);
    let cfg = dir.join("s.yaml");
    std::fs::write(
        &cfg,
        config(
            &data,
            "  gene_selection: {strategy: most_expressed, n_genes: 12}\n",
            "  sampling: {strategy: weighted, label_key: cell_type, curriculum_warmup_epochs: 1}\n",
            "",
        ),
    )
    .unwrap();
    let (_, stderr) = ok(&["train", "--config", s(&cfg), "--out", s(&dir.join("run"))]);
    assert!(
        stderr.contains("weighted sampling by obs `cell_type`: 3 classes among the training cells, from uniform to fully weighted over 1 epochs"),
        "{stderr}"
    );
    for (extra_data, training, expect) in [
        (
            "  gene_selection: {strategy: most_expressed}\n",
            "",
            "data.gene_selection.n_genes",
        ),
        (
            "  gene_selection: {strategy: top_genes, n_genes: 3}\n",
            "",
            "invalid value \"top_genes\"",
        ),
        (
            "",
            "  sampling: {strategy: weighted, label_key: tissue}\n",
            "has no obs column `tissue` to weight cells by; its obs columns: cell_type, batch",
        ),
    ] {
        std::fs::write(&cfg, config(&data, extra_data, training, "")).unwrap();
        let err = refused(&["train", "--config", s(&cfg), "--out", s(&dir.join("bad"))]);
        assert!(err.contains(expect), "{err}");
    }
}
