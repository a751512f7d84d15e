//! Geneformer's median-scaled rank tokenizer ("rank value encoding").
//!
//! For each cell:
//!
//! 1. normalise the counts to a total: `x / n_counts * 10_000`, where
//!    `n_counts` is the cell's total over *all* genes of the file (those
//!    outside the dictionaries included), unless the caller gives the total;
//! 2. divide each gene by its median over Geneformer's pretraining corpus
//!    (the `gene -> median` dictionary);
//! 3. keep the nonzero genes and rank them by that value, descending;
//! 4. map each gene's Ensembl id through the token dictionary;
//! 5. truncate to the model's input size, with the special tokens of each
//!    published version ([`GeneformerVersion`]).
//!
//! A gene of the file that is absent from either dictionary is dropped (a
//! dictionary's `<pad>`, `<mask>`, `<cls>`, `<eos>` entries are never genes).
//! A gene id that occurs in several columns of the file has its counts
//! summed into one gene, ranked at the position of its first column.
//!
//! ## What was matched, and where it was read
//! Geneformer's `geneformer/tokenizer.py` (ctheodoris/Geneformer on Hugging
//! Face, read in a public GitHub mirror of the package, the version whose
//! defaults load `v1/gene_median_dictionary.pkl`):
//!
//! - `tokenize_anndata(..., target_sum=10_000)`: `X_norm = X_view /
//!   n_counts * target_sum / norm_factor_vector`, with `n_counts` from
//!   `obs["n_counts"]` if present, else the row sum of `X` over all genes;
//!   genes kept are those whose `ensembl_id` is a key of the token
//!   dictionary, each divided by `gene_median_dict[id]`.
//! - `rank_genes`: `gene_tokens[np.argsort(-gene_vector)]` over the nonzero
//!   entries of the row (`X_norm[i].data`, in column order).
//! - `create_dataset` / `format_cell_features`: with `special_token`,
//!   `input_ids[0 : model_input_size - 2]`, then `<cls>` inserted first and
//!   `<eos>` last; without, `input_ids[0 : model_input_size]`. The module
//!   docstring: "For 95M model series, special_token should be True and
//!   model_input_size should be 4096. For 30M model series, special_token
//!   should be False and model_input_size should be 2048."
//! - `sum_ensembl_ids` (`collapse_gene_ids=True` by default): duplicate
//!   Ensembl ids are summed. (Geneformer also maps ids through an optional
//!   `ensembl_mapping_dictionary.pkl` first; forge does not read that file:
//!   ids are matched as they are.)
//!
//! **Ties.** Geneformer sorts with `np.argsort(-x)`, NumPy's default
//! `quicksort` (an introsort, and on AVX-512 machines a SIMD sort), which is
//! not stable: the order of genes with equal median-scaled values depends on
//! the NumPy version and the CPU, so no implementation can match it on ties
//! in general. forge uses the stable rule `np.argsort(-x, kind="stable")`:
//! equal values keep the file's column order. On cells without ties both
//! rules give the same tokens (tested against a plain Python implementation,
//! `scripts/make_geneformer_tokenizer_fixture.py`).
//!
//! **Arithmetic.** forge computes `x / n_counts * 10_000 / median` in `f64`,
//! left to right, as the Python reference does. Geneformer's own dtype
//! follows its inputs (a `float32` matrix with a `float32` `n_counts` stays
//! `float32` until the division by the `float64` medians), so values that
//! differ only in the last bits of `float32` may rank differently there.
//!
//! What this module is not: it does not read `.h5ad` files or decide which
//! var column holds Ensembl ids (that is [`super::genes`]); it holds no
//! model code.

use std::collections::HashMap;
use std::path::Path;

/// Geneformer's normalisation total (`target_sum=10_000`).
pub const TARGET_SUM: f64 = 10_000.0;

/// Keys of a Geneformer token dictionary that are not genes.
pub const SPECIAL_KEYS: [&str; 4] = ["<pad>", "<mask>", "<cls>", "<eos>"];

/// The published model series and their tokenization.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GeneformerVersion {
    /// The 30M series (`gf-6L-30M-i2048`, ...): no special tokens, input
    /// size 2048.
    V1,
    /// The 95M series (`gf-12L-95M-i4096`, ...): `<cls>` first and `<eos>`
    /// last, input size 4096.
    V2,
}

impl GeneformerVersion {
    /// The model input size of the series.
    pub fn input_size(self) -> usize {
        match self {
            GeneformerVersion::V1 => 2048,
            GeneformerVersion::V2 => 4096,
        }
    }

