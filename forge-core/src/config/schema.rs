//! Every section of a forge / scModelForge config file: key names, types,
//! defaults and documentation, each written once in a `config_section!`.
//!
//! Key names and defaults follow scModelForge's `config/schema.py`, so its
//! YAML files load unchanged. Where forge differs it says so in the key's
//! documentation (e.g. `training.logger` defaults to `csv` because forge has
//! no Weights & Biases client). Every sub-section is typed, so an unknown or
//! misspelt key anywhere is refused with a did-you-mean; what forge does
//! with each key (honoured, refused or warned about) is decided in
//! `checks.rs` and listed in `docs/config-keys.md`.
//!
//! Loading and saving whole files lives in `load.rs`; checks that involve
//! more than one key live in `checks.rs`.

use serde_json::{Map, Value};

use super::enums::{
    Activation, BinningMethod, DataSource, FinetuneTask, GeneSelectionStrategy, GeneformerSeries,
    LoraBias, Normalize, OptimizerName, Pooling, Precision, PretrainingTask, SamplingStrategy,
    SchedulerName, TokenizerStrategy,
};
use super::error::{ConfigError, ConfigErrors};
use super::section::config_section;
use super::value::{ConfigValue, join_path, type_error};

/// An opaque sub-section: any mapping, kept as written.
pub type Opaque = Map<String, Value>;

config_section! {
    /// A whole config file: one field per top-level section. Every section
    /// may be left out of the file; it then takes its defaults.
    pub struct ForgeConfig {
        /// Data loading and preprocessing (`data`).
        data: DataConfig = DataConfig::default(),
        /// Tokenization and masking (`tokenizer`).
        tokenizer: TokenizerConfig = TokenizerConfig::default(),
        /// Model architecture and hyperparameters (`model`).
        model: ModelConfig = ModelConfig::default(),
        /// Training loop (`training`).
        training: TrainingConfig = TrainingConfig::default(),
        /// Assessment during and after training (`eval`).
        eval: EvalConfig = EvalConfig::default(),
        /// Fine-tuning of a pretrained model (`finetune`); absent or `null`
        /// for pretraining configs.
        finetune: Option<FinetuneConfig> = None,
        /// scModelForge's model-zoo settings (`zoo`): read so that configs
        /// saved by scModelForge load; not used by training (forge warns
        /// when they differ from the defaults).
        zoo: ZooConfig = ZooConfig::default(),
    }
}

config_section! {
    /// Data loading and preprocessing (YAML section `data`).
    pub struct DataConfig {
        /// Where cells come from: `local` (the files in `paths`).
        /// `cellxgene_census` parses but is refused by the checks: forge
        /// cannot reach the Census service.
        source: DataSource = DataSource::Local,
        /// AnnData `.h5ad` files to read, in order.
        paths: Vec<String> = Vec::new(),
        /// Gene vocabulary. A name (no `/`, not ending in `.json`, such as
        /// scModelForge's default `human_protein_coding`) builds the
        /// vocabulary from the genes of the data, as scModelForge does for
        /// every value; a path to a `gene_vocab.json` (gene -> id) loads
        /// that file (forge addition); `null` builds from the data.
        gene_vocab: Option<String> = None,
        /// Per-cell preprocessing applied after reading.
        preprocessing: PreprocessingConfig = PreprocessingConfig::default(),
        /// Maximum number of genes kept per cell when reading.
        max_genes: i64 = 2048,
        /// Not read by scModelForge's training (its loader threads come from
        /// `training.num_workers`); forge does the same and warns when this
        /// differs from `training.num_workers`.
        num_workers: i64 = 4,
        /// Read `adata.raw.X` and `adata.raw.var` instead of `X` and `var`
        /// (forge addition; for files whose `X` holds scaled values).
        use_raw: bool = false,
        /// Column of `var` holding gene names; `null` uses the `var` index
        /// (forge addition).
        gene_key: Option<String> = None,
        /// Least share of a file's expression that must fall on genes of an
        /// existing vocabulary (embed, assess, fine-tuning, training with
        /// `gene_vocab`); below it forge refuses with the missing genes. 0
        /// disables the check (forge addition).
        min_gene_coverage: f64 = 0.5,
        /// Match gene symbols to the vocabulary regardless of case (Ensembl
        /// ids always match without their version suffix) (forge addition).
        case_insensitive_genes: bool = false,
        /// CELLxGENE Census settings (`source: cellxgene_census` only;
        /// refused when set, forge cannot reach the Census).
        census: CensusConfig = CensusConfig::default(),
        /// Multi-species vocabulary settings (not used by scModelForge's
        /// training nor by forge's; warned about when set).
        multi_species: MultiSpeciesConfig = MultiSpeciesConfig::default(),
        /// Perturbation metadata settings (not used by scModelForge's
        /// training nor by forge's; warned about when set).
        perturbation: PerturbationConfig = PerturbationConfig::default(),
        /// Pre-sharded dataset settings (not used by scModelForge's training
        /// nor by forge's; warned about when set).
        shards: ShardConfig = ShardConfig::default(),
        /// Batch-level gene selection for training batches.
        gene_selection: GeneSelectionConfig = GeneSelectionConfig::default(),
        /// Cloud storage settings (for `s3://`, `gs://`, ... paths; refused
        /// when set, forge reads local files only).
        cloud: CloudStorageConfig = CloudStorageConfig::default(),
        /// Stream cells from disk instead of loading them all.
        streaming: bool = false,
        /// Cells per chunk when streaming.
        streaming_chunk_size: i64 = 10_000,
        /// Size of the shuffle buffer when streaming.
        streaming_shuffle_buffer: i64 = 10_000,
    }
}

