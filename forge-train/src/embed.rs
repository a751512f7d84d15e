//! Cell embeddings from a checkpoint: tokenize new cells exactly as the
//! model was trained (its vocabulary and tokenizer config), run `encode`
//! in batches, and return one row per cell in file order. Also the
//! preprocessed expression matrix of the same cells, for baselines.
//!
//! Used by `forge embed` and `forge assess`; it writes nothing.

use std::path::{Path, PathBuf};

use tch::{Device, Kind, Tensor};

use forge_core::checkpoint::LoadedModel;
use forge_core::config::{DataConfig, ForgeConfig, PreprocessingConfig, TokenizerStrategy};
use forge_core::error::{ForgeError, Result};
use forge_core::model::ForgeModel;
use forge_data::{Corpus, DataPipeline, GeneMatchOptions, GeneVocab, LoaderOptions, Tokenizer};

/// File in a checkpoint folder, written by `forge train`, holding the full
/// resolved training config; its `data` section says how cells were read
/// (raw or X, preprocessing, gene column).
pub const TRAINING_CONFIG_FILE: &str = "forge_config.yaml";

/// Row-major embeddings, `n_cells x dim`.
#[derive(Debug, Clone, PartialEq)]
pub struct CellEmbeddings {
    /// Values, one row per cell in file order.
    pub values: Vec<f32>,
    /// Rows.
    pub n_cells: usize,
    /// Columns (the model's hidden size).
    pub dim: usize,
}

/// The training config a checkpoint folder records (`forge_config.yaml`,
/// written by `forge train`), or `None` when it has no such record (a
/// scModelForge checkpoint, for one).
pub fn recorded_config(dir: &Path) -> Result<Option<ForgeConfig>> {
    let path = dir.join(TRAINING_CONFIG_FILE);
    if !path.exists() {
        return Ok(None);
    }
    Ok(Some(ForgeConfig::load(&path)?))
}

/// How a checkpoint's cells were read: the `data` section of its record
/// ([`recorded_config`]), or `None` without one.
pub fn checkpoint_data_config(dir: &Path) -> Result<Option<DataConfig>> {
    Ok(recorded_config(dir)?.map(|c| c.data))
}

/// How cells are read for a checkpoint with no record of its preprocessing:
/// as scModelForge's evaluation reads them (its `benchmark` command,
/// `extract_embeddings`): `X` as stored, no normalisation, no log1p, no
/// gene selection.
pub fn unrecorded_data_config() -> DataConfig {
    DataConfig {
        preprocessing: PreprocessingConfig {
            normalize: None,
            log1p: false,
            hvg_selection: None,
            ..PreprocessingConfig::default()
        },
        ..DataConfig::default()
    }
}

/// A data pipeline over `paths` that tokenizes like `loaded` was trained:
/// its vocabulary (coverage checked), tokenizer config and `data` settings.
pub fn checkpoint_pipeline(
    loaded: &LoadedModel,
    dir: &Path,
    data: &DataConfig,
    paths: &[PathBuf],
) -> Result<DataPipeline> {
    let data = DataConfig {
        paths: paths.iter().map(|p| p.display().to_string()).collect(),
        ..data.clone()
    };
    let tokenizer_config = loaded.tokenizer_config.clone().unwrap_or_default();
    if tokenizer_config.strategy == TokenizerStrategy::Geneformer {
        // Geneformer's token dictionary is the vocabulary: the cells are
        // tokenized from the dictionaries the tokenizer config names, and
        // must fit the model's embedding table.
        let pipeline = DataPipeline::geneformer(&data, &tokenizer_config, None)?;
        for w in pipeline.warnings() {
            eprintln!("warning: {w}");
        }
        let size = pipeline.vocab().len() as i64;
        if let Some(model_size) = loaded.config.vocab_size
            && model_size != size
        {
            return Err(ForgeError::checkpoint(
                dir.join("config.json"),
                format!(
                    "the model's vocab_size is {model_size}, but tokenizer.token_dictionary ({}) \
                     holds ids up to {}: the dictionary is not the one the model was trained \
                     with",
                    tokenizer_config.token_dictionary.as_deref().unwrap_or(""),
                    size - 1
                ),
            ));
        }
        return Ok(pipeline);
    }
    let corpus = Corpus::from_config(&data)?;
    let pairs = loaded.vocab.clone().ok_or_else(|| {
        ForgeError::checkpoint(
            dir.join("gene_vocab.json"),
            "missing: embedding new cells needs the checkpoint's gene vocabulary",
        )
    })?;
    let vocab = GeneVocab::from_pairs(pairs, &dir.join("gene_vocab.json"))?;
    let tokenizer = Tokenizer::from_config(&tokenizer_config, || corpus.sample_values(10_000))?;
    Ok(DataPipeline::new(
        corpus,
        Some(vocab),
        tokenizer,
        None,
        &GeneMatchOptions::from_config(&data),
    )?)
}

