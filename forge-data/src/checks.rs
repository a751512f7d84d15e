//! Checks on the values of the data before a run trains on them: values
//! that would be trained on silently as garbage are refused, with what was
//! found and the key that fixes it.
//!
//! One pass over the cells (all of them up to [`SCAN_BUDGET`] cells, else an
//! even share of the first cells of each file) counts:
//! - cells and genes holding NaN or infinite values: refused (NaN genes
//!   would be dropped by rank_value's `> 0` filter and infinity ranks first);
//! - cells with negative values when library-size normalisation is on: the
//!   totals of such cells, and so their scaled values, mean nothing (a
//!   scaled `X`, such as PBMC 68k reduced's, with `use_raw` unset): refused,
//!   naming `data.use_raw` and `data.preprocessing.normalize`;
//! - cells left with no value above 0 after preprocessing, which rank_value
//!   turns into a CLS token alone: refused when fewer than half the cells
//!   keep a gene, else a warning.
//!
//! This module reads through [`Corpus`] only; it does not change what is
//! read or how cells are tokenised.

use std::collections::BTreeSet;
use std::path::PathBuf;

use super::corpus::{Corpus, PreparedRow};
use super::h5ad::DataError;
use forge_core::config::DataConfig;

/// Most cells one scan reads.
pub const SCAN_BUDGET: usize = 200_000;

/// Cells read per chunk.
const CHUNK: usize = 4096;

/// Names kept as examples in messages.
const EXAMPLES: usize = 5;

/// Cells and genes holding one kind of bad value.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Affected {
    /// Cells with at least one such value.
    pub cells: usize,
    /// Distinct genes (file, column) with at least one such value.
    pub genes: usize,
    /// The first few cells' obs names.
    pub example_cells: Vec<String>,
    /// The first few genes' names.
    pub example_genes: Vec<String>,
    seen_genes: BTreeSet<(usize, u32)>,
}

impl Affected {
    fn add_cell(&mut self, name: impl FnOnce() -> String) {
        self.cells += 1;
        if self.example_cells.len() < EXAMPLES {
            self.example_cells.push(name());
        }
    }

    fn add_gene(&mut self, file: usize, col: u32, name: impl FnOnce() -> String) {
        if self.seen_genes.insert((file, col)) {
            self.genes += 1;
            if self.example_genes.len() < EXAMPLES {
                self.example_genes.push(name());
            }
        }
    }

    fn describe(&self, what: &str) -> String {
        format!(
            "{what} in {} cell(s) (e.g. {}) and {} gene(s) (e.g. {})",
            self.cells,
            self.example_cells.join(", "),
            self.genes,
            self.example_genes.join(", ")
        )
    }
}

/// What one scan of a corpus found.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ValueScan {
    /// Cells in the corpus.
    pub n_cells: usize,
    /// Cells read by the scan.
    pub cells_checked: usize,
    /// The matrix read (`X` or `raw`).
    pub matrix: String,
    /// Files, in order.
    pub files: Vec<PathBuf>,
    /// Whether each file has `raw`.
    pub files_have_raw: Vec<bool>,
    /// Cells holding NaN.
    pub nan: Affected,
    /// Cells holding +-infinity.
    pub inf: Affected,
    /// Cells with a value below 0, as stored.
    pub negative_cells: usize,
    /// The smallest finite value stored.
    pub min_value: f32,
    /// Cells with no value above 0 after preprocessing.
    pub empty_cells: usize,
    /// The first few of those cells' obs names.
    pub example_empty: Vec<String>,
}