config_section! {
    /// Per-cell preprocessing (YAML section `data.preprocessing`).
    pub struct PreprocessingConfig {
        /// Normalisation: `library_size`, or `null` for none.
        normalize: Option<Normalize> = Some(Normalize::LibrarySize),
        /// Total counts per cell after library-size normalisation; `null`
        /// uses the median total of the data.
        target_sum: Option<f64> = Some(1e4),
        /// Keep only this many highly variable genes; `null` keeps all.
        hvg_selection: Option<i64> = None,
        /// Apply `log1p` after normalisation.
        log1p: bool = true,
    }
}

config_section! {
    /// CELLxGENE Census query (YAML section `data.census`).
    pub struct CensusConfig {
        /// Census organism name, e.g. `Homo sapiens`.
        organism: String = "Homo sapiens".to_string(),
        /// Census release, or `latest`.
        census_version: String = "latest".to_string(),
        /// Raw SOMA `obs_value_filter`.
        obs_value_filter: Option<String> = None,
        /// Raw SOMA `var_value_filter`.
        var_value_filter: Option<String> = None,
        /// Structured obs filter (column -> value or list of values).
        filters: Option<Opaque> = None,
        /// Extra obs columns to fetch.
        obs_columns: Option<Vec<String>> = None,
    }
}

config_section! {
    /// Multi-species gene mapping (YAML section `data.multi_species`).
    pub struct MultiSpeciesConfig {
        /// Map genes of several organisms onto one namespace.
        enabled: bool = false,
        /// Organisms to include.
        organisms: Vec<String> = vec!["human".to_string(), "mouse".to_string()],
        /// Organism whose gene names the others are mapped to.
        canonical_organism: String = "human".to_string(),
        /// Include one-to-many orthologs.
        include_one2many: bool = false,
        /// Custom ortholog table (TSV); `null` uses the bundled one.
        ortholog_table: Option<String> = None,
    }
}

config_section! {
    /// Perturbation metadata (YAML section `data.perturbation`).
    pub struct PerturbationConfig {
        /// Enable perturbation-aware data handling.
        enabled: bool = false,
        /// obs column with perturbation labels; `null` auto-detects.
        perturbation_key: Option<String> = None,
        /// Label of control cells.
        control_label: String = "control".to_string(),
        /// obs column with doses; `null` auto-detects.
        dose_key: Option<String> = None,
        /// Unit of the doses.
        dose_unit: Option<String> = None,
    }
}

config_section! {
    /// Memory-mapped shards (YAML section `data.shards`).
    pub struct ShardConfig {
        /// Read shards instead of in-memory data.
        enabled: bool = false,
        /// Shard folder (with `manifest.json`).
        shard_dir: String = String::new(),
        /// Cells per shard when converting.
        shard_size: i64 = 500_000,
    }
}

