//! Training checkpoints in `training.checkpoint_dir`:
//!
//! - `last/`: written at the end of every epoch and on interruption; what
//!   `resume_from` reads to continue exactly where training stopped.
//! - `epoch-EEE/`: one per epoch, only the best `save_top_k` by validation
//!   loss are kept (`-1` keeps all, `0` none).
//!
//! Each holds `model.safetensors` (PyTorch state-dict names),
//! `optimizer.safetensors` and `trainer_state.json`. Every folder is
//! written atomically, so a failed save (a full disk) leaves the previous
//! checkpoint intact.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use tch::Tensor;

use crate::train::optim::Optimizer;
use forge_core::atomic::{write_dir, write_file};
use forge_core::error::{ForgeError, Result};
use forge_core::model::ForgeModel;
use forge_core::state_dict::{load_state_dict, state_dict};

/// Where training stands; enough to continue it exactly.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct ResumeState {
    /// Epoch in progress (0-based).
    pub epoch: usize,
    /// Batches of that epoch already consumed.
    pub batch_in_epoch: usize,
    /// Optimizer steps taken.
    pub step: i64,
    /// Kept epoch checkpoints: (validation loss, epoch), best first.
    pub best: Vec<(f64, usize)>,
    /// Last validation loss, if any.
    pub last_val_loss: Option<f64>,
}

/// The checkpoint folder of one run.
#[derive(Debug, Clone)]
pub struct TrainCheckpoints {
    dir: PathBuf,
    save_top_k: i64,
}

impl TrainCheckpoints {
    /// Checkpoints under `dir`, keeping the best `save_top_k` epochs.
    pub fn new(dir: impl Into<PathBuf>, save_top_k: i64) -> Self {
        TrainCheckpoints {
            dir: dir.into(),
            save_top_k,
        }
    }

    /// The folder.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Folder of the checkpoint of `epoch`.
    pub fn epoch_dir(&self, epoch: usize) -> PathBuf {
        self.dir.join(format!("epoch-{epoch:03}"))
    }

    /// Writes `last/` (always replaced).
    pub fn save_last(
        &self,
        model: &dyn ForgeModel,
        optimizer: &Optimizer,
        state: &ResumeState,
    ) -> Result<()> {
        save(&self.dir.join("last"), model, optimizer, state)
    }

    /// Records the validation loss of `completed` (an epoch); writes
    /// `epoch-EEE/` when it is among the best `save_top_k`, and deletes
    /// checkpoints that fell out. `state` is where training stands after it.
    pub fn save_epoch(
        &self,
        model: &dyn ForgeModel,
        optimizer: &Optimizer,
        state: &mut ResumeState,
        completed: usize,
        val_loss: f64,
    ) -> Result<()> {
        if self.save_top_k == 0 {
            return Ok(());
        }
        let mut best = state.best.clone();
        best.push((val_loss, completed));
        best.sort_by(|a, b| a.0.total_cmp(&b.0));
        let keep = if self.save_top_k < 0 {
            best.len()
        } else {
            self.save_top_k as usize
        };
        let dropped: Vec<(f64, usize)> = best.split_off(keep.min(best.len()));
        if best.iter().any(|b| b.1 == completed) {
            state.best = best;
            save(&self.epoch_dir(completed), model, optimizer, state)?;
        } else {
            state.best = best;
        }
        for (_, epoch) in dropped {
            let dir = self.epoch_dir(epoch);
            if dir.exists() {
                std::fs::remove_dir_all(&dir).map_err(|e| ForgeError::io(&dir, e))?;
            }
        }
        Ok(())
    }
}

fn save(
    dir: &Path,
    model: &dyn ForgeModel,
    optimizer: &Optimizer,
    state: &ResumeState,
) -> Result<()> {
    write_dir(dir, true, |tmp| {
        write_tensors(&tmp.join("model.safetensors"), &state_dict(model))?;
        write_tensors(&tmp.join("optimizer.safetensors"), &optimizer.state())?;
        let json = serde_json::to_vec_pretty(state).expect("state serializes");
        write_file(&tmp.join("trainer_state.json"), &json)
    })
}

fn write_tensors(path: &Path, tensors: &[(String, Tensor)]) -> Result<()> {
    let named: Vec<(&str, Tensor)> = tensors
        .iter()
        .map(|(n, t)| (n.as_str(), t.to_device(tch::Device::Cpu).contiguous()))
        .collect();
    Tensor::write_safetensors(&named, path).map_err(|e| ForgeError::checkpoint(path, e.to_string()))
}

/// Loads a training checkpoint folder into `model` and `optimizer` and
/// returns where training stood.
pub fn load(dir: &Path, model: &dyn ForgeModel, optimizer: &mut Optimizer) -> Result<ResumeState> {
    let read = |name: &str| {
        let path = dir.join(name);
        if !path.exists() {
            return Err(ForgeError::checkpoint(
                &path,
                "missing: resume_from must name a training checkpoint folder \
                 (checkpoint_dir/last or checkpoint_dir/epoch-NNN)",
            ));
        }
        Tensor::read_safetensors(&path).map_err(|e| ForgeError::checkpoint(&path, e.to_string()))
    };
    let weights = read("model.safetensors")?;
    let opt_state = read("optimizer.safetensors")?;
    let state_path = dir.join("trainer_state.json");
    let text = std::fs::read_to_string(&state_path).map_err(|e| ForgeError::io(&state_path, e))?;
    let state: ResumeState = serde_json::from_str(&text)
        .map_err(|e| ForgeError::checkpoint(&state_path, e.to_string()))?;
    load_state_dict(model, &weights)
        .map_err(|e| ForgeError::checkpoint(dir.join("model.safetensors"), e.to_string()))?;
    optimizer
        .load_state(&opt_state)
        .map_err(|e| ForgeError::checkpoint(dir.join("optimizer.safetensors"), e))?;
    Ok(state)
}
