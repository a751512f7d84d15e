//! The command line, defined once: every command, argument and value of
//! `forge-gen` (clap derive). The binary parses it (`main.rs`), and the
//! `forge-gen new ...` command recorded in the header of a generated file
//! is read back with the same definition ([`NewRequest::from_args`]), so
//! the two cannot disagree on a flag or a value name.

use std::path::PathBuf;

use anyhow::{Result, bail};
use clap::{Args, Parser, Subcommand, ValueEnum};

/// A new forge model in one command: model file, registration, config
/// fields, tests, docs and an example config, then fmt, clippy and the new
/// tests.
#[derive(Debug, Parser)]
#[command(name = "forge-gen", version, about)]
pub struct Cli {
    /// The forge workspace (default: the nearest folder above the current
    /// one whose Cargo.toml has [workspace]).
    #[arg(long, global = true, value_name = "PATH")]
    pub root: Option<PathBuf>,
    /// Work in a plugin crate (a crate depending on forge-core) instead of
    /// the forge workspace.
    #[arg(long = "crate", global = true, value_name = "PATH")]
    pub plugin: Option<PathBuf>,
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// The commands.
#[derive(Debug, Subcommand)]
pub enum Command {
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

/// `forge-gen new`: the request (what is generated) and how to run it.
#[derive(Debug, Args)]
pub struct NewArgs {
    /// What to generate.
    #[command(flatten)]
    pub request: NewRequest,
    /// Print the plan and a diff; write nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// Overwrite files that differ from what would be generated.
    #[arg(long)]
    pub force: bool,
    /// Skip fmt, clippy and the new tests after writing.
    #[arg(long)]
    pub no_verify: bool,
}

/// `forge-gen remove`.
#[derive(Debug, Args)]
pub struct RemoveArgs {
    /// The model to remove.
    pub name: String,
    /// Print the plan and a diff; write nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// Remove files and entries even if edited by hand.
    #[arg(long)]
    pub force: bool,
}

/// The inputs of `forge-gen new` that decide what is generated (and are
/// recorded in the header of the generated files).
#[derive(Debug, Clone, Default, PartialEq, Args)]
pub struct NewRequest {
    /// The model name: snake_case, e.g. `my_model`.
    pub name: String,
    /// Start from this existing model instead of the blank template.
    #[arg(long, value_name = "EXISTING")]
    pub from: Option<String>,
    /// Prediction head of the blank template (default masked_gene).
    #[arg(long, value_enum)]
    pub head: Option<Head>,
    /// Pooling of the example config (default cls).
    #[arg(long, value_enum)]
    pub pooling: Option<PoolingChoice>,
    /// A model option NAME:TYPE=DEFAULT (repeatable), e.g.
    /// `decoder_scale:f64=0.5`; TYPE is i64, f64, bool, String or Option<..>.
    #[arg(long = "option", value_name = "NAME:TYPE=DEFAULT")]
    pub options: Vec<String>,
}

/// The prediction head of a blank model.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Head {
    /// Genes over the vocabulary (`MaskedGenePredictionHead`).
    #[value(name = "masked_gene")]
    MaskedGene,
    /// Expression bins (`BinPredictionHead` over `n_bins`).
    #[value(name = "bin")]
    Bin,
    /// Expression values (`ExpressionPredictionHead`).
    #[value(name = "expression")]
    Expression,
}

/// The pooling a blank model's example config uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum PoolingChoice {
    /// First (CLS) token.
    #[value(name = "cls")]
    Cls,
    /// Mean over real tokens.
    #[value(name = "mean")]
    Mean,
}

/// The name of a value on the command line (and in configs), as clap
/// spells it.
pub fn value_name(value: impl ValueEnum) -> String {
    value
        .to_possible_value()
        .map(|v| v.get_name().to_string())
        .unwrap_or_default()
}

/// Only `new`'s request, for reading a recorded command back.
#[derive(Debug, Parser)]
#[command(name = "forge-gen")]
struct Recorded {
    #[command(subcommand)]
    command: RecordedCommand,
}

#[derive(Debug, Subcommand)]
enum RecordedCommand {
    New(NewRequest),
}

impl NewRequest {
    /// The request as `forge-gen` arguments (`new NAME --head bin ...`),
    /// as recorded in the header of generated files.
    pub fn to_args(&self) -> Vec<String> {
        let mut args = vec!["new".to_string(), self.name.clone()];
        if let Some(from) = &self.from {
            args.extend(["--from".to_string(), from.clone()]);
        }
        if let Some(head) = self.head {
            args.extend(["--head".to_string(), value_name(head)]);
        }
        if let Some(pooling) = self.pooling {
            args.extend(["--pooling".to_string(), value_name(pooling)]);
        }
        for option in &self.options {
            args.extend(["--option".to_string(), option.clone()]);
        }
        args
    }

    /// Reads arguments written by [`Self::to_args`], with the command
    /// line's own definition.
    pub fn from_args(args: &[String]) -> Result<Self> {
        let argv = std::iter::once("forge-gen").chain(args.iter().map(String::as_str));
        match Recorded::try_parse_from(argv) {
            Ok(Recorded {
                command: RecordedCommand::New(request),
            }) => Ok(request),
            Err(err) => {
                let text = err.to_string();
                let first = text.lines().next().unwrap_or_default();
                let first = first.strip_prefix("error: ").unwrap_or(first);
                bail!(
                    "not a `forge-gen new` command ({}): {first}",
                    args.join(" ")
                )
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recorded_commands_round_trip_through_the_cli_definition() {
        let request = NewRequest {
            name: "m".into(),
            from: None,
            head: Some(Head::MaskedGene),
            pooling: Some(PoolingChoice::Mean),
            options: vec!["a:f64=1".into(), "b:Option<i64>".into()],
        };
        let args = request.to_args();
        assert_eq!(
            args.join(" "),
            "new m --head masked_gene --pooling mean --option a:f64=1 --option b:Option<i64>"
        );
        assert_eq!(NewRequest::from_args(&args).unwrap(), request);
        for (bad, why) in [
            ("remove m", "not a `forge-gen new` command"),
            ("new m --head big", "big"),
            ("new m --dry-run", "--dry-run"),
        ] {
            let args: Vec<String> = bad.split(' ').map(String::from).collect();
            let err = NewRequest::from_args(&args).unwrap_err().to_string();
            assert!(err.contains(why), "{bad}: {err}");
        }
    }

    #[test]
    fn the_cli_definition_is_consistent() {
        use clap::CommandFactory as _;
        Cli::command().debug_assert();
    }
}
