//! Training checkpoints in `training.checkpoint_dir`:
//!
//! - `last/`: written at the end of every epoch and on interruption; what
//!   `resume_from` reads to continue exactly where training stopped.
//! - `epoch-EEE/`: one per epoch, only the best `save_top_k` by validation
//!   loss are kept (`-1` keeps all, `0` none).
//!
//! Each holds `trainer_state.json` ([`ResumeState`]) and what the training
//! task saves: for pretraining `model.safetensors` (PyTorch state-dict
//! names) and `optimizer.safetensors`; for fine-tuning see
//! `crate::finetune::run`. Every folder is written atomically, so a failed
//! save (a full disk) leaves the previous checkpoint intact.
//!
//! The record of the best epochs is `best` in `last/trainer_state.json`.
//! After an epoch, [`TrainCheckpoints::end_epoch`] writes (1) the new
//! `epoch-EEE/` when it made the top k, (2) `last/` with the updated record,
//! (3) only then deletes what fell out. A crash between any two of these
//! leaves folders the record does not name; a run resumed from `last/`
//! deletes them ([`TrainCheckpoints::reconcile`]), so a job killed and
//! resumed any number of times still ends with `save_top_k` epoch folders.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use tch::Tensor;

use crate::train::optim::Optimizer;
use forge_core::atomic::{write_dir, write_file};
use forge_core::error::{ForgeError, Result};
use forge_core::state_dict::load_state_dict;

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

    /// Writes `last/` (always replaced): `write` fills the folder being
    /// built with the task's tensors, then `trainer_state.json` is added.
    pub fn save_last(&self, write: &WriteParts, state: &ResumeState) -> Result<()> {
        save(&self.dir.join("last"), write, state)
    }

    /// Saves the end of an epoch: `last/` always and, when `val_loss` is
    /// given, `epoch-EEE/` for `completed` if it is among the best
    /// `save_top_k`; then deletes the epoch checkpoints that fell out.
    /// `state` is where training stands after the epoch; its record of the
    /// best is updated first, so `last/` always names exactly the epoch
    /// folders that should exist (see the module docs for the crash order).
    pub fn end_epoch(
        &self,
        write: &WriteParts,
        state: &mut ResumeState,
        completed: usize,
        val_loss: Option<f64>,
    ) -> Result<()> {
        let dropped = match val_loss {
            Some(loss) => self.rank(state, completed, loss),
            None => Vec::new(),
        };
        if state.best.iter().any(|b| b.1 == completed) {
            save(&self.epoch_dir(completed), write, state)?;
        }
        self.save_last(write, state)?;
        for (_, epoch) in dropped {
            self.remove_epoch(epoch)?;
        }
        Ok(())
    }

    /// Puts `(val_loss, completed)` into the record of the best and returns
    /// the entries that fell out of the top `save_top_k`.
    fn rank(&self, state: &mut ResumeState, completed: usize, val_loss: f64) -> Vec<(f64, usize)> {
        if self.save_top_k == 0 {
            return Vec::new();
        }
        let mut best = std::mem::take(&mut state.best);
        best.retain(|b| b.1 != completed);
        best.push((val_loss, completed));
        best.sort_by(|a, b| a.0.total_cmp(&b.0));
        let keep = usize::try_from(self.save_top_k).unwrap_or(best.len());
        let dropped = best.split_off(keep.min(best.len()));
        state.best = best;
        dropped
    }

    fn remove_epoch(&self, epoch: usize) -> Result<()> {
        let dir = self.epoch_dir(epoch);
        if dir.exists() {
            std::fs::remove_dir_all(&dir).map_err(|e| ForgeError::io(&dir, e))?;
        }
        Ok(())
    }

    /// Makes the folder agree with the record of a run resumed from
    /// `last/`: deletes every `epoch-EEE/` that `state.best` does not name
    /// (left by a run killed between saving and deleting). Returns the
    /// epochs deleted.
    pub fn reconcile(&self, state: &ResumeState) -> Result<Vec<usize>> {
        let entries = match std::fs::read_dir(&self.dir) {
            Ok(e) => e,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(ForgeError::io(&self.dir, e)),
        };
        let mut removed = Vec::new();
        for entry in entries {
            let entry = entry.map_err(|e| ForgeError::io(&self.dir, e))?;
            let name = entry.file_name();
            let Some(epoch) = name
                .to_str()
                .and_then(|n| n.strip_prefix("epoch-"))
                .and_then(|n| n.parse::<usize>().ok())
            else {
                continue;
            };
            if entry.path() == self.epoch_dir(epoch) && !state.best.iter().any(|b| b.1 == epoch) {
                self.remove_epoch(epoch)?;
                removed.push(epoch);
            }
        }
        removed.sort_unstable();
        Ok(removed)
    }

    /// Whether `dir` is this run's `last/` (resuming from it reconciles).
    pub fn is_last(&self, dir: &Path) -> bool {
        let canon = |p: &Path| std::fs::canonicalize(p).ok();
        canon(dir).is_some() && canon(dir) == canon(&self.dir.join("last"))
    }
}

