//! `forge preprocess --config F --data IN.h5ad --out OUT.h5ad`: normalise,
//! log1p and select highly variable genes once, as scModelForge's
//! `preprocess` command does, so that training reads the result as it is.
//!
//! The config's `data` section decides how cells are read and processed
//! (`use_raw`, `gene_key`, `preprocessing.normalize`, `target_sum`,
//! `log1p`) and `preprocessing.hvg_selection` how many highly variable
//! genes are kept (`--hvg N` overrides it). Without `--data` the first file
//! of `data.paths` is read; without `--config` the defaults apply
//! (library-size normalisation to 1e4, log1p, no HVG selection).

use std::path::PathBuf;
use std::process::ExitCode;

use forge_core::ForgeConfig;
use forge_core::config::DataConfig;
use forge_data::preprocess_file::preprocess_h5ad;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// The scModelForge YAML config (its `data` section).
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// The input .h5ad (default: the first of data.paths).
    #[arg(long)]
    pub data: Option<PathBuf>,
    /// The output .h5ad.
    #[arg(long)]
    pub out: PathBuf,
    /// Keep the N most highly variable genes (overrides
    /// data.preprocessing.hvg_selection).
    #[arg(long)]
    pub hvg: Option<usize>,
}

pub fn run(args: &Args) -> anyhow::Result<ExitCode> {
    let data = match &args.config {
        Some(path) => match ForgeConfig::load(path) {
            Ok(cfg) => cfg.data,
            Err(errors) => {
                eprintln!("{errors}");
                return Ok(ExitCode::FAILURE);
            }
        },
        None => DataConfig::default(),
    };
    let input = match (&args.data, data.paths.first()) {
        (Some(p), _) => p.clone(),
        (None, Some(p)) => PathBuf::from(p),
        (None, None) => anyhow::bail!(
            "no input: give --data IN.h5ad, or a --config whose data.paths names a file"
        ),
    };
    let hvg = match (args.hvg, data.preprocessing.hvg_selection) {
        (Some(n), _) => Some(n),
        (None, Some(n)) if n >= 1 => Some(n as usize),
        (None, Some(n)) => anyhow::bail!(
            "data.preprocessing.hvg_selection must be a positive number of genes or null, found {n}"
        ),
        (None, None) => None,
    };
    eprintln!(
        "Preprocessing {} -> {}",
        input.display(),
        args.out.display()
    );
    let s = preprocess_h5ad(&input, &args.out, &data, hvg)?;
    match hvg {
        Some(n) => println!(
            "{} cells; highly variable genes (seurat, n_top_genes {n}): {} -> {} genes; wrote {}",
            s.n_cells,
            s.n_genes_in,
            s.n_genes_out,
            s.output.display()
        ),
        None => println!(
            "{} cells x {} genes; wrote {}",
            s.n_cells,
            s.n_genes_out,
            s.output.display()
        ),
    }
    Ok(ExitCode::SUCCESS)
}
