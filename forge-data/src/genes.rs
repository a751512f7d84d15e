//! Gene identifiers: what kind a file uses, how its names are matched to a
//! vocabulary, and how much of the file a vocabulary covers.
//!
//! The most common silent failure of single-cell foundation models is a file
//! whose gene identifiers do not match the model's vocabulary (Ensembl ids
//! against symbols, `ENSG...17` version suffixes, the wrong var column): most
//! genes become UNK and the embeddings mean nothing. This module makes that
//! loud:
//!
//! - [`classify`]: an Ensembl gene id is recognised by an anchored pattern,
//!   `ENSG` (human) or `ENSMUSG` (mouse) followed by exactly 11 digits and an
//!   optional `.version`; anything else (`ENSA`, `ENSG1`, `CD3E`) is a symbol.
//! - [`match_key`]: the key under which a name is matched: Ensembl ids lose
//!   their version suffix (only Ensembl ids: `HLA-A.1`-like symbols keep
//!   theirs); symbols are upper-cased when matching is case-insensitive.
//! - [`Coverage`]: genes of the file found in a vocabulary, the share of the
//!   file's expression they carry (over a sample of cells), the
//!   most-expressed missing genes; [`Coverage::check`] refuses coverage
//!   below a threshold with an error that says what to change.
//!
//! Duplicate gene names in a file (after matching keys, so `ENSG...1.1` and
//! `ENSG...1.2` are duplicates) are one gene: their values are summed per
//! cell (see [`super::corpus`]). The coverage report counts them.
//!
//! What this module is not: it does not read the expression matrix itself
//! beyond the coverage sample, and it does not build vocabularies.

use std::borrow::Cow;
use std::collections::HashMap;
use std::fmt;
use std::path::{Path, PathBuf};

use super::h5ad::{Column, ColumnKind, H5ad, Matrix};
use super::{DataError, GeneVocab};

/// Default least share of a file's expression that the vocabulary must
/// cover ([`GeneMatchOptions::min_coverage`]).
pub const DEFAULT_MIN_COVERAGE: f64 = 0.5;

/// The kind of one gene identifier.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum IdKind {
    /// An Ensembl gene id.
    Ensembl {
        /// `human` (ENSG) or `mouse` (ENSMUSG).
        species: &'static str,
        /// Whether it carries a `.version` suffix.
        versioned: bool,
    },
    /// Anything else: a gene symbol (or another naming scheme).
    Symbol,
}

/// Classifies one identifier (see the module docs for the pattern).
pub fn classify(name: &str) -> IdKind {
    let (species, rest) = if let Some(r) = name.strip_prefix("ENSMUSG") {
        ("mouse", r)
    } else if let Some(r) = name.strip_prefix("ENSG") {
        ("human", r)
    } else {
        return IdKind::Symbol;
    };
    let (digits, version) = match rest.split_once('.') {
        Some((d, v)) => (d, Some(v)),
        None => (rest, None),
    };
    let all_digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    if digits.len() != 11 || !all_digits(digits) || version.is_some_and(|v| !all_digits(v)) {
        return IdKind::Symbol;
    }
    IdKind::Ensembl {
        species,
        versioned: version.is_some(),
    }
}

/// The key under which `name` is matched against a vocabulary: Ensembl ids
/// without their version suffix; symbols as they are, or upper-cased when
/// `case_insensitive`.
pub fn match_key(name: &str, case_insensitive: bool) -> Cow<'_, str> {
    match classify(name) {
        IdKind::Ensembl {
            versioned: true, ..
        } => Cow::Borrowed(name.split_once('.').map_or(name, |(id, _)| id)),
        IdKind::Ensembl { .. } => Cow::Borrowed(name),
        IdKind::Symbol if case_insensitive => Cow::Owned(name.to_uppercase()),
        IdKind::Symbol => Cow::Borrowed(name),
    }
}

/// How a file's gene names are matched to a vocabulary.
#[derive(Debug, Clone, PartialEq)]
pub struct GeneMatchOptions {
    /// Match symbols regardless of case (Ensembl ids are upper-case anyway).
    pub case_insensitive: bool,
    /// Least share of the file's expression (in the coverage sample) the
    /// vocabulary must carry; below it, [`Coverage::check`] refuses. 0
    /// disables the check.
    pub min_coverage: f64,
}