config_section! {
    /// Batch-level gene selection (YAML section `data.gene_selection`).
    pub struct GeneSelectionConfig {
        /// `all` keeps every gene; `most_expressed` keeps the `n_genes`
        /// genes with the largest expression sum over the batch;
        /// `random_expressed` a random `n_genes` of the genes expressed in
        /// the batch.
        strategy: GeneSelectionStrategy = GeneSelectionStrategy::All,
        /// Genes kept per batch; required unless `strategy` is `all`.
        n_genes: Option<i64> = None,
    }
}

config_section! {
    /// Cloud storage access (YAML section `data.cloud`).
    pub struct CloudStorageConfig {
        /// fsspec `storage_options` (credentials, endpoint, ...).
        storage_options: Opaque = Opaque::new(),
        /// Local cache folder for cloud files.
        cache_dir: Option<String> = None,
    }
}

config_section! {
    /// Tokenization of cells into gene tokens (YAML section `tokenizer`).
    pub struct TokenizerConfig {
        /// Tokenization strategy.
        strategy: TokenizerStrategy = TokenizerStrategy::RankValue,
        /// Maximum tokens per cell, the CLS token included.
        max_genes: i64 = 2048,
        /// Gene vocabulary (see `data.gene_vocab`); `null` uses
        /// `data.gene_vocab`.
        gene_vocab: Option<String> = None,
        /// Put a CLS token in front of every cell.
        prepend_cls: bool = true,
        /// Number of expression bins (`binned_expression`).
        n_bins: i64 = 51,
        /// How bin edges are chosen (`binned_expression`).
        binning_method: BinningMethod = BinningMethod::Uniform,
        /// Pretrained gene embeddings file (`gene_embedding`).
        embedding_path: Option<String> = None,
        /// Width of the pretrained gene embeddings (`gene_embedding`).
        embedding_dim: i64 = 200,
        /// Geneformer's token dictionary, Ensembl id -> token id
        /// (`geneformer` only; forge extension): a `.pkl` (Python pickle of
        /// plain data, NumPy scalar values accepted) or `.json` file. It is
        /// the vocabulary: `<pad>` must be 0 and `<mask>` present.
        token_dictionary: Option<String> = None,
        /// Geneformer's gene-median dictionary, Ensembl id -> median
        /// (`geneformer` only; forge extension): `.pkl` or `.json`.
        gene_median_dictionary: Option<String> = None,
        /// Which published Geneformer series is followed, `v1` (30M: no
        /// special tokens, input 2048) or `v2` (95M: `<cls>` + `<eos>`,
        /// input 4096) (`geneformer` only, required there; forge extension).
        geneformer_version: Option<GeneformerSeries> = None,
        /// Most tokens per cell, special tokens included (`geneformer` only;
        /// forge extension); `null` uses the version's input size.
        model_input_size: Option<i64> = None,
        /// Masking for pretraining.
        masking: MaskingConfig = MaskingConfig::default(),
    }
}

config_section! {
    /// Masking of tokens for pretraining (YAML section `tokenizer.masking`).
    pub struct MaskingConfig {
        /// Fraction of maskable tokens (not CLS, not padding) chosen as
        /// prediction targets; at least one per cell.
        mask_ratio: f64 = 0.15,
        /// Of the chosen tokens, the fraction replaced by a random gene.
        random_replace_ratio: f64 = 0.1,
        /// Of the chosen tokens, the fraction left unchanged; the rest
        /// become the MASK token.
        keep_ratio: f64 = 0.1,
    }
}

