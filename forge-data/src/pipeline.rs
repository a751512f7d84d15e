//! The data pipeline and its datasets.
//!
//! - [`DataPipeline`] ties a [`Corpus`] (files, shared genes,
//!   preprocessing), a [`GeneVocab`], a [`Tokenizer`], the [`Masking`]
//!   settings and, for fine-tuning, [`TaskLabels`] together.
//!   [`DataPipeline::from_config`] builds all of it from a config; when the
//!   vocabulary is given (`data.gene_vocab`/`tokenizer.gene_vocab`), each
//!   file's gene coverage is measured and checked (see [`super::genes`]).
//! - [`CellDataset`] is a selection of the corpus's cells:
//!   [`DataPipeline::split`] assigns each cell to validation with probability
//!   `val_split`, decided by a hash of (seed, cell index) alone, so the split
//!   is reproducible, needs no pass over the data, and a cell keeps its side
//!   when files are appended to `data.paths`.
//!
//! What this module is not: the loader that turns a dataset into batches
//! ([`super::loader`]).

use std::path::PathBuf;
use std::sync::Arc;

use forge_core::config::{ForgeConfig, TokenizerStrategy};

use super::corpus::{Corpus, PreparedRow, TaskLabels};
use super::genes::{Coverage, GeneMatchOptions};
use super::masking::Masking;
use super::seed::mix;
use super::tokenize::{TokenizedCell, Tokenizer};

mod geneformer;
use super::{DataError, GeneVocab};

/// Cells sampled to fit quantile bin edges.
const QUANTILE_FIT_CELLS: usize = 10_000;

/// What a pipeline's datasets, loaders and their threads share.
pub(crate) struct Inner {
    pub corpus: Corpus,
    pub vocab: GeneVocab,
    pub gene_ids: Vec<i64>,
    pub tokenizer: Tokenizer,
    pub masking: Option<Masking>,
    pub labels: Option<TaskLabels>,
    pub coverage: Vec<Coverage>,
    /// Each corpus cell's total count (`geneformer`'s `n_counts`).
    pub cell_totals: Option<Vec<f64>>,
    /// See [`DataPipeline::warnings`].
    pub warnings: Vec<String>,
}

/// Files, vocabulary, tokenizer and masking: everything needed to turn
/// cells into batches.
#[derive(Clone)]
pub struct DataPipeline {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for DataPipeline {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DataPipeline")
            .field("files", &self.inner.corpus.paths())
            .field("cells", &self.inner.corpus.n_cells())
            .field("genes", &self.inner.corpus.genes().len())
            .field("vocab_size", &self.inner.vocab.len())
            .finish()
    }
}

impl DataPipeline {
    /// Assembles a pipeline. With `vocab` given, every file's coverage is
    /// measured and checked against `matching.min_coverage`, and genes the
    /// vocabulary lacks are dropped from cells (as scModelForge aligns a
    /// file to a vocabulary); without, the vocabulary is built from the
    /// corpus genes.
    pub fn new(
        mut corpus: Corpus,
        vocab: Option<GeneVocab>,
        tokenizer: Tokenizer,
        masking: Option<Masking>,
        matching: &GeneMatchOptions,
    ) -> Result<DataPipeline, DataError> {
        let mut coverage = Vec::new();
        let vocab = match vocab {
            Some(v) => {
                for i in 0..corpus.n_files() {
                    let f = corpus.file(i);
                    let names = super::genes::gene_names(f, corpus.matrix(), corpus.gene_key())?;
                    let cov = Coverage::measure(
                        f,
                        corpus.matrix(),
                        &names,
                        corpus.gene_key(),
                        &v,
                        matching.case_insensitive,
                    )?;
                    cov.check(matching.min_coverage)?;
                    coverage.push(cov);
                }
                corpus.retain_known(&v);
                v
            }
            None => GeneVocab::from_genes(corpus.genes()),
        };
        let gene_ids = corpus.gene_ids(&vocab);
        let masking = masking.map(|m| Masking {
            vocab_size: vocab.len() as i64,
            ..m
        });
        Ok(DataPipeline {
            inner: Arc::new(Inner {
                corpus,
                vocab,
                gene_ids,
                tokenizer,
                masking,
                labels: None,
                coverage,
                cell_totals: None,
                warnings: Vec::new(),
            }),
        })
    }

