//! The three reference models against PyTorch, through checkpoint folders.
//!
//! `scripts/make_model_fixtures.py` builds the scModelForge models in
//! PyTorch and writes, under `tests/fixtures/models/`, one checkpoint
//! folder per model plus a padded batch and what PyTorch computes on it
//! (`<model>.cases.safetensors`). Here forge loads each folder and must
//! compute the same losses, logits and embeddings within 1e-5; then forge
//! writes a folder of its own, the script loads it in PyTorch (strictly)
//! and runs the same cases, and the two must agree again.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Command;

use tch::nn::VarStore;
use tch::{Device, Kind, Tensor};

use super::{load_pretrained, read_config, read_vocab, save_pretrained};
use crate::batch::Batch;
use crate::config::{ModelConfig, Pooling};
use crate::model::ForgeModel;
use crate::params::{count_parameters, named_parameters};
use crate::state_dict::{load_state_dict, state_dict};

const TOL: f64 = 1e-5;
const MODELS: [&str; 3] = [
    "transformer_encoder",
    "autoregressive_transformer",
    "masked_autoencoder",
];

fn fixtures() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/models")
}

/// `input.*` and `expected.*` tensors of a cases file, prefixes stripped.
fn read_cases(path: &Path) -> (BTreeMap<String, Tensor>, BTreeMap<String, Tensor>) {
    let all = Tensor::read_safetensors(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let mut inputs = BTreeMap::new();
    let mut expected = BTreeMap::new();
    for (key, t) in all {
        if let Some(k) = key.strip_prefix("input.") {
            inputs.insert(k.to_string(), t);
        } else if let Some(k) = key.strip_prefix("expected.") {
            expected.insert(k.to_string(), t);
        }
    }
    (inputs, expected)
}

/// A batch of the padded inputs with the optional keys `keys`.
fn batch(inputs: &BTreeMap<String, Tensor>, keys: &[&str]) -> Batch {
    let mut b = Batch::builder(
        inputs["input_ids"].shallow_clone(),
        inputs["attention_mask"].shallow_clone(),
    );
    for key in keys {
        let t = |name: &str| inputs[name].shallow_clone();
        b = match *key {
            "values" => b.values(t("values")),
            "labels" => b.labels(t("labels")),
            "masked_positions" => b.masked_positions(t("masked_positions")),
            // Every real position masked.
            "every_position" => b.masked_positions(inputs["attention_mask"].ne(0)),
            "bin_ids" => b.bin_ids(t("bin_ids")),
            other => panic!("unknown batch key {other}"),
        };
    }
    b.build().expect("fixture batch is valid")
}

/// One case of `run_cases` in the fixture script: its name, the batch keys
/// it uses, and whether it is also run with both poolings.
struct Case {
    name: &'static str,
    keys: &'static [&'static str],
    poolings: bool,
}

fn cases(model_type: &str) -> Vec<Case> {
    let case = |name, keys, poolings| Case {
        name,
        keys,
        poolings,
    };
    match model_type {
        "transformer_encoder" => vec![
            case("labels", &["values", "labels"], true),
            case("no_values", &["labels"], false),
            case("no_values", &[], true),
        ],
        "autoregressive_transformer" => vec![
            case("labels", &["values", "labels"], true),
            case("bins", &["values", "labels", "bin_ids"], false),
            case("no_values", &["labels"], false),
        ],
        "masked_autoencoder" => vec![
            case(
                "masked_positions",
                &["values", "labels", "masked_positions"],
                true,
            ),
            case("labels", &["values", "labels"], false),
            case("no_masking", &["values"], false),
            case("every_position", &["values", "every_position"], false),
        ],
        other => panic!("no cases for {other}"),
    }
}

/// Builds the registered model for `config` and loads `weights` into it.
fn build(config: &ModelConfig, weights: &[(String, Tensor)]) -> (VarStore, Box<dyn ForgeModel>) {
    let vs = VarStore::new(Device::Cpu);
    let model = crate::registry::build(&vs.root(), config).expect("model builds");
    load_state_dict(&*model, weights).expect("weights fit");
    (vs, model)
}

/// Compares forge's outputs with the expected ones and keeps the largest
/// difference; at the end every expected tensor must have been compared.
struct Comparison<'a> {
    label: String,
    expected: &'a BTreeMap<String, Tensor>,
    compared: BTreeSet<String>,
    max_diff: f64,
}

