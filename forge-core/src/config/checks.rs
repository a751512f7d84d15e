//! Checks on values (ranges, and rules tying several keys together) that
//! run once every key of a config has been read with the right type.
//!
//! Each check reports under the key a person would edit to fix it, says
//! what the rule is and what value was found; every failed check is
//! recorded, not just the first. A model's own options are checked by the
//! model registered under `model.architecture` (see `options.rs`); an
//! unregistered architecture is refused by the registry when the model is
//! built. These checks do not touch the file system.

use super::enums::{DataSource, GeneSelectionStrategy, GeneformerSeries, TokenizerStrategy};
use super::error::ConfigErrors;
use super::schema::{
    CensusConfig, CloudStorageConfig, DataConfig, EvalConfig, FinetuneConfig, ForgeConfig,
    ModelConfig, MultiSpeciesConfig, PerturbationConfig, ShardConfig, TokenizerConfig,
    TrainingConfig, ZooConfig,
};
use super::value::{ConfigValue, join_path, quote};

/// URL schemes of cloud storage that scModelForge reads through fsspec
/// (its `data.cloud.is_cloud_path`).
pub const CLOUD_SCHEMES: &[&str] = &["s3://", "gs://", "gcs://", "az://", "abfs://"];

/// The value of `training.logger` forge accepts (any ASCII case).
pub const LOGGERS: &[&str] = &["csv", "tensorboard", "wandb"];

/// The vocabulary name scModelForge writes by default in `gene_vocab`.
pub const DEFAULT_VOCAB_NAME: &str = "human_protein_coding";

/// Whether a `gene_vocab` value names a vocabulary file (it holds a path
/// separator or ends in `.json`) rather than a vocabulary name such as
/// `human_protein_coding`. scModelForge reads neither (its training builds
/// the vocabulary from the data); forge loads files and, like scModelForge,
/// builds from the data for names.
pub fn is_vocab_path(value: &str) -> bool {
    let v = value.trim();
    v.contains('/') || v.contains('\\') || v.to_ascii_lowercase().ends_with(".json")
}

/// The cloud scheme `path` starts with, if any.
pub fn cloud_scheme(path: &str) -> Option<&'static str> {
    let lower = path.trim().to_ascii_lowercase();
    CLOUD_SCHEMES.iter().copied().find(|s| lower.starts_with(s))
}

/// The refusal of a Lightning `.ckpt` file where forge needs one of its
/// checkpoint folders (`training.resume_from`, `finetune.checkpoint_path`,
/// `--resume-from`, `--checkpoint`); `None` for anything else.
pub fn lightning_checkpoint_problem(path: &str) -> Option<String> {
    let lower = path.trim().to_ascii_lowercase();
    lower.ends_with(".ckpt").then(|| {
        format!(
            "{} is a PyTorch Lightning checkpoint (.ckpt), which forge does not read; convert \
             it with scModelForge's `scmodelforge export --checkpoint {path} --config \
             CONFIG.yaml --output DIR` (a save_pretrained folder) and give DIR instead",
            quote(path)
        )
    })
}

/// Records problems for keys under one section.
struct Checker<'a> {
    section: &'a str,
    errors: &'a mut ConfigErrors,
}

impl<'a> Checker<'a> {
    fn new(section: &'a str, errors: &'a mut ConfigErrors) -> Self {
        Self { section, errors }
    }

    fn fail(&mut self, key: &str, message: String) {
        let path = if key.is_empty() {
            self.section.to_string()
        } else {
            join_path(self.section, key)
        };
        self.errors.push(path, message);
    }

    /// `value >= min`.
    fn at_least(&mut self, key: &str, value: i64, min: i64) {
        if value < min {
            self.fail(key, format!("must be at least {min}, got {value}"));
        }
    }

    /// `value >= min` when set.
    fn at_least_opt(&mut self, key: &str, value: Option<i64>, min: i64) {
        if let Some(v) = value {
            self.at_least(key, v, min);
        }
    }

    /// `value > 0` and finite.
    fn positive(&mut self, key: &str, value: f64) {
        if !(value > 0.0 && value.is_finite()) {
            self.fail(key, format!("must be a number greater than 0, got {value}"));
        }
    }

    /// `value >= 0` and finite.
    fn non_negative(&mut self, key: &str, value: f64) {
        if !(value >= 0.0 && value.is_finite()) {
            self.fail(key, format!("must be a number of at least 0, got {value}"));
        }
    }

    /// `value` in [0, 1): a dropout probability or a held-out fraction.
    fn in_0_1_excl(&mut self, key: &str, value: f64) {
        if !(0.0..1.0).contains(&value) {
            self.fail(
                key,
                format!("must be in [0, 1) (0 included, 1 excluded), got {value}"),
            );
        }
    }

