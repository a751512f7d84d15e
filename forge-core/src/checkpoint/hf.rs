//! Hugging Face BERT checkpoint folders (`BertForMaskedLM`, as Geneformer
//! publishes them), read into and written from forge's `geneformer` model.
//!
//! ```text
//! geneformer-folder/
//!   config.json        BertConfig keys: hidden_size, num_hidden_layers, ...
//!   model.safetensors  bert.embeddings.*, bert.encoder.layer.N.*, cls.predictions.*
//! ```
//!
//! Every `config.json` key is honoured, refused or reported:
//!
//! | key | forge |
//! |---|---|
//! | `vocab_size`, `hidden_size`, `num_hidden_layers`, `num_attention_heads`, `intermediate_size`, `max_position_embeddings`, `hidden_dropout_prob` | `model.vocab_size`, `hidden_dim`, `num_layers`, `num_heads`, `ffn_dim`, `max_seq_len`, `dropout` |
//! | `hidden_act` | `model.activation`: `relu` or `gelu` (exact GELU); anything else is refused |
//! | `attention_probs_dropout_prob`, `layer_norm_eps`, `type_vocab_size`, `initializer_range`, `cls_token_id`, `eos_token_id` | the `geneformer` options of the same meaning |
//! | `emb_layer`, `pooling` | forge's own (how cell embeddings are taken), written only when not the default |
//! | `model_type` | must be `bert` |
//! | `architectures` | must be `BertForMaskedLM` (a fine-tuned `BertForSequenceClassification` is refused) |
//! | `position_embedding_type` | must be `absolute` |
//! | `pad_token_id` | must be 0 (forge pads with 0) |
//! | `is_decoder`, `add_cross_attention` | must be false; `tie_word_embeddings` must be true |
//! | `transformers_version`, `use_cache`, `gradient_checkpointing`, `classifier_dropout`, `bos_token_id`, `dtype`, `torch_dtype`, `output_past`, `chunk_size_feed_forward`, `id2label`, `label2id`, `problem_type`, `return_dict`, `output_attentions`, `output_hidden_states` | no effect on a masked-LM forward pass: listed in `ignored_keys` |
//! | anything else | listed in `ignored_keys` as unknown |
//!
//! Keys left out take `BertConfig`'s defaults, as `transformers` does.
//!
//! Weights: the names are the model's own parameter names. The tied
//! decoder (`cls.predictions.decoder.weight`, `.bias`) is absent from files
//! `save_pretrained` writes; when a file has it, it must equal the word
//! embeddings (and `cls.predictions.bias`), since forge always ties them.
//! `bert.embeddings.position_ids` (a buffer older `transformers` saved) and
//! `bert.pooler.*` (unused by the masked LM and by Geneformer's
//! embeddings) are skipped and listed. Written back: the same two files,
//! float32, decoder left out, into a temporary folder renamed into place.

use std::path::Path;

use serde_json::{Map, Value, json};
use tch::nn::VarStore;
use tch::{Device, Kind, Tensor};

use super::load::LoadedModel;
use super::{CONFIG_FILE, WEIGHTS_FILE};
use crate::config::{Activation, ModelConfig, Pooling};
use crate::error::{ForgeError, Result};
use crate::model::ForgeModel;
use crate::state_dict::{load_state_dict, state_dict};

/// The forge model a Hugging Face BERT masked-LM folder loads as.
pub const HF_BERT_MODEL: &str = "geneformer";

/// Keys that do not change a masked-LM forward pass.
const NOT_USED: &[(&str, &str)] = &[
    ("transformers_version", "the version that wrote the file"),
    ("use_cache", "a decoding cache; BERT's encoder has none"),
    ("gradient_checkpointing", "a memory setting of training"),
    ("classifier_dropout", "used by classification heads only"),
    ("bos_token_id", "not used by BERT"),
    ("dtype", "weights are read as float32"),
    ("torch_dtype", "weights are read as float32"),
    ("output_past", "a decoding setting"),
    ("chunk_size_feed_forward", "a memory setting, same values"),
    ("id2label", "labels of a classification head"),
    ("label2id", "labels of a classification head"),
    ("problem_type", "setting of a classification head"),
    ("return_dict", "an output format of transformers"),
    ("output_attentions", "an output format of transformers"),
    ("output_hidden_states", "an output format of transformers"),
];