impl Comparison<'_> {
    fn check(&mut self, key: &str, got: Option<&Tensor>) {
        self.check_where(key, got, None)
    }

    /// [`Self::check`] of a per-position output at the real positions of
    /// `attention_mask` (B,S): forge computes nothing at padding and gives
    /// zeros there, PyTorch computes padded rows no one reads.
    fn check_real(&mut self, key: &str, got: Option<&Tensor>, attention_mask: &Tensor) {
        self.check_where(key, got, Some(attention_mask))
    }

    fn check_where(&mut self, key: &str, got: Option<&Tensor>, real: Option<&Tensor>) {
        let want = self.expected.get(key).map(|want| match real {
            Some(mask) => {
                let mut shape = mask.size();
                shape.resize(want.dim(), 1);
                want * mask.ne(0).view(shape.as_slice())
            }
            None => want.shallow_clone(),
        });
        let want = want.as_ref();
        match (got, want) {
            (None, None) => {}
            (Some(_), None) => panic!("{}: forge gives `{key}`, PyTorch does not", self.label),
            (None, Some(_)) => panic!("{}: PyTorch gives `{key}`, forge does not", self.label),
            (Some(got), Some(want)) => {
                assert_eq!(got.size(), want.size(), "{}: `{key}` shape", self.label);
                let diff = (got.to_kind(Kind::Float) - want)
                    .abs()
                    .max()
                    .double_value(&[]);
                assert!(
                    diff < TOL,
                    "{}: `{key}`: max |forge - torch| = {diff:e} (tolerance {TOL:e})",
                    self.label
                );
                self.max_diff = self.max_diff.max(diff);
                self.compared.insert(key.to_string());
            }
        }
    }

    /// The largest difference and the number of outputs compared.
    fn finish(self) -> (f64, usize) {
        let unchecked: Vec<&String> = self
            .expected
            .keys()
            .filter(|k| !self.compared.contains(*k))
            .collect();
        assert!(
            unchecked.is_empty(),
            "{}: expected outputs never compared: {unchecked:?}",
            self.label
        );
        (self.max_diff, self.compared.len())
    }
}

/// Runs every case of `model_type` with `config` and `weights` and
/// compares with `expected`; returns the largest difference and the number
/// of outputs compared.
fn compare_cases(
    label: &str,
    config: &ModelConfig,
    weights: &[(String, Tensor)],
    inputs: &BTreeMap<String, Tensor>,
    expected: &BTreeMap<String, Tensor>,
) -> (f64, usize) {
    let mut cmp = Comparison {
        label: label.to_string(),
        expected,
        compared: BTreeSet::new(),
        max_diff: 0.0,
    };
    let (_vs, model) = build(config, weights);
    // `loss` is the training path (packed tokens, heads at labelled
    // positions only): without dropout it must give PyTorch's loss too.
    let no_dropout = ModelConfig {
        dropout: 0.0,
        ..config.clone()
    };
    let (_vs0, train_model) = build(&no_dropout, weights);
    for case in cases(&config.architecture) {
        let b = batch(inputs, case.keys);
        // A case without keys is only there for its pooled outputs.
        if !case.keys.is_empty() {
            let out = tch::no_grad(|| model.forward(&b, false));
            let key = |k: &str| format!("{}.{k}", case.name);
            cmp.check(&key("loss"), out.loss.as_ref());
            cmp.check_real(&key("logits"), out.logits.as_ref(), b.attention_mask());
            cmp.check(&key("embeddings"), out.embeddings.as_ref());
            let fast = tch::no_grad(|| train_model.loss(&b));
            cmp.check(&key("loss"), fast.as_ref());
        }
        if case.poolings {
            for pooling in [Pooling::Cls, Pooling::Mean] {
                let pooled = ModelConfig {
                    pooling,
                    ..config.clone()
                };
                let (_vs, m) = build(&pooled, weights);
                let key = |k: &str| format!("{}.{pooling}.{k}", case.name);
                let out = tch::no_grad(|| m.forward(&b, false));
                cmp.check(&key("embeddings"), out.embeddings.as_ref());
                cmp.check(&key("encode"), Some(&tch::no_grad(|| m.encode(&b))));
            }
        }
    }
    cmp.finish()
}

fn param_fixture() -> serde_json::Value {
    let text = std::fs::read_to_string(fixtures().join("param_counts.json")).unwrap();
    serde_json::from_str(&text).unwrap()
}

#[test]
fn parameter_names_shapes_and_counts_equal_pytorch() {
    let fixture = param_fixture();
    let base = ModelConfig {
        vocab_size: Some(100),
        hidden_dim: 64,
        num_layers: 2,
        num_heads: 4,
        max_seq_len: 32,
        ..ModelConfig::default()
    };
    let mut configs: Vec<(&str, ModelConfig)> = MODELS
        .iter()
        .map(|name| {
            (
                *name,
                ModelConfig {
                    architecture: name.to_string(),
                    ..base.clone()
                },
            )
        })
        .collect();
    configs.push((
        "transformer_encoder_no_values",
        ModelConfig {
            use_expression_values: false,
            ..base.clone()
        },
    ));
    for (key, config) in configs {
        let vs = VarStore::new(Device::Cpu);
        let model = crate::registry::build(&vs.root(), &config).unwrap();
        let want: BTreeMap<String, Vec<i64>> =
            serde_json::from_value(fixture[key]["parameters"].clone()).unwrap();
        let got: BTreeMap<String, Vec<i64>> = named_parameters(&*model)
            .into_iter()
            .map(|(n, t)| (n, t.size()))
            .collect();
        assert_eq!(
            got, want,
            "{key}: parameter names/shapes differ from PyTorch"
        );
        let total = fixture[key]["total"].as_i64().unwrap();
        assert_eq!(count_parameters(&*model, true), total, "{key}");
        assert_eq!(model.num_parameters(true), total, "{key}");
        println!("{key}: {total} parameters, as in PyTorch");
    }
}

