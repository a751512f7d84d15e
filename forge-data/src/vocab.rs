//! The gene vocabulary: gene name -> token id.
//!
//! Ids 0..=3 are the special tokens of [`forge_core::batch::special`] (PAD, UNK,
//! MASK, CLS); genes take ids from 4 on. A vocabulary is built from the gene
//! names of the data (in order of first appearance, duplicates skipped) or
//! loaded from scModelForge's `gene_vocab.json`.
//!
//! ## `gene_vocab.json`
//! A JSON object mapping each gene name to its id, e.g. `{"CD3E": 4,
//! "MS4A1": 5}`. [`GeneVocab::save`] writes genes only (ids >= 4) in id
//! order, which is what scModelForge's `GeneVocab` saves and what its loader
//! accepts. [`GeneVocab::load`] is lenient about special tokens: entries
//! with an id below 4 whose name is a special-token spelling (`<pad>`,
//! `[PAD]`, `<unk>`, `[CLS]`, ...) are accepted and ignored, so files from
//! tools that store the specials load too. Anything else with an id below 4,
//! a negative or non-integer id, or two genes sharing an id is refused with
//! an error naming the entry. Ids need not be contiguous: the vocabulary
//! size is the largest id + 1, so a model's embedding table keeps its rows.
//!
//! What this module is not: it does not decide how a file's gene names are
//! matched to the vocabulary (Ensembl versions, case): that is
//! [`super::genes`].

use std::collections::HashMap;
use std::path::Path;

use serde_json::{Map, Value};

use super::DataError;
use forge_core::batch::special;

/// Special-token spellings accepted (and skipped) when loading a vocabulary.
const SPECIAL_NAMES: &[&str] = &[
    "<pad>", "[PAD]", "<unk>", "[UNK]", "<mask>", "[MASK]", "<cls>", "[CLS]", "<eos>", "<bos>",
    "[SEP]", "<sep>",
];

/// Gene name -> token id, ids from [`special::FIRST_GENE_ID`].
#[derive(Debug, Clone, PartialEq)]
pub struct GeneVocab {
    /// `(gene, id)` in id order.
    genes: Vec<(String, i64)>,
    index: HashMap<String, i64>,
    /// Largest id + 1 (at least 4).
    size: usize,
}

