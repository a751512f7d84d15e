//! `forge-gen`: scaffolds forge models. The command line is defined in
//! `cli.rs` and run by `commands.rs`, both in the `forge_gen` library.

use std::process::ExitCode;

use clap::Parser as _;

fn main() -> ExitCode {
    forge_gen::commands::run(forge_gen::cli::Cli::parse())
}
