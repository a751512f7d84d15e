//! Reading a checkpoint folder: `config.json` into typed configs, the gene
//! vocabulary, and the model with its weights.
//!
//! Like scModelForge, keys of `model_config` and `tokenizer_config` that
//! forge does not know (written by a newer scModelForge, e.g.
//! `model_config.attention`) are skipped and listed in `ignored_keys`;
//! known keys get the same checks as a config file.

use std::fmt;
use std::path::{Path, PathBuf};

use serde_json::{Map, Value};
use tch::nn::VarStore;
use tch::{Device, Tensor};

use super::{CONFIG_FILE, VOCAB_FILE, WEIGHTS_FILE};
use crate::batch::special::FIRST_GENE_ID;
use crate::config::{
    ConfigErrors, ConfigValue, ForgeConfig, MaskingConfig, ModelConfig, TokenizerConfig,
};
use crate::error::{ForgeError, Result};
use crate::model::ForgeModel;
use crate::state_dict::load_state_dict;

/// What `config.json` says.
#[derive(Debug, Clone, PartialEq)]
pub struct CheckpointConfig {
    /// Registry name of the model (`model_type`).
    pub model_type: String,
    /// `model_config`, checked.
    pub model: ModelConfig,
    /// `tokenizer_config`, checked; `None` when the checkpoint has none
    /// (scModelForge allows saving without one).
    pub tokenizer: Option<TokenizerConfig>,
    /// `scmodelforge_version`: the version of the toolkit that wrote it.
    pub scmodelforge_version: Option<String>,
    /// Keys of `model_config` / `tokenizer_config` that forge does not
    /// know and skipped (`model_config.attention`, ...).
    pub ignored_keys: Vec<String>,
}

/// A model loaded from a checkpoint folder, with everything needed to use
/// it on new cells.
pub struct LoadedModel {
    /// The model, its weights loaded, built by the registry from
    /// `model_type`.
    pub model: Box<dyn ForgeModel>,
    /// The variables of `model` (for optimizers, devices, freezing).
    pub var_store: VarStore,
    /// The model config it was built from.
    pub config: ModelConfig,
    /// How cells were tokenized for this model; `None` when the checkpoint
    /// has no `tokenizer_config`.
    pub tokenizer_config: Option<TokenizerConfig>,
    /// The gene vocabulary, (gene, id) sorted by id; `None` when the folder
    /// has no `gene_vocab.json` (scModelForge allows that).
    pub vocab: Option<Vec<(String, i64)>>,
    /// `scmodelforge_version` from `config.json`.
    pub scmodelforge_version: Option<String>,
    /// Keys of `config.json` that forge skipped (see [`CheckpointConfig`]).
    pub ignored_keys: Vec<String>,
}

impl fmt::Debug for LoadedModel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LoadedModel")
            .field("model", &self.model.registry_name())
            .field("config", &self.config)
            .field("tokenizer_config", &self.tokenizer_config)
            .field("vocab", &self.vocab.as_ref().map(Vec::len))
            .field("scmodelforge_version", &self.scmodelforge_version)
            .field("ignored_keys", &self.ignored_keys)
            .finish_non_exhaustive()
    }
}