    /// Whether `<cls>` and `<eos>` frame each cell.
    pub fn special_tokens(self) -> bool {
        matches!(self, GeneformerVersion::V2)
    }
}

/// Why the tokenizer could not be built or a cell not tokenized.
#[derive(Debug, thiserror::Error)]
pub enum GeneformerTokenizeError {
    /// A dictionary file could not be read.
    #[error(transparent)]
    Dictionary(#[from] forge_pickle::DictFileError),
    /// A dictionary entry is unusable.
    #[error("{0}")]
    BadDictionary(String),
    /// A cell's input is unusable.
    #[error("{0}")]
    BadCell(String),
}

/// The median-scaled rank tokenizer of one Geneformer version.
#[derive(Debug, Clone)]
pub struct GeneformerTokenizer {
    medians: HashMap<String, f64>,
    tokens: HashMap<String, i64>,
    input_size: usize,
    /// `(<cls>, <eos>)` ids when the version frames cells with them.
    special: Option<(i64, i64)>,
}

/// A file's genes resolved against the dictionaries: for each column of
/// the file, the gene slot it adds to (or none when dropped).
#[derive(Debug, Clone, PartialEq)]
pub struct GeneformerGenes {
    /// Per file column: index into `slots`, or `None` (dropped).
    column_slot: Vec<Option<usize>>,
    /// Per gene slot, in order of first column: `(token id, median)`.
    slots: Vec<(i64, f64)>,
}

impl GeneformerGenes {
    /// How many of the file's columns map to a gene token.
    pub fn n_matched_columns(&self) -> usize {
        self.column_slot.iter().filter(|s| s.is_some()).count()
    }

    /// How many distinct genes (after summing duplicate ids) are tokenized.
    pub fn n_genes(&self) -> usize {
        self.slots.len()
    }
}

impl GeneformerTokenizer {
    /// A tokenizer from the two dictionaries. Medians must be finite and
    /// positive. For [`GeneformerVersion::V2`] the token dictionary must
    /// hold `<cls>` and `<eos>`.
    pub fn new(
        medians: HashMap<String, f64>,
        tokens: HashMap<String, i64>,
        version: GeneformerVersion,
    ) -> Result<Self, GeneformerTokenizeError> {
        let bad = |m: String| Err(GeneformerTokenizeError::BadDictionary(m));
        for (gene, &m) in &medians {
            if !(m.is_finite() && m > 0.0) {
                return bad(format!(
                    "gene median dictionary: the median of {gene:?} is {m}; medians must be finite and positive"
                ));
            }
        }
        let special = if version.special_tokens() {
            match (tokens.get("<cls>"), tokens.get("<eos>")) {
                (Some(&c), Some(&e)) => Some((c, e)),
                _ => {
                    return bad(
                        "token dictionary: Geneformer V2 (95M series) frames cells with <cls> and <eos>, \
                         but the dictionary lacks them (a V1 / 30M dictionary?)"
                            .to_string(),
                    );
                }
            }
        } else {
            None
        };
        Ok(GeneformerTokenizer {
            medians,
            tokens,
            input_size: version.input_size(),
            special,
        })
    }

    /// A tokenizer from dictionary files (pickle or JSON, told by content;
    /// see [`forge_pickle::dict_file`]).
    pub fn from_files(
        median_file: &Path,
        token_file: &Path,
        version: GeneformerVersion,
    ) -> Result<Self, GeneformerTokenizeError> {
        let medians = forge_pickle::read_str_f64_map(median_file)?;
        let tokens = forge_pickle::read_str_i64_map(token_file)?;
        Self::new(medians, tokens, version)
    }

    /// Overrides the version's input size (the number of tokens a cell
    /// gets at most, special tokens included).
    pub fn with_input_size(mut self, input_size: usize) -> Result<Self, GeneformerTokenizeError> {
        let min = if self.special.is_some() { 2 } else { 1 };
        if input_size < min {
            return Err(GeneformerTokenizeError::BadCell(format!(
                "input size {input_size} is too small: at least {min} with this version's special tokens"
            )));
        }
        self.input_size = input_size;
        Ok(self)
    }

    /// The input size cells are truncated to.
    pub fn input_size(&self) -> usize {
        self.input_size
    }