    /// Builds the pipeline of a config: `data` (files, preprocessing, genes),
    /// `tokenizer` (strategy, masking), the vocabulary from the file named by
    /// `tokenizer.gene_vocab` or `data.gene_vocab` when one is a path (see
    /// [`ForgeConfig::gene_vocab_file`]; a name builds it from the data),
    /// matched and coverage-checked per `data.min_gene_coverage` and
    /// `data.case_insensitive_genes`.
    ///
    /// With `tokenizer.strategy: geneformer` the pipeline is
    /// [`DataPipeline::geneformer`]'s.
    pub fn from_config(cfg: &ForgeConfig) -> Result<DataPipeline, DataError> {
        if cfg.tokenizer.strategy == TokenizerStrategy::Geneformer {
            let p = &cfg.data.preprocessing;
            if p.normalize.is_some() || p.log1p {
                return Err(DataError::setting(
                    "data.preprocessing",
                    "must be off with tokenizer.strategy: geneformer, which tokenizes raw counts \
                     and normalises them itself (count / n_counts * 10000 / gene median); set \
                     data.preprocessing.normalize: null and data.preprocessing.log1p: false",
                ));
            }
            return DataPipeline::geneformer(
                &cfg.data,
                &cfg.tokenizer,
                Some(&cfg.tokenizer.masking),
            );
        }
        let corpus = Corpus::from_config(&cfg.data)?;
        let vocab = match cfg.gene_vocab_file() {
            Some(p) => Some(GeneVocab::load(PathBuf::from(p))?),
            None => None,
        };
        let tokenizer =
            Tokenizer::from_config(&cfg.tokenizer, || corpus.sample_values(QUANTILE_FIT_CELLS))?;
        let masking = Masking::from_config(&cfg.tokenizer.masking, 0)?;
        DataPipeline::new(
            corpus,
            vocab,
            tokenizer,
            Some(masking),
            &GeneMatchOptions::from_config(&cfg.data),
        )
    }

    /// Adds fine-tuning labels from the obs column `key` (see
    /// [`Corpus::task_labels`]). Must be called before datasets are made.
    pub fn with_task_labels(mut self, key: &str) -> Result<DataPipeline, DataError> {
        let labels = self.inner.corpus.task_labels(key)?;
        let inner = Arc::get_mut(&mut self.inner)
            .ok_or_else(|| DataError::Loader("add task labels before creating datasets".into()))?;
        inner.labels = Some(labels);
        Ok(self)
    }

    /// The corpus.
    pub fn corpus(&self) -> &Corpus {
        &self.inner.corpus
    }

    /// The vocabulary (`vocab.len()` is the model's `vocab_size`).
    pub fn vocab(&self) -> &GeneVocab {
        &self.inner.vocab
    }

    /// The tokenizer.
    pub fn tokenizer(&self) -> &Tokenizer {
        &self.inner.tokenizer
    }

    /// The masking settings.
    pub fn masking(&self) -> Option<&Masking> {
        self.inner.masking.as_ref()
    }

    /// Fine-tuning labels, when added.
    pub fn task_labels(&self) -> Option<&TaskLabels> {
        self.inner.labels.as_ref()
    }

    /// Gene coverage of each file, when the vocabulary was given.
    pub fn coverage(&self) -> &[Coverage] {
        &self.inner.coverage
    }

    /// Vocabulary id of each corpus gene.
    pub fn gene_ids(&self) -> &[i64] {
        &self.inner.gene_ids
    }

    /// Every cell.
    pub fn all(&self) -> CellDataset {
        CellDataset::new(self.inner.clone(), Selection::All)
    }

    /// Train and validation datasets: each cell goes to validation with
    /// probability `val_split` (in [0, 1)), decided by (seed, cell index).
    pub fn split(
        &self,
        val_split: f64,
        seed: u64,
    ) -> Result<(CellDataset, CellDataset), DataError> {
        if !(0.0..1.0).contains(&val_split) {
            return Err(DataError::setting(
                "training.val_split",
                format!("must be within [0, 1), found {val_split}"),
            ));
        }
        let sel = |val| Selection::Split {
            seed,
            val_split,
            val,
        };
        Ok((
            CellDataset::new(self.inner.clone(), sel(false)),
            CellDataset::new(self.inner.clone(), sel(true)),
        ))
    }