/// Whether `dir/config.json` is a Hugging Face BERT config (`model_type`
/// `bert` and no forge `model_config`), so [`load_hf_pretrained`] reads it.
pub fn is_hf_bert_folder(dir: &Path) -> bool {
    let Ok(text) = std::fs::read_to_string(dir.join(CONFIG_FILE)) else {
        return false;
    };
    let Ok(Value::Object(root)) = serde_json::from_str::<Value>(&text) else {
        return false;
    };
    root.get("model_type").and_then(Value::as_str) == Some("bert")
        && !root.contains_key("model_config")
}

/// A Hugging Face BERT `config.json` as forge's model config.
#[derive(Debug, Clone, PartialEq)]
pub struct HfBertConfig {
    /// The `geneformer` model config it describes (options included).
    pub model: ModelConfig,
    /// Keys that change nothing or that forge does not know, each with
    /// the reason (`use_cache: a decoding cache; ...`).
    pub ignored_keys: Vec<String>,
}

/// Reads `dir/config.json` as a BERT config (see the module docs for what
/// each key becomes); fails naming the file and key for a value forge
/// cannot run.
pub fn read_hf_config(dir: &Path) -> Result<HfBertConfig> {
    let path = dir.join(CONFIG_FILE);
    let text = std::fs::read_to_string(&path).map_err(|e| ForgeError::io(&path, e))?;
    let root: Map<String, Value> = match serde_json::from_str(&text) {
        Ok(Value::Object(map)) => map,
        Ok(_) => return Err(ForgeError::checkpoint(&path, "expected a JSON object")),
        Err(e) => {
            return Err(ForgeError::checkpoint(
                &path,
                format!("not valid JSON: {e}"),
            ));
        }
    };
    let fail = |key: &str, msg: String| ForgeError::checkpoint(&path, format!("{key}: {msg}"));
    let int = |key: &str, default: i64| -> Result<i64> {
        match root.get(key) {
            None => Ok(default),
            Some(v) => v
                .as_i64()
                .ok_or_else(|| fail(key, format!("expected an integer, found {v}"))),
        }
    };
    let float = |key: &str, default: f64| -> Result<f64> {
        match root.get(key) {
            None => Ok(default),
            Some(v) => v
                .as_f64()
                .ok_or_else(|| fail(key, format!("expected a number, found {v}"))),
        }
    };
    let text_key = |key: &str, default: &str| -> Result<String> {
        match root.get(key) {
            None => Ok(default.to_string()),
            Some(Value::String(s)) => Ok(s.clone()),
            Some(v) => Err(fail(key, format!("expected a string, found {v}"))),
        }
    };
    let flag = |key: &str, default: bool| -> Result<bool> {
        match root.get(key) {
            None => Ok(default),
            Some(v) => v
                .as_bool()
                .ok_or_else(|| fail(key, format!("expected true or false, found {v}"))),
        }
    };
    let optional_id = |key: &str| -> Result<Option<i64>> {
        match root.get(key) {
            None | Some(Value::Null) => Ok(None),
            Some(v) => v
                .as_i64()
                .map(Some)
                .ok_or_else(|| fail(key, format!("expected a token id or null, found {v}"))),
        }
    };

    let model_type = text_key("model_type", "")?;
    if model_type != "bert" {
        return Err(fail(
            "model_type",
            format!("is \"{model_type}\"; forge reads Hugging Face folders of \"bert\" only"),
        ));
    }
    if let Some(archs) = root.get("architectures") {
        let names: Vec<&str> = archs
            .as_array()
            .map(|a| a.iter().filter_map(Value::as_str).collect())
            .unwrap_or_default();
        if names.is_empty() || names.iter().any(|n| *n != "BertForMaskedLM") {
            return Err(fail(
                "architectures",
                format!(
                    "is {archs}; forge loads [\"BertForMaskedLM\"] (Geneformer's pretrained \
                     models). A fine-tuned classifier's encoder can be fine-tuned again with \
                     `forge finetune` from its pretrained model"
                ),
            ));
        }
    }
    let act = text_key("hidden_act", "gelu")?;
    let activation = match act.as_str() {
        "relu" => Activation::Relu,
        "gelu" => Activation::Gelu,
        other => {
            return Err(fail(
                "hidden_act",
                format!(
                    "is \"{other}\"; forge's BERT runs \"relu\" (Geneformer) and \"gelu\" \
                     (exact GELU)"
                ),
            ));
        }
    };
    let position = text_key("position_embedding_type", "absolute")?;
    if position != "absolute" {
        return Err(fail(
            "position_embedding_type",
            format!("is \"{position}\"; forge's BERT has \"absolute\" position embeddings only"),
        ));
    }
    let pad = int("pad_token_id", 0)?;
    if pad != 0 {
        return Err(fail(
            "pad_token_id",
            format!("is {pad}; forge pads with token 0, as Geneformer's <pad>"),
        ));
    }
    for (key, want) in [
        ("is_decoder", false),
        ("add_cross_attention", false),
        ("tie_word_embeddings", true),
    ] {
        if flag(key, want)? != want {
            return Err(fail(
                key,
                format!("is {}; forge's BERT masked LM needs {want}", !want),
            ));
        }
    }
    let pooling = match text_key("pooling", "mean")?.as_str() {
        "mean" => Pooling::Mean,
        "cls" => Pooling::Cls,
        other => {
            return Err(fail(
                "pooling",
                format!("is \"{other}\"; expected \"mean\" (Geneformer's cell mode) or \"cls\""),
            ));
        }
    };
    let dropout = float("hidden_dropout_prob", 0.1)?;
    let attention_dropout = float("attention_probs_dropout_prob", 0.1)?;
    let hidden = int("hidden_size", 768)?;
    let model = ModelConfig {
        architecture: HF_BERT_MODEL.to_string(),
        vocab_size: Some(int("vocab_size", 30522)?),
        hidden_dim: hidden,
        num_layers: int("num_hidden_layers", 12)?,
        num_heads: int("num_attention_heads", 12)?,
        ffn_dim: Some(int("intermediate_size", 3072)?),
        dropout,
        max_seq_len: int("max_position_embeddings", 512)?,
        pooling,
        activation,
        use_expression_values: false,
        ..ModelConfig::default()
    }
    .with_option("emb_layer", int("emb_layer", -1)?)
    .with_option("cls_token_id", optional_id("cls_token_id")?)
    .with_option("eos_token_id", optional_id("eos_token_id")?)
    .with_option("layer_norm_eps", float("layer_norm_eps", 1e-12)?)
    .with_option("type_vocab_size", int("type_vocab_size", 2)?)
    .with_option("initializer_range", float("initializer_range", 0.02)?)
    .with_option(
        "attention_dropout",
        (attention_dropout != dropout).then_some(attention_dropout),
    );
    model.validate().map_err(|e| {
        ForgeError::checkpoint(
            &path,
            format!("the BERT settings do not make a valid model: {e}"),
        )
    })?;

    const HONOURED: &[&str] = &[
        "model_type",
        "architectures",
        "vocab_size",
        "hidden_size",
        "num_hidden_layers",
        "num_attention_heads",
        "intermediate_size",
        "hidden_act",
        "hidden_dropout_prob",
        "attention_probs_dropout_prob",
        "max_position_embeddings",
        "type_vocab_size",
        "initializer_range",
        "layer_norm_eps",
        "pad_token_id",
        "position_embedding_type",
        "is_decoder",
        "add_cross_attention",
        "tie_word_embeddings",
        "cls_token_id",
        "eos_token_id",
        "emb_layer",
        "pooling",
    ];
    let ignored_keys = root
        .keys()
        .filter(|k| !HONOURED.contains(&k.as_str()))
        .map(|k| match NOT_USED.iter().find(|(n, _)| n == k) {
            Some((_, why)) => format!("{k} (not used: {why})"),
            None => format!("{k} (unknown to forge's BERT; skipped)"),
        })
        .collect();
    Ok(HfBertConfig {
        model,
        ignored_keys,
    })
}