    /// Resolves a file's gene ids (one per column) against both
    /// dictionaries.
    pub fn genes<S: AsRef<str>>(&self, gene_ids: &[S]) -> GeneformerGenes {
        let mut slot_of: HashMap<&str, usize> = HashMap::new();
        let mut slots = Vec::new();
        let column_slot = gene_ids
            .iter()
            .map(|g| {
                let g = g.as_ref();
                if SPECIAL_KEYS.contains(&g) {
                    return None;
                }
                let (&token, &median) = (self.tokens.get(g)?, self.medians.get(g)?);
                Some(*slot_of.entry(g).or_insert_with(|| {
                    slots.push((token, median));
                    slots.len() - 1
                }))
            })
            .collect();
        GeneformerGenes { column_slot, slots }
    }

    /// Tokenizes one cell given as a dense row over the file's columns.
    /// `n_counts` is the cell's total (Geneformer's `obs["n_counts"]`);
    /// `None` uses the row's sum over all columns.
    pub fn tokenize_dense(
        &self,
        genes: &GeneformerGenes,
        row: &[f32],
        n_counts: Option<f64>,
    ) -> Result<Vec<i64>, GeneformerTokenizeError> {
        if row.len() != genes.column_slot.len() {
            return Err(GeneformerTokenizeError::BadCell(format!(
                "the cell has {} values but the file has {} genes",
                row.len(),
                genes.column_slot.len()
            )));
        }
        let (idx, val): (Vec<usize>, Vec<f32>) = row
            .iter()
            .enumerate()
            .filter(|(_, v)| **v != 0.0)
            .map(|(i, v)| (i, *v))
            .unzip();
        self.tokenize_sparse(genes, &idx, &val, n_counts)
    }

    /// Tokenizes one cell given as its nonzero entries (`indices` into the
    /// file's columns, increasing as in CSR, and their counts).
    pub fn tokenize_sparse(
        &self,
        genes: &GeneformerGenes,
        indices: &[usize],
        values: &[f32],
        n_counts: Option<f64>,
    ) -> Result<Vec<i64>, GeneformerTokenizeError> {
        let bad = |m: String| Err(GeneformerTokenizeError::BadCell(m));
        if indices.len() != values.len() {
            return bad(format!(
                "{} indices but {} values",
                indices.len(),
                values.len()
            ));
        }
        let mut total = 0.0f64;
        for (&i, &v) in indices.iter().zip(values) {
            if i >= genes.column_slot.len() {
                return bad(format!(
                    "column {i} is beyond the file's {} genes",
                    genes.column_slot.len()
                ));
            }
            if !(v.is_finite() && v >= 0.0) {
                return bad(format!(
                    "column {i} holds {v}; Geneformer tokenizes raw counts (finite, not negative)"
                ));
            }
            total += v as f64;
        }
        let total = match n_counts {
            Some(n) if !(n.is_finite() && n > 0.0) => {
                return bad(format!("n_counts is {n}; a cell's total must be positive"));
            }
            Some(n) => n,
            None => total,
        };
        // Sum counts per gene slot (duplicate ids), in first-column order.
        let mut summed: Vec<f64> = vec![0.0; genes.slots.len()];
        for (&i, &v) in indices.iter().zip(values) {
            if let Some(s) = genes.column_slot[i] {
                summed[s] += v as f64;
            }
        }
        let mut ranked: Vec<(f64, i64)> = summed
            .iter()
            .zip(&genes.slots)
            .filter(|(x, _)| **x != 0.0)
            .map(|(&x, &(token, median))| (scaled(x, total, median), token))
            .collect();
        rank(&mut ranked, self.input_size, self.special.is_some());
        let mut out = Vec::with_capacity(ranked.len() + 2);
        if let Some((cls, _)) = self.special {
            out.push(cls);
        }
        out.extend(ranked.iter().map(|&(_, t)| t));
        if let Some((_, eos)) = self.special {
            out.push(eos);
        }
        Ok(out)
    }

    /// The median of `gene`, when the median dictionary has it.
    pub fn median(&self, gene: &str) -> Option<f64> {
        self.medians.get(gene).copied()
    }

    /// The gene-median dictionary.
    pub fn medians(&self) -> &HashMap<String, f64> {
        &self.medians
    }

    /// The token dictionary (special keys included).
    pub fn tokens(&self) -> &HashMap<String, i64> {
        &self.tokens
    }