/// Fills a checkpoint folder being built with what a training task saves
/// (weights, optimizer states).
pub type WriteParts<'a> = dyn Fn(&Path) -> Result<()> + 'a;

fn save(dir: &Path, write: &WriteParts, state: &ResumeState) -> Result<()> {
    write_dir(dir, true, |tmp| {
        write(tmp)?;
        let json = serde_json::to_vec_pretty(state).expect("state serializes");
        write_file(&tmp.join("trainer_state.json"), &json)
    })
}

/// Writes named tensors to a safetensors file (on the CPU, contiguous).
pub(crate) fn write_tensors(path: &Path, tensors: &[(String, Tensor)]) -> Result<()> {
    let named: Vec<(&str, Tensor)> = tensors
        .iter()
        .map(|(n, t)| (n.as_str(), t.to_device(tch::Device::Cpu).contiguous()))
        .collect();
    Tensor::write_safetensors(&named, path).map_err(|e| ForgeError::checkpoint(path, e.to_string()))
}

/// Reads `dir/name`, a safetensors file of a training checkpoint; a missing
/// file says what `resume_from` must name.
pub(crate) fn read_tensors(dir: &Path, name: &str) -> Result<Vec<(String, Tensor)>> {
    let path = dir.join(name);
    if !path.exists() {
        return Err(ForgeError::checkpoint(
            &path,
            "missing: resume_from must name a training checkpoint folder \
             (checkpoint_dir/last or checkpoint_dir/epoch-NNN) of the same kind of run \
             (pretraining or fine-tuning)",
        ));
    }
    Tensor::read_safetensors(&path).map_err(|e| ForgeError::checkpoint(&path, e.to_string()))
}

/// Loads the weights `dir/name` into `model` (state-dict names).
pub(crate) fn read_weights<P: forge_core::params::Parameters + ?Sized>(
    dir: &Path,
    name: &str,
    model: &P,
) -> Result<()> {
    let weights = read_tensors(dir, name)?;
    load_state_dict(model, &weights)
        .map_err(|e| ForgeError::checkpoint(dir.join(name), e.to_string()))
}

/// Loads the optimizer state `dir/name` into `optimizer`.
pub(crate) fn read_optimizer(dir: &Path, name: &str, optimizer: &mut Optimizer) -> Result<()> {
    let state = read_tensors(dir, name)?;
    optimizer
        .load_state(&state)
        .map_err(|e| ForgeError::checkpoint(dir.join(name), e))
}

/// Reads a training checkpoint folder: `read` loads the task's tensors;
/// returns where training stood (`trainer_state.json`).
pub fn load(dir: &Path, read: &mut dyn FnMut(&Path) -> Result<()>) -> Result<ResumeState> {
    let state_path = dir.join("trainer_state.json");
    if !state_path.exists() {
        return Err(ForgeError::checkpoint(
            &state_path,
            "missing: resume_from must name a training checkpoint folder \
             (checkpoint_dir/last or checkpoint_dir/epoch-NNN)",
        ));
    }
    let text = std::fs::read_to_string(&state_path).map_err(|e| ForgeError::io(&state_path, e))?;
    let state: ResumeState = serde_json::from_str(&text)
        .map_err(|e| ForgeError::checkpoint(&state_path, e.to_string()))?;
    read(dir)?;
    Ok(state)
}