/// Loads a Hugging Face BERT masked-LM folder (`config.json`,
/// `model.safetensors`) as a `geneformer` model on `device`. Such a folder
/// has no tokenizer config (`tokenizer_config` is `None`); `vocab` is
/// forge's `gene_vocab.json` when the folder has one (put beside the two
/// files so forge's tokenizers can map genes), else `None`. Skipped keys
/// and tensors are in `ignored_keys`.
pub fn load_hf_pretrained(dir: &Path, device: Device) -> Result<LoadedModel> {
    let HfBertConfig {
        model: config,
        mut ignored_keys,
    } = read_hf_config(dir)?;
    let weights_path = dir.join(WEIGHTS_FILE);
    if !weights_path.is_file() {
        let hint = if dir.join("pytorch_model.bin").is_file() {
            "; this folder has pytorch_model.bin (a PyTorch pickle, which forge never \
             unpickles): convert it once with transformers, \
             BertForMaskedLM.from_pretrained(dir).save_pretrained(dir) writes model.safetensors"
        } else {
            ""
        };
        return Err(ForgeError::checkpoint(
            &weights_path,
            format!("missing: the model's weights belong here{hint}"),
        ));
    }
    let tensors = Tensor::read_safetensors(&weights_path).map_err(|e| {
        ForgeError::checkpoint(
            &weights_path,
            format!("not a readable safetensors file: {e}"),
        )
    })?;
    let find = |name: &str| tensors.iter().find(|(n, _)| n == name).map(|(_, t)| t);
    let tied = [
        (
            "cls.predictions.decoder.weight",
            "bert.embeddings.word_embeddings.weight",
        ),
        ("cls.predictions.decoder.bias", "cls.predictions.bias"),
    ];
    for (decoder, source) in tied {
        if let (Some(d), Some(s)) = (find(decoder), find(source))
            && (d.size() != s.size() || !d.to_kind(Kind::Float).equal(&s.to_kind(Kind::Float)))
        {
            return Err(ForgeError::checkpoint(
                &weights_path,
                format!(
                    "{decoder} differs from {source}: an untied decoder, which forge's BERT \
                     (decoder tied, as config.json's tie_word_embeddings says) cannot hold"
                ),
            ));
        }
    }
    let mut kept = Vec::with_capacity(tensors.len());
    for (name, t) in tensors {
        if tied.iter().any(|(d, _)| *d == name) {
            continue;
        }
        if name == "bert.embeddings.position_ids" || name.starts_with("bert.pooler.") {
            ignored_keys.push(format!(
                "{WEIGHTS_FILE}: {name} (not used by the masked LM or its cell embeddings)"
            ));
            continue;
        }
        kept.push((name, t));
    }
    let vocab = super::read_vocab(dir, config.require_vocab_size()?)?;
    let var_store = VarStore::new(device);
    let model = crate::registry::get(HF_BERT_MODEL, &var_store.root(), &config)?;
    load_state_dict(&*model, &kept)
        .map_err(|mismatch| ForgeError::checkpoint(&weights_path, mismatch.to_string()))?;
    Ok(LoadedModel {
        model,
        var_store,
        config,
        tokenizer_config: None,
        vocab,
        scmodelforge_version: None,
        ignored_keys,
    })
}