/// Loads the checkpoint folder `dir` (written by forge's or scModelForge's
/// `save_pretrained`) with its weights on `device`.
///
/// Fails, naming the file, when `config.json` is missing or not valid JSON,
/// its configs fail the checks, `model_type` is not registered (with a
/// did-you-mean), the vocabulary does not fit the model, or the weights
/// have missing, unexpected or mis-shaped tensors (all listed; nothing is
/// loaded then).
///
/// A Hugging Face BERT masked-LM folder (`config.json` with `model_type`
/// `bert`, as Geneformer publishes) is read by
/// [`super::hf::load_hf_pretrained`] instead.
pub fn load_pretrained(dir: &Path, device: Device) -> Result<LoadedModel> {
    if super::hf::is_hf_bert_folder(dir) {
        return super::hf::load_hf_pretrained(dir, device);
    }
    let config = read_config(dir)?;
    let vocab_size = config.model.vocab_size.ok_or_else(|| {
        ForgeError::checkpoint(
            dir.join(CONFIG_FILE),
            "model_config.vocab_size is null; a saved model must record its vocabulary size",
        )
    })?;
    let vocab = read_vocab(dir, vocab_size)?;
    let weights_path = dir.join(WEIGHTS_FILE);
    if !weights_path.is_file() {
        return Err(missing_weights(dir, weights_path));
    }
    let tensors = Tensor::read_safetensors(&weights_path).map_err(|e| {
        ForgeError::checkpoint(
            &weights_path,
            format!("not a readable safetensors file: {e}"),
        )
    })?;
    let var_store = VarStore::new(device);
    let model = crate::registry::get(&config.model_type, &var_store.root(), &config.model)
        .map_err(|e| match e {
            ForgeError::UnknownModel { .. } => {
                ForgeError::checkpoint(dir.join(CONFIG_FILE), format!("model_type: {e}"))
            }
            other => other,
        })?;
    load_state_dict(&*model, &tensors)
        .map_err(|mismatch| ForgeError::checkpoint(&weights_path, mismatch.to_string()))?;
    Ok(LoadedModel {
        model,
        var_store,
        config: config.model,
        tokenizer_config: config.tokenizer,
        vocab,
        scmodelforge_version: config.scmodelforge_version,
        ignored_keys: config.ignored_keys,
    })
}

/// Reads and checks `config.json` of the checkpoint folder `dir`.
pub fn read_config(dir: &Path) -> Result<CheckpointConfig> {
    let path = dir.join(CONFIG_FILE);
    if !dir.is_dir() {
        return Err(not_a_folder(dir));
    }
    if !path.is_file() {
        return Err(ForgeError::checkpoint(
            path,
            format!(
                "missing; a checkpoint folder holds {CONFIG_FILE}, {WEIGHTS_FILE}, {VOCAB_FILE} \
                 and README.md, as written by save_pretrained (forge or scModelForge)"
            ),
        ));
    }
    let root = read_json(&path)?;
    let Value::Object(root) = root else {
        return Err(ForgeError::checkpoint(
            &path,
            format!("expected a JSON object, found {}", kind_of(&root)),
        ));
    };
    let model_type = match root.get("model_type") {
        Some(Value::String(s)) if !s.is_empty() => s.clone(),
        Some(other) => {
            return Err(ForgeError::checkpoint(
                &path,
                format!(
                    "model_type must be a model's registry name (e.g. \"transformer_encoder\"), \
                     found {}",
                    kind_of(other)
                ),
            ));
        }
        None => {
            return Err(ForgeError::checkpoint(
                &path,
                "has no model_type (the registry name of the model, e.g. \
                 \"transformer_encoder\")",
            ));
        }
    };
    let scmodelforge_version = root
        .get("scmodelforge_version")
        .and_then(Value::as_str)
        .map(String::from);
    let mut ignored_keys = Vec::new();
    let model_json = match root.get("model_config") {
        Some(Value::Object(map)) => {
            check_attention(map, &path)?;
            // The shared keys and the options of every registered model
            // (scModelForge writes masked_autoencoder's for every model).
            let fields = crate::config::options::model_keys();
            known_keys(map, &fields, "model_config", &mut ignored_keys)
        }
        Some(other) => {
            return Err(ForgeError::checkpoint(
                &path,
                format!(
                    "model_config must be an object of model settings, found {}",
                    kind_of(other)
                ),
            ));
        }
        None => {
            return Err(ForgeError::checkpoint(
                &path,
                "has no model_config (the model's settings: hidden_dim, num_layers, ...)",
            ));
        }
    };
    let tokenizer_json = match root.get("tokenizer_config") {
        None | Some(Value::Null) => None,
        Some(Value::Object(map)) => {
            let mut known = known_keys(
                map,
                TokenizerConfig::FIELDS,
                "tokenizer_config",
                &mut ignored_keys,
            );
            if let Some(Value::Object(masking)) = known.get("masking") {
                let masking = known_keys(
                    masking,
                    MaskingConfig::FIELDS,
                    "tokenizer_config.masking",
                    &mut ignored_keys,
                );
                known.insert("masking".into(), Value::Object(masking));
            }
            Some(known)
        }
        Some(other) => {
            return Err(ForgeError::checkpoint(
                &path,
                format!(
                    "tokenizer_config must be an object of tokenizer settings, found {}",
                    kind_of(other)
                ),
            ));
        }
    };

    let source = path.display().to_string();
    let mut errors = ConfigErrors::new(&source);
    let model = ModelConfig::from_value(&Value::Object(model_json), "model_config", &mut errors);
    let tokenizer = tokenizer_json
        .map(|t| TokenizerConfig::from_value(&Value::Object(t), "tokenizer_config", &mut errors));
    if !errors.is_empty() {
        return Err(ForgeError::Config(errors));
    }
    // A section read from an object is always returned; problems are in
    // `errors`, checked above.
    let mut model = model.expect("model_config is an object");
    let tokenizer = tokenizer.map(|t| t.expect("tokenizer_config is an object"));
    match root.get("model_config").and_then(|m| m.get("architecture")) {
        None => model.architecture = model_type.clone(),
        Some(_) if model.architecture != model_type => {
            return Err(ForgeError::checkpoint(
                &path,
                format!(
                    "model_type is \"{model_type}\" but model_config.architecture is \"{}\"; \
                     they name the same model and must agree",
                    model.architecture
                ),
            ));
        }
        Some(_) => {}
    }
    check_values(&model, tokenizer.as_ref(), &source)?;
    Ok(CheckpointConfig {
        model_type,
        model,
        tokenizer,
        scmodelforge_version,
        ignored_keys,
    })
}