config_section! {
    /// Model architecture and hyperparameters (YAML section `model`).
    ///
    /// Keys of one model (`masked_autoencoder`'s `decoder_dim`, options
    /// written by `forge-gen new --option`) are not fields: the model
    /// declares them in its own file and they are kept in `options` as
    /// written; see [`super::options`].
    pub struct ModelConfig {
        /// Registry name of the model architecture, e.g.
        /// `transformer_encoder`, `autoregressive_transformer`,
        /// `masked_autoencoder`.
        architecture: String = "transformer_encoder".to_string(),
        /// Width of the token representations (H).
        hidden_dim: i64 = 512,
        /// Number of encoder layers.
        num_layers: i64 = 12,
        /// Attention heads per layer; must divide `hidden_dim`.
        num_heads: i64 = 8,
        /// Feed-forward width; `null` means 4 * `hidden_dim`.
        ffn_dim: Option<i64> = None,
        /// Dropout probability, in [0, 1).
        dropout: f64 = 0.1,
        /// Longest token sequence (size of the position embedding).
        max_seq_len: i64 = 2048,
        /// How cell embeddings are pooled.
        pooling: Pooling = Pooling::Cls,
        /// Feed-forward activation.
        activation: Activation = Activation::Gelu,
        /// Add a projection of each gene's expression value to its token
        /// embedding.
        use_expression_values: bool = true,
        /// Pretraining objective.
        pretraining_task: PretrainingTask = PretrainingTask::MaskedGenePrediction,
        /// Fraction of tokens masked for pretraining, in (0, 1].
        mask_ratio: f64 = 0.15,
        /// Vocabulary size, special tokens included; `null` in files, filled
        /// in from the gene vocabulary at run time.
        vocab_size: Option<i64> = None,
        /// Expression bins predicted by `autoregressive_transformer`.
        n_bins: i64 = 51,
        /// Weight of the gene-prediction loss (`autoregressive_transformer`).
        gene_loss_weight: f64 = 1.0,
        /// Weight of the bin-prediction loss (`autoregressive_transformer`).
        expression_loss_weight: f64 = 1.0,
    }
    // The keys that are not fields, kept as written in `options`.
    ..options
}

impl ModelConfig {
    /// The feed-forward width: `ffn_dim`, or 4 * `hidden_dim` when unset.
    pub fn ffn_dim_or_default(&self) -> i64 {
        self.ffn_dim.unwrap_or(4 * self.hidden_dim)
    }

    /// Sets the model option `key` (a key of the architecture's own
    /// options) to `value`; for configs built in code.
    pub fn with_option<T: Into<Value>>(mut self, key: &str, value: T) -> Self {
        self.options.insert(key.to_string(), value.into());
        self
    }

    /// The vocabulary size, or an error when it has not been filled in.
    pub fn require_vocab_size(&self) -> Result<i64, ConfigError> {
        self.vocab_size.ok_or_else(|| {
            ConfigError::new(
                "model.vocab_size",
                "vocab_size must be set before building a model (it is normally filled in \
                 from the gene vocabulary; set it in the config or build the vocabulary first)",
            )
        })
    }

    /// Checks every constraint on the model keys (see `checks.rs`), for
    /// configs built in code.
    pub fn validate(&self) -> Result<(), ConfigErrors> {
        let mut errors = ConfigErrors::new("model config");
        super::checks::check_model(self, "model", &mut errors);
        errors.into_result(())
    }

    /// The model section as JSON, as stored under `model_config` in a
    /// checkpoint's `config.json`: the shared keys, then the options of the
    /// architecture with their defaults filled in.
    pub fn to_json(&self) -> Value {
        super::options::resolved_json(self)
    }

    /// Reads the model section from JSON (a checkpoint's `model_config`),
    /// with the same checks as a config file; keys left out take their
    /// defaults.
    pub fn from_json(v: &Value) -> Result<Self, ConfigErrors> {
        let mut errors = ConfigErrors::new("model_config (JSON)");
        let parsed = Self::from_value(v, "model", &mut errors);
        if let Some(model) = &parsed {
            super::checks::check_model(model, "model", &mut errors);
        }
        match parsed {
            Some(model) if errors.is_empty() => Ok(model),
            _ => Err(errors),
        }
    }
}

