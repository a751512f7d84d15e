//! `forge models`: lists the registered model architectures.

use std::process::ExitCode;

#[derive(Debug, clap::Args)]
pub struct Args {}

pub fn run(_args: &Args) -> anyhow::Result<ExitCode> {
    forge_core::registry::check()?;
    let names = forge_core::registry::list();
    if names.is_empty() {
        println!("no models are registered");
    }
    for name in names {
        println!("{name}");
    }
    Ok(ExitCode::SUCCESS)
}
