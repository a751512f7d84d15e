//! `forge synth --cells N --genes G --out FILE`: writes a synthetic `.h5ad`
//! of negative-binomial counts (~90% zeros) with `cell_type` and `batch`
//! labels, for scale tests, benchmarks and demos. Generated and written a
//! block of cells at a time, so any size fits in memory.

use std::path::PathBuf;
use std::process::ExitCode;

use forge_data::synthetic::{GeneNaming, SyntheticOptions, write_synthetic_with};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Number of cells.
    #[arg(long)]
    pub cells: usize,
    /// Number of genes.
    #[arg(long)]
    pub genes: usize,
    /// The `.h5ad` file to write.
    #[arg(long)]
    pub out: PathBuf,
    /// Number of cell types.
    #[arg(long, default_value_t = 5)]
    pub types: usize,
    /// Number of batches.
    #[arg(long, default_value_t = 2)]
    pub batches: usize,
    /// Seed.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Share of nonzero entries.
    #[arg(long, default_value_t = 0.1)]
    pub nonzero: f64,
    /// Name genes with Ensembl ids instead of symbols.
    #[arg(long)]
    pub ensembl: bool,
}

pub fn run(args: &Args) -> anyhow::Result<ExitCode> {
    let opts = SyntheticOptions {
        n_cells: args.cells,
        n_genes: args.genes,
        n_types: args.types,
        n_batches: args.batches,
        seed: args.seed,
        nonzero_fraction: args.nonzero,
        naming: if args.ensembl {
            GeneNaming::Ensembl
        } else {
            GeneNaming::Symbols
        },
        ..SyntheticOptions::default()
    };
    let start = std::time::Instant::now();
    write_synthetic_with(&args.out, &opts)?;
    println!(
        "wrote {} ({} cells × {} genes, {} cell types) in {:.1}s",
        args.out.display(),
        args.cells,
        args.genes,
        args.types,
        start.elapsed().as_secs_f64()
    );
    Ok(ExitCode::SUCCESS)
}