impl Default for GeneMatchOptions {
    fn default() -> Self {
        GeneMatchOptions {
            case_insensitive: false,
            min_coverage: DEFAULT_MIN_COVERAGE,
        }
    }
}

impl GeneMatchOptions {
    /// The options a `data` section asks for (`min_gene_coverage`,
    /// `case_insensitive_genes`).
    pub fn from_config(data: &forge_core::config::DataConfig) -> Self {
        GeneMatchOptions {
            case_insensitive: data.case_insensitive_genes,
            min_coverage: data.min_gene_coverage,
        }
    }
}

/// Counts of identifier kinds among a list of gene names.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct IdSummary {
    /// Names looked at.
    pub total: usize,
    /// Human Ensembl ids.
    pub ensembl_human: usize,
    /// Mouse Ensembl ids.
    pub ensembl_mouse: usize,
    /// Ensembl ids with a version suffix.
    pub versioned: usize,
    /// Everything else.
    pub symbols: usize,
    /// Names that occur more than once (each extra occurrence counted; after
    /// version stripping).
    pub duplicates: usize,
}

impl IdSummary {
    /// Summarises `names`.
    pub fn of<S: AsRef<str>>(names: &[S]) -> IdSummary {
        let mut s = IdSummary {
            total: names.len(),
            ..IdSummary::default()
        };
        let mut seen = std::collections::HashSet::with_capacity(names.len());
        for n in names {
            let n = n.as_ref();
            match classify(n) {
                IdKind::Ensembl { species, versioned } => {
                    if species == "human" {
                        s.ensembl_human += 1;
                    } else {
                        s.ensembl_mouse += 1;
                    }
                    if versioned {
                        s.versioned += 1;
                    }
                }
                IdKind::Symbol => s.symbols += 1,
            }
            if !seen.insert(match_key(n, false)) {
                s.duplicates += 1;
            }
        }
        s
    }

    /// Number of Ensembl ids.
    pub fn ensembl(&self) -> usize {
        self.ensembl_human + self.ensembl_mouse
    }

    /// The dominant kind: Ensembl when at least 90% of names are Ensembl
    /// ids, symbols when at most 10% are, mixed otherwise.
    pub fn kind(&self) -> FileIdKind {
        if self.total == 0 {
            return FileIdKind::Empty;
        }
        let share = self.ensembl() as f64 / self.total as f64;
        if share >= 0.9 {
            FileIdKind::Ensembl
        } else if share <= 0.1 {
            FileIdKind::Symbols
        } else {
            FileIdKind::Mixed
        }
    }
}

/// The identifier kind of a whole list of genes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FileIdKind {
    /// Ensembl gene ids.
    Ensembl,
    /// Gene symbols.
    Symbols,
    /// A mix of both.
    Mixed,
    /// No genes.
    Empty,
}

impl fmt::Display for FileIdKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            FileIdKind::Ensembl => "Ensembl gene ids",
            FileIdKind::Symbols => "gene symbols",
            FileIdKind::Mixed => "a mix of Ensembl ids and symbols",
            FileIdKind::Empty => "no genes",
        })
    }
}

impl fmt::Display for IdSummary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.kind())?;
        let mut parts = Vec::new();
        if self.ensembl_human > 0 {
            parts.push(format!("{} human Ensembl", self.ensembl_human));
        }
        if self.ensembl_mouse > 0 {
            parts.push(format!("{} mouse Ensembl", self.ensembl_mouse));
        }
        if self.versioned > 0 {
            parts.push(format!("{} with version suffix", self.versioned));
        }
        if self.symbols > 0 {
            parts.push(format!("{} symbols", self.symbols));
        }
        if self.duplicates > 0 {
            parts.push(format!("{} duplicate names", self.duplicates));
        }
        if !parts.is_empty() {
            write!(f, " ({})", parts.join(", "))?;
        }
        Ok(())
    }
}

/// A vocabulary indexed by match keys.
#[derive(Debug, Clone)]
pub struct VocabIndex {
    keys: HashMap<String, i64>,
    case_insensitive: bool,
}

impl VocabIndex {
    /// Indexes `vocab` under [`match_key`]; when two vocabulary genes share
    /// a key, the one with the lower id wins.
    pub fn new(vocab: &GeneVocab, case_insensitive: bool) -> VocabIndex {
        let mut keys = HashMap::with_capacity(vocab.n_genes());
        for (g, id) in vocab.entries() {
            keys.entry(match_key(g, case_insensitive).into_owned())
                .or_insert(*id);
        }
        VocabIndex {
            keys,
            case_insensitive,
        }
    }