config_section! {
    /// Training loop (YAML section `training`).
    pub struct TrainingConfig {
        /// Cells per optimisation step (before gradient accumulation).
        batch_size: i64 = 64,
        /// Passes over the training data.
        max_epochs: i64 = 10,
        /// Seed for every random number generator.
        seed: i64 = 42,
        /// Lightning distribution strategy. As in scModelForge it only
        /// matters with more than one device, which forge refuses
        /// (`num_gpus`); on one device it is not used.
        strategy: String = "ddp".to_string(),
        /// Number of GPUs; `null` uses what is available. forge trains on
        /// one device: more than 1 is refused.
        num_gpus: Option<i64> = None,
        /// Numeric precision.
        precision: Precision = Precision::Bf16Mixed,
        /// Optimizer settings.
        optimizer: OptimizerConfig = OptimizerConfig::default(),
        /// Learning-rate schedule; `null` keeps the learning rate constant.
        scheduler: Option<SchedulerConfig> = Some(SchedulerConfig::default()),
        /// Clip the gradient norm to this value; 0 disables clipping.
        gradient_clip: f64 = 1.0,
        /// Batches whose gradients are summed before each optimizer step.
        gradient_accumulation: i64 = 1,
        /// Metrics logger: `csv` (forge's default; scModelForge defaults to
        /// `wandb`, which cannot reach its server from here), `tensorboard`
        /// or `wandb` (any case); other values are refused.
        logger: String = "csv".to_string(),
        /// Weights & Biases project (`logger: wandb` only).
        wandb_project: Option<String> = Some("scmodelforge".to_string()),
        /// Name of the run; `null` derives one from the architecture and
        /// the start time.
        run_name: Option<String> = None,
        /// Directory where logs are written.
        log_dir: String = "logs".to_string(),
        /// Log training metrics every this many optimizer steps.
        log_every_n_steps: i64 = 50,
        /// Directory where checkpoints are written; `null` writes none.
        checkpoint_dir: Option<String> = Some("checkpoints".to_string()),
        /// Keep the best this many checkpoints (-1 keeps all).
        save_top_k: i64 = 3,
        /// Worker threads building batches (scModelForge's DataLoader
        /// workers); 0 builds them on one thread.
        num_workers: i64 = 4,
        /// Fraction of cells held out for validation, in [0, 1).
        val_split: f64 = 0.05,
        /// Checkpoint to resume training from.
        resume_from: Option<String> = None,
        /// How training cells are drawn each epoch.
        sampling: SamplingConfig = SamplingConfig::default(),
        /// Fully sharded data parallel settings; scModelForge uses them only
        /// with more than one device, so forge (one device) warns that they
        /// are not used.
        fsdp: Option<FsdpConfig> = None,
    }
}

config_section! {
    /// Cell sampling (YAML section `training.sampling`).
    pub struct SamplingConfig {
        /// `random` (uniform shuffle) or `weighted` (inverse class
        /// frequency of `label_key`).
        strategy: SamplingStrategy = SamplingStrategy::Random,
        /// obs column of the class labels (`weighted`).
        label_key: String = "cell_type".to_string(),
        /// Sample with replacement (`weighted`).
        replacement: bool = true,
        /// Epochs over which the weights ramp from uniform to full inverse
        /// frequency; 0 disables the curriculum.
        curriculum_warmup_epochs: i64 = 0,
    }
}

config_section! {
    /// Fully Sharded Data Parallel (YAML section `training.fsdp`).
    pub struct FsdpConfig {
        /// `FULL_SHARD`, `SHARD_GRAD_OP`, `NO_SHARD` or `HYBRID_SHARD`.
        sharding_strategy: String = "FULL_SHARD".to_string(),
        /// Offload parameters and gradients to the CPU.
        cpu_offload: bool = false,
        /// Activation checkpointing on the encoder layers.
        activation_checkpointing: bool = false,
        /// Least parameters of an auto-wrapped module.
        min_num_params: i64 = 1_000_000,
    }
}

config_section! {
    /// Optimizer (YAML section `training.optimizer`).
    pub struct OptimizerConfig {
        /// Optimizer algorithm.
        name: OptimizerName = OptimizerName::Adamw,
        /// Peak learning rate, > 0.
        lr: f64 = 1e-4,
        /// Weight decay (not applied to biases and LayerNorm weights).
        weight_decay: f64 = 0.01,
    }
}

config_section! {
    /// Learning-rate schedule (YAML section `training.scheduler`).
    pub struct SchedulerConfig {
        /// Schedule shape.
        name: SchedulerName = SchedulerName::CosineWarmup,
        /// Steps of linear warm-up from 0 to the peak learning rate.
        warmup_steps: i64 = 2000,
        /// Step at which the schedule reaches its end.
        total_steps: i64 = 100_000,
    }
}

config_section! {
    /// Assessment benchmarks (YAML section `eval`).
    pub struct EvalConfig {
        /// Run the benchmarks every this many epochs.
        every_n_epochs: i64 = 2,
        /// Cells per batch when computing embeddings.
        batch_size: i64 = 256,
        /// Benchmarks to run: names (`- linear_probe`) or mappings with
        /// `name`, `dataset` and `params`; empty runs `linear_probe`.
        benchmarks: Vec<BenchmarkSpec> = Vec::new(),
    }
}

