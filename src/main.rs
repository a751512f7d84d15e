//! `forge`: the command-line front end of forge.
//!
//! Each subcommand lives in its own module under `commands/`; this file only
//! parses arguments and reports errors the same way for all of them.

mod commands;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// Single-cell foundation models on libtorch.
#[derive(Debug, Parser)]
#[command(name = "forge", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Check the libtorch setup: version, library path, CUDA, threads.
    Doctor,
    /// Validate a scModelForge YAML config and print it fully resolved.
    Config(commands::config::Args),
    /// List the registered model architectures.
    Models(commands::models::Args),
    /// Describe an .h5ad file: shape, layout, columns, values, gene ids.
    Inspect(commands::inspect::Args),
    /// Write a synthetic .h5ad of negative-binomial counts.
    Synth(commands::synth::Args),
    /// Normalise, log1p and select highly variable genes of an .h5ad, as
    /// scModelForge's `preprocess` does.
    Preprocess(commands::preprocess::Args),
    /// Pretrain a model as a config says.
    Train(commands::train::Args),
    /// Fine-tune a checkpoint on labelled cells (classification or regression).
    Finetune(commands::finetune::Args),
    /// Write cell embeddings of a checkpoint (.h5ad obsm/X_forge or .npy).
    Embed(commands::embed::Args),
    /// Assess a checkpoint's embeddings against baselines.
    Assess(commands::assess::Args),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Doctor => commands::doctor::run(),
        Command::Config(args) => commands::config::run(&args),
        Command::Models(args) => commands::models::run(&args),
        Command::Inspect(args) => commands::inspect::run(&args),
        Command::Synth(args) => commands::synth::run(&args),
        Command::Preprocess(args) => commands::preprocess::run(&args),
        Command::Train(args) => commands::train::run(&args),
        Command::Finetune(args) => commands::finetune::run(&args),
        Command::Embed(args) => commands::embed::run(&args),
        Command::Assess(args) => commands::assess::run(&args),
    };
    match result {
        Ok(code) => code,
        Err(err) => {
            eprintln!("error: {}", error_chain(&err));
            ExitCode::FAILURE
        }
    }
}

/// The error and its causes joined with `: `, as `{:#}` writes them, but
/// leaving out a cause whose text the message already holds (an error that
/// prints its own source, such as "cannot read the file: No such file or
/// directory (os error 2)", would otherwise repeat it).
fn error_chain(err: &anyhow::Error) -> String {
    let mut out = String::new();
    for cause in err.chain() {
        let text = cause.to_string();
        if out.is_empty() {
            out = text;
        } else if !out.contains(&text) {
            out.push_str(": ");
            out.push_str(&text);
        }
    }
    out
}