    /// The id of `name`, if found under its match key.
    pub fn get(&self, name: &str) -> Option<i64> {
        self.keys
            .get(match_key(name, self.case_insensitive).as_ref())
            .copied()
    }
}

/// The gene names of `which` in `file`: the var index, or the var column
/// `gene_key` (string or categorical).
pub fn gene_names(
    file: &H5ad,
    which: Matrix,
    gene_key: Option<&str>,
) -> Result<Vec<String>, DataError> {
    let Some(key) = gene_key else {
        return Ok(file.var_names(which)?.to_vec());
    };
    let col = file.var_column(which, key)?;
    let n = col.len();
    match col {
        Column::Str(v) => Ok(v),
        Column::Categorical { .. } => Ok((0..n)
            .map(|i| col.label(i).unwrap_or("").to_string())
            .collect()),
        other => Err(DataError::Mismatch {
            path: file.path().to_path_buf(),
            detail: format!(
                "`data.gene_key` = `{key}` names a var column of {} values; gene names \
                 must be a string or categorical column (string columns of var: {})",
                kind_name(&other),
                string_columns(file, which).join(", ")
            ),
        }),
    }
}

fn kind_name(c: &Column) -> &'static str {
    match c {
        Column::Categorical { .. } => "categorical",
        Column::Str(_) => "string",
        Column::F64(_) => "float",
        Column::I64(_) => "integer",
        Column::Bool(_) => "boolean",
    }
}

/// var columns holding strings (candidates for `data.gene_key`).
pub fn string_columns(file: &H5ad, which: Matrix) -> Vec<String> {
    file.var_columns(which)
        .unwrap_or_default()
        .into_iter()
        .filter(|c| matches!(c.kind, ColumnKind::Str | ColumnKind::Categorical { .. }))
        .map(|c| c.name)
        .collect()
}

/// How much of a file's genes and expression a vocabulary covers.
#[derive(Debug, Clone, PartialEq)]
pub struct Coverage {
    /// The file.
    pub path: PathBuf,
    /// Distinct genes of the file (after match keys).
    pub n_genes: usize,
    /// Of those, found in the vocabulary.
    pub n_found: usize,
    /// Share of the expression (sum of values over the sampled cells)
    /// carried by found genes; `None` when the sample held no expression.
    pub expression_share: Option<f64>,
    /// Cells in the sample.
    pub n_cells_sampled: usize,
    /// The most-expressed genes not in the vocabulary, with their share of
    /// the sampled expression, at most 10.
    pub top_missing: Vec<(String, f64)>,
    /// Identifier kinds of the file.
    pub file_ids: IdSummary,
    /// Identifier kinds of the vocabulary.
    pub vocab_ids: IdSummary,
    /// Whether matching ignored case.
    pub case_insensitive: bool,
    /// The var column the names came from (`None`: the var index).
    pub gene_key: Option<String>,
    /// String columns of var, for suggestions.
    pub var_string_columns: Vec<String>,
}

/// Cells sampled for the expression share.
const COVERAGE_CELLS: usize = 2000;