/// One entry of `eval.benchmarks`: either a bare benchmark name or a
/// mapping `{name, dataset, params}`.
///
/// As in scModelForge, benchmark options may also be written next to `name`
/// instead of under `params`; they are merged into `params` (an entry under
/// `params` wins). A key that looks like a misspelt `name`, `dataset` or
/// `params` is reported instead of being taken as an option.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct BenchmarkSpec {
    /// Registry name of the benchmark, e.g. `linear_probe`.
    pub name: String,
    /// Name of the assessment dataset; `null` uses every one.
    pub dataset: Option<String>,
    /// Options passed to the benchmark.
    pub params: Opaque,
}

impl BenchmarkSpec {
    /// The keys of a benchmark mapping.
    pub const FIELDS: &'static [&'static str] = &["name", "dataset", "params"];

    /// A benchmark given by name only.
    pub fn named(name: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            ..Self::default()
        }
    }
}

impl ConfigValue for BenchmarkSpec {
    fn from_value(v: &Value, path: &str, errors: &mut ConfigErrors) -> Option<Self> {
        let map = match v {
            Value::String(name) => return Some(Self::named(name.clone())),
            Value::Object(map) => map,
            _ => {
                type_error(
                    errors,
                    path,
                    "a benchmark name or a mapping with keys name, dataset, params",
                    v,
                );
                return None;
            }
        };
        let mut ok = true;
        let name = match map.get("name") {
            Some(n) => String::from_value(n, &join_path(path, "name"), errors),
            None => {
                errors.push(
                    path,
                    format!(
                        "a benchmark mapping needs a `name` key (found keys: {})",
                        map.keys().cloned().collect::<Vec<_>>().join(", ")
                    ),
                );
                None
            }
        };
        let dataset = match map.get("dataset") {
            Some(d) => Option::<String>::from_value(d, &join_path(path, "dataset"), errors),
            None => Some(None),
        };
        let mut params = match map.get("params") {
            Some(p) => Opaque::from_value(p, &join_path(path, "params"), errors),
            None => Some(Opaque::new()),
        };
        for (key, value) in map {
            if Self::FIELDS.contains(&key.as_str()) {
                continue;
            }
            if let Some(best) = crate::suggest::closest(key, Self::FIELDS.iter().copied()) {
                errors.push(
                    join_path(path, key),
                    format!("unknown key; did you mean \"{best}\"?"),
                );
                ok = false;
            } else if let Some(params) = params.as_mut() {
                params.entry(key.clone()).or_insert_with(|| value.clone());
            }
        }
        match (name, dataset, params) {
            (Some(name), Some(dataset), Some(params)) if ok => Some(Self {
                name,
                dataset,
                params,
            }),
            _ => None,
        }
    }

    /// A bare name when there is nothing else, else the full mapping.
    fn to_value(&self) -> Value {
        if self.dataset.is_none() && self.params.is_empty() {
            return Value::String(self.name.clone());
        }
        let mut map = Map::new();
        map.insert("name".into(), Value::String(self.name.clone()));
        map.insert("dataset".into(), self.dataset.to_value());
        map.insert("params".into(), Value::Object(self.params.clone()));
        Value::Object(map)
    }
}

config_section! {
    /// Fine-tuning of a pretrained backbone (YAML section `finetune`).
    pub struct FinetuneConfig {
        /// Pretrained checkpoint directory to start from.
        checkpoint_path: Option<String> = None,
        /// Keep the backbone frozen for the whole run.
        freeze_backbone: bool = false,
        /// Unfreeze the backbone after this many epochs (0: no schedule).
        freeze_backbone_epochs: i64 = 0,
        /// Column of `obs` holding the task labels.
        label_key: String = "cell_type".to_string(),
        /// Learning rate of the backbone; `null` uses
        /// `training.optimizer.lr`.
        backbone_lr: Option<f64> = None,
        /// Learning rate of the head; `null` uses `training.optimizer.lr`.
        head_lr: Option<f64> = None,
        /// The task head.
        head: FinetuneHeadConfig = FinetuneHeadConfig::default(),
        /// LoRA adapters.
        lora: LoraConfig = LoraConfig::default(),
    }
}

