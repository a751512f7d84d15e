//! Writing a checkpoint folder: everything is checked first (the config
//! describes the model, the vocabulary fits it), then the four files are
//! written into a temporary folder that is renamed into place.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use serde_json::{Map, Value, json};
use tch::nn::VarStore;
use tch::{Device, Kind, Tensor};

use super::{CONFIG_FILE, README_FILE, VOCAB_FILE, WEIGHTS_FILE, card};
use crate::batch::special::FIRST_GENE_ID;
use crate::config::{ConfigValue, ModelConfig, TokenizerConfig};
use crate::error::{ForgeError, Result};
use crate::model::ForgeModel;
use crate::state_dict::{load_state_dict, state_dict};

/// One gene of a vocabulary: its name and token id. Implemented for the
/// shapes vocabularies come in: `(String, i64)` pairs (owned or borrowed)
/// and the `(&String, &i64)` items of a map.
pub trait VocabEntry {
    /// The gene name (or Ensembl id).
    fn gene(&self) -> &str;
    /// Its token id (>= 4).
    fn id(&self) -> i64;
}

impl<S: AsRef<str>> VocabEntry for (S, i64) {
    fn gene(&self) -> &str {
        self.0.as_ref()
    }
    fn id(&self) -> i64 {
        self.1
    }
}

impl<S: AsRef<str>> VocabEntry for (S, &i64) {
    fn gene(&self) -> &str {
        self.0.as_ref()
    }
    fn id(&self) -> i64 {
        *self.1
    }
}

impl<S: AsRef<str>> VocabEntry for &(S, i64) {
    fn gene(&self) -> &str {
        self.0.as_ref()
    }
    fn id(&self) -> i64 {
        self.1
    }
}

/// Writes `model` as a checkpoint folder at `dir` (see the module docs for
/// the layout): `config.json` from `config` and `tokenizer_config`,
/// `model.safetensors` (float32, PyTorch names), `gene_vocab.json` from
/// `vocab` (gene -> id, ids >= 4) and a `README.md` model card.
///
/// Checked before anything is written: `config.vocab_size` is set, `config`
/// passes the config checks and describes `model` (same registry name, and
/// a model built from it has exactly `model`'s parameter names and shapes,
/// so the folder loads back), and the vocabulary has unique genes and ids
/// in `4..vocab_size`.
///
/// The folder appears whole or not at all. An existing `dir` is an error
/// unless `overwrite`; then it is replaced once the new folder is complete,
/// and only if it is a checkpoint folder (it has a `config.json`) or empty.
pub fn save_pretrained<E: VocabEntry>(
    model: &dyn ForgeModel,
    config: &ModelConfig,
    tokenizer_config: &TokenizerConfig,
    vocab: impl IntoIterator<Item = E>,
    dir: &Path,
    overwrite: bool,
) -> Result<()> {
    check_target(dir, overwrite)?;
    let config_path = dir.join(CONFIG_FILE);
    let vocab_size = config.vocab_size.ok_or_else(|| {
        ForgeError::checkpoint(
            &config_path,
            "model_config.vocab_size is not set; a checkpoint records its vocabulary size \
             (it is normally filled in from the gene vocabulary when the model is built)",
        )
    })?;
    if model.registry_name() != config.architecture {
        return Err(ForgeError::checkpoint(
            &config_path,
            format!(
                "the model is a `{}` but model_config.architecture is `{}`; save the model \
                 with the config it was built from",
                model.registry_name(),
                config.architecture
            ),
        ));
    }
    config.validate()?;
    let vocab = check_vocab(vocab, vocab_size, &dir.join(VOCAB_FILE))?;
    let weights: Vec<(String, Tensor)> = state_dict(model)
        .into_iter()
        .map(|(name, t)| (name, t.to_kind(Kind::Float).contiguous()))
        .collect();
    check_loads_back(config, &weights, &dir.join(WEIGHTS_FILE))?;

    let config_json = json!({
        "scmodelforge_version": env!("CARGO_PKG_VERSION"),
        "model_type": config.architecture,
        "model_config": config.to_json(),
        "tokenizer_config": tokenizer_config.to_value(),
    });
    let vocab_json: Map<String, Value> = vocab
        .iter()
        .map(|(gene, id)| (gene.clone(), Value::from(*id)))
        .collect();
    let readme = card::model_card(model, config, tokenizer_config, vocab.len(), dir);

    crate::atomic::write_dir(dir, overwrite, |tmp| {
        write_text(&tmp.join(CONFIG_FILE), &pretty(&config_json))?;
        let weights_path = tmp.join(WEIGHTS_FILE);
        Tensor::write_safetensors(&weights, &weights_path).map_err(|e| {
            ForgeError::io(dir.join(WEIGHTS_FILE), std::io::Error::other(e.to_string()))
        })?;
        write_text(&tmp.join(VOCAB_FILE), &pretty(&Value::Object(vocab_json)))?;
        write_text(&tmp.join(README_FILE), &readme)
    })
}

