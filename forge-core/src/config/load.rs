//! Loading a whole config (YAML file, YAML text or JSON tree) and writing it
//! back as YAML.
//!
//! Loading runs in three stages, each reporting every problem it finds:
//! YAML syntax (stops here on error), then every key and its type (unknown
//! keys, wrong types, bad enum values), then the value checks of
//! `checks.rs` (keys that failed to read keep their defaults, and checks
//! on those keys are not reported). Problems found in a file carry the line of the key
//! at fault.

use std::path::Path;

use serde_json::Value;

use super::checks::{check_config, config_warnings};
use super::error::ConfigErrors;
use super::interpolate;
use super::schema::{FinetuneConfig, ForgeConfig, FsdpConfig};
use super::value::ConfigValue;
use super::yaml;

impl ForgeConfig {
    /// Reads a config from YAML text. `source_name` names the text in
    /// messages (a file path, or `<string>`). Warnings (keys set but not
    /// used) are dropped; see [`ForgeConfig::from_yaml_str_with_warnings`].
    pub fn from_yaml_str(text: &str, source_name: &str) -> Result<Self, ConfigErrors> {
        Self::from_yaml_str_with_warnings(text, source_name).map(|(config, _)| config)
    }

    /// Reads a config from YAML text, with its warnings: keys that are set
    /// but that forge, like scModelForge's training, does not use, each
    /// with its line (see [`ConfigErrors::warning_lines`]).
    pub fn from_yaml_str_with_warnings(
        text: &str,
        source_name: &str,
    ) -> Result<(Self, ConfigErrors), ConfigErrors> {
        let mut errors = ConfigErrors::new(source_name);
        let Some(mut tree) = yaml::parse(text, &mut errors) else {
            return Err(errors);
        };
        let defaults = interpolate::defaults_for(
            &tree.root,
            &ForgeConfig::default().to_value(),
            &[
                ("finetune", FinetuneConfig::default().to_value()),
                ("training.fsdp", FsdpConfig::default().to_value()),
            ],
        );
        interpolate::resolve(&mut tree.root, &defaults, &mut errors);
        if !errors.is_empty() {
            yaml::attach_lines(&mut errors, &tree.lines);
            return Err(errors);
        }
        let config = read_and_check(&tree.root, &mut errors);
        yaml::attach_lines(&mut errors, &tree.lines);
        match config {
            Some(config) if errors.is_empty() => {
                let mut warnings = ConfigErrors::new(source_name);
                config_warnings(&config, &mut warnings);
                yaml::attach_lines(&mut warnings, &tree.lines);
                Ok((config, warnings))
            }
            _ => Err(errors),
        }
    }

    /// Reads a config file (warnings dropped; see
    /// [`ForgeConfig::load_with_warnings`]).
    pub fn load(path: &Path) -> Result<Self, ConfigErrors> {
        Self::load_with_warnings(path).map(|(config, _)| config)
    }

    /// Reads a config file, with its warnings (see
    /// [`ForgeConfig::from_yaml_str_with_warnings`]).
    pub fn load_with_warnings(path: &Path) -> Result<(Self, ConfigErrors), ConfigErrors> {
        let source_name = path.display().to_string();
        match std::fs::read_to_string(path) {
            Ok(text) => Self::from_yaml_str_with_warnings(&text, &source_name),
            Err(e) => {
                let hint = if e.kind() == std::io::ErrorKind::NotFound {
                    " (check the path; configs/ holds examples)"
                } else {
                    ""
                };
                Err(ConfigErrors::single(
                    source_name,
                    "",
                    format!("cannot read the config file: {e}{hint}"),
                ))
            }
        }
    }

    /// Reads a config from a JSON tree (e.g. one saved with
    /// [`ForgeConfig::to_json`]), with the same checks as a file.
    pub fn from_json(v: &Value, source_name: &str) -> Result<Self, ConfigErrors> {
        let mut errors = ConfigErrors::new(source_name);
        match read_and_check(v, &mut errors) {
            Some(config) if errors.is_empty() => Ok(config),
            _ => Err(errors),
        }
    }

    /// The whole config as a JSON tree, every key present.
    pub fn to_json(&self) -> Value {
        let mut value = self.to_value();
        // The model's own options with their defaults filled in.
        value["model"] = self.model.to_json();
        value
    }

