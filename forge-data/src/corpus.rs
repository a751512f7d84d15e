//! A corpus: one or more `.h5ad` files read as one sequence of cells over
//! one list of genes, with preprocessing applied per cell.
//!
//! - Files are concatenated in the order given (`data.paths`); cell `i` of
//!   the corpus is cell `i - offset` of the file it falls in.
//! - Genes: the gene names of each file come from the var index or the var
//!   column `data.gene_key`, of `X` or of `raw` (`data.use_raw`). Names are
//!   compared under their match key ([`super::genes::match_key`]: Ensembl
//!   versions stripped, optionally case-insensitive). The corpus genes are
//!   the genes **shared by every file**, in the order of the first file.
//!   Genes a file has but the corpus does not are dropped from its cells
//!   (they still count towards the cell's library size).
//! - Duplicate gene names within a file are one gene: their values are
//!   summed per cell (before normalisation).
//! - `data.preprocessing.hvg_selection` is not applied here: as in
//!   scModelForge, `forge preprocess` applies it ([`super::hvg`]).
//! - [`Corpus::prepare`] turns a stored row into a [`PreparedRow`]: corpus
//!   gene positions in ascending order with preprocessed values.
//!
//! What this module is not: no tokenisation, batching or shuffling (see
//! [`super::loader`]); it never holds more than one block of cells.

use std::collections::HashMap;
use std::ops::Range;
use std::path::{Path, PathBuf};

use forge_core::config::{DataConfig, Normalize, PreprocessingConfig};

use super::genes::{IdSummary, VocabIndex, gene_names, match_key};
use super::h5ad::{CellChunk, Column, H5ad, Matrix};
use super::preprocess::Preprocessing;
use super::{DataError, GeneVocab};

const NONE: u32 = u32::MAX;

/// How a corpus reads its files.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct CorpusOptions {
    /// Read `raw` instead of `X` (`data.use_raw`).
    pub use_raw: bool,
    /// var column holding gene names (`data.gene_key`); `None`: var index.
    pub gene_key: Option<String>,
    /// Match gene names regardless of case.
    pub case_insensitive: bool,
    /// `data.preprocessing`.
    pub preprocessing: PreprocessingConfig,
}

impl CorpusOptions {
    /// From the `data` config section. `preprocessing.hvg_selection` is
    /// not taken: as in scModelForge, it is applied by `forge preprocess`
    /// only, never when cells are read for training, embedding or
    /// assessment.
    pub fn from_config(data: &DataConfig) -> CorpusOptions {
        CorpusOptions {
            use_raw: data.use_raw,
            gene_key: data.gene_key.clone(),
            case_insensitive: data.case_insensitive_genes,
            preprocessing: PreprocessingConfig {
                hvg_selection: None,
                ..data.preprocessing.clone()
            },
        }
    }
}

/// A cell after gene mapping and preprocessing.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct PreparedRow {
    /// Corpus gene positions, ascending.
    pub genes: Vec<u32>,
    /// Preprocessed values.
    pub values: Vec<f32>,
}

#[derive(Debug)]
struct CorpusFile {
    h5: H5ad,
    /// File column -> corpus gene, or NONE.
    col_gene: Vec<u32>,
}

/// Several `.h5ad` files as one sequence of cells over shared genes.
#[derive(Debug)]
pub struct Corpus {
    files: Vec<CorpusFile>,
    genes: Vec<String>,
    offsets: Vec<usize>,
    pre: Preprocessing,
    matrix: Matrix,
    case_insensitive: bool,
    gene_key: Option<String>,
}

/// Per-cell labels for fine-tuning, from an obs column.
#[derive(Debug, Clone, PartialEq)]
pub struct TaskLabels {
    /// The obs column.
    pub key: String,
    /// Class names; a label is an index into this list.
    pub classes: Vec<String>,
    /// One label per corpus cell; -100 where the cell has no label.
    pub codes: Vec<i64>,
}

impl TaskLabels {
    /// Number of classes.
    pub fn n_classes(&self) -> usize {
        self.classes.len()
    }
}