/// `config.json` of a Hugging Face BERT masked LM for `config` (a
/// `geneformer` config): the keys [`read_hf_config`] honours.
pub fn hf_config_json(config: &ModelConfig) -> Result<Value> {
    let options: crate::models::geneformer::GeneformerOptions =
        crate::config::options::read(config)?;
    let vocab_size = config.require_vocab_size()?;
    let mut out = json!({
        "architectures": ["BertForMaskedLM"],
        "model_type": "bert",
        "vocab_size": vocab_size,
        "hidden_size": config.hidden_dim,
        "num_hidden_layers": config.num_layers,
        "num_attention_heads": config.num_heads,
        "intermediate_size": config.ffn_dim_or_default(),
        "hidden_act": config.activation.to_string(),
        "hidden_dropout_prob": config.dropout,
        "attention_probs_dropout_prob": options.attention_dropout.unwrap_or(config.dropout),
        "max_position_embeddings": config.max_seq_len,
        "type_vocab_size": options.type_vocab_size,
        "initializer_range": options.initializer_range,
        "layer_norm_eps": options.layer_norm_eps,
        "pad_token_id": 0,
        "position_embedding_type": "absolute",
        "is_decoder": false,
        "add_cross_attention": false,
        "tie_word_embeddings": true,
    });
    let map = out.as_object_mut().expect("an object");
    if let Some(id) = options.cls_token_id {
        map.insert("cls_token_id".into(), id.into());
    }
    if let Some(id) = options.eos_token_id {
        map.insert("eos_token_id".into(), id.into());
    }
    if options.emb_layer != -1 {
        map.insert("emb_layer".into(), options.emb_layer.into());
    }
    if config.pooling != Pooling::Mean {
        map.insert("pooling".into(), config.pooling.to_string().into());
    }
    Ok(out)
}