    /// `value` in [0, 1].
    fn in_0_1_incl(&mut self, key: &str, value: f64) {
        if !(0.0..=1.0).contains(&value) {
            self.fail(key, format!("must be in [0, 1], got {value}"));
        }
    }

    /// `value` in (0, 1].
    fn in_excl_0_1(&mut self, key: &str, value: f64) {
        if !(value > 0.0 && value <= 1.0) {
            self.fail(
                key,
                format!("must be in (0, 1] (0 excluded, 1 included), got {value}"),
            );
        }
    }

    fn non_empty(&mut self, key: &str, value: &str) {
        if value.trim().is_empty() {
            self.fail(key, "must not be empty".to_string());
        }
    }
}

/// Runs every check on a whole config.
pub(crate) fn check_config(config: &ForgeConfig, errors: &mut ConfigErrors) {
    check_data(&config.data, "data", errors);
    check_tokenizer(&config.tokenizer, "tokenizer", errors);
    check_geneformer(config, errors);
    check_model(&config.model, "model", errors);
    check_training(&config.training, "training", errors);
    check_eval(&config.eval, "eval", errors);
    if let Some(finetune) = &config.finetune {
        check_finetune(finetune, "finetune", errors);
    }
}

/// Checks the `data` section found at `section`.
pub(crate) fn check_data(d: &DataConfig, section: &str, errors: &mut ConfigErrors) {
    let mut c = Checker::new(section, errors);
    if d.source == DataSource::CellxgeneCensus {
        c.fail(
            "source",
            "\"cellxgene_census\" needs the CELLxGENE Census service, which forge cannot reach; \
             on a machine with internet access save the cells as .h5ad (e.g. \
             `cellxgene_census.get_anndata(census, organism=..., obs_value_filter=...)\
             .write_h5ad(\"cells.h5ad\")`), copy the file here, set `source: local` and list it \
             in data.paths"
                .to_string(),
        );
    }
    if d.census != CensusConfig::default() {
        c.fail(
            "census",
            format!(
                "CELLxGENE Census settings ({}) are refused: forge cannot reach the Census; save \
                 the query's cells as .h5ad where the Census is reachable, list the file in \
                 data.paths and remove data.census",
                changed_keys(&d.census.to_value(), &CensusConfig::default().to_value())
            ),
        );
    }
    for (i, path) in d.paths.iter().enumerate() {
        if let Some(scheme) = cloud_scheme(path) {
            c.fail(
                &format!("paths[{i}]"),
                format!(
                    "{} is cloud storage ({scheme}), which forge cannot reach; copy the file to \
                     local disk first (e.g. `aws s3 cp`, `gsutil cp` or `azcopy copy`) and list \
                     the local path",
                    quote(path)
                ),
            );
        }
    }
    if d.cloud != CloudStorageConfig::default() {
        c.fail(
            "cloud",
            format!(
                "cloud storage settings ({}) are refused: forge reads local files only; copy \
                 the files to local disk, list them in data.paths and remove data.cloud",
                changed_keys(
                    &d.cloud.to_value(),
                    &CloudStorageConfig::default().to_value()
                )
            ),
        );
    }
    let gs = &d.gene_selection;
    match (gs.strategy, gs.n_genes) {
        (GeneSelectionStrategy::All, _) => {}
        (strategy, None) => c.fail(
            "gene_selection.n_genes",
            format!("must be set when gene_selection.strategy is {strategy}"),
        ),
        (_, Some(n)) => c.at_least("gene_selection.n_genes", n, 1),
    }
    c.at_least("max_genes", d.max_genes, 1);
    c.at_least("num_workers", d.num_workers, 0);
    if let Some(target_sum) = d.preprocessing.target_sum {
        c.positive("preprocessing.target_sum", target_sum);
    }
    c.at_least_opt(
        "preprocessing.hvg_selection",
        d.preprocessing.hvg_selection,
        1,
    );
    c.in_0_1_incl("min_gene_coverage", d.min_gene_coverage);
    c.at_least("streaming_chunk_size", d.streaming_chunk_size, 1);
    c.at_least("streaming_shuffle_buffer", d.streaming_shuffle_buffer, 0);
    for (i, path) in d.paths.iter().enumerate() {
        c.non_empty(&format!("paths[{i}]"), path);
    }
}

