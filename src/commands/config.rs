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
            // What `forge train` and `forge assess --config` check before
            // reading data: the benchmark names and params (the logger is
            // checked when the config loads).
            let source = args.file.display().to_string();
            if let Err(mut errors) = forge_assess::benchmarks::from_config(&config.eval) {
                errors.source_name = source;
                eprintln!("{errors}");
                return Ok(ExitCode::FAILURE);
            }
            warnings.print_warnings();
            if let Some(line) = forge_train::train::LoggerKind::from_config(&config.training)
                .ok()
                .and_then(|l| l.warning(&config.training))
            {
                eprintln!("{line}");
            }
            print!("{}", config.to_yaml_string());
            Ok(ExitCode::SUCCESS)
        }
        Err(errors) => {
            eprintln!("{errors}");
            Ok(ExitCode::FAILURE)
        }
    }
}
