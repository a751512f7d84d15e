//! `forge embed --model DIR --data cells.h5ad --out emb.h5ad|emb.npy`:
//! cell embeddings from a checkpoint.
//!
//! Cells are tokenized with the checkpoint's vocabulary and tokenizer
//! config (gene coverage is reported, and too little overlap is refused).
//! An `.h5ad` output is a copy of the input with the embeddings in
//! `obsm["X_forge"]` (obs kept); an `.npy` output is a float32
//! `(n_cells, dim)` array. Both are written atomically.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use super::gene_args::GeneArgs;
use super::precision_args::PrecisionArgs;
use anyhow::{Context, bail};
use forge_core::runtime::RuntimeInfo;
use forge_train::embed::embed_cells;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Checkpoint folder (save_pretrained layout).
    #[arg(long)]
    pub model: PathBuf,
    /// The cells to embed (.h5ad).
    #[arg(long)]
    pub data: PathBuf,
    /// Output file: .h5ad (copy of the input + obsm/X_forge) or .npy.
    #[arg(long)]
    pub out: PathBuf,
    /// Cells per batch.
    #[arg(long, default_value_t = 64)]
    pub batch_size: usize,
    #[command(flatten)]
    pub genes: GeneArgs,
    #[command(flatten)]
    pub precision: PrecisionArgs,
}

pub fn run(args: &Args) -> anyhow::Result<ExitCode> {
    let kind = output_kind(&args.out)?;
    let device = RuntimeInfo::default_device();
    let (loaded, pipeline) = args
        .genes
        .open_checkpoint(&args.model, &args.data, device)?;
    let precision = args.precision.resolve(&args.model, device)?;
    let emb = forge_core::precision::with_precision(precision, device, || {
        embed_cells(loaded.model.as_ref(), &pipeline, args.batch_size, device)
    })?;
    match kind {
        Output::H5ad => {
            forge_data::write_embeddings(&args.data, &args.out, "X_forge", &emb.values, emb.dim)?
        }
        Output::Npy => write_npy(&args.out, &emb.values, emb.n_cells, emb.dim)
            .with_context(|| format!("writing {}", args.out.display()))?,
    }
    println!(
        "wrote {} embeddings of {} dims to {}",
        emb.n_cells,
        emb.dim,
        args.out.display()
    );
    Ok(ExitCode::SUCCESS)
}

enum Output {
    H5ad,
    Npy,
}

fn output_kind(path: &Path) -> anyhow::Result<Output> {
    match path.extension().and_then(|e| e.to_str()) {
        Some("h5ad") => Ok(Output::H5ad),
        Some("npy") => Ok(Output::Npy),
        _ => bail!(
            "{}: unknown output type; use a .h5ad (copy of the input with obsm/X_forge) or .npy file",
            path.display()
        ),
    }
}

/// Writes a float32 C-order `.npy` (format 1.0) atomically.
pub fn write_npy(path: &Path, values: &[f32], rows: usize, cols: usize) -> anyhow::Result<()> {
    let mut header =
        format!("{{'descr': '<f4', 'fortran_order': False, 'shape': ({rows}, {cols}), }}");
    let unpadded = 10 + header.len() + 1;
    header.push_str(&" ".repeat((64 - unpadded % 64) % 64));
    header.push('\n');
    let mut bytes = Vec::with_capacity(10 + header.len() + values.len() * 4);
    bytes.extend_from_slice(b"\x93NUMPY\x01\x00");
    bytes.extend_from_slice(&(header.len() as u16).to_le_bytes());
    bytes.extend_from_slice(header.as_bytes());
    for v in values {
        bytes.extend_from_slice(&v.to_le_bytes());
    }
    forge_core::atomic::write_file(path, &bytes)?;
    Ok(())
}