/// Checks the `tokenizer` section found at `section`.
pub(crate) fn check_tokenizer(t: &TokenizerConfig, section: &str, errors: &mut ConfigErrors) {
    let mut c = Checker::new(section, errors);
    if t.max_genes < 2 {
        c.fail(
            "max_genes",
            format!(
                "must be at least 2 (room for the CLS token and one gene), got {}",
                t.max_genes
            ),
        );
    }
    c.at_least("n_bins", t.n_bins, 2);
    c.at_least("embedding_dim", t.embedding_dim, 1);
    let m = &t.masking;
    c.in_0_1_incl("masking.mask_ratio", m.mask_ratio);
    c.in_0_1_incl("masking.random_replace_ratio", m.random_replace_ratio);
    c.in_0_1_incl("masking.keep_ratio", m.keep_ratio);
    let sum = m.random_replace_ratio + m.keep_ratio;
    let parts_ok =
        (0.0..=1.0).contains(&m.random_replace_ratio) && (0.0..=1.0).contains(&m.keep_ratio);
    if parts_ok && sum > 1.0 + 1e-9 {
        c.fail(
            "masking",
            format!(
                "random_replace_ratio ({}) + keep_ratio ({}) must not exceed 1 (the rest of \
                 the chosen tokens become MASK), got {sum}",
                m.random_replace_ratio, m.keep_ratio
            ),
        );
    }
}

/// File name endings a Geneformer dictionary may have.
pub const GENEFORMER_DICT_EXTENSIONS: &[&str] = &["pkl", "pickle", "json"];

/// Why `path` cannot name a Geneformer dictionary file, judged by its name
/// alone (the content is checked when the file is read).
pub fn geneformer_dict_path_problem(path: &str) -> Option<String> {
    let ext = std::path::Path::new(path)
        .extension()
        .and_then(|e| e.to_str())
        .map(str::to_ascii_lowercase);
    match ext {
        Some(e) if GENEFORMER_DICT_EXTENSIONS.contains(&e.as_str()) => None,
        _ => Some(format!(
            "{}: not a dictionary file forge reads; accepted: a Python pickle (.pkl, .pickle; \
             plain data and NumPy scalars only) or a JSON object (.json)",
            quote(path)
        )),
    }
}

/// The `tokenizer` keys of `strategy: geneformer` and what they ask of
/// other keys: read only under that strategy, both dictionaries and the
/// version required. (That `data.preprocessing` is off is checked where
/// cells are read for training, `forge_data::DataPipeline::from_config`:
/// a checkpoint's config holds no data section of its own.)
fn check_geneformer(config: &ForgeConfig, errors: &mut ConfigErrors) {
    let t = &config.tokenizer;
    let mut c = Checker::new("tokenizer", errors);
    if t.strategy != TokenizerStrategy::Geneformer {
        let set = [
            ("token_dictionary", t.token_dictionary.is_some()),
            ("gene_median_dictionary", t.gene_median_dictionary.is_some()),
            ("geneformer_version", t.geneformer_version.is_some()),
            ("model_input_size", t.model_input_size.is_some()),
        ];
        for (key, is_set) in set {
            if is_set {
                c.fail(
                    key,
                    format!(
                        "is read only with tokenizer.strategy: geneformer (the strategy is {}); \
                         remove it or set strategy: geneformer",
                        t.strategy
                    ),
                );
            }
        }
        return;
    }
    for (key, value) in [
        ("token_dictionary", &t.token_dictionary),
        ("gene_median_dictionary", &t.gene_median_dictionary),
    ] {
        match value {
            None => c.fail(
                key,
                "must be set with tokenizer.strategy: geneformer (a .pkl or .json file of \
                 Geneformer's dictionaries)"
                    .to_string(),
            ),
            Some(p) => {
                if let Some(problem) = geneformer_dict_path_problem(p) {
                    c.fail(key, problem);
                }
            }
        }
    }
    let Some(version) = t.geneformer_version else {
        c.fail(
            "geneformer_version",
            "must be set with tokenizer.strategy: geneformer; accepted values: v1 (30M series: \
             no special tokens, input size 2048), v2 (95M series: <cls> and <eos>, input size \
             4096)"
                .to_string(),
        );
        return;
    };
    let (default_size, min) = match version {
        GeneformerSeries::V1 => (2048, 1),
        GeneformerSeries::V2 => (4096, 2),
    };
    c.at_least_opt("model_input_size", t.model_input_size, min);
    let size = t.model_input_size.unwrap_or(default_size);
    let default_max_genes = TokenizerConfig::default().max_genes;
    if t.max_genes != default_max_genes && t.max_genes != size {
        c.fail(
            "max_genes",
            format!(
                "is {} but tokenizer.strategy: geneformer truncates cells to \
                 tokenizer.model_input_size ({size}); set model_input_size instead, and leave \
                 max_genes out (or equal to it)",
                t.max_genes
            ),
        );
    }
    if !t.prepend_cls {
        c.fail(
            "prepend_cls",
            format!(
                "is not read with tokenizer.strategy: geneformer: geneformer_version decides the \
                 special tokens (v1: none, v2: <cls> first and <eos> last; this config says {version}); \
                 remove prepend_cls"
            ),
        );
    }
    if let Some(v) = &t.gene_vocab
        && is_vocab_path(v)
    {
        c.fail(
            "gene_vocab",
            format!(
                "is {}, but with tokenizer.strategy: geneformer the vocabulary is \
                 tokenizer.token_dictionary; remove gene_vocab",
                quote(v)
            ),
        );
    }
    let mut d = Checker::new("data", &mut *c.errors);
    if let Some(v) = &config.data.gene_vocab
        && is_vocab_path(v)
    {
        d.fail(
            "gene_vocab",
            format!(
                "is the file {}, but with tokenizer.strategy: geneformer the vocabulary is \
                 tokenizer.token_dictionary; remove data.gene_vocab",
                quote(v)
            ),
        );
    }
}

