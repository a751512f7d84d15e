//! The output folder of a fine-tuning run, written all at once (a
//! temporary folder renamed into place):
//!
//! - `pretrained/`: the fine-tuned backbone as a checkpoint folder
//!   (`save_pretrained` layout; LoRA adapters merged into the weights, so it
//!   loads as a plain model of the same architecture), with the resolved
//!   config as `forge_config.yaml` so `forge embed` reads cells the same way;
//! - `head.safetensors`: the head (`hidden.*`, `output.*`);
//! - `head_config.json`: task, label key, widths and dropout of the head;
//! - `labels.json`: class names in id order (classification);
//! - `config.yaml`: the resolved config of the run;
//! - `logs/`: the per-epoch metrics.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use tch::nn::VarStore;
use tch::{Device, Kind, Tensor};

use super::head::TaskHead;
use super::run::Finetuner;
use forge_core::checkpoint::{LoadedModel, load_pretrained, save_pretrained};
use forge_core::config::{FinetuneHeadConfig, FinetuneTask, ModelConfig, TokenizerConfig};
use forge_core::error::{ForgeError, Result};
use forge_core::state_dict::{load_state_dict, state_dict};

/// Sub-folder holding the backbone checkpoint.
pub const PRETRAINED_DIR: &str = "pretrained";
/// The head's weights.
pub const HEAD_FILE: &str = "head.safetensors";
/// The head's description.
pub const HEAD_CONFIG_FILE: &str = "head_config.json";
/// Class names in id order.
pub const LABELS_FILE: &str = "labels.json";
/// The resolved config of the run.
pub const CONFIG_FILE: &str = "config.yaml";

/// `head_config.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HeadConfigFile {
    /// `classification` or `regression`.
    pub task: String,
    /// The obs column the labels came from.
    pub label_key: String,
    /// Width of the backbone's embeddings.
    pub input_dim: i64,
    /// Outputs of the head.
    pub n_outputs: i64,
    /// Width of the hidden layer, if any.
    pub hidden_dim: Option<i64>,
    /// Dropout of the head (training only).
    pub dropout: f64,
    /// LoRA rank, when adapters were trained (they are merged).
    pub lora_rank: Option<i64>,
}

impl HeadConfigFile {
    /// The head section this file describes.
    pub fn head_config(&self) -> Result<FinetuneHeadConfig> {
        let task = FinetuneTask::from_name(&self.task).ok_or_else(|| {
            ForgeError::checkpoint(
                PathBuf::from(HEAD_CONFIG_FILE),
                format!("unknown task `{}`", self.task),
            )
        })?;
        Ok(FinetuneHeadConfig {
            task,
            n_classes: Some(self.n_outputs),
            output_dim: self.n_outputs,
            hidden_dim: self.hidden_dim,
            dropout: self.dropout,
        })
    }
}

/// What goes into the folder besides the model.
#[derive(Debug, Clone, Copy)]
pub struct SaveParts<'a> {
    /// The backbone's model config.
    pub model_config: &'a ModelConfig,
    /// The backbone's tokenizer config.
    pub tokenizer_config: &'a TokenizerConfig,
    /// The backbone's vocabulary, (gene, id).
    pub vocab: &'a [(String, i64)],
    /// `head_config.json`.
    pub head: &'a HeadConfigFile,
    /// Class names (empty for regression).
    pub classes: &'a [String],
    /// The resolved config, as YAML.
    pub config_yaml: &'a str,
    /// A folder of logs to copy into `logs/`.
    pub logs: Option<&'a Path>,
}

/// Refuses an existing `out` unless `overwrite`, and even then unless it is
/// empty or a fine-tuning output folder (has `head_config.json`).
pub fn check_output(out: &Path, overwrite: bool) -> Result<()> {
    if !out.exists() {
        return Ok(());
    }
    if !overwrite {
        return Err(ForgeError::checkpoint(
            out,
            "already exists; choose another --out folder, or pass --force to replace it (the \
             old folder is replaced only once the new one is complete)",
        ));
    }
    let empty = out.is_dir()
        && std::fs::read_dir(out)
            .map_err(|e| ForgeError::io(out, e))?
            .next()
            .is_none();
    if !(empty || out.join(HEAD_CONFIG_FILE).is_file()) {
        return Err(ForgeError::checkpoint(
            out,
            format!(
                "refusing to replace this folder: it is not empty and holds no \
                 {HEAD_CONFIG_FILE}, so it is not a fine-tuning output; choose another folder"
            ),
        ));
    }
    Ok(())
}