impl Coverage {
    /// Measures how `vocab` covers `names` (the genes of `which` in `file`),
    /// reading up to 2000 cells spread over the file for the expression
    /// share.
    pub fn measure(
        file: &H5ad,
        which: Matrix,
        names: &[String],
        gene_key: Option<&str>,
        vocab: &GeneVocab,
        case_insensitive: bool,
    ) -> Result<Coverage, DataError> {
        let index = VocabIndex::new(vocab, case_insensitive);
        let found: Vec<bool> = names.iter().map(|n| index.get(n).is_some()).collect();
        let mut distinct: HashMap<Cow<'_, str>, bool> = HashMap::new();
        for (n, &f) in names.iter().zip(&found) {
            distinct.entry(match_key(n, case_insensitive)).or_insert(f);
        }
        let n_genes = distinct.len();
        let n_found = distinct.values().filter(|&&f| f).count();

        let mut sums = vec![0f64; names.len()];
        let n_obs = file.n_obs();
        let blocks = 4usize;
        let per = COVERAGE_CELLS.div_ceil(blocks);
        let mut sampled = 0;
        let mut last_end = 0;
        for b in 0..blocks {
            let start = (n_obs * b / blocks).max(last_end);
            let end = (start + per).min(n_obs);
            if start >= end {
                continue;
            }
            last_end = end;
            let chunk = file.cell_rows(which, start, end)?;
            sampled += chunk.n_cells();
            for (&j, &v) in chunk.indices.iter().zip(&chunk.data) {
                if v.is_finite() && v > 0.0 {
                    sums[j as usize] += f64::from(v);
                }
            }
        }
        // fold from +0.0: an empty f64 `sum` is -0.0, which prints as "-0.0%".
        let total: f64 = sums.iter().fold(0.0, |a, b| a + b);
        let covered: f64 = sums
            .iter()
            .zip(&found)
            .filter(|p| *p.1)
            .fold(0.0, |a, p| a + p.0);
        let mut missing: Vec<(String, f64)> = names
            .iter()
            .zip(&sums)
            .zip(&found)
            .filter(|((_, s), f)| !**f && **s > 0.0)
            .map(|((n, s), _)| (n.clone(), *s / total))
            .collect();
        missing.sort_by(|a, b| b.1.total_cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
        missing.truncate(10);
        Ok(Coverage {
            path: file.path().to_path_buf(),
            n_genes,
            n_found,
            expression_share: (total > 0.0).then(|| covered / total),
            n_cells_sampled: sampled,
            top_missing: missing,
            file_ids: IdSummary::of(names),
            vocab_ids: IdSummary::of(&vocab.genes().collect::<Vec<_>>()),
            case_insensitive,
            gene_key: gene_key.map(str::to_string),
            var_string_columns: string_columns(file, which),
        })
    }

    /// Share of the file's distinct genes found in the vocabulary.
    pub fn gene_share(&self) -> f64 {
        if self.n_genes == 0 {
            0.0
        } else {
            self.n_found as f64 / self.n_genes as f64
        }
    }

    /// The share the threshold applies to: the expression share, or the gene
    /// share when the sample held no expression.
    pub fn share(&self) -> f64 {
        self.expression_share.unwrap_or_else(|| self.gene_share())
    }

    /// One line: `genes: 1830 of 2000 in the vocabulary (91.5%), carrying
    /// 97.2% of expression`.
    pub fn summary_line(&self) -> String {
        let mut s = format!(
            "genes: {} of {} in the vocabulary ({:.1}%)",
            self.n_found,
            self.n_genes,
            100.0 * self.gene_share()
        );
        if let Some(e) = self.expression_share {
            s.push_str(&format!(
                ", carrying {:.1}% of expression (over {} cells)",
                100.0 * e,
                self.n_cells_sampled
            ));
        }
        s
    }

    /// What to change, when coverage is poor.
    pub fn advice(&self) -> String {
        let (fk, vk) = (self.file_ids.kind(), self.vocab_ids.kind());
        let key = self
            .gene_key
            .as_deref()
            .map_or("the var index".to_string(), |k| format!("var column `{k}`"));
        let columns = if self.var_string_columns.is_empty() {
            "var has no string columns".to_string()
        } else {
            format!(
                "string columns of var: {}",
                self.var_string_columns.join(", ")
            )
        };
        if fk != vk && fk != FileIdKind::Empty && vk != FileIdKind::Empty {
            format!(
                "The file's genes ({key}) are {fk} but the vocabulary uses {vk}: set \
                 `data.gene_key` to a var column holding {vk} ({columns}), or convert the \
                 file's gene names"
            )
        } else if fk == FileIdKind::Symbols && !self.case_insensitive {
            format!(
                "Both use gene symbols but few match: check that {key} holds the gene names \
                 ({columns}), or enable case-insensitive matching (`data.case_insensitive_genes: \
                 true`, or `--case-insensitive-genes`; e.g. mouse `Cd3e` vs human `CD3E` \
                 suggests another species)"
            )
        } else {
            format!(
                "Check that {key} holds the gene names the model was trained on ({columns}) \
                 and that the model matches the species of the data"
            )
        }
    }

    /// `Ok` when [`Coverage::share`] is at least `min_coverage`; otherwise
    /// an error with the numbers, the most-expressed missing genes and what
    /// to change.
    pub fn check(&self, min_coverage: f64) -> Result<(), DataError> {
        if self.share() >= min_coverage {
            return Ok(());
        }
        let missing = if self.top_missing.is_empty() {
            String::new()
        } else {
            format!(
                "; most-expressed missing genes: {}",
                self.top_missing
                    .iter()
                    .map(|(g, s)| format!("{g} ({:.1}%)", 100.0 * s))
                    .collect::<Vec<_>>()
                    .join(", ")
            )
        };
        Err(DataError::Mismatch {
            path: self.path.clone(),
            detail: format!(
                "too few of the file's genes are in the model's vocabulary: {}, below the \
                 required {:.0}% (`data.min_gene_coverage`){missing}. The file has {}; the \
                 vocabulary has {}. {}",
                self.summary_line(),
                100.0 * min_coverage,
                self.file_ids,
                self.vocab_ids,
                self.advice()
            ),
        })
    }
}

impl fmt::Display for Coverage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "{}", self.summary_line())?;
        writeln!(f, "file ids:  {}", self.file_ids)?;
        writeln!(f, "vocab ids: {}", self.vocab_ids)?;
        if !self.top_missing.is_empty() {
            writeln!(
                f,
                "most-expressed missing: {}",
                self.top_missing
                    .iter()
                    .map(|(g, s)| format!("{g} ({:.2}%)", 100.0 * s))
                    .collect::<Vec<_>>()
                    .join(", ")
            )?;
        }
        Ok(())
    }
}