    /// The whole config as YAML, every key written (defaults included, the
    /// options of the model's architecture among them), in schema order;
    /// [`ForgeConfig::from_yaml_str`] reads it back to the same values.
    pub fn to_yaml_string(&self) -> String {
        yaml::to_yaml(&self.to_json())
    }

    /// Runs the value checks on a config built or edited in code.
    pub fn validate(&self) -> Result<(), ConfigErrors> {
        let mut errors = ConfigErrors::new("config");
        check_config(self, &mut errors);
        errors.into_result(())
    }

    /// The vocabulary file the config names: `tokenizer.gene_vocab`, else
    /// `data.gene_vocab`, when it is a path (holds a `/` or ends in
    /// `.json`). A vocabulary name such as scModelForge's default
    /// `human_protein_coding` gives `None`: as in scModelForge, whose
    /// training never reads these keys, the vocabulary is built from the
    /// genes of the data.
    pub fn gene_vocab_file(&self) -> Option<&str> {
        [&self.tokenizer.gene_vocab, &self.data.gene_vocab]
            .into_iter()
            .flatten()
            .map(|v| v.trim())
            .find(|v| super::checks::is_vocab_path(v))
    }

    /// The warnings of a config built or edited in code: keys set but not
    /// used (see [`ForgeConfig::from_yaml_str_with_warnings`]).
    pub fn warnings(&self) -> ConfigErrors {
        let mut warnings = ConfigErrors::new("config");
        config_warnings(self, &mut warnings);
        warnings
    }
}