/// Checks the `model` section found at `section`.
pub(crate) fn check_model(m: &ModelConfig, section: &str, errors: &mut ConfigErrors) {
    let mut c = Checker::new(section, errors);
    c.non_empty("architecture", &m.architecture);
    c.at_least("hidden_dim", m.hidden_dim, 1);
    c.at_least("num_layers", m.num_layers, 1);
    c.at_least("num_heads", m.num_heads, 1);
    if m.hidden_dim >= 1 && m.num_heads >= 1 && m.hidden_dim % m.num_heads != 0 {
        c.fail(
            "num_heads",
            format!(
                "must divide hidden_dim ({}) evenly, got {} (each head gets hidden_dim / \
                 num_heads dimensions)",
                m.hidden_dim, m.num_heads
            ),
        );
    }
    c.at_least_opt("ffn_dim", m.ffn_dim, 1);
    c.in_0_1_excl("dropout", m.dropout);
    c.at_least("max_seq_len", m.max_seq_len, 1);
    c.in_excl_0_1("mask_ratio", m.mask_ratio);
    if let Some(v) = m.vocab_size
        && v < 5
    {
        c.fail(
            "vocab_size",
            format!(
                "must be at least 5 (4 special tokens PAD, UNK, MASK, CLS and at least one \
                 gene), got {v}"
            ),
        );
    }
    c.at_least("n_bins", m.n_bins, 2);
    c.non_negative("gene_loss_weight", m.gene_loss_weight);
    c.non_negative("expression_loss_weight", m.expression_loss_weight);
    super::options::check_options(m, section, errors);
}

/// `training.strategy` values forge runs (any case): both mean DDP.
pub const STRATEGIES: &[&str] = &["ddp", "auto"];

/// `training.fsdp.sharding_strategy` values forge runs: `NO_SHARD` as DDP,
/// `SHARD_GRAD_OP` as ZeRO-2.
pub const SHARDING_STRATEGIES: &[&str] = &["NO_SHARD", "SHARD_GRAD_OP"];

/// The `fsdp` block of a run on several devices (scModelForge uses it
/// only then).
fn check_fsdp(f: &super::schema::FsdpConfig, c: &mut Checker) {
    let s = f.sharding_strategy.to_ascii_uppercase();
    if !SHARDING_STRATEGIES.contains(&s.as_str()) {
        let what = if s == "FULL_SHARD" || s == "HYBRID_SHARD" {
            "is not supported: forge shards gradients and optimizer state (SHARD_GRAD_OP, \
             ZeRO-2) or replicates everything (NO_SHARD, run as DDP), but never the \
             parameters themselves"
        } else {
            "is not an FSDP sharding strategy (FULL_SHARD, SHARD_GRAD_OP, NO_SHARD, \
             HYBRID_SHARD)"
        };
        c.fail(
            "fsdp.sharding_strategy",
            format!(
                "{} {what}; set sharding_strategy: SHARD_GRAD_OP or NO_SHARD",
                quote(&f.sharding_strategy)
            ),
        );
    }
    if f.cpu_offload {
        c.fail(
            "fsdp.cpu_offload",
            "true is not supported: forge keeps parameters, gradients and optimizer state on \
             the training device; set cpu_offload: false"
                .into(),
        );
    }
    if f.activation_checkpointing {
        c.fail(
            "fsdp.activation_checkpointing",
            "true is not supported: forge keeps the activations of every encoder layer for \
             the backward pass; set activation_checkpointing: false"
                .into(),
        );
    }
}