/// Reads `gene_vocab.json` of the checkpoint folder `dir`: (gene, id)
/// sorted by id, or `None` when the folder has none. Accepts scModelForge's
/// two forms, an object gene -> id or a list of genes (ids from 4 in list
/// order), and checks that ids are unique and in `4..vocab_size`.
pub fn read_vocab(dir: &Path, vocab_size: i64) -> Result<Option<Vec<(String, i64)>>> {
    let path = dir.join(VOCAB_FILE);
    if !path.exists() {
        return Ok(None);
    }
    let mut entries: Vec<(String, i64)> = match read_json(&path)? {
        Value::Object(map) => map
            .into_iter()
            .map(|(gene, id)| match id.as_i64() {
                Some(id) => Ok((gene, id)),
                None => Err(ForgeError::checkpoint(
                    &path,
                    format!(
                        "gene `{gene}` maps to {}; expected an integer id",
                        kind_of(&id)
                    ),
                )),
            })
            .collect::<Result<_, _>>()?,
        Value::Array(genes) => genes
            .into_iter()
            .zip(FIRST_GENE_ID..)
            .map(|(gene, id)| match gene {
                Value::String(gene) => Ok((gene, id)),
                other => Err(ForgeError::checkpoint(
                    &path,
                    format!("expected a list of gene names, found {}", kind_of(&other)),
                )),
            })
            .collect::<Result<_, _>>()?,
        other => {
            return Err(ForgeError::checkpoint(
                &path,
                format!(
                    "expected an object gene -> id (or a list of genes), found {}",
                    kind_of(&other)
                ),
            ));
        }
    };
    entries.sort_by_key(|(_, id)| *id);
    for pair in entries.windows(2) {
        if pair[0].1 == pair[1].1 {
            return Err(ForgeError::checkpoint(
                &path,
                format!(
                    "genes `{}` and `{}` share the id {}",
                    pair[0].0, pair[1].0, pair[0].1
                ),
            ));
        }
    }
    if let Some((gene, id)) = entries
        .iter()
        .find(|(_, id)| !(FIRST_GENE_ID..vocab_size).contains(id))
    {
        return Err(ForgeError::checkpoint(
            &path,
            format!(
                "gene `{gene}` has id {id}, outside the model's gene ids {FIRST_GENE_ID}..{} \
                 (model_config.vocab_size is {vocab_size}); the vocabulary does not belong to \
                 this model",
                vocab_size - 1
            ),
        ));
    }
    Ok(Some(entries))
}

