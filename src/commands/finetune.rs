//! `forge finetune --config FILE.yaml --checkpoint DIR`: fine-tune a
//! pretrained checkpoint on labelled cells.
//!
//! The backbone, its vocabulary and tokenizer come from the checkpoint; the
//! config gives the data (`data.paths`, how to read them), the training
//! loop (`training`) and the task (`finetune`: label key, head, freezing,
//! learning rates, LoRA). Prints train loss, validation loss and accuracy /
//! macro-F1 (or MSE) per epoch, and writes the output folder at once (see
//! `forge_train::finetune::save`): `pretrained/` (the fine-tuned backbone),
//! `head.safetensors`, `head_config.json`, `labels.json`, `config.yaml`
//! and `logs/metrics.csv`. Checkpoints go to `<out>-checkpoints` (`last/`
//! and the best `save_top_k` epochs), as in pretraining: `--resume-from`
//! continues a run, and Ctrl-C stops at the next batch with a resumable
//! checkpoint (exit code 130, no model written).
//!
//! Distributed as `forge train` (see [`super::distributed`]): each rank
//! trains on its shard of the training cells and validates on all the
//! validation cells; rank 0 alone writes checkpoints and the output.

use std::path::PathBuf;
use std::process::ExitCode;

use forge_core::ForgeConfig;
use forge_train::finetune::{JobOptions, run_job};
use forge_train::train::StopReason;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// The scModelForge YAML config (with a `finetune` section).
    #[arg(long)]
    pub config: PathBuf,
    /// Pretrained checkpoint folder (save_pretrained layout; default:
    /// finetune.checkpoint_path).
    #[arg(long)]
    pub checkpoint: Option<PathBuf>,
    /// Output folder (default: <training.checkpoint_dir>/finetuned).
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Replace the output folder when it exists (only an earlier
    /// fine-tuning output or an empty folder), and start over when
    /// <out>-checkpoints holds an earlier run's checkpoints.
    #[arg(long)]
    pub force: bool,
    /// Continue from a fine-tuning checkpoint folder, e.g.
    /// <out>-checkpoints/last (overrides training.resume_from).
    #[arg(long)]
    pub resume_from: Option<PathBuf>,
    /// Where to train: `auto` (a GPU when there is one) or `cpu`; with
    /// training.num_gpus above 1, `cpu` starts that many CPU processes.
    #[arg(long, value_enum, default_value_t)]
    pub accelerator: super::distributed::Accelerator,
}

pub fn run(args: &Args) -> anyhow::Result<ExitCode> {
    let cfg = match ForgeConfig::load_with_warnings(&args.config) {
        Ok((cfg, warnings)) => {
            warnings.print_warnings();
            for key in pretraining_only_keys(&cfg) {
                eprintln!(
                    "warning: {}: {key} shapes pretraining only; fine-tuning (as scModelForge's) \
                     does not use it",
                    args.config.display()
                );
            }
            cfg
        }
        Err(errors) => {
            eprintln!("{errors}");
            return Ok(ExitCode::FAILURE);
        }
    };
    if let Some(problem) = args
        .checkpoint
        .as_deref()
        .and_then(|p| p.to_str())
        .and_then(forge_core::config::checks::lightning_checkpoint_problem)
    {
        anyhow::bail!("--checkpoint: {problem}");
    }
    super::train::check_resume_from(args.resume_from.as_deref())?;
    let role = super::distributed::role(&cfg, args.accelerator)?;
    if let super::distributed::Role::Launch(n) = role {
        return super::distributed::launch(n);
    }
    // The tokenizer comes from the checkpoint, so only the values are
    // checked here (NaN, inf, negatives under normalisation).
    let corpus = forge_data::Corpus::from_config(&cfg.data)?;
    for warning in forge_data::checks::check_values(&corpus, &cfg.data, false)? {
        eprintln!("warning: {warning}");
    }
    drop(corpus);
    let out = args.out.clone().unwrap_or_else(|| {
        PathBuf::from(
            cfg.training
                .checkpoint_dir
                .as_deref()
                .unwrap_or(&cfg.training.log_dir),
        )
        .join("finetuned")
    });
    let device = super::distributed::device(&role, args.accelerator)?;
    for note in forge_core::precision::check(
        cfg.training.precision,
        device,
        forge_core::precision::CpuMatrixUnits::detect(),
    )? {
        eprintln!("{note}");
    }
    let report = run_job(
        &cfg,
        &JobOptions {
            config_path: Some(args.config.clone()),
            checkpoint: args.checkpoint.clone(),
            out,
            force: args.force,
            device,
            verbose: true,
            resume_from: args.resume_from.clone(),
            stop: Some(super::train::stop_flag()),
            parallel: role.parallel(),
        },
    )?;
    if !role.is_main() {
        return Ok(if report.summary.stop == StopReason::Completed {
            ExitCode::SUCCESS
        } else {
            ExitCode::from(130)
        });
    }
    let resume_hint = format!(
        "{} (resume with --resume-from {})",
        report.checkpoints.display(),
        report.checkpoints.join("last").display()
    );
    if report.summary.stop != StopReason::Completed {
        println!(
            "fine-tuning interrupted after {} steps; no model written",
            report.summary.steps
        );
        println!("checkpoints  {resume_hint}");
        return Ok(ExitCode::from(130));
    }
    let epochs = &report.summary.epochs;
    let secs: f64 = epochs.iter().map(|e| e.seconds).sum();
    println!(
        "fine-tuned {} on {} cells ({} validation): {} epochs, {} steps, {} per epoch",
        report.architecture,
        report.n_train,
        report.n_val,
        epochs.len(),
        report.summary.steps,
        forge_train::finetune::seconds_text(secs / epochs.len().max(1) as f64)
    );
    println!(
        "trained parameters: head {}, {} {}",
        report.trained_parameters.0,
        if report.lora_adapted > 0 {
            "LoRA adapters"
        } else {
            "backbone"
        },
        report.trained_parameters.1
    );
    if let Some(last) = epochs.last() {
        let mut line = format!("final: train loss {:.4}", last.train_loss);
        for (name, v) in [
            ("val loss", last.val_loss),
            ("accuracy", last.accuracy),
            ("f1_macro", last.f1_macro),
            ("mse", last.mse),
        ] {
            if let Some(v) = v {
                line.push_str(&format!(", {name} {v:.4}"));
            }
        }
        println!("{line}");
    }
    if let Some(log) = &report.summary.log_path {
        println!("metrics      {}", log.display());
    }
    println!("checkpoints  {resume_hint}");
    println!("model        {}", report.out.display());
    Ok(ExitCode::SUCCESS)
}

/// Keys set in `cfg` that pretraining honours and fine-tuning, like
/// scModelForge's, does not use.
fn pretraining_only_keys(cfg: &ForgeConfig) -> Vec<&'static str> {
    use forge_core::config::{GeneSelectionStrategy, SamplingStrategy};
    let mut keys = Vec::new();
    if cfg.training.sampling.strategy != SamplingStrategy::Random {
        keys.push("training.sampling");
    }
    if cfg.data.gene_selection.strategy != GeneSelectionStrategy::All {
        keys.push("data.gene_selection");
    }
    if !cfg.eval.benchmarks.is_empty() {
        keys.push("eval.benchmarks");
    }
    keys
}
