//! A whole fine-tuning job from a config and a checkpoint folder: what
//! `forge finetune` runs.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::AtomicBool;

use tch::Device;

use super::labels::{Targets, split_cells};
use super::run::{FinetuneOptions, FinetuneSummary, Finetuner, embedding_dim, finetune};
use super::save::{HeadConfigFile, SaveParts, check_output, save_finetuned};
use crate::embed::checkpoint_pipeline;
use crate::train::{StopReason, TrainCheckpoints};
use forge_core::checkpoint::{LoadedModel, load_pretrained};
use forge_core::config::{ConfigErrors, FinetuneConfig, ForgeConfig};
use forge_core::error::{ForgeError, Result};
use forge_core::params::count_parameters;
use forge_data::{DataError, LoaderOptions};

/// Where a job reads and writes.
#[derive(Debug, Clone)]
pub struct JobOptions {
    /// The config file (named in messages; its `model.architecture`, when
    /// written out, must match the checkpoint's).
    pub config_path: Option<PathBuf>,
    /// The pretrained checkpoint folder; `None` uses
    /// `finetune.checkpoint_path`.
    pub checkpoint: Option<PathBuf>,
    /// The output folder.
    pub out: PathBuf,
    /// Replace an existing output folder (only a fine-tuning output or an
    /// empty folder).
    pub force: bool,
    /// Where to train.
    pub device: Device,
    /// Print progress to stderr.
    pub verbose: bool,
    /// A fine-tuning checkpoint folder to continue from (overrides
    /// `training.resume_from`), e.g. `<out>-checkpoints/last`.
    pub resume_from: Option<PathBuf>,
    /// Set (e.g. by Ctrl-C) to stop at the next batch, leaving a resumable
    /// checkpoint and no output folder.
    pub stop: Option<Arc<AtomicBool>>,
    /// Data parallel training over the ranks of a distributed launch;
    /// `None` trains in this process alone. Every rank trains on its shard
    /// of the training cells and validates on all the validation cells;
    /// only rank 0 writes the checkpoints and the output folder.
    pub parallel: Option<Arc<crate::train::DataParallel>>,
}

/// The checkpoint folder of a fine-tuning job writing to `out`:
/// `<out>-checkpoints`, beside the output folder (which is written all at
/// once when training completes): `last/`, the best `save_top_k` epochs
/// and `logs/`, the metrics of the run so far.
pub fn checkpoint_dir(out: &Path) -> PathBuf {
    let name = out
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "finetune".into());
    out.with_file_name(format!("{name}-checkpoints"))
}

/// Makes the checkpoint folder ready for a run that does not resume: one
/// holding `last/` of an earlier run is kept unless `force` (then it is
/// removed); stale logs are removed.
fn fresh_checkpoints(dir: &Path, force: bool) -> Result<()> {
    if dir.join("last").exists() {
        if !force {
            return Err(ForgeError::checkpoint(
                dir,
                format!(
                    "holds the checkpoints of an earlier fine-tuning run; continue it with \
                     --resume-from {}, or pass --force to start over (they are deleted)",
                    dir.join("last").display()
                ),
            ));
        }
        return std::fs::remove_dir_all(dir).map_err(|e| ForgeError::io(dir, e));
    }
    let logs = dir.join("logs");
    if logs.exists() {
        std::fs::remove_dir_all(&logs).map_err(|e| ForgeError::io(&logs, e))?;
    }
    Ok(())
}

/// What a job did.
#[derive(Debug, Clone)]
pub struct JobReport {
    /// Per-epoch metrics.
    pub summary: FinetuneSummary,
    /// The output folder (written only when training completed).
    pub out: PathBuf,
    /// The checkpoint folder.
    pub checkpoints: PathBuf,
    /// The backbone's architecture.
    pub architecture: String,
    /// Training and validation cells.
    pub n_train: usize,
    /// Validation cells.
    pub n_val: usize,
    /// Class names (classification).
    pub classes: Vec<String>,
    /// Classes with a single cell (trained on, not validated).
    pub singletons: Vec<String>,
    /// Weights adapted by LoRA (empty without LoRA).
    pub lora_adapted: usize,
    /// Parameters trained: (head, backbone or adapters).
    pub trained_parameters: (i64, i64),
}