    /// The dataset of exactly the corpus cells `cells` (any order,
    /// duplicates ignored; they are visited in ascending order). For splits
    /// decided elsewhere, e.g. fine-tuning's stratified split.
    pub fn subset(&self, cells: &[usize]) -> Result<CellDataset, DataError> {
        let n = self.inner.corpus.n_cells();
        let mut member = vec![false; n];
        for &c in cells {
            if c >= n {
                return Err(DataError::setting(
                    "cells",
                    format!("cell {c} is out of range; the corpus has {n} cells"),
                ));
            }
            member[c] = true;
        }
        Ok(CellDataset::new(
            self.inner.clone(),
            Selection::Cells(Arc::new(member)),
        ))
    }

    /// Tokenizes one corpus cell (no masking): for inspection and tests.
    pub fn tokenize_cell(&self, cell: usize) -> Result<TokenizedCell, DataError> {
        let c = &self.inner.corpus;
        if cell >= c.n_cells() {
            return Err(DataError::setting(
                "cell",
                format!(
                    "{cell} is out of range; the corpus has {} cells",
                    c.n_cells()
                ),
            ));
        }
        let (file, local) = c.locate(cell);
        let chunk = c.read_chunk(file, local, local + 1)?;
        let (cols, vals) = chunk.row(0);
        let mut row = PreparedRow::default();
        c.prepare(file, cols, vals, &mut row);
        let mut out = TokenizedCell::default();
        self.inner.tokenizer.tokenize_cell_into(
            &row.genes,
            &row.values,
            &self.inner.gene_ids,
            self.cell_total(cell),
            &mut out,
            &mut Vec::new(),
        );
        Ok(out)
    }

    /// The total count corpus cell `cell` is normalised by under
    /// `geneformer` (its `n_counts`); `None` for the other strategies.
    pub fn cell_total(&self, cell: usize) -> Option<f64> {
        self.inner
            .cell_totals
            .as_ref()
            .and_then(|t| t.get(cell).copied())
    }

    /// Notes on the data found while building the pipeline, each worth a
    /// `warning:` line (so far: `geneformer` on non-integer counts).
    pub fn warnings(&self) -> &[String] {
        &self.inner.warnings
    }
}

#[derive(Debug, Clone, PartialEq)]
enum Selection {
    All,
    /// An explicit set of cells (`member[cell]`).
    Cells(Arc<Vec<bool>>),
    Split {
        seed: u64,
        val_split: f64,
        val: bool,
    },
}

impl Selection {
    fn contains(&self, cell: usize) -> bool {
        match *self {
            Selection::All => true,
            Selection::Cells(ref member) => member.get(cell).copied().unwrap_or(false),
            Selection::Split {
                seed,
                val_split,
                val,
            } => {
                let h = mix(mix(seed ^ 0x5b1d_5b1d) ^ cell as u64);
                let u = (h >> 11) as f64 / (1u64 << 53) as f64;
                (u < val_split) == val
            }
        }
    }
}

/// A selection of the corpus's cells.
#[derive(Clone)]
pub struct CellDataset {
    pub(super) inner: Arc<Inner>,
    selection: Selection,
    len: usize,
}

impl std::fmt::Debug for CellDataset {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CellDataset")
            .field("cells", &self.len)
            .field("selection", &self.selection)
            .finish()
    }
}

impl CellDataset {
    fn new(inner: Arc<Inner>, selection: Selection) -> CellDataset {
        let len = (0..inner.corpus.n_cells())
            .filter(|&c| selection.contains(c))
            .count();
        CellDataset {
            inner,
            selection,
            len,
        }
    }

    /// Number of cells.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether the dataset has no cell.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Corpus indices of the cells, ascending.
    pub fn cells(&self) -> Vec<usize> {
        (0..self.inner.corpus.n_cells())
            .filter(|&c| self.selection.contains(c))
            .collect()
    }

    /// Whether corpus cell `cell` belongs to the dataset.
    pub fn contains(&self, cell: usize) -> bool {
        cell < self.inner.corpus.n_cells() && self.selection.contains(cell)
    }
}