/// Reads the cells of `corpus` (see the module docs) and counts what
/// [`ValueScan`] holds.
pub fn scan(corpus: &Corpus) -> Result<ValueScan, DataError> {
    let n_cells = corpus.n_cells();
    let mut out = ValueScan {
        n_cells,
        matrix: corpus.matrix().to_string(),
        files: corpus.paths(),
        min_value: f32::INFINITY,
        ..ValueScan::default()
    };
    let mut row = PreparedRow::default();
    for file in 0..corpus.n_files() {
        let h5 = corpus.file(file);
        out.files_have_raw.push(h5.has_raw());
        let n = h5.n_obs();
        let take = if n_cells <= SCAN_BUDGET {
            n
        } else {
            (SCAN_BUDGET * n).div_ceil(n_cells).min(n)
        };
        let obs = h5.obs_names().ok();
        let vars = h5.var_names(corpus.matrix()).ok();
        let cell_name = |i: usize| {
            obs.and_then(|o| o.get(i).cloned())
                .unwrap_or_else(|| format!("cell {i}"))
        };
        let gene_name = |c: u32| {
            vars.and_then(|v| v.get(c as usize).cloned())
                .unwrap_or_else(|| format!("column {c}"))
        };
        let mut start = 0;
        while start < take {
            let end = (start + CHUNK).min(take);
            let chunk = corpus.read_chunk(file, start, end)?;
            for i in 0..chunk.n_cells() {
                let local = start + i;
                let (cols, vals) = chunk.row(i);
                let (mut has_nan, mut has_inf, mut has_neg) = (false, false, false);
                for (&c, &v) in cols.iter().zip(vals) {
                    if v.is_nan() {
                        has_nan = true;
                        out.nan.add_gene(file, c, || gene_name(c));
                    } else if v.is_infinite() {
                        has_inf = true;
                        out.inf.add_gene(file, c, || gene_name(c));
                    } else {
                        out.min_value = out.min_value.min(v);
                        has_neg |= v < 0.0;
                    }
                }
                if has_nan {
                    out.nan.add_cell(|| cell_name(local));
                }
                if has_inf {
                    out.inf.add_cell(|| cell_name(local));
                }
                out.negative_cells += usize::from(has_neg);
                corpus.prepare(file, cols, vals, &mut row);
                if !row.values.iter().any(|&v| v > 0.0 && v.is_finite()) {
                    out.empty_cells += 1;
                    if out.example_empty.len() < EXAMPLES {
                        out.example_empty.push(cell_name(local));
                    }
                }
                out.cells_checked += 1;
            }
            start = end;
        }
    }
    Ok(out)
}

impl ValueScan {
    /// "of the N cells" or "of the N cells checked (of M)".
    fn of_cells(&self) -> String {
        if self.cells_checked == self.n_cells {
            format!("of the {} cells", self.n_cells)
        } else {
            format!(
                "of the {} cells checked (of {})",
                self.cells_checked, self.n_cells
            )
        }
    }

    fn files_text(&self) -> String {
        self.files
            .iter()
            .map(|p| p.display().to_string())
            .collect::<Vec<_>>()
            .join(", ")
    }

    /// What `use_raw` could do here.
    fn raw_hint(&self) -> String {
        if self.matrix == "raw" {
            "data.use_raw is already true: the values of adata.raw are at fault".to_string()
        } else if !self.files_have_raw.is_empty() && self.files_have_raw.iter().all(|&r| r) {
            "set data.use_raw: true to read adata.raw, which these files have".to_string()
        } else {
            "data.use_raw: true would read adata.raw, but not every file has one".to_string()
        }
    }

    /// Applies the rules of the module docs: `Err` for what is refused,
    /// else the warnings (one line each, without the `warning:` prefix).
    /// `normalizes`: library-size normalisation is on;
    /// `drops_non_positive`: the tokenizer keeps only values above 0
    /// (rank_value).
    pub fn verdict(
        &self,
        normalizes: bool,
        drops_non_positive: bool,
    ) -> Result<Vec<String>, DataError> {
        let mut refusals = Vec::new();
        for (affected, what) in [(&self.nan, "NaN"), (&self.inf, "infinite values")] {
            if affected.cells > 0 {
                refusals.push(format!(
                    "{} holds {} {}; forge does not train on them (rank_value drops NaN genes \
                     and ranks infinity first): clean the values (e.g. \
                     numpy.nan_to_num) or {}",
                    self.matrix,
                    affected.describe(what),
                    self.of_cells(),
                    self.raw_hint()
                ));
            }
        }
        if normalizes && self.negative_cells > 0 {
            refusals.push(format!(
                "data.preprocessing.normalize is library_size, but {} {} hold negative values \
                 in {} (smallest {}): totals of such cells, and so their normalised values, \
                 mean nothing; these look like scaled values: {}, or set \
                 data.preprocessing.normalize: null if the values are already normalised",
                self.negative_cells,
                self.of_cells(),
                self.matrix,
                self.min_value,
                self.raw_hint()
            ));
        }
        let kept = self.cells_checked - self.empty_cells.min(self.cells_checked);
        let mut warnings = Vec::new();
        if drops_non_positive && self.empty_cells > 0 {
            let text = format!(
                "{} {} (e.g. {}) have no value above 0 after preprocessing, so rank_value gives \
                 them no gene (a CLS token alone); {} keep at least one gene",
                self.empty_cells,
                self.of_cells(),
                self.example_empty.join(", "),
                kept
            );
            if kept * 2 < self.cells_checked.max(1) {
                refusals.push(format!(
                    "{text}: too few to train on. The values of {} are mostly <= 0 (scaled or \
                     negated data?): {}",
                    self.matrix,
                    self.raw_hint()
                ));
            } else {
                warnings.push(text);
            }
        }
        if refusals.is_empty() {
            Ok(warnings)
        } else {
            Err(DataError::setting(
                format!("data.paths ({})", self.files_text()),
                refusals.join("; and "),
            ))
        }
    }
}

