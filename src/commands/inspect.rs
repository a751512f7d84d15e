//! `forge inspect FILE.h5ad [--model DIR]`: describes an AnnData file so a
//! user knows what they are feeding in: shape, layout (dense/CSR/CSC,
//! current or pre-0.7 AnnData), obs and var columns with their types,
//! whether `raw` exists, value statistics of X and raw (integer counts or
//! not), and which kind of gene identifiers var uses. With `--model DIR`
//! it also reports how the model's `gene_vocab.json` covers the file's
//! genes (and fails when coverage is below the threshold).

use std::path::PathBuf;
use std::process::ExitCode;

use forge_data::genes::{Coverage, IdSummary, gene_names};
use forge_data::{GeneVocab, H5ad, Matrix};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// The `.h5ad` file to describe.
    pub file: PathBuf,
    /// A checkpoint directory: report gene coverage against its
    /// `gene_vocab.json`.
    #[arg(long)]
    pub model: Option<PathBuf>,
    /// var column holding gene names (default: the var index).
    #[arg(long)]
    pub gene_key: Option<String>,
    /// Describe `raw` genes instead of X's (for coverage).
    #[arg(long)]
    pub use_raw: bool,
    /// Match gene symbols regardless of case.
    #[arg(long)]
    pub case_insensitive: bool,
    /// Least share of expression the vocabulary must cover.
    #[arg(long, default_value_t = forge_data::genes::DEFAULT_MIN_COVERAGE)]
    pub min_coverage: f64,
}

pub fn run(args: &Args) -> anyhow::Result<ExitCode> {
    let file = H5ad::open(&args.file)?;
    print!("{}", file.summary()?);
    let which = if args.use_raw { Matrix::Raw } else { Matrix::X };
    let names = gene_names(&file, which, args.gene_key.as_deref())?;
    let source = args
        .gene_key
        .as_deref()
        .map_or("var index".to_string(), |k| format!("var column `{k}`"));
    println!("{:<10}{} ({source})", "gene ids", IdSummary::of(&names));
    let Some(dir) = &args.model else {
        return Ok(ExitCode::SUCCESS);
    };
    let vocab = GeneVocab::load(dir.join("gene_vocab.json"))?;
    let cov = Coverage::measure(
        &file,
        which,
        &names,
        args.gene_key.as_deref(),
        &vocab,
        args.case_insensitive,
    )?;
    println!("coverage against {}:", dir.display());
    for line in cov.to_string().lines() {
        println!("  {line}");
    }
    cov.check(args.min_coverage)?;
    Ok(ExitCode::SUCCESS)
}