#[test]
fn pytorch_checkpoints_load_and_compute_the_same() {
    for name in MODELS {
        let dir = fixtures().join(name);
        let loaded = load_pretrained(&dir, Device::Cpu)
            .unwrap_or_else(|e| panic!("{name}: the PyTorch checkpoint does not load: {e}"));
        assert_eq!(loaded.model.registry_name(), name);
        assert_eq!(loaded.config.vocab_size, Some(40));
        assert_eq!(loaded.vocab.as_ref().map(Vec::len), Some(36));
        assert!(loaded.tokenizer_config.is_some());
        let (inputs, expected) = read_cases(&fixtures().join(format!("{name}.cases.safetensors")));
        let weights = state_dict(&*loaded.model);
        let (diff, n) = compare_cases(name, &loaded.config, &weights, &inputs, &expected);
        println!(
            "{name}: PyTorch checkpoint -> forge, {n} outputs, max |forge - torch| = {diff:.2e}"
        );
    }
}

#[test]
fn newer_scmodelforge_keys_are_skipped_and_listed() {
    let loaded = load_pretrained(&fixtures().join("transformer_encoder"), Device::Cpu).unwrap();
    assert_eq!(loaded.ignored_keys, ["model_config.attention"]);
}

/// The venv python (torch, safetensors) that scripts/setup.sh creates.
fn python() -> PathBuf {
    let venv = std::env::var_os("FORGE_VENV")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../.venv"));
    let venv = if venv.is_relative() {
        PathBuf::from(env!("CARGO_MANIFEST_DIR"))
            .join("..")
            .join(venv)
    } else {
        venv
    };
    let python = venv.join("bin/python");
    assert!(
        python.exists(),
        "{}: missing; run scripts/setup.sh to create the venv with torch",
        python.display()
    );
    python
}

/// A scratch folder removed on drop.
struct Scratch(PathBuf);

impl Scratch {
    fn new(name: &str) -> Self {
        let dir = std::env::temp_dir().join(format!("forge-parity-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        Scratch(dir)
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

#[test]
fn forge_checkpoints_load_in_pytorch_and_compute_the_same() {
    let python = python();
    let script =
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../scripts/make_model_fixtures.py");
    for (i, name) in MODELS.into_iter().enumerate() {
        let fixture = fixtures().join(name);
        let config = read_config(&fixture).unwrap();
        let vocab = read_vocab(&fixture, 40).unwrap().unwrap();
        tch::manual_seed(100 + i as i64);
        let vs = VarStore::new(Device::Cpu);
        let model = crate::registry::build(&vs.root(), &config.model).unwrap();
        // Non-zero biases and LayerNorm parameters, so that their wiring
        // matters (init leaves them 0 and 1).
        tch::no_grad(|| {
            for (_, mut p) in named_parameters(&*model) {
                if p.dim() == 1 {
                    let _ = p.g_add_(&(Tensor::randn_like(&p) * 0.1));
                }
            }
        });
        let scratch = Scratch::new(name);
        let dir = scratch.0.join("checkpoint");
        save_pretrained(
            &*model,
            &config.model,
            config.tokenizer.as_ref().unwrap(),
            &vocab,
            &dir,
            false,
        )
        .unwrap();
        let inputs_path = fixtures().join(format!("{name}.cases.safetensors"));
        let out_path = scratch.0.join("torch.safetensors");
        let run = Command::new(&python)
            .arg(&script)
            .arg("run")
            .args([&dir, &inputs_path, &out_path])
            .output()
            .expect("python runs");
        assert!(
            run.status.success(),
            "{name}: PyTorch could not load forge's checkpoint:\n{}",
            String::from_utf8_lossy(&run.stderr)
        );
        let (inputs, _) = read_cases(&inputs_path);
        let (_, expected) = read_cases(&out_path);
        let (diff, n) = compare_cases(
            name,
            &config.model,
            &state_dict(&*model),
            &inputs,
            &expected,
        );
        println!(
            "{name}: forge checkpoint -> PyTorch, {n} outputs, max |forge - torch| = {diff:.2e}"
        );
    }
}