/// Scans `corpus` and applies [`ValueScan::verdict`] for `data` and
/// whether the tokenizer keeps only values above 0. Returns the warnings.
pub fn check_values(
    corpus: &Corpus,
    data: &DataConfig,
    drops_non_positive: bool,
) -> Result<Vec<String>, DataError> {
    scan(corpus)?.verdict(data.preprocessing.normalize.is_some(), drops_non_positive)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_util::fails;
    use forge_core::config::{Normalize, PreprocessingConfig};

    /// `tests/fixtures/checks/bad_values.h5ad`, from
    /// `scripts/make_value_check_fixtures.py` (its docs list the values).
    fn corpus(use_raw: bool, normalize: bool) -> (Corpus, DataConfig) {
        let path = crate::test_util::fixture("checks", "bad_values.h5ad");
        let data = DataConfig {
            paths: vec![path.display().to_string()],
            use_raw,
            preprocessing: PreprocessingConfig {
                normalize: normalize.then_some(Normalize::LibrarySize),
                log1p: false,
                ..PreprocessingConfig::default()
            },
            ..DataConfig::default()
        };
        (Corpus::from_config(&data).unwrap(), data)
    }

    #[test]
    fn counts_nan_inf_negative_and_empty_cells() {
        let (c, _) = corpus(false, false);
        let s = scan(&c).unwrap();
        assert_eq!((s.n_cells, s.cells_checked), (6, 6));
        assert_eq!((s.nan.cells, s.nan.genes), (2, 2));
        assert_eq!(s.nan.example_cells, ["c1", "c5"]);
        assert_eq!(s.nan.example_genes, ["g0", "g3"]);
        assert_eq!((s.inf.cells, s.inf.genes), (1, 1));
        assert_eq!(s.inf.example_genes, ["g1"]);
        assert_eq!((s.negative_cells, s.min_value), (1, -2.0));
        // c3 (zeros) and c4 (negatives) keep no gene.
        assert_eq!(s.empty_cells, 2);
        assert_eq!(s.example_empty, ["c3", "c4"]);
        assert_eq!(s.files_have_raw, [true]);
        fails(
            s.verdict(false, true),
            &[
                "X holds NaN in 2 cell(s) (e.g. c1, c5) and 2 gene(s) (e.g. g0, g3) of the 6 cells",
                "infinite values in 1 cell(s) (e.g. c2) and 1 gene(s) (e.g. g1)",
                "set data.use_raw: true to read adata.raw",
                "bad_values.h5ad",
            ],
        );
    }

    #[test]
    fn normalising_negative_values_is_refused() {
        let (c, _) = corpus(false, true);
        let s = ValueScan {
            nan: Affected::default(),
            inf: Affected::default(),
            ..scan(&c).unwrap()
        };
        fails(
            s.verdict(true, false),
            &[
                "data.preprocessing.normalize is library_size, but 1 of the 6 cells hold \
                 negative values in X (smallest -2)",
                "data.use_raw: true",
            ],
        );
        // Without normalisation the same values only warn: 2 empty cells.
        let (c, _) = corpus(false, false);
        let s = ValueScan {
            nan: Affected::default(),
            inf: Affected::default(),
            ..scan(&c).unwrap()
        };
        let warnings = s.verdict(false, true).unwrap();
        assert_eq!(warnings.len(), 1, "{warnings:?}");
        assert!(warnings[0].contains("2 of the 6 cells (e.g. c3, c4) have no value above 0"));
        assert!(s.verdict(false, false).unwrap().is_empty());
    }

    #[test]
    fn too_few_cells_with_genes_is_refused() {
        let (c, data) = corpus(true, false);
        fails(
            check_values(&c, &data, true),
            &[
                "4 of the 6 cells (e.g. c1, c2, c3, c4) have no value above 0",
                "2 keep at least one gene: too few to train on",
                "data.use_raw is already true",
            ],
        );
        // binned and continuous tokenizers keep every gene.
        assert!(check_values(&c, &data, false).unwrap().is_empty());
    }
}