impl GeneVocab {
    /// Builds a vocabulary from gene names, in order of first appearance:
    /// the first gene gets id 4, the next new one 5, ...; repeated names are
    /// skipped.
    pub fn from_genes<I, S>(genes: I) -> GeneVocab
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        let mut out: Vec<(String, i64)> = Vec::new();
        let mut index = HashMap::new();
        for g in genes {
            let g = g.as_ref();
            if index.contains_key(g) {
                continue;
            }
            let id = special::FIRST_GENE_ID + out.len() as i64;
            index.insert(g.to_string(), id);
            out.push((g.to_string(), id));
        }
        let size = special::FIRST_GENE_ID as usize + out.len();
        GeneVocab {
            genes: out,
            index,
            size,
        }
    }

    /// Builds a vocabulary from explicit `(gene, id)` pairs, checking that
    /// ids are >= 4 and unique and names are unique. `origin` names the
    /// source in errors.
    pub fn from_pairs(
        pairs: impl IntoIterator<Item = (String, i64)>,
        origin: &Path,
    ) -> Result<GeneVocab, DataError> {
        let bad = |detail: String| DataError::Vocab {
            path: origin.to_path_buf(),
            detail,
        };
        let mut genes: Vec<(String, i64)> = Vec::new();
        let mut index = HashMap::new();
        for (name, id) in pairs {
            if id < special::FIRST_GENE_ID {
                if SPECIAL_NAMES.contains(&name.as_str()) && id >= 0 {
                    continue;
                }
                return Err(bad(format!(
                    "gene `{name}` has id {id}; gene ids start at {} (0-3 are PAD, UNK, MASK, CLS)",
                    special::FIRST_GENE_ID
                )));
            }
            if index.insert(name.clone(), id).is_some() {
                return Err(bad(format!("gene `{name}` appears twice")));
            }
            genes.push((name, id));
        }
        genes.sort_by_key(|g| g.1);
        if let Some(w) = genes.windows(2).find(|w| w[0].1 == w[1].1) {
            return Err(bad(format!(
                "genes `{}` and `{}` share id {}; every gene needs its own id",
                w[0].0, w[1].0, w[0].1
            )));
        }
        let size = genes
            .last()
            .map_or(special::FIRST_GENE_ID as usize, |g| g.1 as usize + 1);
        Ok(GeneVocab { genes, index, size })
    }

    /// The vocabulary of a Geneformer token dictionary (Ensembl id -> token
    /// id, as read from its `.pkl`/`.json`): its genes keep their ids,
    /// whatever they are (Geneformer's V1 genes start at 2, after `<pad>`
    /// 0 and `<mask>` 1); the special keys (`<pad>`, `<mask>`, `<cls>`,
    /// `<eos>`) are not genes. The size is the largest id of any entry + 1.
    /// Negative or shared ids are refused, naming `origin`.
    pub fn from_token_dictionary(
        tokens: &HashMap<String, i64>,
        origin: &Path,
    ) -> Result<GeneVocab, DataError> {
        let bad = |detail: String| DataError::Vocab {
            path: origin.to_path_buf(),
            detail,
        };
        let specials = crate::geneformer_tokenize::SPECIAL_KEYS;
        let mut genes: Vec<(String, i64)> = Vec::with_capacity(tokens.len());
        let mut size = 0usize;
        for (name, &id) in tokens {
            if id < 0 {
                return Err(bad(format!(
                    "`{name}` has id {id}; token ids are not negative"
                )));
            }
            size = size.max(id as usize + 1);
            if !specials.contains(&name.as_str()) {
                genes.push((name.clone(), id));
            }
        }
        let mut all: Vec<(&str, i64)> = tokens.iter().map(|(k, &v)| (k.as_str(), v)).collect();
        all.sort_by_key(|&(k, v)| (v, k));
        if let Some(w) = all.windows(2).find(|w| w[0].1 == w[1].1) {
            return Err(bad(format!(
                "`{}` and `{}` share id {}; every token needs its own id",
                w[0].0, w[1].0, w[0].1
            )));
        }
        if genes.is_empty() {
            return Err(bad("the token dictionary holds no genes".into()));
        }
        genes.sort_by_key(|g| g.1);
        let index = genes.iter().cloned().collect();
        Ok(GeneVocab { genes, index, size })
    }

    /// Loads scModelForge's `gene_vocab.json` (see the module docs).
    pub fn load(path: impl AsRef<Path>) -> Result<GeneVocab, DataError> {
        let path = path.as_ref();
        let text = std::fs::read_to_string(path).map_err(|e| DataError::io(path, e))?;
        let value: Value = serde_json::from_str(&text).map_err(|e| DataError::Vocab {
            path: path.to_path_buf(),
            detail: format!("not valid JSON ({e}); expected an object {{\"GENE\": id, ...}}"),
        })?;
        let Value::Object(map) = value else {
            return Err(DataError::Vocab {
                path: path.to_path_buf(),
                detail: format!(
                    "expected a JSON object {{\"GENE\": id, ...}}, found {}",
                    kind_of(&value)
                ),
            });
        };
        let mut pairs = Vec::with_capacity(map.len());
        for (name, v) in map {
            let id = v.as_i64().ok_or_else(|| DataError::Vocab {
                path: path.to_path_buf(),
                detail: format!(
                    "gene `{name}` has id {v}; expected a non-negative integer, found {}",
                    kind_of(&v)
                ),
            })?;
            pairs.push((name, id));
        }
        if pairs.is_empty() {
            return Err(DataError::Vocab {
                path: path.to_path_buf(),
                detail: "the vocabulary holds no genes".into(),
            });
        }
        GeneVocab::from_pairs(pairs, path)
    }

    /// Saves as `gene_vocab.json` (genes only, in id order), atomically:
    /// the file is written beside `path` and renamed into place.
    pub fn save(&self, path: impl AsRef<Path>) -> Result<(), DataError> {
        let path = path.as_ref();
        let mut map = Map::new();
        for (g, id) in &self.genes {
            map.insert(g.clone(), Value::from(*id));
        }
        let text =
            serde_json::to_string_pretty(&Value::Object(map)).map_err(|e| DataError::Write {
                path: path.to_path_buf(),
                detail: e.to_string(),
            })?;
        forge_core::atomic::write_file_with(
            path,
            |tmp| std::fs::write(tmp, text.as_bytes()).map_err(|e| DataError::io(tmp, e)),
            |p, e| DataError::io(p, e),
        )
    }

    /// Vocabulary size, the 4 special tokens included (largest id + 1): the
    /// `vocab_size` of the model.
    pub fn len(&self) -> usize {
        self.size
    }

    /// Whether the vocabulary holds no gene.
    pub fn is_empty(&self) -> bool {
        self.genes.is_empty()
    }

    /// Number of genes (without the special tokens).
    pub fn n_genes(&self) -> usize {
        self.genes.len()
    }

    /// The id of `gene`, [`special::UNK`] when unknown.
    pub fn id(&self, gene: &str) -> i64 {
        self.get(gene).unwrap_or(special::UNK)
    }

    /// The id of `gene`, if known.
    pub fn get(&self, gene: &str) -> Option<i64> {
        self.index.get(gene).copied()
    }

    /// Whether `gene` is in the vocabulary.
    pub fn contains(&self, gene: &str) -> bool {
        self.index.contains_key(gene)
    }

    /// The gene holding `id` (`None` for special tokens and unused ids).
    pub fn gene(&self, id: i64) -> Option<&str> {
        self.genes
            .binary_search_by_key(&id, |g| g.1)
            .ok()
            .map(|i| self.genes[i].0.as_str())
    }

    /// `(gene, id)` pairs in id order.
    pub fn entries(&self) -> &[(String, i64)] {
        &self.genes
    }

    /// Gene names in id order.
    pub fn genes(&self) -> impl Iterator<Item = &str> {
        self.genes.iter().map(|g| g.0.as_str())
    }
}