/// Writes the fine-tuned model to `out` (see the module docs), all at once.
pub fn save_finetuned(
    out: &Path,
    overwrite: bool,
    ft: &Finetuner,
    parts: SaveParts<'_>,
) -> Result<()> {
    check_output(out, overwrite)?;
    ft.merge();
    let head: Vec<(String, Tensor)> = state_dict(&ft.head)
        .into_iter()
        .map(|(n, t)| (n, t.to_kind(Kind::Float).contiguous()))
        .collect();
    forge_core::atomic::write_dir(out, overwrite, |tmp| {
        let pretrained = tmp.join(PRETRAINED_DIR);
        save_pretrained(
            ft.backbone.as_ref(),
            parts.model_config,
            parts.tokenizer_config,
            parts.vocab,
            &pretrained,
            false,
        )?;
        forge_core::atomic::write_file(
            &pretrained.join(crate::embed::TRAINING_CONFIG_FILE),
            parts.config_yaml.as_bytes(),
        )?;
        let head_path = tmp.join(HEAD_FILE);
        Tensor::write_safetensors(&head, &head_path)
            .map_err(|e| ForgeError::checkpoint(&head_path, e.to_string()))?;
        let json = serde_json::to_vec_pretty(parts.head).expect("head config serializes");
        forge_core::atomic::write_file(&tmp.join(HEAD_CONFIG_FILE), &json)?;
        if parts.head.task == FinetuneTask::Classification.to_string() {
            let json = serde_json::to_vec_pretty(parts.classes).expect("labels serialize");
            forge_core::atomic::write_file(&tmp.join(LABELS_FILE), &json)?;
        }
        forge_core::atomic::write_file(&tmp.join(CONFIG_FILE), parts.config_yaml.as_bytes())?;
        if let Some(logs) = parts.logs.filter(|l| l.is_dir()) {
            let dest = tmp.join("logs");
            std::fs::create_dir_all(&dest).map_err(|e| ForgeError::io(&dest, e))?;
            for entry in std::fs::read_dir(logs).map_err(|e| ForgeError::io(logs, e))? {
                let entry = entry.map_err(|e| ForgeError::io(logs, e))?;
                if entry.path().is_file() {
                    std::fs::copy(entry.path(), dest.join(entry.file_name()))
                        .map_err(|e| ForgeError::io(entry.path(), e))?;
                }
            }
        }
        Ok(())
    })
}

/// A fine-tuned model loaded back.
pub struct FinetunedModel {
    /// Backbone and head, ready for [`Finetuner::predict`].
    pub finetuner: Finetuner,
    /// What `head_config.json` says.
    pub head_config: HeadConfigFile,
    /// Class names in id order (empty for regression).
    pub classes: Vec<String>,
    /// The backbone checkpoint's configs and vocabulary (its model is in
    /// `finetuner`).
    pub model_config: ModelConfig,
    /// The backbone's tokenizer config.
    pub tokenizer_config: Option<TokenizerConfig>,
    /// The backbone's vocabulary.
    pub vocab: Option<Vec<(String, i64)>>,
}

impl std::fmt::Debug for FinetunedModel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FinetunedModel")
            .field("finetuner", &self.finetuner)
            .field("head_config", &self.head_config)
            .field("classes", &self.classes)
            .finish_non_exhaustive()
    }
}

/// Loads a folder written by [`save_finetuned`] onto `device`.
pub fn load_finetuned(dir: &Path, device: Device) -> Result<FinetunedModel> {
    let head_config_path = dir.join(HEAD_CONFIG_FILE);
    let text =
        std::fs::read(&head_config_path).map_err(|e| ForgeError::io(&head_config_path, e))?;
    let head_config: HeadConfigFile = serde_json::from_slice(&text)
        .map_err(|e| ForgeError::checkpoint(&head_config_path, format!("not valid: {e}")))?;
    let LoadedModel {
        model,
        config,
        tokenizer_config,
        vocab,
        ..
    } = load_pretrained(&dir.join(PRETRAINED_DIR), device)?;
    let cfg = head_config
        .head_config()
        .map_err(|e| ForgeError::checkpoint(&head_config_path, e.to_string()))?;
    let vs = VarStore::new(device);
    let head = TaskHead::new(
        &vs.root(),
        head_config.input_dim,
        head_config.n_outputs,
        &cfg,
    );
    let head_path = dir.join(HEAD_FILE);
    let tensors = Tensor::read_safetensors(&head_path)
        .map_err(|e| ForgeError::checkpoint(&head_path, format!("not readable: {e}")))?;
    load_state_dict(&head, &tensors)
        .map_err(|m| ForgeError::checkpoint(&head_path, m.to_string()))?;
    let classes = if cfg.task == FinetuneTask::Classification {
        let path = dir.join(LABELS_FILE);
        let text = std::fs::read(&path).map_err(|e| ForgeError::io(&path, e))?;
        serde_json::from_slice(&text)
            .map_err(|e| ForgeError::checkpoint(&path, format!("not a list of names: {e}")))?
    } else {
        Vec::new()
    };
    Ok(FinetunedModel {
        finetuner: Finetuner::with_head(model, head, None, cfg.task, vs),
        head_config,
        classes,
        model_config: config,
        tokenizer_config,
        vocab,
    })
}