/// forge implements scModelForge's standard attention only; newer
/// scModelForge versions record the attention type in `model_config`.
fn check_attention(model_config: &Map<String, Value>, path: &Path) -> Result<()> {
    let kind = model_config
        .get("attention")
        .and_then(|a| a.get("type"))
        .and_then(Value::as_str);
    match kind {
        None | Some("standard") => Ok(()),
        Some(other) => Err(ForgeError::checkpoint(
            path,
            format!(
                "model_config.attention.type is \"{other}\"; forge implements the \"standard\" \
                 attention only, so this model cannot be loaded"
            ),
        )),
    }
}

/// The entries of `map` whose key is in `fields`; the others are recorded
/// in `ignored` as `section.key`.
fn known_keys(
    map: &Map<String, Value>,
    fields: &[&str],
    section: &str,
    ignored: &mut Vec<String>,
) -> Map<String, Value> {
    let mut known = Map::new();
    for (key, value) in map {
        if fields.contains(&key.as_str()) {
            known.insert(key.clone(), value.clone());
        } else {
            ignored.push(format!("{section}.{key}"));
        }
    }
    known
}

/// Runs the config value checks on the two sections, reporting them under
/// their `config.json` names.
fn check_values(
    model: &ModelConfig,
    tokenizer: Option<&TokenizerConfig>,
    source: &str,
) -> Result<()> {
    let whole = ForgeConfig {
        model: model.clone(),
        tokenizer: tokenizer.cloned().unwrap_or_default(),
        ..ForgeConfig::default()
    };
    let Err(found) = whole.validate() else {
        return Ok(());
    };
    let mut errors = ConfigErrors::new(source);
    for e in found.errors {
        let renamed = if let Some(rest) = e.path.strip_prefix("model.") {
            format!("model_config.{rest}")
        } else if let Some(rest) = e.path.strip_prefix("tokenizer.") {
            format!("tokenizer_config.{rest}")
        } else {
            e.path.clone()
        };
        errors.push(renamed, e.message);
    }
    Err(ForgeError::Config(errors))
}

fn read_json(path: &Path) -> Result<Value> {
    let text = std::fs::read_to_string(path).map_err(|e| ForgeError::io(path, e))?;
    serde_json::from_str(&text)
        .map_err(|e| ForgeError::checkpoint(path, format!("not valid JSON: {e}")))
}

fn not_a_folder(dir: &Path) -> ForgeError {
    if dir.exists() {
        ForgeError::checkpoint(
            dir,
            format!(
                "is a file; a checkpoint is a folder holding {CONFIG_FILE}, {WEIGHTS_FILE}, \
                 {VOCAB_FILE} and README.md"
            ),
        )
    } else {
        ForgeError::checkpoint(dir, "no such checkpoint folder (check the path)")
    }
}

fn missing_weights(dir: &Path, path: PathBuf) -> ForgeError {
    let hint = if dir.join("model.pt").is_file() {
        format!(
            "this folder has model.pt (PyTorch pickle weights), which forge cannot read; \
             convert it in Python: from safetensors.torch import save_file; import torch; \
             save_file(torch.load(\"model.pt\"), \"{WEIGHTS_FILE}\")"
        )
    } else {
        "the model's weights (float32 tensors under PyTorch state-dict names) belong here"
            .to_string()
    };
    ForgeError::checkpoint(path, format!("missing; {hint}"))
}

fn kind_of(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "a list",
        Value::Object(_) => "an object",
    }
}
