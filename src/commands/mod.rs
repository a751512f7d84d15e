//! One module per `forge` subcommand. Each exposes `run`, returning the exit
//! code or an error that `main` prints.

pub mod assess;
pub mod config;
pub mod distributed;
pub mod doctor;
pub mod embed;
pub mod finetune;
pub mod gene_args;
pub mod inspect;
pub mod models;
pub mod precision_args;
pub mod preprocess;
pub mod synth;
pub mod train;
