//! `forge train --config FILE.yaml`: pretraining on `data.paths`.
//!
//! Builds the gene vocabulary from the data, sets `model.vocab_size` from
//! it, tokenizes and masks as configured, splits off `val_split` of the
//! cells for validation, trains any registered model, and writes:
//! `logs/metrics.csv` (or `.jsonl`) and `logs/loss_curve.png`,
//! `checkpoints/last` and the best `save_top_k` epochs, `config.yaml` (the
//! resolved config) and `pretrained/` (a scModelForge checkpoint folder).
//! Ctrl-C stops at the next batch with a resumable checkpoint.
//!
//! Distributed (see [`super::distributed`]): under torchrun or Slurm each
//! process trains as its rank on its shard of the cells; with
//! `training.num_gpus: N` above 1 and no launcher, this command starts N
//! ranks itself. Rank 0 alone writes the logs, checkpoints, plot, resolved
//! config and `pretrained/`.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use anyhow::Context;
use forge_core::checkpoint::save_pretrained;
use forge_core::config::TokenizerStrategy;
use forge_core::precision;
use forge_core::tch::{self, nn::VarStore};
use forge_core::{ForgeConfig, registry};
use forge_data::checks::check_values;
use forge_data::gene_selection::GeneSelection;
use forge_data::sampling::WeightedSampler;
use forge_data::{DataPipeline, LoaderOptions};
use forge_train::train::{StopReason, TrainCheckpoints, TrainOptions, train};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// The scModelForge YAML config.
    #[arg(long)]
    pub config: PathBuf,
    /// Folder for logs, checkpoints and the pretrained model (default: the
    /// config's log_dir and checkpoint_dir).
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Stop after this many minutes (a resumable checkpoint is written).
    #[arg(long)]
    pub max_minutes: Option<f64>,
    /// Stop after this many optimizer steps.
    #[arg(long)]
    pub max_steps: Option<i64>,
    /// Continue from a training checkpoint folder (overrides
    /// training.resume_from).
    #[arg(long)]
    pub resume_from: Option<PathBuf>,
    /// Where to train: `auto` (a GPU when there is one) or `cpu`; with
    /// training.num_gpus above 1, `cpu` starts that many CPU processes.
    #[arg(long, value_enum, default_value_t)]
    pub accelerator: super::distributed::Accelerator,
}

/// Set by Ctrl-C; the handler can only be installed once per process.
pub fn stop_flag() -> Arc<AtomicBool> {
    static FLAG: OnceLock<Arc<AtomicBool>> = OnceLock::new();
    FLAG.get_or_init(|| {
        let flag = Arc::new(AtomicBool::new(false));
        let handler_flag = flag.clone();
        let _ = ctrlc::set_handler(move || {
            if handler_flag.swap(true, Ordering::SeqCst) {
                std::process::exit(130);
            }
            eprintln!("\nstopping after this batch (press Ctrl-C again to quit now)");
        });
        flag
    })
    .clone()
}

struct Layout {
    logs: PathBuf,
    checkpoints: Option<PathBuf>,
    pretrained: PathBuf,
    resolved_config: PathBuf,
}

fn layout(cfg: &ForgeConfig, out: Option<&Path>) -> Layout {
    match out {
        Some(out) => Layout {
            logs: out.join("logs"),
            checkpoints: Some(out.join("checkpoints")),
            pretrained: out.join("pretrained"),
            resolved_config: out.join("config.yaml"),
        },
        None => {
            let ckpt = cfg.training.checkpoint_dir.as_ref().map(PathBuf::from);
            let base = ckpt
                .clone()
                .unwrap_or_else(|| PathBuf::from(&cfg.training.log_dir));
            Layout {
                logs: PathBuf::from(&cfg.training.log_dir),
                pretrained: base.join("pretrained"),
                resolved_config: base.join("config.yaml"),
                checkpoints: ckpt,
            }
        }
    }
}

