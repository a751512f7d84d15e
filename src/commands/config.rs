//! `forge config FILE.yaml`: validates a config file and prints it fully
//! resolved (every default filled in, interpolations resolved). Warnings
//! (keys set that forge, like scModelForge's training, does not use) go to
//! stderr, one `warning:` line each. On error, lists every problem with its
//! key path and exits non-zero.

use std::path::PathBuf;
use std::process::ExitCode;

use forge_core::ForgeConfig;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// The scModelForge YAML config to check.
    pub file: PathBuf,
}

pub fn run(args: &Args) -> anyhow::Result<ExitCode> {
    match ForgeConfig::load_with_warnings(&args.file) {
        Ok((config, warnings)) => {
            warnings.print_warnings();
            print!("{}", config.to_yaml_string());
            Ok(ExitCode::SUCCESS)
        }
        Err(errors) => {
            eprintln!("{errors}");
            Ok(ExitCode::FAILURE)
        }
    }
}