/// Writes `model` (a `geneformer`) as a Hugging Face BERT masked-LM folder
/// at `dir`: `config.json` ([`hf_config_json`]) and `model.safetensors`
/// (float32, Hugging Face names, tied decoder left out), whole or not at
/// all. An existing `dir` is replaced only with `overwrite`, and only when
/// it holds a `config.json` or is empty.
pub fn save_hf_pretrained(
    model: &dyn ForgeModel,
    config: &ModelConfig,
    dir: &Path,
    overwrite: bool,
) -> Result<()> {
    if model.registry_name() != HF_BERT_MODEL || config.architecture != HF_BERT_MODEL {
        return Err(ForgeError::checkpoint(
            dir,
            format!(
                "only a `{HF_BERT_MODEL}` model is written in Hugging Face's BERT layout (this \
                 is a `{}` with model.architecture `{}`)",
                model.registry_name(),
                config.architecture
            ),
        ));
    }
    if dir.exists() && overwrite {
        let empty = dir.is_dir()
            && std::fs::read_dir(dir)
                .map_err(|e| ForgeError::io(dir, e))?
                .next()
                .is_none();
        if !(empty || dir.join(CONFIG_FILE).is_file()) {
            return Err(ForgeError::checkpoint(
                dir,
                format!(
                    "refusing to replace this folder: it is not empty and holds no \
                     {CONFIG_FILE}; choose another folder"
                ),
            ));
        }
    }
    let config_json = hf_config_json(config)?;
    let weights: Vec<(String, Tensor)> = state_dict(model)
        .into_iter()
        .map(|(name, t)| (name, t.to_kind(Kind::Float).contiguous()))
        .collect();
    let mut text =
        serde_json::to_string_pretty(&config_json).expect("JSON values always serialise");
    text.push('\n');
    crate::atomic::write_dir(dir, overwrite, |tmp| {
        std::fs::write(tmp.join(CONFIG_FILE), &text)
            .map_err(|e| ForgeError::io(dir.join(CONFIG_FILE), e))?;
        Tensor::write_safetensors(&weights, tmp.join(WEIGHTS_FILE)).map_err(|e| {
            ForgeError::io(dir.join(WEIGHTS_FILE), std::io::Error::other(e.to_string()))
        })
    })
}