/// Refuses a Lightning `.ckpt` given to `--resume-from`: forge resumes from
/// its own checkpoint folders.
pub fn check_resume_from(path: Option<&Path>) -> anyhow::Result<()> {
    if let Some(problem) = path
        .and_then(|p| p.to_str())
        .and_then(forge_core::config::checks::lightning_checkpoint_problem)
    {
        anyhow::bail!("--resume-from: {problem}");
    }
    Ok(())
}

/// The optimizer steps a run plans: `max_epochs` epochs of
/// `batches_per_epoch / gradient_accumulation` steps (a last partial group
/// of batches makes no step), capped by `--max-steps`.
pub fn planned_steps(
    training: &forge_core::config::TrainingConfig,
    batches_per_epoch: usize,
    max_steps: Option<i64>,
) -> i64 {
    let per_epoch = (batches_per_epoch / training.gradient_accumulation.max(1) as usize) as i64;
    let planned = per_epoch * training.max_epochs.max(0);
    max_steps.map_or(planned, |m| planned.min(m.max(0)))
}

/// A warning when the schedule ends before the run does: every step past
/// `scheduler.total_steps` runs at the schedule's final learning rate (0 for
/// the cosine and linear schedules), learning nothing.
pub fn schedule_warning(
    training: &forge_core::config::TrainingConfig,
    planned: i64,
) -> Option<String> {
    let s = training.scheduler.as_ref()?;
    (planned > s.total_steps).then(|| {
        format!(
            "training.scheduler.total_steps ({}) is below the {planned} optimizer steps this \
             run plans (max_epochs {} x steps per epoch, or --max-steps): the learning rate \
             reaches 0 at step {} and the last {} steps learn nothing; set total_steps to \
             {planned} or lower max_epochs",
            s.total_steps,
            training.max_epochs,
            s.total_steps,
            planned - s.total_steps
        )
    })
}