/// `model.architecture` as written in the config file, if it is written.
fn explicit_architecture(path: &Path) -> Option<String> {
    let text = std::fs::read_to_string(path).ok()?;
    let mut errors = ConfigErrors::new(path.display().to_string());
    let tree = forge_core::config::yaml::parse(&text, &mut errors)?;
    tree.root
        .get("model")?
        .get("architecture")?
        .as_str()
        .map(str::to_string)
}

fn setting(key: &str, detail: impl Into<String>) -> ForgeError {
    DataError::setting(key, detail).into()
}

/// Runs a fine-tuning job: loads the checkpoint, tokenizes `data.paths`
/// with the checkpoint's vocabulary and tokenizer (no masking), reads the
/// labels, splits, trains and writes the output folder.
pub fn run_job(cfg: &ForgeConfig, opts: &JobOptions) -> Result<JobReport> {
    let source = opts
        .config_path
        .as_ref()
        .map_or_else(|| "the config".to_string(), |p| p.display().to_string());
    let fcfg: FinetuneConfig = cfg.finetune.clone().ok_or_else(|| {
        setting(
            "finetune",
            format!("{source} has no finetune section (label_key, head, ...)"),
        )
    })?;
    check_output(&opts.out, opts.force)?;
    let checkpoint = opts
        .checkpoint
        .clone()
        .or_else(|| fcfg.checkpoint_path.as_ref().map(PathBuf::from))
        .ok_or_else(|| {
            setting(
                "finetune.checkpoint_path",
                "no checkpoint given: pass --checkpoint DIR or set finetune.checkpoint_path",
            )
        })?;
    if cfg.data.paths.is_empty() {
        return Err(setting(
            "data.paths",
            format!("{source} lists no .h5ad file to fine-tune on"),
        ));
    }
    let seed = cfg.training.seed;
    tch::manual_seed(seed);
    let loaded = load_pretrained(&checkpoint, opts.device)?;
    let arch = loaded.model.registry_name();
    if let Some(explicit) = opts.config_path.as_deref().and_then(explicit_architecture)
        && explicit != arch
    {
        return Err(ForgeError::checkpoint(
            &checkpoint,
            format!(
                "holds a `{arch}` model, but model.architecture in {source} is `{explicit}`; \
                 fine-tuning uses the checkpoint's architecture and model settings: remove \
                 the model section or name `{arch}`"
            ),
        ));
    }
    let paths: Vec<PathBuf> = cfg.data.paths.iter().map(PathBuf::from).collect();
    let mut pipeline = checkpoint_pipeline(&loaded, &checkpoint, &cfg.data, &paths)?;
    let LoadedModel {
        model,
        config: model_config,
        tokenizer_config,
        vocab,
        ..
    } = loaded;
    // checkpoint_pipeline has refused a checkpoint without a vocabulary.
    let vocab = vocab.unwrap_or_default();
    if opts.verbose {
        for cov in pipeline.coverage() {
            eprintln!("{cov}");
        }
    }
    let targets = Targets::from_corpus(pipeline.corpus(), &fcfg.label_key, &fcfg.head)?;
    if matches!(targets, Targets::Classes { .. }) {
        pipeline = pipeline.with_task_labels(&fcfg.label_key)?;
    }
    let split = split_cells(&targets, cfg.training.val_split, seed as u64)?;
    if split.train.is_empty() {
        return Err(setting(
            "finetune.label_key",
            format!(
                "no labelled cell to train on in obs column `{}`",
                fcfg.label_key
            ),
        ));
    }
    if opts.verbose && !split.singletons.is_empty() {
        eprintln!(
            "note: {} class(es) have a single cell, which is trained on and not validated: {}",
            split.singletons.len(),
            split.singletons.join(", ")
        );
    }
    let mut train_opts = LoaderOptions::from_config(cfg)?;
    train_opts.mask = false;
    let main = opts.parallel.as_ref().is_none_or(|p| p.is_main());
    let val_base = train_opts.clone();
    train_opts.shard = opts.parallel.as_ref().map(|p| p.shard());
    let train_loader = pipeline.subset(&split.train)?.loader(train_opts.clone())?;
    let val_loader = if split.val.is_empty() {
        None
    } else {
        let val_opts = LoaderOptions {
            batch_size: cfg.eval.batch_size.max(1) as usize,
            shuffle: false,
            ..val_base
        };
        Some(pipeline.subset(&split.val)?.loader(val_opts)?)
    };
    let input_dim = embedding_dim(model.as_ref(), &train_loader, opts.device)?;
    let n_outputs = targets.n_outputs(&fcfg.head);
    let ft = Finetuner::new(model, input_dim, n_outputs, &fcfg, opts.device)?;
    if opts.verbose {
        eprintln!(
            "{} cells with labels in `{}` ({} train, {} validation); head {} -> {} ({})",
            split.train.len() + split.val.len(),
            fcfg.label_key,
            split.train.len(),
            split.val.len(),
            input_dim,
            n_outputs,
            fcfg.head.task
        );
        if let Some(l) = &ft.lora {
            eprintln!(
                "LoRA rank {} on {} weights ({} adapter parameters)",
                l.rank(),
                l.adapted().len(),
                l.num_parameters()
            );
            if fcfg.lora.dropout > 0.0 {
                eprintln!(
                    "note: finetune.lora.dropout ({}) is not applied: adapters are merged into \
                     the weights, where input dropout on the LoRA branch cannot be expressed",
                    fcfg.lora.dropout
                );
            }
        }
    }
    let head_params = count_parameters(&ft.head, false);
    let backbone_params: i64 = ft
        .backbone_parameters()
        .iter()
        .map(|(_, t)| t.numel() as i64)
        .sum();

    let checkpoints = checkpoint_dir(&opts.out);
    let resume_from = opts
        .resume_from
        .clone()
        .or_else(|| cfg.training.resume_from.as_ref().map(PathBuf::from));
    if resume_from.is_none() && main {
        fresh_checkpoints(&checkpoints, opts.force)?;
    }
    let logs = checkpoints.join("logs");
    let summary = finetune(
        &ft,
        &targets,
        &train_loader,
        val_loader.as_ref(),
        FinetuneOptions {
            training: &cfg.training,
            finetune: &fcfg,
            device: opts.device,
            log_dir: Some(logs.clone()),
            verbose: opts.verbose,
            checkpoints: Some(TrainCheckpoints::new(&checkpoints, cfg.training.save_top_k)),
            resume_from,
            max_steps: None,
            stop: opts.stop.as_deref(),
            strategy: opts
                .parallel
                .as_deref()
                .map(|p| p as &dyn crate::train::Strategy),
        },
    )?;
    let report = |summary: FinetuneSummary| JobReport {
        summary,
        out: opts.out.clone(),
        checkpoints: checkpoints.clone(),
        architecture: ft.backbone.registry_name().to_string(),
        n_train: split.train.len(),
        n_val: split.val.len(),
        classes: targets.class_names().to_vec(),
        singletons: split.singletons.clone(),
        lora_adapted: ft.lora.as_ref().map_or(0, |l| l.adapted().len()),
        trained_parameters: (head_params, backbone_params),
    };
    if summary.stop != StopReason::Completed || !main {
        return Ok(report(summary));
    }

    let mut resolved = cfg.clone();
    resolved.model = model_config.clone();
    let tokenizer_config = tokenizer_config.unwrap_or_default();
    resolved.tokenizer = tokenizer_config.clone();
    if let Some(f) = resolved.finetune.as_mut() {
        f.checkpoint_path = Some(checkpoint.display().to_string());
    }
    let head_file = HeadConfigFile {
        task: fcfg.head.task.to_string(),
        label_key: fcfg.label_key.clone(),
        input_dim,
        n_outputs,
        hidden_dim: fcfg.head.hidden_dim,
        dropout: fcfg.head.dropout,
        lora_rank: ft.lora.as_ref().map(|l| l.rank()),
    };
    save_finetuned(
        &opts.out,
        opts.force,
        &ft,
        SaveParts {
            model_config: &model_config,
            tokenizer_config: &tokenizer_config,
            vocab: &vocab,
            head: &head_file,
            classes: targets.class_names(),
            config_yaml: &resolved.to_yaml_string(),
            logs: Some(&logs),
        },
    )?;
    let mut summary = summary;
    summary.log_path = summary
        .log_path
        .as_ref()
        .and_then(|p| p.file_name())
        .map(|f| opts.out.join("logs").join(f));
    Ok(report(summary))
}