impl Corpus {
    /// Opens `paths` with `opts`.
    pub fn open<P: AsRef<Path>>(paths: &[P], opts: &CorpusOptions) -> Result<Corpus, DataError> {
        if let Some(n) = opts.preprocessing.hvg_selection {
            return Err(DataError::setting(
                "data.preprocessing.hvg_selection",
                format!(
                    "{n} genes: HVG selection is applied by `forge preprocess`, not when cells are read; \
                     run it first, or set null"
                ),
            ));
        }
        if paths.is_empty() {
            return Err(DataError::setting(
                "data.paths",
                "no .h5ad file given; list at least one file",
            ));
        }
        let matrix = if opts.use_raw { Matrix::Raw } else { Matrix::X };
        let ci = opts.case_insensitive;
        let mut opened = Vec::with_capacity(paths.len());
        for p in paths {
            let h5 = H5ad::open(p.as_ref())?;
            if matrix == Matrix::Raw && !h5.has_raw() {
                return Err(DataError::Mismatch {
                    path: h5.path().to_path_buf(),
                    detail: "`data.use_raw` is set but the file has no `raw` matrix; \
                             unset `use_raw` to read X"
                        .into(),
                });
            }
            let names = gene_names(&h5, matrix, opts.gene_key.as_deref())?;
            opened.push((h5, names));
        }

        // Corpus genes: keys of the first file, in order, kept when every
        // other file has them.
        let mut genes: Vec<String> = Vec::new();
        let mut key_pos: HashMap<String, u32> = HashMap::new();
        for n in &opened[0].1 {
            let k = match_key(n, ci).into_owned();
            if let std::collections::hash_map::Entry::Vacant(e) = key_pos.entry(k) {
                e.insert(genes.len() as u32);
                genes.push(n.clone());
            }
        }
        let mut shared = vec![true; genes.len()];
        for (_, names) in &opened[1..] {
            let mut present = vec![false; genes.len()];
            for n in names {
                if let Some(&g) = key_pos.get(match_key(n, ci).as_ref()) {
                    present[g as usize] = true;
                }
            }
            for (s, p) in shared.iter_mut().zip(present) {
                *s &= p;
            }
        }
        if !shared.iter().any(|&s| s) {
            let describe = |(h5, names): &(H5ad, Vec<String>)| {
                format!(
                    "{} ({}; first: {})",
                    h5.path().display(),
                    IdSummary::of(names).kind(),
                    names.iter().take(3).cloned().collect::<Vec<_>>().join(", ")
                )
            };
            return Err(DataError::Mismatch {
                path: opened[0].0.path().to_path_buf(),
                detail: format!(
                    "the files of `data.paths` share no gene, so they cannot be concatenated: {}. \
                     Use files with the same kind of gene identifiers, or set `data.gene_key`",
                    opened.iter().map(describe).collect::<Vec<_>>().join("; ")
                ),
            });
        }
        let mut corpus = Corpus {
            files: Vec::new(),
            genes: Vec::new(),
            offsets: vec![0],
            pre: Preprocessing::identity(),
            matrix,
            case_insensitive: ci,
            gene_key: opts.gene_key.clone(),
        };
        let keep: Vec<usize> = (0..genes.len()).filter(|&g| shared[g]).collect();
        let mut new_pos = vec![NONE; genes.len()];
        for (i, &g) in keep.iter().enumerate() {
            new_pos[g] = i as u32;
        }
        corpus.genes = keep.iter().map(|&g| genes[g].clone()).collect();
        for (h5, names) in opened {
            let col_gene: Vec<u32> = names
                .iter()
                .map(|n| {
                    key_pos
                        .get(match_key(n, ci).as_ref())
                        .map_or(NONE, |&g| new_pos[g as usize])
                })
                .collect();
            let n = h5.n_obs();
            corpus.files.push(file_entry(h5, col_gene));
            let last = *corpus.offsets.last().unwrap_or(&0);
            corpus.offsets.push(last + n);
        }
        let pre_cfg = &opts.preprocessing;
        if pre_cfg.normalize == Some(Normalize::LibrarySize) && pre_cfg.target_sum.is_none() {
            let median = corpus.median_total()?;
            corpus.pre = Preprocessing::from_config(pre_cfg, || median);
        } else {
            corpus.pre = Preprocessing::from_config(pre_cfg, || 1e4);
        }
        Ok(corpus)
    }

    /// Opens the files of `data.paths` with the `data` settings.
    pub fn from_config(data: &DataConfig) -> Result<Corpus, DataError> {
        Corpus::open(&data.paths, &CorpusOptions::from_config(data))
    }

    /// Number of cells over all files.
    pub fn n_cells(&self) -> usize {
        *self.offsets.last().unwrap_or(&0)
    }

    /// The corpus genes (display names: the first file's spelling).
    pub fn genes(&self) -> &[String] {
        &self.genes
    }

    /// Number of files.
    pub fn n_files(&self) -> usize {
        self.files.len()
    }

    /// File `i`.
    pub fn file(&self, i: usize) -> &H5ad {
        &self.files[i].h5
    }

    /// The paths of the files, in order.
    pub fn paths(&self) -> Vec<PathBuf> {
        self.files
            .iter()
            .map(|f| f.h5.path().to_path_buf())
            .collect()
    }

    /// Corpus cells of file `i`.
    pub fn file_range(&self, i: usize) -> Range<usize> {
        self.offsets[i]..self.offsets[i + 1]
    }