config_section! {
    /// Task head for fine-tuning (YAML section `finetune.head`).
    pub struct FinetuneHeadConfig {
        /// Classification or regression.
        task: FinetuneTask = FinetuneTask::Classification,
        /// Number of classes (classification); `null` counts the labels in
        /// the data.
        n_classes: Option<i64> = None,
        /// Number of outputs (regression).
        output_dim: i64 = 1,
        /// Width of a hidden layer; `null` projects directly.
        hidden_dim: Option<i64> = None,
        /// Dropout probability in the head, in [0, 1).
        dropout: f64 = 0.1,
    }
}

config_section! {
    /// LoRA adapters for fine-tuning (YAML section `finetune.lora`).
    pub struct LoraConfig {
        /// Apply LoRA adapters (the backbone's own weights are frozen).
        enabled: bool = false,
        /// Rank of the low-rank update.
        rank: i64 = 8,
        /// Scaling numerator: updates are scaled by `alpha / rank`.
        alpha: f64 = 16.0,
        /// Dropout on the LoRA input, in [0, 1).
        dropout: f64 = 0.05,
        /// Names of the linear layers to adapt; `null` or `[]` means
        /// [`LoraConfig::DEFAULT_TARGET_MODULES`] (`out_proj`, `linear1`,
        /// `linear2`: the attention output and both feed-forward layers).
        target_modules: Option<Vec<String>> = None,
        /// Which biases are trained.
        bias: LoraBias = LoraBias::None,
    }
}

config_section! {
    /// Model-zoo isolation (YAML section `zoo`).
    pub struct ZooConfig {
        /// Folder of the isolated virtualenvs.
        env_dir: String = "~/.cache/scmodelforge/envs".to_string(),
        /// Python version of new environments; `null` uses the current one.
        python_version: Option<String> = None,
        /// Subprocess timeout in seconds; 0 means none.
        timeout: i64 = 0,
    }
}

