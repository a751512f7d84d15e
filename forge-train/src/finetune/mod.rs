//! Fine-tuning a pretrained backbone on labelled cells (`finetune:`
//! section): a classification or regression head on the backbone's
//! `encode()`, labels from an obs column, a stratified split, a frozen
//! backbone or gradual unfreezing, separate backbone / head learning rates,
//! and optional LoRA adapters.
//!
//! Like pretraining, everything here talks to the backbone through the
//! model contract only (`encode`, named parameters, `load_pretrained`), so
//! every registered model, user models made by forge-gen included,
//! fine-tunes unchanged.
//!
//! - [`labels`]: targets from `obs[label_key]` and the stratified split.
//! - [`head`]: the task head (optional hidden layer, then a projection).
//! - [`lora`]: LoRA adapters on any model's 2-D projection weights.
//! - [`run`]: the loop, with per-epoch loss, accuracy / macro-F1 or MSE.
//! - [`save`]: the output folder (backbone checkpoint, head, labels) and
//!   loading it back.
//!
//! The backbone runs through `encode`, which models implement without
//! dropout; dropout during fine-tuning is the head's (`head.dropout`).

pub mod head;
pub mod job;
pub mod labels;
pub mod lora;
mod metrics;
pub mod run;
pub mod save;

pub use head::TaskHead;
pub use job::{JobOptions, JobReport, run_job};
pub use labels::{Split, Targets, split_cells};
pub use lora::Lora;
pub use metrics::{EpochMetrics, FinetuneLog, seconds_text};
pub use run::{FinetuneOptions, FinetuneSummary, Finetuner, finetune};
pub use save::{
    FinetunedModel, HeadConfigFile, SaveParts, check_output, load_finetuned, save_finetuned,
};

#[cfg(test)]
mod tests;