    /// `(file, cell within the file)` of corpus cell `cell`.
    pub fn locate(&self, cell: usize) -> (usize, usize) {
        let f = self
            .offsets
            .partition_point(|&o| o <= cell)
            .saturating_sub(1);
        let f = f.min(self.files.len().saturating_sub(1));
        (f, cell - self.offsets[f])
    }

    /// Which matrix is read (`X` or `raw`).
    pub fn matrix(&self) -> Matrix {
        self.matrix
    }

    /// The preprocessing applied by [`Corpus::prepare`].
    pub fn preprocessing(&self) -> &Preprocessing {
        &self.pre
    }

    /// Whether gene names are matched regardless of case.
    pub fn case_insensitive(&self) -> bool {
        self.case_insensitive
    }

    /// The var column gene names come from.
    pub fn gene_key(&self) -> Option<&str> {
        self.gene_key.as_deref()
    }

    /// Stored rows `[start, end)` of file `file` (cells within the file).
    pub fn read_chunk(
        &self,
        file: usize,
        start: usize,
        end: usize,
    ) -> Result<CellChunk, DataError> {
        self.files[file].h5.cell_rows(self.matrix, start, end)
    }

    /// Maps one stored row of file `file` onto corpus genes and
    /// preprocesses it into `out`.
    pub fn prepare(&self, file: usize, cols: &[u32], vals: &[f32], out: &mut PreparedRow) {
        let f = &self.files[file];
        out.genes.clear();
        out.values.clear();
        let total: f64 = vals.iter().map(|&v| f64::from(v)).sum();
        let mut sorted = true;
        let mut prev = 0u32;
        let n = cols.len().min(vals.len());
        out.genes.resize(n, 0);
        out.values.resize(n, 0.0);
        let mut j = 0;
        for (&c, &v) in cols.iter().zip(vals) {
            let g = f.col_gene.get(c as usize).copied().unwrap_or(NONE);
            if g == NONE {
                continue;
            }
            if g < prev || (g == prev && j > 0) {
                sorted = false;
            }
            prev = g;
            out.genes[j] = g;
            out.values[j] = v;
            j += 1;
        }
        out.genes.truncate(j);
        out.values.truncate(j);
        if !sorted {
            sort_and_merge(out);
        }
        self.pre.apply(&mut out.values, total);
    }

    /// Calls `f(corpus cell, row)` for every cell in order, reading blocks
    /// of `chunk` cells.
    pub fn for_each_cell(
        &self,
        chunk: usize,
        mut f: impl FnMut(usize, &PreparedRow) -> Result<(), DataError>,
    ) -> Result<(), DataError> {
        let mut row = PreparedRow::default();
        for file in 0..self.files.len() {
            let n = self.files[file].h5.n_obs();
            let mut start = 0;
            while start < n {
                let end = (start + chunk.max(1)).min(n);
                let c = self.read_chunk(file, start, end)?;
                for i in 0..c.n_cells() {
                    let (cols, vals) = c.row(i);
                    self.prepare(file, cols, vals, &mut row);
                    f(self.offsets[file] + start + i, &row)?;
                }
                start = end;
            }
        }
        Ok(())
    }

    /// Median of the cells' stored totals over up to 100,000 cells spread
    /// over the corpus.
    fn median_total(&self) -> Result<f64, DataError> {
        let mut totals = Vec::new();
        let budget = 100_000usize;
        for (fi, f) in self.files.iter().enumerate() {
            let n = f.h5.n_obs();
            let take = if self.n_cells() <= budget {
                n
            } else {
                (budget * n).div_ceil(self.n_cells())
            };
            let c = self.read_chunk(fi, 0, take.min(n))?;
            totals.extend(c.row_sums());
        }
        totals.retain(|t| t.is_finite());
        if totals.is_empty() {
            return Ok(1e4);
        }
        totals.sort_by(f64::total_cmp);
        let m = totals.len();
        Ok(if m % 2 == 1 {
            totals[m / 2]
        } else {
            (totals[m / 2 - 1] + totals[m / 2]) / 2.0
        })
    }

    /// Keeps only the genes `vocab` knows (under the corpus's match keys),
    /// in their order: cells are then read as scModelForge aligns a file to
    /// a vocabulary, its other genes dropped rather than read as UNK.
    pub fn retain_known(&mut self, vocab: &GeneVocab) {
        let index = VocabIndex::new(vocab, self.case_insensitive);
        let keep: Vec<usize> = (0..self.genes.len())
            .filter(|&g| index.get(&self.genes[g]).is_some())
            .collect();
        if keep.len() < self.genes.len() {
            self.narrow(&keep);
        }
    }