fn kind_of(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_util::{Scratch, fails};

    #[test]
    fn built_in_order_of_first_appearance() {
        let v = GeneVocab::from_genes(["CD3E", "MS4A1", "CD3E", "LYZ"]);
        assert_eq!(v.len(), 7);
        assert_eq!(v.n_genes(), 3);
        assert_eq!(v.id("CD3E"), 4);
        assert_eq!(v.id("MS4A1"), 5);
        assert_eq!(v.id("LYZ"), 6);
        assert_eq!(v.id("NOPE"), special::UNK);
        assert_eq!(v.gene(5), Some("MS4A1"));
        assert_eq!(v.gene(2), None);
    }

    #[test]
    fn save_load_round_trip_is_genes_only() {
        let v = GeneVocab::from_genes(["A", "B", "C"]);
        let dir = Scratch::new("vocab-rt");
        let p = dir.path("rt.json");
        v.save(&p).unwrap();
        let text = std::fs::read_to_string(&p).unwrap();
        let json: Value = serde_json::from_str(&text).unwrap();
        assert_eq!(json, serde_json::json!({"A": 4, "B": 5, "C": 6}));
        assert_eq!(GeneVocab::load(&p).unwrap(), v);
    }

    #[test]
    fn specials_in_the_file_are_skipped_and_gaps_kept() {
        let dir = Scratch::new("vocab-sp");
        let p = dir.path("sp.json");
        std::fs::write(
            &p,
            r#"{"<pad>": 0, "<unk>": 1, "[MASK]": 2, "<cls>": 3, "G1": 4, "G2": 9}"#,
        )
        .unwrap();
        let v = GeneVocab::load(&p).unwrap();
        assert_eq!(v.n_genes(), 2);
        assert_eq!(v.len(), 10);
        assert_eq!(v.id("G2"), 9);
    }

    #[test]
    fn bad_files_are_named_errors() {
        let cases = [
            ("notjson", "{", "not valid JSON"),
            ("array", "[1, 2]", "expected a JSON object"),
            ("low", r#"{"G1": 2}"#, "gene `G1` has id 2"),
            ("float", r#"{"G1": 4.5}"#, "expected a non-negative integer"),
            ("dup", r#"{"G1": 4, "G2": 4}"#, "share id 4"),
            ("empty", "{}", "holds no genes"),
        ];
        let dir = Scratch::new("vocab-bad");
        for (name, text, needle) in cases {
            let p = dir.path(name);
            std::fs::write(&p, text).unwrap();
            fails(GeneVocab::load(&p), &[needle, name]);
        }
        fails(GeneVocab::load(dir.path("missing.json")), &["missing.json"]);
    }
}