/// Checks the `training` section found at `section`.
pub(crate) fn check_training(t: &TrainingConfig, section: &str, errors: &mut ConfigErrors) {
    let mut c = Checker::new(section, errors);
    c.at_least("batch_size", t.batch_size, 1);
    c.at_least("max_epochs", t.max_epochs, 1);
    c.at_least_opt("num_gpus", t.num_gpus, 0);
    if !STRATEGIES
        .iter()
        .any(|s| t.strategy.eq_ignore_ascii_case(s))
    {
        c.fail(
            "strategy",
            format!(
                "{} is not a strategy forge runs: data parallel training over several processes \
                 is `ddp` (`auto` means the same); for sharded optimizer state use the fsdp \
                 block with sharding_strategy: SHARD_GRAD_OP",
                quote(&t.strategy)
            ),
        );
    }
    if let (Some(n), Some(f)) = (t.num_gpus, &t.fsdp)
        && n > 1
    {
        check_fsdp(f, &mut c);
    }
    if !LOGGERS.iter().any(|l| t.logger.eq_ignore_ascii_case(l)) && !t.logger.trim().is_empty() {
        c.fail(
            "logger",
            super::enums::invalid_value_message(&t.logger, LOGGERS, &[]),
        );
    }
    c.at_least(
        "sampling.curriculum_warmup_epochs",
        t.sampling.curriculum_warmup_epochs,
        0,
    );
    if let Some(problem) = t
        .resume_from
        .as_deref()
        .and_then(lightning_checkpoint_problem)
    {
        c.fail("resume_from", problem);
    }
    c.positive("optimizer.lr", t.optimizer.lr);
    c.non_negative("optimizer.weight_decay", t.optimizer.weight_decay);
    if let Some(s) = &t.scheduler {
        c.at_least("scheduler.warmup_steps", s.warmup_steps, 0);
        c.at_least("scheduler.total_steps", s.total_steps, 1);
    }
    c.non_negative("gradient_clip", t.gradient_clip);
    c.at_least("gradient_accumulation", t.gradient_accumulation, 1);
    c.non_empty("logger", &t.logger);
    c.at_least("log_every_n_steps", t.log_every_n_steps, 1);
    c.at_least("save_top_k", t.save_top_k, -1);
    c.at_least("num_workers", t.num_workers, 0);
    c.in_0_1_excl("val_split", t.val_split);
}

/// Checks the `eval` section found at `section`.
pub(crate) fn check_eval(e: &EvalConfig, section: &str, errors: &mut ConfigErrors) {
    let mut c = Checker::new(section, errors);
    c.at_least("every_n_epochs", e.every_n_epochs, 1);
    c.at_least("batch_size", e.batch_size, 1);
    for (i, b) in e.benchmarks.iter().enumerate() {
        c.non_empty(&format!("benchmarks[{i}].name"), &b.name);
    }
}

/// Checks the `finetune` section found at `section`.
pub(crate) fn check_finetune(f: &FinetuneConfig, section: &str, errors: &mut ConfigErrors) {
    let mut c = Checker::new(section, errors);
    c.non_empty("label_key", &f.label_key);
    if let Some(problem) = f
        .checkpoint_path
        .as_deref()
        .and_then(lightning_checkpoint_problem)
    {
        c.fail("checkpoint_path", problem);
    }
    c.at_least("freeze_backbone_epochs", f.freeze_backbone_epochs, 0);
    if let Some(lr) = f.backbone_lr {
        c.positive("backbone_lr", lr);
    }
    if let Some(lr) = f.head_lr {
        c.positive("head_lr", lr);
    }
    if let Some(n) = f.head.n_classes
        && n < 2
    {
        c.fail(
            "head.n_classes",
            format!("must be at least 2 for classification, got {n}"),
        );
    }
    c.at_least("head.output_dim", f.head.output_dim, 1);
    c.at_least_opt("head.hidden_dim", f.head.hidden_dim, 1);
    c.in_0_1_excl("head.dropout", f.head.dropout);
    c.at_least("lora.rank", f.lora.rank, 1);
    c.positive("lora.alpha", f.lora.alpha);
    c.in_0_1_excl("lora.dropout", f.lora.dropout);
}

/// The keys of `value` (a mapping) whose values differ from `default`'s,
/// comma-separated, for messages.
fn changed_keys(value: &serde_json::Value, default: &serde_json::Value) -> String {
    let (Some(v), Some(d)) = (value.as_object(), default.as_object()) else {
        return String::new();
    };
    v.iter()
        .filter(|(k, x)| d.get(k.as_str()) != Some(x))
        .map(|(k, _)| k.as_str())
        .collect::<Vec<_>>()
        .join(", ")
}

