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
            // reading data: the logger and the benchmark names and params.
            let source = args.file.display().to_string();
            let logger = forge_core::train::LoggerKind::from_config(&config.training);
            let benchmarks = forge_core::assess::benchmarks::from_config(&config.eval);
            let mut refused = false;
            for errors in [logger.as_ref().err(), benchmarks.as_ref().err()]
                .into_iter()
                .flatten()
            {
                let mut errors = errors.clone();
                errors.source_name = source.clone();
                eprintln!("{errors}");
                refused = true;
            }
            if refused {
                return Ok(ExitCode::FAILURE);
            }
            warnings.print_warnings();
            if let Some(line) = logger.ok().and_then(|l| l.warning(&config.training)) {
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
