//! `forge-gen`: scaffolds forge models. Argument parsing only; the work is
//! in the `forge_gen` library (`commands.rs`).

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand, ValueEnum};
use forge_gen::commands::{self, Location, NewFlags};
use forge_gen::generate::{Head, NewRequest, PoolingChoice};

/// A new forge model in one command: model file, registration, config
/// fields, tests, docs and an example config, then fmt, clippy and the new
/// tests.
#[derive(Debug, Parser)]
#[command(name = "forge-gen", version, about)]
struct Cli {
    /// The forge workspace (default: the nearest folder above the current
    /// one whose Cargo.toml has [workspace]).
    #[arg(long, global = true, value_name = "PATH")]
    root: Option<PathBuf>,
    /// Work in a plugin crate (a crate depending on forge-core) instead of
    /// the forge workspace.
    #[arg(long = "crate", global = true, value_name = "PATH")]
    plugin: Option<PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Generate a model (blank template, or a copy of an existing model).
    New(NewArgs),
    /// Undo what `new` did for a model.
    Remove(RemoveArgs),
    /// List the models and what each has.
    List,
    /// Check that every model is registered, tested, documented and
    /// configured; exits non-zero naming what is missing.
    Check,
}

#[derive(Debug, Args)]
struct NewArgs {
    /// The model name: snake_case, e.g. `my_model`.
    name: String,
    /// Start from this existing model instead of the blank template.
    #[arg(long, value_name = "EXISTING")]
    from: Option<String>,
    /// Prediction head of the blank template (default masked_gene).
    #[arg(long, value_enum)]
    head: Option<HeadArg>,
    /// Pooling of the example config (default cls).
    #[arg(long, value_enum)]
    pooling: Option<PoolingArg>,
    /// A model option NAME:TYPE=DEFAULT (repeatable), e.g.
    /// `decoder_scale:f64=0.5`; TYPE is i64, f64, bool, String or Option<..>.
    #[arg(long = "option", value_name = "NAME:TYPE=DEFAULT")]
    options: Vec<String>,
    /// Print the plan and a diff; write nothing.
    #[arg(long)]
    dry_run: bool,
    /// Overwrite files that differ from what would be generated.
    #[arg(long)]
    force: bool,
    /// Skip fmt, clippy and the new tests after writing.
    #[arg(long)]
    no_verify: bool,
}

#[derive(Debug, Args)]
struct RemoveArgs {
    /// The model to remove.
    name: String,
    /// Print the plan and a diff; write nothing.
    #[arg(long)]
    dry_run: bool,
    /// Remove files and entries even if edited by hand.
    #[arg(long)]
    force: bool,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum HeadArg {
    #[value(name = "masked_gene")]
    MaskedGene,
    Bin,
    Expression,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum PoolingArg {
    Cls,
    Mean,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let location = Location {
        root: cli.root,
        plugin: cli.plugin,
    };
    let result = match cli.command {
        Command::New(args) => {
            let request = NewRequest {
                name: args.name,
                from: args.from,
                head: args.head.map(|h| match h {
                    HeadArg::MaskedGene => Head::MaskedGene,
                    HeadArg::Bin => Head::Bin,
                    HeadArg::Expression => Head::Expression,
                }),
                pooling: args.pooling.map(|p| match p {
                    PoolingArg::Cls => PoolingChoice::Cls,
                    PoolingArg::Mean => PoolingChoice::Mean,
                }),
                options: args.options,
            };
            let flags = NewFlags {
                dry_run: args.dry_run,
                force: args.force,
                no_verify: args.no_verify,
            };
            commands::new(&location, &request, flags)
        }
        Command::Remove(args) => commands::remove(&location, &args.name, args.dry_run, args.force),
        Command::List => commands::list(&location),
        Command::Check => commands::check(&location),
    };
    match result {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::FAILURE,
        Err(err) => {
            eprintln!("error: {err:#}");
            ExitCode::FAILURE
        }
    }
}