/// Measures coverage of the genes of `path` (matrix `which`, names from
/// `gene_key`) by `vocab` and applies the threshold of `opts`: the one call
/// every path that maps a file onto an existing vocabulary makes.
pub fn check_coverage(
    path: &Path,
    which: Matrix,
    gene_key: Option<&str>,
    vocab: &GeneVocab,
    opts: &GeneMatchOptions,
) -> Result<Coverage, DataError> {
    let file = H5ad::open(path)?;
    let names = gene_names(&file, which, gene_key)?;
    let cov = Coverage::measure(&file, which, &names, gene_key, vocab, opts.case_insensitive)?;
    cov.check(opts.min_coverage)?;
    Ok(cov)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ensembl_ids_are_recognised_by_an_anchored_pattern() {
        let human = IdKind::Ensembl {
            species: "human",
            versioned: false,
        };
        assert_eq!(classify("ENSG00000141510"), human);
        assert_eq!(
            classify("ENSG00000141510.17"),
            IdKind::Ensembl {
                species: "human",
                versioned: true
            }
        );
        assert_eq!(
            classify("ENSMUSG00000059552"),
            IdKind::Ensembl {
                species: "mouse",
                versioned: false
            }
        );
        for symbol in [
            "ENSA",
            "ENSG",
            "ENSG0000014151",
            "ENSG000001415100",
            "ENSG00000141510.",
            "ENSG00000141510.x",
            "xENSG00000141510",
            "TP53",
            "",
        ] {
            assert_eq!(classify(symbol), IdKind::Symbol, "{symbol}");
        }
    }

    #[test]
    fn versions_are_stripped_from_ensembl_ids_only() {
        assert_eq!(match_key("ENSG00000141510.17", false), "ENSG00000141510");
        assert_eq!(match_key("HLA-A.1", false), "HLA-A.1");
        assert_eq!(match_key("Cd3e", true), "CD3E");
        assert_eq!(match_key("Cd3e", false), "Cd3e");
    }

    #[test]
    fn summaries_name_the_kind() {
        let s = IdSummary::of(&["ENSG00000141510.1", "ENSG00000141510.2", "ENSG00000000003"]);
        assert_eq!(s.kind(), FileIdKind::Ensembl);
        assert_eq!((s.versioned, s.duplicates), (2, 1));
        let s = IdSummary::of(&["CD3E", "LYZ", "ENSA"]);
        assert_eq!(s.kind(), FileIdKind::Symbols);
        let s = IdSummary::of(&["CD3E", "ENSG00000000003"]);
        assert_eq!(s.kind(), FileIdKind::Mixed);
        assert!(s.to_string().contains("1 human Ensembl"), "{s}");
    }

    #[test]
    fn vocab_index_matches_by_key() {
        let v = GeneVocab::from_genes(["ENSG00000000003", "CD3E"]);
        let i = VocabIndex::new(&v, false);
        assert_eq!(i.get("ENSG00000000003.14"), Some(4));
        assert_eq!(i.get("cd3e"), None);
        let i = VocabIndex::new(&v, true);
        assert_eq!(i.get("cd3e"), Some(5));
    }
}