    /// Narrows the corpus genes to `keep` (ascending positions).
    fn narrow(&mut self, keep: &[usize]) {
        let mut new_pos = vec![NONE; self.genes.len()];
        for (i, &g) in keep.iter().enumerate() {
            new_pos[g] = i as u32;
        }
        self.genes = keep.iter().map(|&g| self.genes[g].clone()).collect();
        for f in &mut self.files {
            let col_gene = f
                .col_gene
                .iter()
                .map(|&g| if g == NONE { NONE } else { new_pos[g as usize] })
                .collect();
            f.col_gene = col_gene;
        }
    }

    /// The vocabulary id of every corpus gene (UNK where the vocabulary
    /// lacks it), matched under the corpus's match keys.
    pub fn gene_ids(&self, vocab: &GeneVocab) -> Vec<i64> {
        let index = VocabIndex::new(vocab, self.case_insensitive);
        self.genes
            .iter()
            .map(|g| index.get(g).unwrap_or(forge_core::batch::special::UNK))
            .collect()
    }

    /// Values of a sample of up to `max_cells` cells (spread over the
    /// corpus), after preprocessing: what quantile bin edges are fitted on.
    pub fn sample_values(&self, max_cells: usize) -> Result<Vec<f32>, DataError> {
        let mut out = Vec::new();
        let mut row = PreparedRow::default();
        let total = self.n_cells().max(1);
        for fi in 0..self.files.len() {
            let n = self.files[fi].h5.n_obs();
            let take = (max_cells * n).div_ceil(total).min(n);
            let c = self.read_chunk(fi, 0, take)?;
            for i in 0..c.n_cells() {
                let (cols, vals) = c.row(i);
                self.prepare(fi, cols, vals, &mut row);
                out.extend_from_slice(&row.values);
            }
        }
        Ok(out)
    }

    /// Labels from the obs column `key` of every file, as class indices.
    /// Categorical columns keep their category order (categories of later
    /// files that are new are appended); string, integer and boolean
    /// columns get their distinct values sorted. Float columns are refused.
    /// Missing values (and empty strings) become -100.
    pub fn task_labels(&self, key: &str) -> Result<TaskLabels, DataError> {
        let mut per_file: Vec<Vec<Option<String>>> = Vec::new();
        let mut classes: Vec<String> = Vec::new();
        let mut categorical = true;
        for f in &self.files {
            let col = f.h5.obs_column(key)?;
            let n = col.len();
            let labels: Vec<Option<String>> = match &col {
                Column::Categorical { categories, .. } => {
                    for c in categories {
                        if !classes.contains(c) {
                            classes.push(c.clone());
                        }
                    }
                    (0..n).map(|i| col.label(i).map(str::to_string)).collect()
                }
                Column::Str(v) => {
                    categorical = false;
                    v.iter()
                        .map(|s| (!s.is_empty()).then(|| s.clone()))
                        .collect()
                }
                Column::I64(v) => {
                    categorical = false;
                    v.iter().map(|x| Some(x.to_string())).collect()
                }
                Column::Bool(v) => {
                    categorical = false;
                    v.iter()
                        .map(|&b| Some(if b { "True" } else { "False" }.to_string()))
                        .collect()
                }
                Column::F64(_) => {
                    return Err(DataError::Mismatch {
                        path: f.h5.path().to_path_buf(),
                        detail: format!(
                            "obs column `{key}` holds floats, which cannot be used as class \
                             labels; use a categorical, string, integer or boolean column"
                        ),
                    });
                }
            };
            per_file.push(labels);
        }
        if !categorical {
            let mut all: Vec<String> = per_file
                .iter()
                .flatten()
                .flatten()
                .cloned()
                .chain(classes)
                .collect();
            all.sort();
            all.dedup();
            classes = all;
        }
        let index: HashMap<&str, i64> = classes
            .iter()
            .enumerate()
            .map(|(i, c)| (c.as_str(), i as i64))
            .collect();
        let codes = per_file
            .iter()
            .flatten()
            .map(|l| {
                l.as_deref()
                    .and_then(|s| index.get(s).copied())
                    .unwrap_or(forge_core::batch::special::IGNORE_INDEX)
            })
            .collect();
        Ok(TaskLabels {
            key: key.to_string(),
            classes,
            codes,
        })
    }
}

fn file_entry(h5: H5ad, col_gene: Vec<u32>) -> CorpusFile {
    CorpusFile { h5, col_gene }
}

/// Sorts a row by gene and sums entries of the same gene.
fn sort_and_merge(row: &mut PreparedRow) {
    let mut pairs: Vec<(u32, f32)> = row
        .genes
        .iter()
        .copied()
        .zip(row.values.iter().copied())
        .collect();
    pairs.sort_by_key(|p| p.0);
    row.genes.clear();
    row.values.clear();
    for (g, v) in pairs {
        if row.genes.last() == Some(&g) {
            if let Some(last) = row.values.last_mut() {
                *last += v;
            }
        } else {
            row.genes.push(g);
            row.values.push(v);
        }
    }
}