/// `model.encode` of every cell of `pipeline`, in file order.
pub fn embed_cells(
    model: &dyn ForgeModel,
    pipeline: &DataPipeline,
    batch_size: usize,
    device: Device,
) -> Result<CellEmbeddings> {
    let dataset = pipeline.all();
    let n_cells = dataset.len();
    let loader = dataset.loader(LoaderOptions::inference(batch_size.max(1)))?;
    let mut rows: Vec<Option<Vec<f32>>> = vec![None; n_cells];
    let mut dim = 0;
    let mut batches = loader.epoch(0);
    while let Some(next) = batches.next_with_cells() {
        let (cells, batch) = next?;
        let batch = batch.to_device(device);
        let emb = tch::no_grad(|| model.encode(&batch))
            .to_kind(Kind::Float)
            .to_device(Device::Cpu);
        dim = emb.size()[1] as usize;
        let flat: Vec<f32> = Vec::try_from(emb.reshape([-1]))?;
        for (i, cell) in cells.into_iter().enumerate() {
            rows[cell] = Some(flat[i * dim..(i + 1) * dim].to_vec());
        }
    }
    let mut values = Vec::with_capacity(n_cells * dim);
    for (cell, row) in rows.into_iter().enumerate() {
        let row = row.ok_or_else(|| ForgeError::Batch {
            key: "input_ids",
            message: format!("cell {cell} was never embedded (loader skipped it)"),
        })?;
        values.extend(row);
    }
    Ok(CellEmbeddings {
        values,
        n_cells,
        dim,
    })
}

/// The preprocessed expression of every cell of `corpus`, dense
/// (`n_cells x n_genes`), for baselines such as PCA.
pub fn expression_matrix(corpus: &Corpus) -> Result<CellEmbeddings> {
    let n_genes = corpus.genes().len();
    let mut values = vec![0f32; corpus.n_cells() * n_genes];
    let mut row = forge_data::PreparedRow::default();
    for file in 0..corpus.n_files() {
        let range = corpus.file_range(file);
        let chunk = corpus.read_chunk(file, 0, range.len())?;
        for i in 0..chunk.n_cells() {
            let (cols, vals) = chunk.row(i);
            corpus.prepare(file, cols, vals, &mut row);
            let base = (range.start + i) * n_genes;
            for (&g, &v) in row.genes.iter().zip(&row.values) {
                values[base + g as usize] = v;
            }
        }
    }
    Ok(CellEmbeddings {
        values,
        n_cells: corpus.n_cells(),
        dim: n_genes,
    })
}

impl CellEmbeddings {
    /// The embeddings as a (n_cells, dim) tensor.
    pub fn to_tensor(&self) -> Tensor {
        Tensor::from_slice(&self.values).view([self.n_cells as i64, self.dim as i64])
    }
}

/// The precision `forge embed` and `forge assess` run a checkpoint's
/// forward pass in: the `training.precision` its `forge_config.yaml`
/// records (see [`forge_core::precision`]), or `32-true` when it records none
/// (scModelForge's folders) or when `force_fp32` is set (`--fp32`).
/// Run the embedding under it with [`forge_core::precision::with_precision`].
pub fn inference_precision(dir: &Path, force_fp32: bool) -> Result<forge_core::config::Precision> {
    if force_fp32 {
        return Ok(forge_core::config::Precision::Fp32True);
    }
    Ok(
        recorded_config(dir)?.map_or(forge_core::config::Precision::Fp32True, |c| {
            c.training.precision
        }),
    )
}
