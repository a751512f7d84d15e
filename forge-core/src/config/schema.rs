//! Every section of a forge / scModelForge config file: key names, types,
//! defaults and documentation, each written once in a `config_section!`.
//!
//! Key names and defaults follow scModelForge's `config/schema.py`, so its
//! YAML files load unchanged. Where forge differs it says so in the key's
//! documentation (e.g. `training.logger` defaults to `csv` because forge has
//! no Weights & Biases client). Sub-sections forge does not act on (census,
//! sampling, fsdp, ...) are kept as opaque mappings: they load, survive a
//! save, and are otherwise ignored.
//!
//! Loading and saving whole files lives in `load.rs`; checks that involve
//! more than one key live in `checks.rs`.

use serde_json::{Map, Value};

use super::enums::{
    Activation, BinningMethod, DataSource, FinetuneTask, GeneSelectionStrategy, LoraBias,
    Normalize, OptimizerName, Pooling, Precision, PretrainingTask, SamplingStrategy, SchedulerName,
    TokenizerStrategy,
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
        /// scModelForge's model-zoo settings (`zoo`). Opaque: accepted so
        /// that configs saved by scModelForge load, ignored by forge.
        zoo: Opaque = Opaque::new(),
    }
}

config_section! {
    /// Data loading and preprocessing (YAML section `data`).
    pub struct DataConfig {
        /// Where cells come from: `local` (the files in `paths`) or
        /// `cellxgene_census` (accepted for compatibility; forge reads local
        /// files only).
        source: DataSource = DataSource::Local,
        /// AnnData `.h5ad` files to read, in order.
        paths: Vec<String> = Vec::new(),
        /// Gene vocabulary: a path to a `gene_vocab.json` (gene -> id).
        /// `null` (forge's default) builds the vocabulary from the genes of
        /// the data. scModelForge's named vocabularies (its default is
        /// `human_protein_coding`) are not bundled with forge.
        gene_vocab: Option<String> = None,
        /// Per-cell preprocessing applied after reading.
        preprocessing: PreprocessingConfig = PreprocessingConfig::default(),
        /// Maximum number of genes kept per cell when reading.
        max_genes: i64 = 2048,
        /// Worker threads for data loading.
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
        /// CELLxGENE Census settings (opaque, ignored by forge).
        census: Opaque = Opaque::new(),
        /// Multi-species vocabulary settings (opaque, ignored by forge).
        multi_species: Opaque = Opaque::new(),
        /// Perturbation metadata settings (opaque, ignored by forge).
        perturbation: Opaque = Opaque::new(),
        /// Pre-sharded dataset settings (opaque, ignored by forge).
        shards: Opaque = Opaque::new(),
        /// Batch-level gene selection for training.
        gene_selection: GeneSelectionConfig = GeneSelectionConfig::default(),
        /// Cloud storage settings (opaque, ignored by forge).
        cloud: Opaque = Opaque::new(),
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
    /// Batch-level gene selection (YAML section `data.gene_selection`), as
    /// scModelForge's `GeneSelectionCollator`: for each training batch, the
    /// genes kept before tokenizing. Validation batches keep every gene.
    pub struct GeneSelectionConfig {
        /// `all`, `most_expressed` (largest total expression over the
        /// batch) or `random_expressed` (a random draw from the genes
        /// expressed in the batch).
        strategy: GeneSelectionStrategy = GeneSelectionStrategy::All,
        /// Genes kept per batch; required unless `strategy` is `all`.
        n_genes: Option<i64> = None,
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
    /// forge-gen appends options for new models between the
    /// `forge-gen: model-options` markers at the end of the field list.
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
        /// Decoder width (`masked_autoencoder`); `null` means
        /// `hidden_dim / 2`.
        decoder_dim: Option<i64> = None,
        /// Decoder layers (`masked_autoencoder`).
        decoder_layers: i64 = 4,
        /// Decoder attention heads (`masked_autoencoder`); `null` means
        /// `num_heads`.
        decoder_heads: Option<i64> = None,
        // forge-gen: model-options begin
        // forge-gen: model-options end
    }
}

impl ModelConfig {
    /// The feed-forward width: `ffn_dim`, or 4 * `hidden_dim` when unset.
    pub fn ffn_dim_or_default(&self) -> i64 {
        self.ffn_dim.unwrap_or(4 * self.hidden_dim)
    }

    /// The decoder width of `masked_autoencoder`: `decoder_dim`, or
    /// `hidden_dim / 2` when unset.
    pub fn decoder_dim_or_default(&self) -> i64 {
        self.decoder_dim.unwrap_or(self.hidden_dim / 2)
    }

    /// The decoder heads of `masked_autoencoder`: `decoder_heads`, or
    /// `num_heads` when unset.
    pub fn decoder_heads_or_default(&self) -> i64 {
        self.decoder_heads.unwrap_or(self.num_heads)
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
    /// checkpoint's `config.json`.
    pub fn to_json(&self) -> Value {
        self.to_value()
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
        /// Lightning distribution strategy (accepted for compatibility;
        /// forge trains on one device).
        strategy: String = "ddp".to_string(),
        /// Number of GPUs; `null` uses what is available.
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
        /// `wandb`, which forge does not ship), `tensorboard` or `wandb`.
        logger: String = "csv".to_string(),
        /// Weights & Biases project (`logger: wandb` only).
        wandb_project: Option<String> = None,
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
        /// Worker threads feeding the training loop.
        num_workers: i64 = 4,
        /// Fraction of cells held out for validation, in [0, 1).
        val_split: f64 = 0.05,
        /// Checkpoint to resume training from.
        resume_from: Option<String> = None,
        /// How training cells are drawn each epoch.
        sampling: SamplingConfig = SamplingConfig::default(),
        /// Fully sharded data parallel settings (opaque, ignored by forge).
        fsdp: Option<Opaque> = None,
    }
}

config_section! {
    /// How training cells are drawn each epoch (YAML section
    /// `training.sampling`), as scModelForge's `WeightedCellSampler`.
    pub struct SamplingConfig {
        /// `random` (a shuffle) or `weighted` (each epoch draws as many
        /// cells as the training set holds, with probability inversely
        /// proportional to the frequency of their `label_key` class).
        strategy: SamplingStrategy = SamplingStrategy::Random,
        /// obs column of the classes (`weighted`).
        label_key: String = "cell_type".to_string(),
        /// Draw with replacement (`weighted`).
        replacement: bool = true,
        /// Epochs over which the weights move linearly from uniform to
        /// inverse-frequency; 0 weights fully from the start (`weighted`).
        curriculum_warmup_epochs: i64 = 0,
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
        assert_eq!(
            (m.decoder_dim, m.decoder_layers, m.decoder_heads),
            (None, 4, None)
        );
        assert_eq!(
            (m.decoder_dim_or_default(), m.decoder_heads_or_default()),
            (256, 8)
        );
        // The 19 built-in keys come first; fields forge-gen adds with
        // `--option` follow them.
        assert_eq!(
            ModelConfig::FIELDS
                .iter()
                .position(|f| *f == "decoder_heads"),
            Some(18)
        );
    }

    /// forge-gen inserts model options between these two lines; they must
    /// stay, once each, right after the last built-in `ModelConfig` field.
    #[test]
    fn forge_gen_markers_are_in_place() {
        let src = include_str!("schema.rs");
        let begin = format!("        // forge-gen: {}\n", "model-options begin");
        let end = format!("        // forge-gen: {}\n", "model-options end");
        assert_eq!(src.matches(&begin).count(), 1);
        assert_eq!(src.matches(&end).count(), 1);
        let last_field = "        decoder_heads: Option<i64> = None,\n";
        let at = src.find(&begin).unwrap();
        assert!(src[..at].ends_with(last_field));
        assert!(src[at..].find(&end).is_some());
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
            decoder_dim: Some(32),
            ..ModelConfig::default()
        };
        let json = m.to_json();
        assert_eq!(json["hidden_dim"], json!(64));
        assert_eq!(json["pooling"], json!("cls"));
        // Key order is declaration order, as in scModelForge's config.json.
        let keys: Vec<_> = json.as_object().unwrap().keys().cloned().collect();
        assert_eq!(keys, ModelConfig::FIELDS);
        assert_eq!(ModelConfig::from_json(&json).unwrap(), m);
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