/// Records, one line each, the keys that are set but that forge (like
/// scModelForge's training) does not use, where going on is harmless.
/// Keys left at their defaults are not mentioned, so a config saved with
/// every key written stays quiet.
pub(crate) fn config_warnings(config: &ForgeConfig, warnings: &mut ConfigErrors) {
    super::options::option_warnings(&config.model, "model", warnings);
    let d = &config.data;
    let not_used = |warnings: &mut ConfigErrors,
                    path: &str,
                    value: serde_json::Value,
                    default: serde_json::Value,
                    what: &str| {
        if value != default {
            warnings.push(
                path,
                format!(
                    "set ({}) but not used: scModelForge's training does not use it either; \
                     {what}",
                    changed_keys(&value, &default)
                ),
            );
        }
    };
    not_used(
        warnings,
        "data.shards",
        d.shards.to_value(),
        ShardConfig::default().to_value(),
        "forge reads the files in data.paths",
    );
    not_used(
        warnings,
        "data.multi_species",
        d.multi_species.to_value(),
        MultiSpeciesConfig::default().to_value(),
        "forge builds one vocabulary from the gene names of the data",
    );
    not_used(
        warnings,
        "data.perturbation",
        d.perturbation.to_value(),
        PerturbationConfig::default().to_value(),
        "forge reads no perturbation metadata",
    );
    not_used(
        warnings,
        "zoo",
        config.zoo.to_value(),
        ZooConfig::default().to_value(),
        "forge has no model zoo",
    );
    if d.num_workers != config.training.num_workers
        && d.num_workers != DataConfig::default().num_workers
    {
        warnings.push(
            "data.num_workers",
            format!(
                "not used: scModelForge's training does not read it either; the loader's \
                 threads come from training.num_workers ({})",
                config.training.num_workers
            ),
        );
    }
    for (path, vocab) in [
        ("data.gene_vocab", &d.gene_vocab),
        ("tokenizer.gene_vocab", &config.tokenizer.gene_vocab),
    ] {
        if let Some(name) = vocab
            && !is_vocab_path(name)
            && name.trim() != DEFAULT_VOCAB_NAME
        {
            warnings.push(
                path,
                format!(
                    "{} is a vocabulary name, not a file (no `/`, no `.json`): as in \
                     scModelForge, the vocabulary is built from the genes of the data; give a \
                     path such as ./{}.json to load a vocabulary file",
                    quote(name),
                    name.trim()
                ),
            );
        }
    }
    match &config.training.fsdp {
        Some(_) if config.training.num_gpus.is_none_or(|n| n <= 1) => warnings.push(
            "training.fsdp",
            "set but not used: scModelForge applies FSDP only with more than one device \
             (num_gpus above 1), and this run has one",
        ),
        Some(f) if f.min_num_params != super::schema::FsdpConfig::default().min_num_params => {
            warnings.push(
                "training.fsdp.min_num_params",
                format!(
                    "{} is not used: forge treats the whole model as one flat unit (NO_SHARD \
                     replicates it, SHARD_GRAD_OP shards the optimizer state of all its \
                     parameters), so there is no size-based wrapping",
                    f.min_num_params
                ),
            )
        }
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::super::schema::{BenchmarkSpec, SchedulerConfig};
    use super::*;

    /// Runs every check on `config` and returns the problems as
    /// `(path, message)`.
    fn problems(config: &ForgeConfig) -> Vec<(String, String)> {
        let mut errors = ConfigErrors::new("<test>");
        check_config(config, &mut errors);
        errors
            .iter()
            .map(|e| (e.path.clone(), e.message.clone()))
            .collect()
    }

    /// Asserts that `edit` makes exactly one check fail, at `path`, with a
    /// message containing `needle`.
    fn fails(path: &str, needle: &str, edit: impl FnOnce(&mut ForgeConfig)) {
        let mut config = ForgeConfig::default();
        edit(&mut config);
        let found = problems(&config);
        assert_eq!(
            found.len(),
            1,
            "expected one problem at {path}, got {found:?}"
        );
        assert_eq!(found[0].0, path, "{found:?}");
        assert!(found[0].1.contains(needle), "{found:?}");
    }

    #[test]
    fn defaults_pass() {
        let config = ForgeConfig {
            finetune: Some(FinetuneConfig::default()),
            ..ForgeConfig::default()
        };
        assert_eq!(problems(&config), vec![]);
    }

    #[test]
    fn model_checks() {
        fails("model.hidden_dim", "at least 1, got 0", |c| {
            c.model.hidden_dim = 0;
        });
        fails("model.num_heads", "at least 1, got 0", |c| {
            c.model.num_heads = 0
        });
        fails(
            "model.num_heads",
            "must divide hidden_dim (512) evenly, got 7",
            |c| {
                c.model.num_heads = 7;
            },
        );
        fails("model.num_layers", "at least 1", |c| c.model.num_layers = 0);
        fails("model.ffn_dim", "at least 1", |c| c.model.ffn_dim = Some(0));
        fails("model.dropout", "[0, 1)", |c| c.model.dropout = 1.0);
        fails("model.dropout", "[0, 1)", |c| c.model.dropout = -0.1);
        fails("model.dropout", "[0, 1)", |c| c.model.dropout = f64::NAN);
        fails("model.max_seq_len", "at least 1", |c| {
            c.model.max_seq_len = 0
        });
        fails("model.mask_ratio", "(0, 1]", |c| c.model.mask_ratio = 0.0);
        fails("model.mask_ratio", "(0, 1]", |c| c.model.mask_ratio = 1.5);
        fails("model.n_bins", "at least 2", |c| c.model.n_bins = 1);
        fails("model.vocab_size", "4 special tokens", |c| {
            c.model.vocab_size = Some(4)
        });
        fails("model.gene_loss_weight", "at least 0", |c| {
            c.model.gene_loss_weight = -1.0
        });
        fails("model.architecture", "must not be empty", |c| {
            c.model.architecture.clear()
        });
        let mut ok = ForgeConfig::default();
        ok.model.mask_ratio = 1.0;
        ok.model.vocab_size = Some(5);
        ok.model.dropout = 0.0;
        assert_eq!(problems(&ok), vec![]);
    }

    #[test]
    fn masked_autoencoder_checks_its_own_options() {
        let mae = |c: &mut ForgeConfig, key: &str, value: serde_json::Value| {
            c.model.architecture = "masked_autoencoder".into();
            c.model.options.insert(key.into(), value);
        };
        // hidden 512 / 2 = 256 and 8 heads: fine; 256 with 7 heads: not.
        fails(
            "model.decoder_heads",
            "(7) must divide the decoder width (256, i.e. hidden_dim / 2)",
            |c| mae(c, "decoder_heads", 7.into()),
        );
        fails(
            "model.decoder_heads",
            "(8, i.e. num_heads) must divide the decoder width (100)",
            |c| mae(c, "decoder_dim", 100.into()),
        );
        fails("model.decoder_dim", "at least 1", |c| {
            mae(c, "decoder_dim", 0.into())
        });
        fails("model.decoder_layers", "at least 1", |c| {
            mae(c, "decoder_layers", 0.into())
        });
        fails("model.decoder_layers", "expected an integer", |c| {
            mae(c, "decoder_layers", "four".into())
        });
        // A misspelt option: did-you-mean among shared keys and options.
        fails(
            "model.decoder_lyers",
            "did you mean \"decoder_layers\"?",
            |c| mae(c, "decoder_lyers", 2.into()),
        );
        fails(
            "model.zzz",
            "accepted keys: architecture, hidden_dim",
            |c| mae(c, "zzz", 2.into()),
        );
        // Other architectures do not refuse masked_autoencoder's keys (an
        // scModelForge ModelConfig has them); they warn when one is set.
        let mut other = ForgeConfig::default();
        other.model.options.insert("decoder_heads".into(), 7.into());
        other
            .model
            .options
            .insert("decoder_layers".into(), 4.into());
        assert_eq!(problems(&other), vec![]);
        let mut warnings = ConfigErrors::new("<test>");
        config_warnings(&other, &mut warnings);
        let text = warnings.to_string();
        assert!(
            text.contains(
                "model.decoder_heads: set (7) but not used: it is an option of masked_autoencoder"
            ),
            "{text}"
        );
        assert!(
            !text.contains("decoder_layers"),
            "default values pass: {text}"
        );
        // A model warns about a shared key it accepts but cannot use.
        let mut gf = ForgeConfig::default();
        gf.model.architecture = "geneformer".into();
        let mut warnings = ConfigErrors::new("<test>");
        config_warnings(&gf, &mut warnings);
        let text = warnings.to_string();
        assert!(
            text.contains("model.use_expression_values: is true")
                && text.contains("geneformer has no expression-value input"),
            "{text}"
        );
        gf.model.use_expression_values = false;
        let mut warnings = ConfigErrors::new("<test>");
        config_warnings(&gf, &mut warnings);
        assert!(warnings.is_empty(), "{warnings}");
        // Keys no model declares are refused for every architecture.
        fails("model.hiden_dim", "did you mean \"hidden_dim\"?", |c| {
            c.model.options.insert("hiden_dim".into(), 2.into());
        });
    }

    #[test]
    fn tokenizer_and_masking_checks() {
        fails("tokenizer.max_genes", "at least 2", |c| {
            c.tokenizer.max_genes = 1
        });
        fails("tokenizer.n_bins", "at least 2", |c| c.tokenizer.n_bins = 0);
        fails("tokenizer.masking.mask_ratio", "[0, 1]", |c| {
            c.tokenizer.masking.mask_ratio = 1.1;
        });
        fails("tokenizer.masking.random_replace_ratio", "[0, 1]", |c| {
            c.tokenizer.masking.random_replace_ratio = -0.1;
        });
        fails("tokenizer.masking.keep_ratio", "[0, 1]", |c| {
            c.tokenizer.masking.keep_ratio = 2.0;
        });
        fails("tokenizer.masking", "must not exceed 1", |c| {
            c.tokenizer.masking.random_replace_ratio = 0.6;
            c.tokenizer.masking.keep_ratio = 0.5;
        });
        let mut edge = ForgeConfig::default();
        edge.tokenizer.masking.random_replace_ratio = 0.1;
        edge.tokenizer.masking.keep_ratio = 0.9;
        assert_eq!(problems(&edge), vec![]);
    }

    #[test]
    fn training_checks() {
        fails("training.batch_size", "at least 1", |c| {
            c.training.batch_size = 0
        });
        fails("training.max_epochs", "at least 1", |c| {
            c.training.max_epochs = 0
        });
        fails("training.optimizer.lr", "greater than 0", |c| {
            c.training.optimizer.lr = 0.0
        });
        fails("training.optimizer.weight_decay", "at least 0", |c| {
            c.training.optimizer.weight_decay = -1.0;
        });
        fails("training.gradient_accumulation", "at least 1", |c| {
            c.training.gradient_accumulation = 0;
        });
        fails("training.val_split", "[0, 1)", |c| {
            c.training.val_split = 1.0
        });
        fails("training.scheduler.total_steps", "at least 1", |c| {
            c.training.scheduler = Some(SchedulerConfig {
                total_steps: 0,
                ..SchedulerConfig::default()
            });
        });
        fails("training.save_top_k", "at least -1", |c| {
            c.training.save_top_k = -2
        });
        let mut no_scheduler = ForgeConfig::default();
        no_scheduler.training.scheduler = None;
        no_scheduler.training.val_split = 0.0;
        assert_eq!(problems(&no_scheduler), vec![]);
    }

    #[test]
    fn data_and_eval_checks() {
        fails("data.preprocessing.target_sum", "greater than 0", |c| {
            c.data.preprocessing.target_sum = Some(0.0);
        });
        fails("data.paths[1]", "must not be empty", |c| {
            c.data.paths = vec!["a.h5ad".into(), " ".into()];
        });
        fails("eval.batch_size", "at least 1", |c| c.eval.batch_size = 0);
        fails("eval.benchmarks[0].name", "must not be empty", |c| {
            c.eval.benchmarks = vec![BenchmarkSpec::named("")];
        });
    }

    #[test]
    fn finetune_checks() {
        let ft = |c: &mut ForgeConfig| {
            c.finetune
                .get_or_insert_with(FinetuneConfig::default)
                .clone()
        };
        fails("finetune.head.n_classes", "at least 2", |c| {
            let mut f = ft(c);
            f.head.n_classes = Some(1);
            c.finetune = Some(f);
        });
        fails("finetune.lora.rank", "at least 1", |c| {
            let mut f = ft(c);
            f.lora.rank = 0;
            c.finetune = Some(f);
        });
        fails("finetune.head.dropout", "[0, 1)", |c| {
            let mut f = ft(c);
            f.head.dropout = 1.0;
            c.finetune = Some(f);
        });
        fails("finetune.backbone_lr", "greater than 0", |c| {
            let mut f = ft(c);
            f.backbone_lr = Some(-1e-5);
            c.finetune = Some(f);
        });
        let mut ok = ForgeConfig::default();
        let mut f = FinetuneConfig::default();
        f.head.n_classes = Some(2);
        ok.finetune = Some(f);
        assert_eq!(problems(&ok), vec![]);
    }

    #[test]
    fn vocab_names_paths_cloud_schemes_and_lightning_checkpoints() {
        for path in [
            "./v.json",
            "/a/b",
            "vocab.JSON",
            "dir\\v",
            "x/human_protein_coding",
        ] {
            assert!(is_vocab_path(path), "{path}");
        }
        for name in ["human_protein_coding", "mouse", "v.json.bak"] {
            assert!(!is_vocab_path(name), "{name}");
        }
        let mut c = ForgeConfig::default();
        assert_eq!(c.gene_vocab_file(), None);
        c.data.gene_vocab = Some("human_protein_coding".into());
        c.tokenizer.gene_vocab = Some("human_protein_coding".into());
        assert_eq!(c.gene_vocab_file(), None, "names build from the data");
        c.data.gene_vocab = Some(" run/gene_vocab.json ".into());
        assert_eq!(c.gene_vocab_file(), Some("run/gene_vocab.json"));
        c.tokenizer.gene_vocab = Some("other.json".into());
        assert_eq!(c.gene_vocab_file(), Some("other.json"), "tokenizer's wins");
        assert_eq!(cloud_scheme(" S3://b/x"), Some("s3://"));
        assert_eq!(cloud_scheme("abfs://c/x"), Some("abfs://"));
        assert_eq!(cloud_scheme("data/s3://x"), None);
        assert!(lightning_checkpoint_problem("a/last.CKPT").is_some());
        assert!(lightning_checkpoint_problem("a/last").is_none());
    }

    #[test]
    fn all_problems_are_reported_together() {
        let mut config = ForgeConfig::default();
        config.model.hidden_dim = 100;
        config.model.num_heads = 3;
        config.model.dropout = 1.5;
        config.training.batch_size = 0;
        config.training.optimizer.lr = -1.0;
        assert_eq!(problems(&config).len(), 4, "{:?}", problems(&config));
    }
}
