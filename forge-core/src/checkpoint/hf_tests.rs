//! `geneformer` against Hugging Face `transformers`: the fixture folder
//! `tests/fixtures/models/geneformer_hf` is a tiny `BertForMaskedLM` (relu,
//! eps 1e-12, random weights) saved by `save_pretrained`, and
//! `geneformer_hf.expected.safetensors` holds what `transformers` computes
//! on a padded batch (`scripts/make_geneformer_model_fixture.py`).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde_json::Value;
use tch::nn::VarStore;
use tch::{Device, Kind, Tensor};

use super::hf::*;
use super::{CONFIG_FILE, WEIGHTS_FILE, load_pretrained};
use crate::batch::Batch;
use crate::config::Pooling;
use crate::error::ForgeError;
use crate::model::{Architecture, ForgeModel};
use crate::models::geneformer::Geneformer;
use crate::state_dict::load_state_dict;

const TOL: f64 = 1e-5;

fn fixture() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/models/geneformer_hf")
}

fn expected() -> BTreeMap<String, Tensor> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/models/geneformer_hf.expected.safetensors");
    Tensor::read_safetensors(path)
        .unwrap()
        .into_iter()
        .collect()
}

/// A scratch folder removed on drop.
struct Scratch(PathBuf);

impl Scratch {
    fn new(name: &str) -> Self {
        let dir = std::env::temp_dir().join(format!("forge-hf-{name}-{}", std::process::id()));
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

/// The fixture as a concrete `Geneformer` (so the tests can reach single
/// layers), with `options` changed from the folder's config.
fn model_with(options: &[(&str, Value)]) -> (VarStore, Geneformer) {
    let mut config = read_hf_config(&fixture()).unwrap().model;
    for (k, v) in options {
        config = config.with_option(k, v.clone());
    }
    let vs = VarStore::new(Device::Cpu);
    let model = Geneformer::from_config(&vs.root(), &config).unwrap();
    let tensors = Tensor::read_safetensors(fixture().join(WEIGHTS_FILE)).unwrap();
    load_state_dict(&model, &tensors).unwrap();
    (vs, model)
}

fn batch(e: &BTreeMap<String, Tensor>, ids: &str, labels: bool) -> Batch {
    let b = Batch::builder(e[ids].shallow_clone(), e["attention_mask"].shallow_clone());
    let b = if labels {
        b.labels(e["labels"].shallow_clone())
    } else {
        b
    };
    b.build().unwrap()
}

/// Largest difference at the real (attention mask 1) positions of (B,S,...).
fn diff_at_real(got: &Tensor, want: &Tensor, mask: &Tensor) -> f64 {
    let mut m = mask.ne(0);
    while m.dim() < got.dim() {
        m = m.unsqueeze(-1);
    }
    ((got - want) * m).abs().max().double_value(&[])
}

fn diff(a: &Tensor, b: &Tensor) -> f64 {
    (a - b).abs().max().double_value(&[])
}

/// Prints the measured difference (for the record, `--nocapture`) and
/// checks it.
fn check(what: &str, d: f64) {
    eprintln!("geneformer vs transformers: {what}: max |diff| {d:.2e}");
    assert!(d < TOL, "{what} differs by {d}");
}

#[test]
fn hf_fixture_logits_hidden_states_and_loss_match_transformers() {
    let e = expected();
    let mask = &e["attention_mask"];
    let (_vs, model) = model_with(&[]);
    let out = tch::no_grad(|| model.forward(&batch(&e, "input_ids", false), false));
    check(
        "logits",
        diff_at_real(&out.logits.unwrap(), &e["logits"], mask),
    );
    check(
        "last hidden state",
        diff_at_real(&out.hidden_states.unwrap(), &e["hidden_states.2"], mask),
    );

    // Each hidden state: the embedding output, then layer by layer.
    let b = batch(&e, "input_ids", false);
    let x = tch::no_grad(|| model.bert.embeddings.forward(&b, false));
    check(
        "embedding output",
        diff_at_real(&x.padded(), &e["hidden_states.0"], mask),
    );
    let first = tch::no_grad(|| model.bert.encoder.forward_layers(&x, 0..1, false));
    check(
        "hidden_states[1] (Geneformer's emb_layer -1 here)",
        diff_at_real(&first.padded(), &e["hidden_states.1"], mask),
    );
    // The padded reference agrees with the packed pass.
    let padded = tch::no_grad(|| {
        let x = model.bert.embeddings.embed(
            b.input_ids(),
            &Tensor::arange(10, (Kind::Int64, Device::Cpu)),
            false,
        );
        model.bert.encoder.forward_padded(&x, mask, false)
    });
    check(
        "padded reference",
        diff_at_real(&padded, &e["hidden_states.2"], mask),
    );

    // The MLM loss and logits on the masked batch.
    let out = tch::no_grad(|| model.forward(&batch(&e, "masked_input_ids", true), false));
    check(
        "MLM loss",
        diff(&out.loss.unwrap().reshape([1]), &e["mlm_loss"]),
    );
    check(
        "MLM logits",
        diff_at_real(&out.logits.unwrap(), &e["mlm_logits"], mask),
    );
    let fast = tch::no_grad(|| {
        model
            .eval_loss(&batch(&e, "masked_input_ids", true))
            .unwrap()
    });
    check("eval_loss", diff(&fast.reshape([1]), &e["mlm_loss"]));
}

#[test]
fn cell_embeddings_are_geneformers_emb_mode_cell() {
    let e = expected();
    let b = batch(&e, "input_ids", false);
    // The folder's config: cls_token_id 2, eos_token_id 3, emb_layer -1.
    let (_vs, model) = model_with(&[]);
    assert_eq!((model.cls_token_id, model.eos_token_id), (Some(2), Some(3)));
    let emb = tch::no_grad(|| model.encode(&b));
    check("emb_layer -1", diff(&emb, &e["cell_emb_layer_m1"]));
    let out = tch::no_grad(|| model.forward(&b, false));
    assert!(diff(&out.embeddings.unwrap(), &emb) < 1e-6);

    let (_vs, last) = model_with(&[("emb_layer", 0.into())]);
    check(
        "emb_layer 0",
        diff(&tch::no_grad(|| last.encode(&b)), &e["cell_emb_layer_0"]),
    );

    // A V1 dictionary has no <cls>/<eos>: every real token is averaged.
    let (_vs, v1) = model_with(&[("cls_token_id", Value::Null), ("eos_token_id", Value::Null)]);
    check(
        "no special tokens",
        diff(&tch::no_grad(|| v1.encode(&b)), &e["cell_emb_no_special"]),
    );

    // pooling: cls is emb_mode="cls": the <cls> position of that layer.
    let mut config = read_hf_config(&fixture()).unwrap().model;
    config.pooling = Pooling::Cls;
    let vs = VarStore::new(Device::Cpu);
    let cls = Geneformer::from_config(&vs.root(), &config).unwrap();
    load_state_dict(
        &cls,
        &Tensor::read_safetensors(fixture().join(WEIGHTS_FILE)).unwrap(),
    )
    .unwrap();
    check(
        "cls pooling",
        diff(
            &tch::no_grad(|| cls.encode(&b)),
            &e["hidden_states.1"].select(1, 0),
        ),
    );
}

#[test]
fn load_pretrained_reads_the_hf_folder_and_reports_unused_keys() {
    let e = expected();
    let loaded = load_pretrained(&fixture(), Device::Cpu).unwrap();
    assert_eq!(loaded.model.registry_name(), "geneformer");
    assert_eq!(loaded.config.num_layers, 2);
    assert_eq!(loaded.config.hidden_dim, 16);
    assert_eq!(loaded.config.ffn_dim, Some(32));
    assert!(loaded.vocab.is_none() && loaded.tokenizer_config.is_none());
    let emb = tch::no_grad(|| loaded.model.encode(&batch(&e, "input_ids", false)));
    check("embeddings", diff(&emb, &e["cell_emb_layer_m1"]));
    let ignored = loaded.ignored_keys.join("\n");
    for key in [
        "transformers_version (not used",
        "use_cache (not used",
        "dtype",
    ] {
        assert!(ignored.contains(key), "{key} not reported in:\n{ignored}");
    }
}

/// Reads `dir/model.safetensors` as name -> tensor.
fn weights(dir: &Path) -> BTreeMap<String, Tensor> {
    Tensor::read_safetensors(dir.join(WEIGHTS_FILE))
        .unwrap()
        .into_iter()
        .collect()
}

#[test]
fn written_back_folder_has_the_same_keys_tensors_and_config() {
    let scratch = Scratch::new("write");
    let out = scratch.0.join("geneformer");
    let loaded = load_pretrained(&fixture(), Device::Cpu).unwrap();
    save_hf_pretrained(&*loaded.model, &loaded.config, &out, false).unwrap();
    let (want, got) = (weights(&fixture()), weights(&out));
    assert_eq!(
        want.keys().collect::<Vec<_>>(),
        got.keys().collect::<Vec<_>>()
    );
    assert!(!got.contains_key("cls.predictions.decoder.weight"));
    for (name, t) in &want {
        assert!(t.equal(&got[name]), "{name} changed");
        assert_eq!(got[name].kind(), Kind::Float);
    }
    let read = |dir: &Path| -> serde_json::Map<String, Value> {
        serde_json::from_str(&std::fs::read_to_string(dir.join(CONFIG_FILE)).unwrap()).unwrap()
    };
    let (orig, written) = (read(&fixture()), read(&out));
    for (key, value) in &written {
        assert_eq!(orig.get(key), Some(value), "config.json key {key}");
    }
    // Everything of the original is written back except what changes nothing.
    let dropped: Vec<&String> = orig.keys().filter(|k| !written.contains_key(*k)).collect();
    assert_eq!(
        dropped,
        [
            "bos_token_id",
            "classifier_dropout",
            "dtype",
            "transformers_version",
            "use_cache"
        ]
    );
    // And it loads back to the same model.
    let again = load_pretrained(&out, Device::Cpu).unwrap();
    assert_eq!(again.config, loaded.config);

    // Never over an existing folder without `overwrite`, and never over a
    // folder that is not a checkpoint.
    let err = save_hf_pretrained(&*loaded.model, &loaded.config, &out, false).unwrap_err();
    assert!(err.to_string().contains("already exists"), "{err}");
    let other = scratch.0.join("notes");
    std::fs::create_dir_all(&other).unwrap();
    std::fs::write(other.join("a.txt"), "keep").unwrap();
    let err = save_hf_pretrained(&*loaded.model, &loaded.config, &other, true).unwrap_err();
    assert!(err.to_string().contains("refusing to replace"), "{err}");
    assert!(other.join("a.txt").is_file());
}

/// A copy of the fixture with `config.json` edited by `edit`.
fn edited(
    scratch: &Scratch,
    name: &str,
    edit: impl FnOnce(&mut serde_json::Map<String, Value>),
) -> PathBuf {
    let dir = scratch.0.join(name);
    std::fs::create_dir_all(&dir).unwrap();
    let mut config: serde_json::Map<String, Value> =
        serde_json::from_str(&std::fs::read_to_string(fixture().join(CONFIG_FILE)).unwrap())
            .unwrap();
    edit(&mut config);
    std::fs::write(
        dir.join(CONFIG_FILE),
        serde_json::to_string(&config).unwrap(),
    )
    .unwrap();
    std::fs::copy(fixture().join(WEIGHTS_FILE), dir.join(WEIGHTS_FILE)).unwrap();
    dir
}

fn load_err(dir: &Path) -> String {
    match load_pretrained(dir, Device::Cpu) {
        Err(e @ ForgeError::Checkpoint { .. }) => e.to_string(),
        Err(other) => panic!("expected a checkpoint error, got {other}"),
        Ok(_) => panic!("{} loaded", dir.display()),
    }
}

#[test]
fn config_keys_forge_cannot_run_are_refused_by_name() {
    let scratch = Scratch::new("refuse");
    let cases: [(&str, Value, &str); 7] = [
        ("hidden_act", "gelu_new".into(), "\"relu\""),
        (
            "position_embedding_type",
            "relative_key".into(),
            "\"absolute\"",
        ),
        ("pad_token_id", 1.into(), "token 0"),
        ("tie_word_embeddings", false.into(), "needs true"),
        ("is_decoder", true.into(), "needs false"),
        (
            "architectures",
            serde_json::json!(["BertForSequenceClassification"]),
            "BertForMaskedLM",
        ),
        ("hidden_size", "wide".into(), "expected an integer"),
    ];
    for (i, (key, value, says)) in cases.into_iter().enumerate() {
        let dir = edited(&scratch, &format!("case{i}"), |c| {
            c.insert(key.to_string(), value.clone());
        });
        let err = load_err(&dir);
        assert!(
            err.contains(key) && err.contains(says) && err.contains(CONFIG_FILE),
            "{key}: {err}"
        );
    }
    // An unknown key loads, reported by name.
    let dir = edited(&scratch, "unknown", |c| {
        c.insert("rotary_base".into(), 10_000.into());
    });
    let loaded = load_pretrained(&dir, Device::Cpu).unwrap();
    assert!(
        loaded
            .ignored_keys
            .iter()
            .any(|k| k.starts_with("rotary_base (unknown")),
        "{:?}",
        loaded.ignored_keys
    );
    // Sizes that do not fit the weights: every mismatch named.
    let dir = edited(&scratch, "wider", |c| {
        c.insert("intermediate_size".into(), 48.into());
    });
    let err = load_err(&dir);
    assert!(
        err.contains("intermediate.dense.weight") && err.contains(WEIGHTS_FILE),
        "{err}"
    );
}

#[test]
fn weights_files_with_tied_or_legacy_tensors() {
    let scratch = Scratch::new("weights");
    let mut tensors: Vec<(String, Tensor)> =
        Tensor::read_safetensors(fixture().join(WEIGHTS_FILE)).unwrap();
    let get =
        |name: &str, t: &[(String, Tensor)]| t.iter().find(|(n, _)| n == name).unwrap().1.copy();
    let word = get("bert.embeddings.word_embeddings.weight", &tensors);
    let bias = get("cls.predictions.bias", &tensors);
    // Older files: the tied decoder written out, position_ids, a pooler.
    tensors.push(("cls.predictions.decoder.weight".into(), word.copy()));
    tensors.push(("cls.predictions.decoder.bias".into(), bias.copy()));
    tensors.push((
        "bert.embeddings.position_ids".into(),
        Tensor::arange(32, (Kind::Int64, Device::Cpu)).unsqueeze(0),
    ));
    tensors.push((
        "bert.pooler.dense.weight".into(),
        Tensor::zeros([16, 16], (Kind::Float, Device::Cpu)),
    ));
    let dir = edited(&scratch, "legacy", |_| {});
    Tensor::write_safetensors(&tensors, dir.join(WEIGHTS_FILE)).unwrap();
    let loaded = load_pretrained(&dir, Device::Cpu).unwrap();
    let skipped = loaded.ignored_keys.join("\n");
    assert!(
        skipped.contains("bert.embeddings.position_ids")
            && skipped.contains("bert.pooler.dense.weight"),
        "{skipped}"
    );

    // An untied decoder is refused.
    let last = tensors.len() - 4;
    tensors[last].1 = &word + 1.0;
    Tensor::write_safetensors(&tensors, dir.join(WEIGHTS_FILE)).unwrap();
    let err = load_err(&dir);
    assert!(
        err.contains("cls.predictions.decoder.weight differs"),
        "{err}"
    );

    // No safetensors, but pytorch_model.bin: the conversion is named.
    std::fs::remove_file(dir.join(WEIGHTS_FILE)).unwrap();
    std::fs::write(dir.join("pytorch_model.bin"), b"not read").unwrap();
    let err = load_err(&dir);
    assert!(
        err.contains("pytorch_model.bin") && err.contains("save_pretrained"),
        "{err}"
    );
}
