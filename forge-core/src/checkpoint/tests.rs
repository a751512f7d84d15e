//! Checkpoint folders: save -> load gives the same model, configs and
//! vocabulary; writes are atomic and never overwrite by accident; every
//! broken folder gives an error naming the file and what was expected.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde_json::Value;
use tch::nn::VarStore;
use tch::{Device, Kind, Tensor};

use super::*;
use crate::ModelConfig;
use crate::batch::Batch;
use crate::config::{Pooling, TokenizerConfig, TokenizerStrategy};
use crate::error::ForgeError;
use crate::model::ForgeModel;
use crate::params::named_parameters;
use crate::state_dict::state_dict;

/// A scratch folder removed on drop.
struct Scratch(PathBuf);

impl Scratch {
    fn new(name: &str) -> Self {
        let dir = std::env::temp_dir().join(format!("forge-ckpt-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        Scratch(dir)
    }

    fn path(&self, name: &str) -> PathBuf {
        self.0.join(name)
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn config(architecture: &str) -> ModelConfig {
    ModelConfig {
        architecture: architecture.to_string(),
        vocab_size: Some(30),
        hidden_dim: 16,
        num_layers: 2,
        num_heads: 2,
        max_seq_len: 12,
        pooling: Pooling::Mean,
        n_bins: 5,
        ..ModelConfig::default()
    }
    .with_option("decoder_layers", 2)
}

fn tokenizer() -> TokenizerConfig {
    TokenizerConfig {
        strategy: TokenizerStrategy::BinnedExpression,
        max_genes: 12,
        n_bins: 5,
        ..TokenizerConfig::default()
    }
}

fn vocab() -> Vec<(String, i64)> {
    (4..30).map(|i| (format!("GENE{i}"), i)).collect()
}

/// A model with non-trivial weights (every parameter perturbed).
fn model(architecture: &str) -> (VarStore, Box<dyn ForgeModel>) {
    tch::manual_seed(11);
    let vs = VarStore::new(Device::Cpu);
    let model = crate::registry::build(&vs.root(), &config(architecture)).unwrap();
    tch::no_grad(|| {
        for (_, mut p) in named_parameters(&*model) {
            let _ = p.g_add_(&(Tensor::randn_like(&p) * 0.05));
        }
    });
    (vs, model)
}

fn batch() -> Batch {
    tch::manual_seed(12);
    // Two cells of 10 and 7 tokens, padded to 12.
    let lengths = Tensor::from_slice(&[10i64, 7]).unsqueeze(1);
    let mask = Tensor::arange(12, (Kind::Int64, Device::Cpu))
        .unsqueeze(0)
        .lt_tensor(&lengths)
        .to_kind(Kind::Int64);
    let ids = Tensor::randint_low(4, 30, [2, 12], (Kind::Int64, Device::Cpu)) * &mask;
    let labels = Tensor::full([2, 12], -100, (Kind::Int64, Device::Cpu));
    for (cell, pos) in [(0, 2), (0, 5), (1, 3)] {
        labels.get(cell).get(pos).copy_(&ids.get(cell).get(pos));
    }
    Batch::builder(ids, mask.shallow_clone())
        .values(Tensor::rand([2, 12], (Kind::Float, Device::Cpu)) * &mask)
        .labels(labels)
        .bin_ids(Tensor::randint(5, [2, 12], (Kind::Int64, Device::Cpu)))
        .build()
        .unwrap()
}

fn save(
    model: &dyn ForgeModel,
    architecture: &str,
    dir: &Path,
    overwrite: bool,
) -> crate::Result<()> {
    save_pretrained(
        model,
        &config(architecture),
        &tokenizer(),
        vocab(),
        dir,
        overwrite,
    )
}

fn message(err: ForgeError) -> String {
    err.to_string()
}

fn read_json(path: &Path) -> Value {
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

fn write_json(path: &Path, value: &Value) {
    std::fs::write(path, serde_json::to_string_pretty(value).unwrap()).unwrap();
}

/// Same outputs, bit for bit: the weights round-trip exactly in float32.
fn assert_same_outputs(a: &dyn ForgeModel, b: &dyn ForgeModel, batch: &Batch) {
    let (x, y) = tch::no_grad(|| (a.forward(batch, false), b.forward(batch, false)));
    for (name, p, q) in [
        ("loss", &x.loss, &y.loss),
        ("logits", &x.logits, &y.logits),
        ("embeddings", &x.embeddings, &y.embeddings),
    ] {
        match (p, q) {
            (Some(p), Some(q)) => assert!(p.equal(q), "{name} differs after save -> load"),
            (None, None) => {}
            _ => panic!("{name} present on one side only"),
        }
    }
    let (e, f) = tch::no_grad(|| (a.encode(batch), b.encode(batch)));
    assert!(e.equal(&f), "encode differs after save -> load");
}

#[test]
fn save_then_load_gives_identical_models_configs_and_vocabulary() {
    let scratch = Scratch::new("roundtrip");
    for architecture in [
        "transformer_encoder",
        "autoregressive_transformer",
        "masked_autoencoder",
    ] {
        let (_vs, original) = model(architecture);
        let dir = scratch.path(architecture);
        save(&*original, architecture, &dir, false).unwrap();
        let loaded = load_pretrained(&dir, Device::Cpu).unwrap();
        assert_eq!(loaded.model.registry_name(), architecture);
        // The same values (a model's options come back with their
        // defaults filled in).
        assert_eq!(loaded.config.to_json(), config(architecture).to_json());
        assert_eq!(loaded.tokenizer_config, Some(tokenizer()));
        assert_eq!(loaded.vocab, Some(vocab()));
        assert!(loaded.ignored_keys.is_empty());
        for ((n1, t1), (n2, t2)) in state_dict(&*original)
            .iter()
            .zip(state_dict(&*loaded.model))
        {
            assert_eq!(n1, &n2);
            assert!(t1.equal(&t2), "{architecture}: {n1} differs");
        }
        assert_same_outputs(&*original, &*loaded.model, &batch());
    }
}

#[test]
fn the_folder_has_scmodelforge_layout() {
    let scratch = Scratch::new("layout");
    let (_vs, m) = model("masked_autoencoder");
    let dir = scratch.path("mae");
    save(&*m, "masked_autoencoder", &dir, false).unwrap();
    let mut files: Vec<String> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    files.sort();
    assert_eq!(files, [README_FILE, CONFIG_FILE, VOCAB_FILE, WEIGHTS_FILE]);

    let config_json = read_json(&dir.join(CONFIG_FILE));
    let keys: Vec<&String> = config_json.as_object().unwrap().keys().collect();
    assert_eq!(
        keys,
        [
            "scmodelforge_version",
            "model_type",
            "model_config",
            "tokenizer_config"
        ]
    );
    assert_eq!(config_json["model_type"], "masked_autoencoder");
    assert_eq!(config_json["model_config"]["hidden_dim"], 16);
    assert_eq!(config_json["model_config"]["pooling"], "mean");
    assert_eq!(config_json["model_config"]["decoder_dim"], Value::Null);
    assert_eq!(
        config_json["tokenizer_config"]["strategy"],
        "binned_expression"
    );
    assert_eq!(
        config_json["tokenizer_config"]["masking"]["mask_ratio"],
        0.15
    );

    let vocab_json = read_json(&dir.join(VOCAB_FILE));
    let vocab_map = vocab_json.as_object().unwrap();
    assert_eq!(vocab_map.len(), 26);
    assert_eq!(
        vocab_map.keys().next().unwrap(),
        "GENE4",
        "written in id order"
    );
    assert_eq!(vocab_map["GENE29"], 29);

    let weights = Tensor::read_safetensors(dir.join(WEIGHTS_FILE)).unwrap();
    assert!(weights.iter().all(|(_, t)| t.kind() == Kind::Float));
    let names: Vec<&str> = weights.iter().map(|(n, _)| n.as_str()).collect();
    for name in [
        "mask_token",
        "enc_to_dec.weight",
        "decoder_position_embedding.weight",
        "encoder.layers.1.self_attn.in_proj_weight",
        "decoder.layers.1.linear2.bias",
        "expression_head.output.weight",
    ] {
        assert!(names.contains(&name), "{name} missing from {names:?}");
    }

    let card = std::fs::read_to_string(dir.join(README_FILE)).unwrap();
    let total = m.num_parameters(true);
    for needle in [
        "library_name: scmodelforge",
        "`masked_autoencoder`",
        "| Decoder width | 8 |",
        "| `enc_to_dec` |",
        &format!("| **total** | **{}** |", super::card::thousands(total)),
        "30 (4 special tokens + 26 genes)",
        "load_pretrained(\"mae\"",
        "from scmodelforge.models.hub import load_pretrained",
        "forge embed --model mae",
    ] {
        assert!(
            card.contains(needle),
            "model card lacks `{needle}`:\n{card}"
        );
    }
}

#[test]
fn vocabularies_come_as_maps_slices_or_pairs() {
    let scratch = Scratch::new("vocab-shapes");
    let (_vs, m) = model("transformer_encoder");
    let c = config("transformer_encoder");
    let map: BTreeMap<String, i64> = vocab().into_iter().collect();
    save_pretrained(&*m, &c, &tokenizer(), &map, &scratch.path("map"), false).unwrap();
    save_pretrained(&*m, &c, &tokenizer(), vocab(), &scratch.path("vec"), false).unwrap();
    let strs: Vec<(&str, i64)> = vec![("B", 5), ("A", 4)];
    save_pretrained(&*m, &c, &tokenizer(), strs, &scratch.path("strs"), false).unwrap();
    let read = read_vocab(&scratch.path("strs"), 30).unwrap().unwrap();
    assert_eq!(read, [("A".to_string(), 4), ("B".to_string(), 5)]);
}

#[test]
fn an_existing_folder_is_replaced_only_when_asked() {
    let scratch = Scratch::new("overwrite");
    let dir = scratch.path("ckpt");
    let (_vs, first) = model("transformer_encoder");
    save(&*first, "transformer_encoder", &dir, false).unwrap();
    let before = std::fs::read(dir.join(WEIGHTS_FILE)).unwrap();

    let (_vs2, second) = {
        tch::manual_seed(99);
        let vs = VarStore::new(Device::Cpu);
        let m = crate::registry::build(&vs.root(), &config("transformer_encoder")).unwrap();
        (vs, m)
    };
    let err = message(save(&*second, "transformer_encoder", &dir, false).unwrap_err());
    assert!(
        err.contains("ckpt") && err.contains("already exists"),
        "{err}"
    );
    assert_eq!(std::fs::read(dir.join(WEIGHTS_FILE)).unwrap(), before);

    save(&*second, "transformer_encoder", &dir, true).unwrap();
    let loaded = load_pretrained(&dir, Device::Cpu).unwrap();
    assert_same_outputs(&*second, &*loaded.model, &batch());
    let leftovers: Vec<String> = std::fs::read_dir(&scratch.0)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(leftovers, ["ckpt"], "no temporary folders left behind");

    // A folder that is not a checkpoint is never replaced.
    let precious = scratch.path("precious");
    std::fs::create_dir_all(&precious).unwrap();
    std::fs::write(precious.join("notes.txt"), "keep me").unwrap();
    let err = message(save(&*second, "transformer_encoder", &precious, true).unwrap_err());
    assert!(
        err.contains("precious") && err.contains("does not look like a checkpoint"),
        "{err}"
    );
    assert!(precious.join("notes.txt").exists());
    // An empty folder is fine.
    let empty = scratch.path("empty");
    std::fs::create_dir_all(&empty).unwrap();
    save(&*second, "transformer_encoder", &empty, true).unwrap();
}

#[test]
fn save_refuses_inconsistent_inputs_and_writes_nothing() {
    let scratch = Scratch::new("save-errors");
    let (_vs, m) = model("transformer_encoder");
    let dir = scratch.path("out");
    let c = config("transformer_encoder");
    let t = tokenizer();
    // (config, vocabulary, what the error must say)
    type Case = (ModelConfig, Vec<(String, i64)>, &'static str);
    let cases: Vec<Case> = vec![
        (
            ModelConfig {
                vocab_size: None,
                ..c.clone()
            },
            vocab(),
            "vocab_size is not set",
        ),
        (
            ModelConfig {
                architecture: "masked_autoencoder".into(),
                ..c.clone()
            },
            vocab(),
            "the model is a `transformer_encoder` but model_config.architecture is `masked_autoencoder`",
        ),
        (
            ModelConfig {
                hidden_dim: 32,
                ..c.clone()
            },
            vocab(),
            "embedding.gene_embedding.weight: model has shape [30, 32], weights have [30, 16]",
        ),
        (
            ModelConfig {
                num_heads: 3,
                ..c.clone()
            },
            vocab(),
            "model.num_heads: must divide hidden_dim",
        ),
        (c.clone(), vec![("A".into(), 2)], "gene `A` has id 2"),
        (c.clone(), vec![("A".into(), 30)], "gene `A` has id 30"),
        (
            c.clone(),
            vec![("A".into(), 4), ("A".into(), 5)],
            "gene `A` appears twice",
        ),
        (
            c.clone(),
            vec![("A".into(), 4), ("B".into(), 4)],
            "genes `A` and `B` share the id 4",
        ),
    ];
    for (config, vocab, want) in cases {
        let err = message(save_pretrained(&*m, &config, &t, &vocab, &dir, false).unwrap_err());
        assert!(err.contains(want), "expected `{want}` in: {err}");
        assert!(!dir.exists(), "nothing is written on error");
    }
}

/// A forge-written folder to break in the load tests.
fn saved(scratch: &Scratch, name: &str) -> PathBuf {
    let (_vs, m) = model("transformer_encoder");
    let dir = scratch.path(name);
    save(&*m, "transformer_encoder", &dir, false).unwrap();
    dir
}

fn load_err(dir: &Path) -> String {
    message(load_pretrained(dir, Device::Cpu).unwrap_err())
}

#[test]
fn load_errors_name_the_file_and_what_was_expected() {
    let scratch = Scratch::new("load-errors");

    let err = load_err(&scratch.path("nowhere"));
    assert!(
        err.contains("nowhere") && err.contains("no such checkpoint folder"),
        "{err}"
    );

    let dir = saved(&scratch, "no-config");
    std::fs::remove_file(dir.join(CONFIG_FILE)).unwrap();
    let err = load_err(&dir);
    assert!(err.contains("no-config/config.json: missing"), "{err}");

    let dir = saved(&scratch, "bad-json");
    std::fs::write(
        dir.join(CONFIG_FILE),
        "{\n  \"model_type\": \"transformer_encoder\",\n  oops\n}",
    )
    .unwrap();
    let err = load_err(&dir);
    assert!(
        err.contains("bad-json/config.json: not valid JSON") && err.contains("line 3"),
        "{err}"
    );

    let dir = saved(&scratch, "unknown-type");
    let mut json = read_json(&dir.join(CONFIG_FILE));
    json["model_type"] = "transformer_encodr".into();
    json["model_config"]["architecture"] = "transformer_encodr".into();
    write_json(&dir.join(CONFIG_FILE), &json);
    let err = load_err(&dir);
    assert!(
        err.contains("unknown-type/config.json: model_type")
            && err.contains("did you mean `transformer_encoder`?"),
        "{err}"
    );

    let dir = saved(&scratch, "disagree");
    let mut json = read_json(&dir.join(CONFIG_FILE));
    json["model_type"] = "masked_autoencoder".into();
    write_json(&dir.join(CONFIG_FILE), &json);
    let err = load_err(&dir);
    assert!(err.contains("must agree"), "{err}");

    let dir = saved(&scratch, "bad-value");
    let mut json = read_json(&dir.join(CONFIG_FILE));
    json["model_config"]["pooling"] = "mena".into();
    json["tokenizer_config"]["max_genes"] = 1.into();
    write_json(&dir.join(CONFIG_FILE), &json);
    let err = load_err(&dir);
    assert!(
        err.contains("bad-value/config.json: model_config.pooling: invalid value \"mena\"; did you mean \"mean\"?"),
        "{err}"
    );

    let dir = saved(&scratch, "bad-check");
    let mut json = read_json(&dir.join(CONFIG_FILE));
    json["tokenizer_config"]["max_genes"] = 1.into();
    write_json(&dir.join(CONFIG_FILE), &json);
    let err = load_err(&dir);
    assert!(
        err.contains("bad-check/config.json: tokenizer_config.max_genes: must be at least 2"),
        "{err}"
    );

    let dir = saved(&scratch, "no-vocab-size");
    let mut json = read_json(&dir.join(CONFIG_FILE));
    json["model_config"]["vocab_size"] = Value::Null;
    write_json(&dir.join(CONFIG_FILE), &json);
    assert!(load_err(&dir).contains("vocab_size is null"));

    let dir = saved(&scratch, "flash");
    let mut json = read_json(&dir.join(CONFIG_FILE));
    json["model_config"]["attention"] = serde_json::json!({"type": "linear"});
    write_json(&dir.join(CONFIG_FILE), &json);
    assert!(load_err(&dir).contains("forge implements the \"standard\" attention only"));

    let dir = saved(&scratch, "no-weights");
    std::fs::remove_file(dir.join(WEIGHTS_FILE)).unwrap();
    std::fs::write(dir.join("model.pt"), b"pickle").unwrap();
    let err = load_err(&dir);
    assert!(
        err.contains("no-weights/model.safetensors: missing") && err.contains("model.pt"),
        "{err}"
    );

    let dir = saved(&scratch, "garbled-weights");
    std::fs::write(dir.join(WEIGHTS_FILE), b"not safetensors").unwrap();
    assert!(load_err(&dir).contains("not a readable safetensors file"));

    let dir = saved(&scratch, "vocab-out-of-range");
    write_json(&dir.join(VOCAB_FILE), &serde_json::json!({"A": 4, "B": 31}));
    let err = load_err(&dir);
    assert!(
        err.contains("vocab-out-of-range/gene_vocab.json: gene `B` has id 31"),
        "{err}"
    );

    let dir = saved(&scratch, "vocab-not-int");
    write_json(&dir.join(VOCAB_FILE), &serde_json::json!({"A": "x"}));
    assert!(load_err(&dir).contains("gene `A` maps to a string; expected an integer id"));
}

#[test]
fn mismatched_weights_are_all_listed_and_nothing_loads() {
    let scratch = Scratch::new("weights");
    let dir = saved(&scratch, "ckpt");
    let mut weights = Tensor::read_safetensors(dir.join(WEIGHTS_FILE)).unwrap();
    weights.retain(|(n, _)| n != "head.decoder.bias");
    for (n, t) in weights.iter_mut() {
        if n == "embedding.position_embedding.weight" {
            *t = Tensor::zeros([13, 16], (Kind::Float, Device::Cpu));
        }
    }
    weights.push((
        "head.extra".into(),
        Tensor::zeros([2], (Kind::Float, Device::Cpu)),
    ));
    Tensor::write_safetensors(&weights, dir.join(WEIGHTS_FILE)).unwrap();
    let err = load_err(&dir);
    assert!(err.contains("ckpt/model.safetensors"), "{err}");
    assert!(err.contains("missing: head.decoder.bias"), "{err}");
    assert!(err.contains("unexpected: head.extra"), "{err}");
    assert!(
        err.contains(
            "embedding.position_embedding.weight: model has shape [12, 16], weights have [13, 16]"
        ),
        "{err}"
    );
}

#[test]
fn scmodelforge_variants_load_optional_parts_and_unknown_keys() {
    let scratch = Scratch::new("variants");
    let dir = saved(&scratch, "ckpt");
    let mut json = read_json(&dir.join(CONFIG_FILE));
    let obj = json.as_object_mut().unwrap();
    obj.remove("tokenizer_config");
    json["model_config"]
        .as_object_mut()
        .unwrap()
        .remove("architecture");
    json["model_config"]["future_option"] = 3.into();
    write_json(&dir.join(CONFIG_FILE), &json);
    // The list form of gene_vocab.json: ids from 4 in list order.
    write_json(&dir.join(VOCAB_FILE), &serde_json::json!(["X", "Y"]));
    std::fs::remove_file(dir.join(README_FILE)).unwrap();
    let loaded = load_pretrained(&dir, Device::Cpu).unwrap();
    assert_eq!(loaded.config.architecture, "transformer_encoder");
    assert_eq!(loaded.tokenizer_config, None);
    assert_eq!(loaded.ignored_keys, ["model_config.future_option"]);
    assert_eq!(
        loaded.vocab,
        Some(vec![("X".to_string(), 4), ("Y".to_string(), 5)])
    );
    std::fs::remove_file(dir.join(VOCAB_FILE)).unwrap();
    assert_eq!(load_pretrained(&dir, Device::Cpu).unwrap().vocab, None);
}