fn read_and_check(root: &Value, errors: &mut ConfigErrors) -> Option<ForgeConfig> {
    let config = ForgeConfig::from_value(root, "", errors)?;
    // Value checks run even when some keys failed to read (those keep their
    // defaults), so one load reports every problem; a check about a key that
    // already has a problem is left out, since it would judge the default.
    let mut checks = ConfigErrors::new(errors.source_name.clone());
    check_config(&config, &mut checks);
    for problem in checks.errors {
        if !errors.has_path(&problem.path) {
            errors.errors.push(problem);
        }
    }
    Some(config)
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;

    use serde_json::json;

    use super::super::enums::*;
    use super::super::schema::*;
    use super::*;

    /// A realistic scModelForge-style file using every section.
    const FULL: &str = r#"
# scModelForge-style config touching every section.
data:
  source: local
  paths:
    - ./data/pbmc.h5ad
    - "./data/more cells.h5ad"
  gene_vocab: human_protein_coding
  preprocessing:
    normalize: library_size
    target_sum: 10000
    hvg_selection: 2000
    log1p: true
  max_genes: 2048
  num_workers: 2
  use_raw: true
  gene_key: gene_symbols
  census:
    organism: Homo sapiens
    census_version: latest
    filters: null
    obs_columns: null
  multi_species: {enabled: false, organisms: [human, mouse]}
  perturbation: {enabled: false, perturbation_key: null}
  shards: {enabled: false, shard_dir: "", shard_size: 500000}
  gene_selection: {strategy: all, n_genes: null}
  cloud: {storage_options: {}, cache_dir: null}
  streaming: false
  streaming_chunk_size: 10000
  streaming_shuffle_buffer: 5000

tokenizer:
  strategy: binned_expression
  max_genes: 1024
  prepend_cls: true
  n_bins: 51
  binning_method: quantile
  embedding_path: null
  embedding_dim: 200
  masking:
    mask_ratio: 0.15
    random_replace_ratio: 0.1
    keep_ratio: 0.1

model:
  architecture: autoregressive_transformer
  hidden_dim: 256
  num_layers: 4
  num_heads: 8
  ffn_dim: 1024
  dropout: 0.1
  max_seq_len: 1024
  pooling: mean
  activation: gelu
  use_expression_values: true
  pretraining_task: masked_gene_prediction
  mask_ratio: 0.15
  vocab_size: null
  n_bins: 51
  gene_loss_weight: 1.0
  expression_loss_weight: 0.5
  decoder_dim: null
  decoder_layers: 4
  decoder_heads: null

training:
  batch_size: 32
  max_epochs: 3
  seed: 7
  strategy: ddp
  num_gpus: 1
  precision: 32
  optimizer:
    name: adamw
    lr: 1e-4
    weight_decay: 0.01
  scheduler:
    name: cosine_warmup
    warmup_steps: 100
    total_steps: 10000
  gradient_clip: 1.0
  gradient_accumulation: 2
  logger: wandb
  wandb_project: scmodelforge
  run_name: scgpt-small
  log_dir: logs
  log_every_n_steps: 10
  checkpoint_dir: ./checkpoints
  save_top_k: 3
  num_workers: 4
  val_split: 0.1
  resume_from: null
  sampling:
    strategy: weighted
    label_key: cell_type
    replacement: true
    curriculum_warmup_epochs: 0
  fsdp:
    sharding_strategy: FULL_SHARD
    cpu_offload: false
    activation_checkpointing: false
    min_num_params: 1000000

eval:
  every_n_epochs: 1
  batch_size: 128
  benchmarks:
    - linear_probe
    - name: embedding_quality
      dataset: tabula_sapiens
      params:
        cell_type_key: cell_type
        batch_key: batch
    - name: linear_probe
      dataset: pbmc
      cell_type_key: cell_type
      test_size: 0.2

finetune:
  checkpoint_path: ./checkpoints/best
  freeze_backbone: false
  freeze_backbone_epochs: 1
  label_key: louvain
  backbone_lr: 1.0e-5
  head_lr: 1.0e-3
  head:
    task: classification
    n_classes: 11
    output_dim: 1
    hidden_dim: 128
    dropout: 0.1
  lora:
    enabled: true
    rank: 4
    alpha: 8
    dropout: 0.05
    target_modules: [out_proj, linear1]
    bias: none

zoo:
  env_dir: ~/.cache/scmodelforge/envs
  python_version: null
  timeout: 0
"#;

    fn load_str(text: &str) -> Result<ForgeConfig, String> {
        ForgeConfig::from_yaml_str(text, "config.yaml").map_err(|e| e.to_string())
    }

    fn example_path() -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../configs/transformer_encoder_pbmc.yaml")
    }

    #[test]
    fn empty_file_gives_defaults_and_defaults_round_trip() {
        let config = load_str("").unwrap();
        assert_eq!(config, ForgeConfig::default());
        assert_eq!(config.finetune, None);
        let text = config.to_yaml_string();
        assert!(text.starts_with("data:\n  source: local\n"), "{text}");
        assert!(text.contains("\n    lr: 0.0001\n"), "{text}");
        assert!(text.contains("\nfinetune: null\n"), "{text}");
        assert_eq!(load_str(&text).unwrap(), config);
    }

    #[test]
    fn full_scmodelforge_style_file_loads_and_round_trips() {
        let config = load_str(FULL).unwrap();
        assert_eq!(
            config.data.paths,
            ["./data/pbmc.h5ad", "./data/more cells.h5ad"]
        );
        assert_eq!(
            config.data.gene_vocab.as_deref(),
            Some("human_protein_coding")
        );
        assert_eq!(config.data.preprocessing.target_sum, Some(10000.0));
        assert_eq!(config.data.census, CensusConfig::default());
        assert_eq!(config.data.shards.shard_size, 500000);
        assert_eq!(
            config.tokenizer.strategy,
            TokenizerStrategy::BinnedExpression
        );
        assert_eq!(config.tokenizer.binning_method, BinningMethod::Quantile);
        assert_eq!(config.model.architecture, "autoregressive_transformer");
        assert_eq!(config.model.pooling, Pooling::Mean);
        assert_eq!(config.model.expression_loss_weight, 0.5);
        assert_eq!(config.training.precision, Precision::Fp32True);
        assert_eq!(config.training.optimizer.lr, 1e-4);
        assert_eq!(
            config.training.scheduler.as_ref().unwrap().warmup_steps,
            100
        );
        assert_eq!(
            config.training.sampling.strategy,
            crate::config::SamplingStrategy::Weighted
        );
        assert_eq!(
            config.training.sampling.strategy,
            SamplingStrategy::Weighted
        );
        assert_eq!(
            config.training.fsdp.as_ref().unwrap().min_num_params,
            1_000_000
        );
        let benchmarks = &config.eval.benchmarks;
        assert_eq!(benchmarks.len(), 3);
        assert_eq!(benchmarks[0], BenchmarkSpec::named("linear_probe"));
        assert_eq!(benchmarks[1].dataset.as_deref(), Some("tabula_sapiens"));
        assert_eq!(benchmarks[1].params["batch_key"], json!("batch"));
        assert_eq!(benchmarks[2].params["test_size"], json!(0.2));
        let finetune = config.finetune.as_ref().unwrap();
        assert_eq!(finetune.label_key, "louvain");
        assert_eq!(
            (finetune.backbone_lr, finetune.head_lr),
            (Some(1e-5), Some(1e-3))
        );
        assert_eq!(finetune.head.n_classes, Some(11));
        assert_eq!(finetune.lora.alpha, 8.0);
        assert_eq!(
            finetune.lora.target_modules_or_default(),
            ["out_proj", "linear1"]
        );
        assert_eq!(config.zoo, ZooConfig::default());

        let text = config.to_yaml_string();
        assert_eq!(load_str(&text).unwrap(), config, "\n{text}");
        assert_eq!(
            ForgeConfig::from_json(&config.to_json(), "<json>").unwrap(),
            config
        );
    }

    #[test]
    fn interpolations_resolve_against_the_defaults_and_are_typed() {
        let text = "model:\n  max_seq_len: ${tokenizer.max_genes}\n  hidden_dim: \
                    ${oc.env:FORGE_TEST_SURELY_UNSET,64}\n  num_heads: 4\ntraining:\n  \
                    run_name: run_${model.hidden_dim}_${.seed}\n  seed: 7\nfinetune:\n  \
                    label_key: ${finetune.head.task}\n";
        let config = load_str(text).unwrap();
        assert_eq!(config.model.max_seq_len, 2048);
        assert_eq!(config.model.hidden_dim, 64);
        assert_eq!(config.training.run_name.as_deref(), Some("run_64_7"));
        assert_eq!(config.finetune.unwrap().label_key, "classification");
        // Errors name the key, the reference and the line.
        let err =
            load_str("training:\n  seed: 1\n  batch_size: ${training.batchsize}\n").unwrap_err();
        assert_eq!(
            err,
            "config.yaml: training.batch_size: interpolation ${training.batchsize}: training has \
             no key \"batchsize\"; did you mean \"training.batch_size\"? (line 3)"
        );
    }

    #[test]
    fn lr_spellings_all_read_as_floats() {
        for lr in ["1e-4", "1.0e-4", "0.0001", "'1e-4'", "\"1.0E-4\""] {
            let config = load_str(&format!("training:\n  optimizer:\n    lr: {lr}\n")).unwrap();
            assert_eq!(config.training.optimizer.lr, 1e-4, "{lr}");
        }
    }

    #[test]
    fn null_scheduler_and_empty_sections() {
        let config = load_str("training:\n  scheduler: null\neval:\nfinetune:\n").unwrap();
        assert_eq!(config.training.scheduler, None);
        assert_eq!(config.eval, EvalConfig::default());
        assert_eq!(config.finetune, None);
        let config = load_str("finetune:\n  label_key: cell_type\n").unwrap();
        assert_eq!(config.finetune, Some(FinetuneConfig::default()));
    }

    #[test]
    fn unknown_keys_suggest_and_name_nested_paths() {
        let err = load_str("model:\n  hiden_dim: 64\n").unwrap_err();
        assert_eq!(
            err,
            "config.yaml: model.hiden_dim: unknown key; did you mean \"hidden_dim\"? (line 2)"
        );
        let err = load_str("training:\n  optimizer:\n    lrr: 0.1\n").unwrap_err();
        assert!(
            err.starts_with("config.yaml: training.optimizer.lrr: unknown key; accepted keys: name, lr, weight_decay"),
            "{err}"
        );
        let err = load_str("modle:\n  hidden_dim: 64\n").unwrap_err();
        assert!(
            err.contains("config.yaml: modle: unknown key; did you mean \"model\"?"),
            "{err}"
        );
    }

    #[test]
    fn every_problem_is_reported_at_once() {
        let text = "\
model:
  hiden_dim: 64
  pooling: mena
  num_layers: many
training:
  batch_size: 0.5
  optimizer:
    lrr: 0.1
tokenizer:
  strategy: rank
bogus: 1
";
        let err = ForgeConfig::from_yaml_str(text, "config.yaml").unwrap_err();
        let paths: Vec<_> = err.iter().map(|e| e.path.as_str()).collect();
        assert_eq!(
            paths,
            // Keys that are no shared key are checked against the options of
            // model.architecture once the whole file has been read.
            [
                "model.pooling",
                "model.num_layers",
                "training.batch_size",
                "training.optimizer.lrr",
                "tokenizer.strategy",
                "bogus",
                "model.hiden_dim",
            ],
            "{err}"
        );
        assert_eq!(err.to_string().lines().count(), 7);
        assert!(
            err.errors[0].message.contains("did you mean \"mean\"?"),
            "{err}"
        );
        assert!(err.errors[5].message.ends_with("(line 11)"), "{err}");
        assert!(err.errors[6].message.ends_with("(line 2)"), "{err}");
    }

    #[test]
    fn type_mismatch_names_path_and_expected_type() {
        let err = load_str("model:\n  hidden_dim: wide\n").unwrap_err();
        assert_eq!(
            err,
            "config.yaml: model.hidden_dim: expected an integer, found string \"wide\" (line 2)"
        );
        let err = load_str("data:\n  paths: one.h5ad\n").unwrap_err();
        assert!(err.contains("data.paths: expected a list"), "{err}");
        let err = load_str("model: 5\n").unwrap_err();
        assert!(
            err.contains("model: expected a mapping with keys among: architecture"),
            "{err}"
        );
    }

    #[test]
    fn value_checks_run_after_types_and_carry_lines() {
        let text = "model:\n  hidden_dim: 100\n  num_heads: 3\n  dropout: 1.5\ntraining:\n  optimizer:\n    lr: 0\n";
        let err = ForgeConfig::from_yaml_str(text, "config.yaml").unwrap_err();
        assert_eq!(err.len(), 3, "{err}");
        let text = err.to_string();
        assert!(
            text.contains("model.num_heads: must divide hidden_dim (100) evenly, got 3"),
            "{text}"
        );
        assert!(text.contains("(line 3)"), "{text}");
        assert!(text.contains("model.dropout: must be in [0, 1)"), "{text}");
        assert!(
            text.contains("training.optimizer.lr: must be a number greater than 0, got 0 (line 7)"),
            "{text}"
        );
    }

    #[test]
    fn document_level_problems() {
        let err = load_str("- a\n- b\n").unwrap_err();
        assert!(
            err.starts_with("config.yaml: the top level of a config must be a mapping of sections"),
            "{err}"
        );
        let err = load_str("model:\n  hidden_dim: [1\n").unwrap_err();
        assert!(
            err.starts_with("config.yaml: YAML syntax error at line "),
            "{err}"
        );
        let err = ForgeConfig::load(Path::new("/nonexistent/dir/x.yaml")).unwrap_err();
        assert!(
            err.to_string()
                .starts_with("/nonexistent/dir/x.yaml: cannot read the config file"),
            "{err}"
        );
    }

    #[test]
    fn example_config_loads() {
        let path = example_path();
        let config = ForgeConfig::load(&path).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(config.model.architecture, "transformer_encoder");
        assert_eq!((config.model.hidden_dim, config.model.num_layers), (128, 4));
        assert_eq!((config.model.num_heads, config.model.max_seq_len), (4, 256));
        assert_eq!(config.data.paths, ["data/pbmc68k_reduced.h5ad"]);
        assert!(config.data.use_raw);
        assert_eq!(config.tokenizer.strategy, TokenizerStrategy::RankValue);
        assert_eq!(config.tokenizer.max_genes, 256);
        assert_eq!(config.training.batch_size, 32);
        assert_eq!(config.training.optimizer.lr, 1e-3);
        assert_eq!(config.training.scheduler.as_ref().unwrap().warmup_steps, 20);
        assert_eq!(load_str(&config.to_yaml_string()).unwrap(), config);
    }

    #[test]
    fn programmatic_validation() {
        let mut config = ForgeConfig::default();
        assert!(config.validate().is_ok());
        config.model.num_heads = 5;
        let err = config.validate().unwrap_err();
        assert_eq!(err.source_name, "config");
        assert!(err.has_path("model.num_heads"));
    }
}