/// Refuses an existing target unless `overwrite`, and even then anything
/// that is not a checkpoint folder or an empty folder.
fn check_target(dir: &Path, overwrite: bool) -> Result<()> {
    if !dir.exists() {
        return Ok(());
    }
    if !overwrite {
        return Err(ForgeError::checkpoint(
            dir,
            "already exists; choose another folder, or allow overwriting it (the old \
             checkpoint is replaced only once the new one is complete)",
        ));
    }
    let is_empty_dir = dir.is_dir()
        && std::fs::read_dir(dir)
            .map_err(|e| ForgeError::io(dir, e))?
            .next()
            .is_none();
    if !(is_empty_dir || dir.join(CONFIG_FILE).is_file()) {
        return Err(ForgeError::checkpoint(
            dir,
            format!(
                "refusing to replace this folder: it is not empty and holds no {CONFIG_FILE}, \
                 so it does not look like a checkpoint; choose another folder"
            ),
        ));
    }
    Ok(())
}

/// The vocabulary sorted by id, after checking that genes and ids are
/// unique and every id is a gene id of the model.
fn check_vocab<E: VocabEntry>(
    vocab: impl IntoIterator<Item = E>,
    vocab_size: i64,
    path: &Path,
) -> Result<Vec<(String, i64)>> {
    let mut entries: Vec<(String, i64)> = vocab
        .into_iter()
        .map(|e| (e.gene().to_string(), e.id()))
        .collect();
    let mut genes = BTreeSet::new();
    let mut ids = BTreeMap::new();
    for (gene, id) in &entries {
        if !(FIRST_GENE_ID..vocab_size).contains(id) {
            return Err(ForgeError::checkpoint(
                path,
                format!(
                    "gene `{gene}` has id {id}; gene ids run from {FIRST_GENE_ID} (0-3 are the \
                     special tokens) to vocab_size - 1 = {}",
                    vocab_size - 1
                ),
            ));
        }
        if !genes.insert(gene.as_str()) {
            return Err(ForgeError::checkpoint(
                path,
                format!("gene `{gene}` appears twice in the vocabulary"),
            ));
        }
        if let Some(other) = ids.insert(*id, gene.as_str()) {
            return Err(ForgeError::checkpoint(
                path,
                format!("genes `{other}` and `{gene}` share the id {id}"),
            ));
        }
    }
    entries.sort_by_key(|(_, id)| *id);
    Ok(entries)
}

/// Builds the model `config` describes (on the CPU, without gradients) and
/// loads `weights` into it, so that a folder that would not load back is
/// never written.
fn check_loads_back(config: &ModelConfig, weights: &[(String, Tensor)], path: &Path) -> Result<()> {
    let vs = VarStore::new(Device::Cpu);
    let fresh = tch::no_grad(|| crate::registry::get(&config.architecture, &vs.root(), config))?;
    load_state_dict(&*fresh, weights).map_err(|mismatch| {
        ForgeError::checkpoint(
            path,
            format!(
                "the model's weights do not match model_config (the checkpoint would not load \
                 back); save the model with the config it was built from. {mismatch}"
            ),
        )
    })?;
    Ok(())
}

fn pretty(value: &Value) -> String {
    let mut text = serde_json::to_string_pretty(value).expect("JSON values always serialise");
    text.push('\n');
    text
}

fn write_text(path: &Path, text: &str) -> Result<()> {
    std::fs::write(path, text).map_err(|e| ForgeError::io(path, e))
}
