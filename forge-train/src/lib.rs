//! forge-train: the pipelines that run models.
//!
//! - [`train`]: pretraining: optimizer, schedule, accumulation, validation,
//!   top-k checkpoints, resume and metrics logs.
//! - [`finetune`]: a classification or regression head on a pretrained
//!   backbone's `encode()`, with frozen or gradually unfrozen backbones and
//!   LoRA.
//! - [`embed`]: cell embeddings of a checkpoint over `.h5ad` files, read as
//!   the checkpoint was trained.
//! - [`harness`]: benchmarks that embed cells with a model and score them
//!   with `forge-assess`, during training and in `forge assess`.
//!
//! Layers: this crate builds on `forge-core` (the model contract),
//! `forge-data` (files to batches) and `forge-assess` (metrics and plots);
//! nothing below it depends on it.

pub mod embed;
pub mod finetune;
pub mod harness;
pub mod train;