    /// `(<cls>, <eos>)` ids when the version frames cells with them.
    pub fn special_ids(&self) -> Option<(i64, i64)> {
        self.special
    }
}

/// One gene's median-scaled value: `count / n_counts * 10_000 / median`,
/// in `f64`, left to right (as Geneformer and the Python reference).
#[inline]
pub(crate) fn scaled(count: f64, n_counts: f64, median: f64) -> f64 {
    count / n_counts * TARGET_SUM / median
}

/// Ranks `(scaled value, token)` pairs descending (stable: equal values
/// keep their order, see the module docs) and keeps those a cell of
/// `input_size` tokens has room for, two fewer when `<cls>`/`<eos>` frame
/// it. Every tokenizing path goes through this.
pub(crate) fn rank(scored: &mut Vec<(f64, i64)>, input_size: usize, special: bool) {
    scored.sort_by(|a, b| b.0.total_cmp(&a.0));
    let body = if special {
        input_size.saturating_sub(2)
    } else {
        input_size
    };
    scored.truncate(body);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_util::{self, strings};
    use serde_json::Value;

    fn fixture() -> Value {
        let p = test_util::fixture("data", "geneformer_tokenize.json");
        serde_json::from_slice(&std::fs::read(&p).unwrap()).unwrap()
    }

    fn ids(v: &Value) -> Vec<Vec<i64>> {
        v.as_array()
            .unwrap()
            .iter()
            .map(|c| {
                c.as_array()
                    .unwrap()
                    .iter()
                    .map(|t| t.as_i64().unwrap())
                    .collect()
            })
            .collect()
    }

    fn dicts_dir() -> std::path::PathBuf {
        test_util::fixture("data", "")
    }

    /// Exact token-id equality with the Python reference, for both
    /// versions, dictionaries read from the pickles the script wrote.
    #[test]
    fn matches_the_python_reference_exactly() {
        let f = fixture();
        let genes_ids = strings(&f["genes"]);
        let cells = f["cells"].as_array().unwrap();
        for (version, key) in [(GeneformerVersion::V1, "v1"), (GeneformerVersion::V2, "v2")] {
            let tk = GeneformerTokenizer::from_files(
                &dicts_dir().join("geneformer_medians.pkl"),
                &dicts_dir().join(format!("geneformer_tokens_{key}.pkl")),
                version,
            )
            .unwrap()
            .with_input_size(f[key]["input_size"].as_u64().unwrap() as usize)
            .unwrap();
            let genes = tk.genes(&genes_ids);
            let expected = ids(&f[key]["expected"]);
            assert_eq!(expected.len(), cells.len());
            for (c, (cell, want)) in cells.iter().zip(&expected).enumerate() {
                let idx: Vec<usize> = cell["indices"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|i| i.as_u64().unwrap() as usize)
                    .collect();
                let val: Vec<f32> = cell["values"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|v| v.as_f64().unwrap() as f32)
                    .collect();
                let got = tk.tokenize_sparse(&genes, &idx, &val, None).unwrap();
                assert_eq!(&got, want, "{key} cell {c}");
                let mut dense = vec![0f32; genes_ids.len()];
                for (&i, &v) in idx.iter().zip(&val) {
                    dense[i] = v;
                }
                assert_eq!(
                    &tk.tokenize_dense(&genes, &dense, None).unwrap(),
                    want,
                    "{key} cell {c} dense"
                );
            }
        }
        // The fixture exercises what it claims: truncation, dropped genes,
        // duplicates, ties, and cells where Geneformer's own unstable sort
        // agrees (no ties).
        let stats = &f["stats"];
        assert!(stats["cells_truncated_v1"].as_u64().unwrap() > 0);
        assert!(stats["cells_with_ties"].as_u64().unwrap() > 0);
        assert!(stats["cells_geneformer_argsort_equal"].as_u64().unwrap() > 0);
        let tk = GeneformerTokenizer::from_files(
            &dicts_dir().join("geneformer_medians.pkl"),
            &dicts_dir().join("geneformer_tokens_v1.pkl"),
            GeneformerVersion::V1,
        )
        .unwrap();
        let genes = tk.genes(&genes_ids);
        assert_eq!(
            genes.n_matched_columns(),
            stats["matched_columns"].as_u64().unwrap() as usize
        );
        assert_eq!(
            genes.n_genes(),
            stats["distinct_genes"].as_u64().unwrap() as usize
        );
    }

    fn small(version: GeneformerVersion) -> GeneformerTokenizer {
        let medians = HashMap::from([
            ("A".to_string(), 1.0),
            ("B".to_string(), 2.0),
            ("C".to_string(), 0.5),
        ]);
        let mut tokens = HashMap::from([
            ("A".to_string(), 10),
            ("B".to_string(), 11),
            ("C".to_string(), 12),
        ]);
        tokens.insert("<cls>".into(), 2);
        tokens.insert("<eos>".into(), 3);
        GeneformerTokenizer::new(medians, tokens, version).unwrap()
    }

    #[test]
    fn versions_frame_and_truncate_as_published() {
        assert_eq!(GeneformerVersion::V1.input_size(), 2048);
        assert_eq!(GeneformerVersion::V2.input_size(), 4096);
        let genes_ids = ["A", "B", "C", "X"];
        // Scaled: A 4/10*1e4/1 = 4000, B 2/10*1e4/2 = 1000, C 1/10*1e4/0.5 = 2000.
        let row = [4.0f32, 2.0, 1.0, 3.0];
        let v1 = small(GeneformerVersion::V1);
        let g = v1.genes(&genes_ids);
        assert_eq!(v1.tokenize_dense(&g, &row, None).unwrap(), vec![10, 12, 11]);
        let v1 = v1.with_input_size(2).unwrap();
        assert_eq!(v1.tokenize_dense(&g, &row, None).unwrap(), vec![10, 12]);
        let v2 = small(GeneformerVersion::V2);
        assert_eq!(
            v2.tokenize_dense(&g, &row, None).unwrap(),
            vec![2, 10, 12, 11, 3]
        );
        let v2 = v2.with_input_size(3).unwrap();
        assert_eq!(v2.tokenize_dense(&g, &row, None).unwrap(), vec![2, 10, 3]);
        assert_eq!(v2.tokenize_dense(&g, &[0.0; 4], None).unwrap(), vec![2, 3]);
        assert!(small(GeneformerVersion::V2).with_input_size(1).is_err());
    }

    #[test]
    fn ties_keep_column_order_and_duplicates_sum() {
        let tk = small(GeneformerVersion::V1);
        // A and B tie (2/1 == 4/2): column order decides, whichever comes first.
        let g = tk.genes(&["B", "A"]);
        assert_eq!(
            tk.tokenize_dense(&g, &[4.0, 2.0], None).unwrap(),
            vec![11, 10]
        );
        let g = tk.genes(&["A", "B"]);
        assert_eq!(
            tk.tokenize_dense(&g, &[2.0, 4.0], None).unwrap(),
            vec![10, 11]
        );
        // "B" twice: 1 + 5 = 6 -> 6/2 = 3 beats A's 2; ranked once.
        let g = tk.genes(&["A", "B", "B"]);
        assert_eq!(g.n_genes(), 2);
        assert_eq!(
            tk.tokenize_dense(&g, &[2.0, 1.0, 5.0], None).unwrap(),
            vec![11, 10]
        );
    }

    #[test]
    fn bad_input_is_refused_with_a_reason() {
        let tk = small(GeneformerVersion::V1);
        let g = tk.genes(&["A", "B"]);
        let e = tk.tokenize_dense(&g, &[1.0], None).unwrap_err().to_string();
        assert!(e.contains("1 values but the file has 2 genes"), "{e}");
        let e = tk
            .tokenize_dense(&g, &[-1.0, 1.0], None)
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("column 0 holds -1") && e.contains("raw counts"),
            "{e}"
        );
        let e = tk
            .tokenize_sparse(&g, &[5], &[1.0], None)
            .unwrap_err()
            .to_string();
        assert!(e.contains("column 5 is beyond"), "{e}");
        let e = tk
            .tokenize_dense(&g, &[1.0, 1.0], Some(0.0))
            .unwrap_err()
            .to_string();
        assert!(e.contains("n_counts is 0"), "{e}");
        let medians = HashMap::from([("A".to_string(), 0.0)]);
        let e = GeneformerTokenizer::new(medians, HashMap::new(), GeneformerVersion::V1)
            .unwrap_err()
            .to_string();
        assert!(e.contains("median of \"A\" is 0"), "{e}");
        let e = GeneformerTokenizer::new(HashMap::new(), HashMap::new(), GeneformerVersion::V2)
            .unwrap_err()
            .to_string();
        assert!(e.contains("lacks them"), "{e}");
        let e = GeneformerTokenizer::from_files(
            Path::new("/nonexistent/m.pkl"),
            Path::new("t.pkl"),
            GeneformerVersion::V1,
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("/nonexistent/m.pkl: cannot read"), "{e}");
    }
}