impl LoraConfig {
    /// The layers adapted when `target_modules` is `null`, as in
    /// scModelForge.
    pub const DEFAULT_TARGET_MODULES: &'static [&'static str] = &["out_proj", "linear1", "linear2"];

    /// `target_modules`, or the defaults when unset or empty (as in
    /// scModelForge, an empty list means the defaults).
    pub fn target_modules_or_default(&self) -> Vec<String> {
        match &self.target_modules {
            Some(modules) if !modules.is_empty() => modules.clone(),
            _ => Self::DEFAULT_TARGET_MODULES
                .iter()
                .map(|s| s.to_string())
                .collect(),
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn model_defaults_match_scmodelforge() {
        let m = ModelConfig::default();
        assert_eq!(m.architecture, "transformer_encoder");
        assert_eq!((m.hidden_dim, m.num_layers, m.num_heads), (512, 12, 8));
        assert_eq!((m.ffn_dim, m.ffn_dim_or_default()), (None, 2048));
        assert_eq!((m.dropout, m.max_seq_len), (0.1, 2048));
        assert_eq!((m.pooling, m.activation), (Pooling::Cls, Activation::Gelu));
        assert!(m.use_expression_values);
        assert_eq!(m.pretraining_task, PretrainingTask::MaskedGenePrediction);
        assert_eq!((m.mask_ratio, m.vocab_size, m.n_bins), (0.15, None, 51));
        assert_eq!((m.gene_loss_weight, m.expression_loss_weight), (1.0, 1.0));
        // The 16 shared keys; a model's own options (masked_autoencoder's
        // decoder keys) live in its file.
        assert_eq!(ModelConfig::FIELDS.len(), 16);
        assert!(m.options.is_empty());
    }

    /// forge-gen refuses `--option` names that are shared keys from this
    /// list, so it must be `ModelConfig`'s fields exactly.
    #[test]
    fn shared_key_list_is_model_config() {
        assert_eq!(forge_names::MODEL_CONFIG_KEYS, ModelConfig::FIELDS);
    }

    #[test]
    fn require_vocab_size_explains_itself() {
        let mut m = ModelConfig::default();
        let err = m.require_vocab_size().unwrap_err();
        assert_eq!(err.path, "model.vocab_size");
        assert!(err.to_string().contains("vocab_size must be set"), "{err}");
        m.vocab_size = Some(100);
        assert_eq!(m.require_vocab_size().unwrap(), 100);
    }

    #[test]
    fn model_json_round_trip_and_checks() {
        let m = ModelConfig {
            architecture: "masked_autoencoder".into(),
            hidden_dim: 64,
            num_heads: 4,
            vocab_size: Some(100),
            ..ModelConfig::default()
        }
        .with_option("decoder_dim", 32);
        let json = m.to_json();
        assert_eq!(json["hidden_dim"], json!(64));
        assert_eq!(json["pooling"], json!("cls"));
        // Key order is declaration order, as in scModelForge's config.json:
        // the shared keys, then the architecture's options with defaults.
        let keys: Vec<_> = json.as_object().unwrap().keys().cloned().collect();
        let mut want: Vec<String> = ModelConfig::FIELDS.iter().map(|f| f.to_string()).collect();
        want.extend(["decoder_dim", "decoder_layers", "decoder_heads"].map(String::from));
        assert_eq!(keys, want);
        assert_eq!(json["decoder_dim"], json!(32));
        assert_eq!(json["decoder_layers"], json!(4));
        assert_eq!(ModelConfig::from_json(&json).unwrap().to_json(), json);
        // Keys left out take defaults (older checkpoints).
        let partial = ModelConfig::from_json(&json!({"hidden_dim": 64, "num_heads": 4})).unwrap();
        assert_eq!(partial.num_layers, 12);
        let err = ModelConfig::from_json(&json!({"hidden_dim": 64, "num_heads": 5})).unwrap_err();
        assert!(err.has_path("model.num_heads"), "{err}");
        let err = ModelConfig::from_json(&json!({"hiden_dim": 64})).unwrap_err();
        assert!(
            err.to_string().contains("did you mean \"hidden_dim\"?"),
            "{err}"
        );
        assert!(m.validate().is_ok());
    }

    #[test]
    fn benchmark_specs_in_both_forms() {
        let mut errors = ConfigErrors::new("<test>");
        let spec = BenchmarkSpec::from_value(&json!("linear_probe"), "b", &mut errors).unwrap();
        assert_eq!(spec, BenchmarkSpec::named("linear_probe"));
        assert_eq!(spec.to_value(), json!("linear_probe"));
        let full = json!({"name": "embedding_quality", "dataset": "pbmc",
                          "params": {"cell_type_key": "cell_type"}});
        let spec = BenchmarkSpec::from_value(&full, "b", &mut errors).unwrap();
        assert_eq!(spec.dataset.as_deref(), Some("pbmc"));
        assert_eq!(spec.params["cell_type_key"], json!("cell_type"));
        assert_eq!(spec.to_value(), full);
        // Flat options are merged into params, as scModelForge does.
        let flat = json!({"name": "linear_probe", "test_size": 0.2, "params": {"seed": 1}});
        let spec = BenchmarkSpec::from_value(&flat, "b", &mut errors).unwrap();
        assert_eq!(
            spec.params,
            json!({"seed": 1, "test_size": 0.2})
                .as_object()
                .unwrap()
                .clone()
        );
        assert!(errors.is_empty(), "{errors}");
    }

    #[test]
    fn benchmark_spec_errors() {
        let mut errors = ConfigErrors::new("<test>");
        let bad = json!({"nmae": "x", "datset": "y"});
        assert_eq!(
            BenchmarkSpec::from_value(&bad, "eval.benchmarks[0]", &mut errors),
            None
        );
        let text = errors.to_string();
        assert!(
            text.contains("eval.benchmarks[0]: a benchmark mapping needs a `name` key"),
            "{text}"
        );
        assert!(text.contains("eval.benchmarks[0].nmae: unknown key; did you mean \"name\"?"));
        assert!(text.contains("eval.benchmarks[0].datset: unknown key; did you mean \"dataset\"?"));
        let mut errors = ConfigErrors::new("<test>");
        assert_eq!(BenchmarkSpec::from_value(&json!(3), "b", &mut errors), None);
        assert!(
            errors
                .to_string()
                .contains("expected a benchmark name or a mapping")
        );
    }

    #[test]
    fn lora_target_modules_default() {
        let mut l = LoraConfig::default();
        assert_eq!(
            l.target_modules_or_default(),
            ["out_proj", "linear1", "linear2"]
        );
        l.target_modules = Some(vec![]);
        assert_eq!(l.target_modules_or_default().len(), 3);
        l.target_modules = Some(vec!["linear1".into()]);
        assert_eq!(l.target_modules_or_default(), ["linear1"]);
    }
}
