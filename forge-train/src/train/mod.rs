//! Pretraining: the loop that turns a registered model and a stream of
//! batches into trained weights, with the optimizer, schedule, clipping,
//! accumulation, validation, top-k checkpoints, resume and metrics logs.
//!
//! The loop itself ([`fit`]) is shared with fine-tuning: pretraining
//! ([`run`]) and `crate::finetune` are two tasks of it.
//!
//! The loop only talks to models through the contract (`loss`, `forward`),
//! so any registered model trains unchanged. Data comes through
//! [`BatchSource`], which the data pipeline implements; this module does not
//! read files or tokenize.

pub(crate) mod checkpoints;
pub mod fit;
pub(crate) mod metrics;
pub mod optim;
pub mod parallel;
pub(crate) mod run;
pub mod schedule;
pub(crate) mod step;
pub mod tensorboard;

pub use checkpoints::{ResumeState, TrainCheckpoints};
pub use fit::{SingleProcess, StopReason, Strategy};
pub use metrics::{AssessmentMetric, LoggerKind, MetricsLog, StepMetrics};
pub use parallel::DataParallel;
pub use run::{TrainOptions, TrainSummary, train};

use forge_core::batch::Batch;
use forge_core::error::Result;

impl BatchSource for forge_data::DataLoader {
    fn batches(&self, epoch: usize) -> Box<dyn Iterator<Item = Result<Batch>> + '_> {
        Box::new(
            self.epoch(epoch as u64)
                .map(|b| b.map_err(forge_core::ForgeError::from)),
        )
    }
    fn num_batches(&self) -> Option<usize> {
        Some(self.n_batches())
    }
}

/// Benchmarks run by the training loop after each epoch (after
/// validation); what they return goes into the metrics log. See
/// `crate::harness::TrainingAssessment`.
pub trait EpochAssessment: std::fmt::Debug {
    /// Runs whatever is due after `epoch` (0-based) with `step` optimizer
    /// steps taken; an empty list when nothing is due.
    fn after_epoch(
        &self,
        model: &dyn forge_core::model::ForgeModel,
        epoch: usize,
        step: i64,
    ) -> Result<Vec<AssessmentMetric>>;
}

/// Something that yields the batches of one epoch, in a deterministic order
/// for a given epoch (resume relies on it).
pub trait BatchSource {
    /// The batches of `epoch`.
    fn batches(&self, epoch: usize) -> Box<dyn Iterator<Item = Result<Batch>> + '_>;
    /// Batches per epoch, when known (progress bars).
    fn num_batches(&self) -> Option<usize>;
}

#[cfg(test)]
pub(crate) mod tests;