pub fn run(args: &Args) -> anyhow::Result<ExitCode> {
    let mut cfg = match ForgeConfig::load_with_warnings(&args.config) {
        Ok((cfg, warnings)) => {
            warnings.print_warnings();
            cfg
        }
        Err(errors) => {
            eprintln!("{errors}");
            return Ok(ExitCode::FAILURE);
        }
    };
    check_resume_from(args.resume_from.as_deref())?;
    let role = super::distributed::role(&cfg, args.accelerator)?;
    if let super::distributed::Role::Launch(n) = role {
        return super::distributed::launch(n);
    }
    let main = role.is_main();
    let parallel = role.parallel();
    if cfg.training.num_gpus.is_none() && parallel.is_none() {
        let gpus = tch::Cuda::device_count();
        if gpus > 1 {
            eprintln!(
                "warning: {}: training.num_gpus is null: scModelForge would train on all {gpus} \
                 GPUs; forge trains on one (set num_gpus: 1 to say so)",
                args.config.display()
            );
        }
    }
    // training.logger: refused before any data is read when forge has no
    // such logger.
    forge_train::train::LoggerKind::from_config(&cfg.training).map_err(|mut e| {
        e.source_name = args.config.display().to_string();
        e
    })?;
    let seed = cfg.training.seed;
    tch::manual_seed(seed);
    let paths = layout(&cfg, args.out.as_deref());

    if let Some(n) = cfg.data.preprocessing.hvg_selection {
        eprintln!(
            "note: data.preprocessing.hvg_selection ({n}) is not applied during training (as in \
             scModelForge); select the genes once with `forge preprocess --config {} --data IN.h5ad \
             --out OUT.h5ad` and train on OUT.h5ad",
            args.config.display()
        );
    }
    eprintln!("reading {} file(s) from data.paths", cfg.data.paths.len());
    let pipeline = DataPipeline::from_config(&cfg)?;
    let drops_non_positive = cfg.tokenizer.strategy == TokenizerStrategy::RankValue;
    for warning in check_values(pipeline.corpus(), &cfg.data, drops_non_positive)? {
        eprintln!("warning: {warning}");
    }
    let vocab_size = pipeline.vocab().len() as i64;
    cfg.model.vocab_size = Some(vocab_size);
    let geneformer = cfg.tokenizer.strategy == TokenizerStrategy::Geneformer;
    // The most tokens a cell gets (geneformer: its model input size).
    let (len_key, longest) = if geneformer {
        (
            "tokenizer.model_input_size",
            pipeline.tokenizer().max_genes as i64,
        )
    } else {
        ("tokenizer.max_genes", cfg.tokenizer.max_genes)
    };
    if longest > cfg.model.max_seq_len {
        anyhow::bail!(
            "{}: {len_key} ({longest}) exceeds model.max_seq_len ({}): cells would be longer \
             than the position embedding; lower {len_key} or raise model.max_seq_len",
            args.config.display(),
            cfg.model.max_seq_len
        );
    }
    for warning in pipeline.warnings() {
        eprintln!("warning: {warning}");
    }
    let (train_set, val_set) = pipeline.split(cfg.training.val_split, seed as u64)?;
    let mut loader_opts = LoaderOptions::from_config(&cfg)?;
    // Each rank trains and validates on its shard (DistributedSampler).
    loader_opts.shard = parallel.as_ref().map(|p| p.shard());
    // data.gene_selection and training.sampling shape training batches only.
    loader_opts.gene_selection = GeneSelection::from_config(&cfg.data.gene_selection, seed as u64)?;
    loader_opts.sampler =
        WeightedSampler::from_config(pipeline.corpus(), &cfg.training.sampling, seed as u64)?;
    if let Some(s) = &loader_opts.sampler {
        eprintln!(
            "weighted sampling by obs `{}`: {} classes among the training cells{}",
            cfg.training.sampling.label_key,
            s.class_weights(&train_set.cells()).len(),
            match cfg.training.sampling.curriculum_warmup_epochs {
                0 => String::new(),
                w => format!(", from uniform to fully weighted over {w} epochs"),
            }
        );
    }
    let train_loader = train_set.loader(loader_opts.clone())?;
    // Validation batches are masked like training ones, in a fixed order,
    // with every gene.
    let val_opts = LoaderOptions {
        batch_size: cfg.eval.batch_size.max(1) as usize,
        shuffle: false,
        sampler: None,
        gene_selection: None,
        ..loader_opts.clone()
    };
    let val_loader = (!val_set.is_empty())
        .then(|| val_set.loader(val_opts))
        .transpose()?;
    eprintln!(
        "{} cells ({} train, {} validation), vocabulary {} genes",
        train_set.len() + val_set.len(),
        train_set.len(),
        val_set.len(),
        pipeline.vocab().n_genes()
    );
    let planned = planned_steps(&cfg.training, train_loader.n_batches(), args.max_steps);
    if let Some(warning) = schedule_warning(&cfg.training, planned) {
        eprintln!("warning: {}: {warning}", args.config.display());
    }

    let device = super::distributed::device(&role, args.accelerator)?;
    for note in precision::check(
        cfg.training.precision,
        device,
        precision::CpuMatrixUnits::detect(),
    )? {
        eprintln!("{note}");
    }
    let vs = VarStore::new(device);
    let model = registry::build(&vs.root(), &cfg.model)?;
    eprintln!(
        "model {} on {device:?}\n{}",
        model.registry_name(),
        model.parameter_table()
    );
    if main {
        forge_core::atomic::write_file(&paths.resolved_config, cfg.to_yaml_string().as_bytes())?;
    }

    // eval.benchmarks run after every `every_n_epochs` epochs on all the
    // training cells (scModelForge's AssessmentCallback); none when the
    // list is empty, as there.
    let harness = if cfg.eval.benchmarks.is_empty() {
        None
    } else {
        let h = forge_train::harness::Harness::from_config(&cfg.eval).map_err(|mut e| {
            e.source_name = args.config.display().to_string();
            e
        })?;
        h.check_data(&pipeline)?;
        eprintln!(
            "assessment: {} benchmark(s) every {} epoch(s)",
            h.benchmarks().len(),
            cfg.eval.every_n_epochs
        );
        Some(h)
    };
    let assessment = harness
        .as_ref()
        .map(|harness| forge_train::harness::TrainingAssessment {
            harness,
            pipeline: &pipeline,
            device,
        });

    let flag = stop_flag();
    let resume_from = args
        .resume_from
        .clone()
        .or_else(|| cfg.training.resume_from.as_ref().map(PathBuf::from));
    let summary = train(
        model.as_ref(),
        &train_loader,
        val_loader
            .as_ref()
            .map(|l| l as &dyn forge_train::train::BatchSource),
        TrainOptions {
            training: &cfg.training,
            device,
            checkpoints: paths
                .checkpoints
                .as_ref()
                .map(|d| TrainCheckpoints::new(d, cfg.training.save_top_k)),
            log_dir: paths.logs.clone(),
            resume_from,
            progress_bar: std::io::IsTerminal::is_terminal(&std::io::stderr()),
            max_steps: args.max_steps,
            max_duration: args.max_minutes.map(|m| Duration::from_secs_f64(m * 60.0)),
            stop: Some(&flag),
            assessment: assessment
                .as_ref()
                .map(|a| a as &dyn forge_train::train::EpochAssessment),
            strategy: parallel
                .as_deref()
                .map(|p| p as &dyn forge_train::train::Strategy),
        },
    )?;
    if !main {
        return Ok(if summary.stop == StopReason::Interrupted {
            ExitCode::from(130)
        } else {
            ExitCode::SUCCESS
        });
    }

    let curve: Vec<(&str, Vec<(f64, f64)>)> = ["train", "val"]
        .into_iter()
        .map(|split| {
            let points = summary
                .metrics
                .iter()
                .filter(|m| m.split == split)
                .map(|m| (m.step as f64, m.loss))
                .collect();
            (split, points)
        })
        .collect();
    // Under geneformer the vocabulary is the token dictionary the
    // tokenizer config names (its ids start below 4, which gene_vocab.json
    // cannot hold): the checkpoint lists no genes of its own.
    let saved_vocab: &[(String, i64)] = if geneformer {
        &[]
    } else {
        pipeline.vocab().entries()
    };
    save_pretrained(
        model.as_ref(),
        &cfg.model,
        &cfg.tokenizer,
        saved_vocab,
        &paths.pretrained,
        true,
    )?;
    forge_core::atomic::write_file(
        &paths
            .pretrained
            .join(forge_train::embed::TRAINING_CONFIG_FILE),
        cfg.to_yaml_string().as_bytes(),
    )?;
    // After the checkpoint, so that a plotting problem never costs the
    // model; a run too short to log anything has no curve.
    let curve_path = paths.logs.join("loss_curve.png");
    let has_points = curve
        .iter()
        .any(|(_, points)| points.iter().any(|(x, y)| x.is_finite() && y.is_finite()));
    if has_points {
        forge_assess::plot::loss_curve_png(
            &curve_path,
            &curve,
            "pretraining loss",
            "loss",
            (900, 540),
        )
        .with_context(|| format!("writing {}", curve_path.display()))?;
    }
    let how = match summary.stop {
        StopReason::Completed => "completed",
        StopReason::StepLimit => "stopped at --max-steps",
        StopReason::TimeLimit => "stopped at --max-minutes",
        StopReason::Interrupted => "interrupted",
    };
    println!(
        "training {how}: {} epochs, {} steps, {:.1} cells/s",
        summary.epochs, summary.steps, summary.cells_per_s
    );
    if let Some(val) = summary.val_losses.last() {
        println!("validation loss {val:.4} (perplexity {:.2})", val.exp());
    }
    println!("metrics      {}", paths.logs.display());
    if has_points {
        println!("loss curve   {}", curve_path.display());
    } else {
        println!(
            "loss curve   none: no loss was logged (training.log_every_n_steps is {} and no \
             epoch finished)",
            cfg.training.log_every_n_steps
        );
    }
    if let Some(ckpt) = &paths.checkpoints {
        println!(
            "checkpoints  {} (resume with --resume-from {}/last)",
            ckpt.display(),
            ckpt.display()
        );
    }
    println!("pretrained   {}", paths.pretrained.display());
    Ok(if summary.stop == StopReason::Interrupted {
        ExitCode::from(130)
    } else {
        ExitCode::SUCCESS
    })
}
