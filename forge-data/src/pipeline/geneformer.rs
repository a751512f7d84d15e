//! The pipeline of `tokenizer.strategy: geneformer` (a forge extension):
//! Geneformer's own median-scaled rank of raw counts
//! ([`crate::geneformer_tokenize`]) with Geneformer's token ids, so that
//! batches and checkpoints agree with Geneformer's (`<pad>` 0, `<mask>` 1).
//!
//! - The dictionaries: `tokenizer.token_dictionary` (Ensembl id -> token
//!   id) and `tokenizer.gene_median_dictionary` (Ensembl id -> median),
//!   each a `.pkl` (read by `forge_pickle`: plain data and NumPy scalars,
//!   never code) or a `.json`; any other file name is refused naming the
//!   key, the file and what is accepted.
//! - The vocabulary is the token dictionary
//!   ([`GeneVocab::from_token_dictionary`]); `<pad>` must be 0 (batches
//!   are padded with 0) and `<mask>` present (masking writes it).
//! - Gene ids: the Ensembl ids of the var column `data.gene_key`, else of
//!   the var index, matched as every forge vocabulary is (Ensembl versions
//!   stripped; `data.case_insensitive_genes`); coverage is measured and
//!   checked against `data.min_gene_coverage` as for any vocabulary file.
//! - Counts: cells are read as stored (`data.preprocessing` is not applied:
//!   the config checks refuse it switched on). Each cell's `n_counts` is
//!   `obs["n_counts"]` when every file has that column, else the sum of the
//!   cell's whole row (genes outside the dictionaries included), as
//!   Geneformer's `tokenize_anndata`. One pass over the cells computes it
//!   and refuses negative or non-finite values (scaled data); non-integer
//!   values are reported as a warning ([`DataPipeline::warnings`]).
//! - Masking (`tokenizer.masking`) writes the dictionary's `<mask>` id,
//!   never chooses `<pad>`, `<cls>`, `<eos>`, and draws random
//!   replacements from the gene ids (those above every special id).

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;

use forge_core::config::checks::geneformer_dict_path_problem;
use forge_core::config::{
    DataConfig, GeneformerSeries, MaskingConfig, PreprocessingConfig, TokenizerConfig,
};

use super::DataPipeline;
use crate::corpus::{Corpus, CorpusOptions};
use crate::geneformer_tokenize::{
    GeneformerTokenizeError, GeneformerTokenizer, GeneformerVersion, SPECIAL_KEYS,
};
use crate::genes::{GeneMatchOptions, match_key};
use crate::h5ad::{Column, Matrix};
use crate::masking::{Masking, SpecialIds};
use crate::tokenize::{GeneformerRank, Strategy, Tokenizer};
use crate::{DataError, GeneVocab};

/// Cells read per chunk by the `n_counts` pass.
const CHUNK: usize = 4096;

const TOKENS_KEY: &str = "tokenizer.token_dictionary";
const MEDIANS_KEY: &str = "tokenizer.gene_median_dictionary";

/// The path a dictionary key names, checked by its file name.
fn dict_path(key: &str, value: Option<&String>) -> Result<PathBuf, DataError> {
    let Some(p) = value else {
        return Err(DataError::setting(
            key,
            "must be set with tokenizer.strategy: geneformer (a .pkl or .json file of \
             Geneformer's dictionaries)",
        ));
    };
    if let Some(problem) = geneformer_dict_path_problem(p) {
        return Err(DataError::setting(key, problem));
    }
    Ok(PathBuf::from(p))
}

/// The tokenizer the `tokenizer` section describes, its dictionaries read.
pub(crate) fn read_tokenizer(
    tok: &TokenizerConfig,
) -> Result<(GeneformerTokenizer, PathBuf), DataError> {
    let version = match tok.geneformer_version {
        Some(GeneformerSeries::V1) => GeneformerVersion::V1,
        Some(GeneformerSeries::V2) => GeneformerVersion::V2,
        None => {
            return Err(DataError::setting(
                "tokenizer.geneformer_version",
                "must be set with tokenizer.strategy: geneformer; accepted values: v1 (30M \
                 series: no special tokens, input size 2048), v2 (95M series: <cls> and <eos>, \
                 input size 4096)",
            ));
        }
    };
    let token_path = dict_path(TOKENS_KEY, tok.token_dictionary.as_ref())?;
    let median_path = dict_path(MEDIANS_KEY, tok.gene_median_dictionary.as_ref())?;
    let tokens = forge_pickle::read_str_i64_map(&token_path)
        .map_err(|e| DataError::setting(TOKENS_KEY, e.to_string()))?;
    let medians = forge_pickle::read_str_f64_map(&median_path)
        .map_err(|e| DataError::setting(MEDIANS_KEY, e.to_string()))?;
    let in_tokens = |detail: String| {
        DataError::setting(TOKENS_KEY, format!("{}: {detail}", token_path.display()))
    };
    match tokens.get("<pad>") {
        Some(0) => {}
        Some(id) => {
            return Err(in_tokens(format!(
                "<pad> has id {id}; Geneformer's <pad> is 0, which forge pads batches with"
            )));
        }
        None => {
            return Err(in_tokens(
                "there is no <pad> entry (Geneformer's is 0)".into(),
            ));
        }
    }
    if !tokens.contains_key("<mask>") {
        return Err(in_tokens(
            "there is no <mask> entry, which masked pretraining writes".into(),
        ));
    }
    let tk = GeneformerTokenizer::new(medians, tokens, version).map_err(|e| match e {
        GeneformerTokenizeError::BadDictionary(m) if m.starts_with("gene median") => {
            DataError::setting(MEDIANS_KEY, format!("{}: {m}", median_path.display()))
        }
        other => in_tokens(other.to_string()),
    })?;
    let tk = match tok.model_input_size {
        None => tk,
        Some(n) if n < 1 => {
            return Err(DataError::setting(
                "tokenizer.model_input_size",
                format!("must be at least 1, got {n}"),
            ));
        }
        Some(n) => tk.with_input_size(n as usize).map_err(|e| {
            DataError::setting("tokenizer.model_input_size", format!("{e} (got {n})"))
        })?,
    };
    Ok((tk, token_path))
}

impl DataPipeline {
    /// The pipeline of `tokenizer.strategy: geneformer` over `data.paths`
    /// (see the module docs); masked per `masking` when given.
    pub fn geneformer(
        data: &DataConfig,
        tok: &TokenizerConfig,
        masking: Option<&MaskingConfig>,
    ) -> Result<DataPipeline, DataError> {
        let (tk, token_path) = read_tokenizer(tok)?;
        let opts = CorpusOptions {
            preprocessing: PreprocessingConfig {
                normalize: None,
                target_sum: None,
                hvg_selection: None,
                log1p: false,
            },
            ..CorpusOptions::from_config(data)
        };
        let mut corpus = Corpus::open(&data.paths, &opts)?;
        let vocab = GeneVocab::from_token_dictionary(tk.tokens(), &token_path)?;
        corpus.retain_known(&vocab);
        let ci = data.case_insensitive_genes;
        let by_key: HashMap<String, f64> = tk
            .medians()
            .iter()
            .map(|(k, &v)| (match_key(k, ci).into_owned(), v))
            .collect();
        let medians: Vec<f64> = corpus
            .genes()
            .iter()
            .map(|g| {
                by_key
                    .get(match_key(g, ci).as_ref())
                    .copied()
                    .unwrap_or(0.0)
            })
            .collect();
        let tokenizer = Tokenizer {
            strategy: Strategy::Geneformer(GeneformerRank {
                medians: Arc::new(medians),
                special: tk.special_ids(),
                input_size: tk.input_size(),
            }),
            max_genes: tk.input_size(),
            prepend_cls: false,
        };
        let masking = match masking {
            None => None,
            Some(m) => Some(Masking {
                special: special_ids(tk.tokens()),
                ..Masking::from_config(m, 0)?
            }),
        };
        let (totals, warnings) = cell_totals(&corpus)?;
        let mut pipeline = DataPipeline::new(
            corpus,
            Some(vocab),
            tokenizer,
            masking,
            &GeneMatchOptions::from_config(data),
        )?;
        let inner = Arc::get_mut(&mut pipeline.inner)
            .ok_or_else(|| DataError::Loader("the new pipeline is shared".into()))?;
        inner.cell_totals = Some(totals);
        inner.warnings = warnings;
        Ok(pipeline)
    }
}

/// Masking's ids under a Geneformer token dictionary.
fn special_ids(tokens: &HashMap<String, i64>) -> SpecialIds {
    let id = |k: &str| tokens.get(k).copied();
    let first_gene = SPECIAL_KEYS
        .iter()
        .filter_map(|k| id(k))
        .max()
        .unwrap_or(-1)
        + 1;
    SpecialIds {
        mask: id("<mask>").unwrap_or(1),
        never_masked: ["<pad>", "<cls>", "<eos>"]
            .iter()
            .filter_map(|k| id(k))
            .collect(),
        first_gene,
    }
}

/// Each corpus cell's `n_counts` (see the module docs), refusing values
/// that are not counts; the warnings found on the way.
fn cell_totals(corpus: &Corpus) -> Result<(Vec<f64>, Vec<String>), DataError> {
    let mut totals = Vec::with_capacity(corpus.n_cells());
    let mut warnings = Vec::new();
    let matrix = match corpus.matrix() {
        Matrix::X => "X",
        Matrix::Raw => "raw.X",
    };
    let use_obs = (0..corpus.n_files()).all(|f| {
        corpus
            .file(f)
            .obs_columns()
            .iter()
            .any(|c| c.name == "n_counts")
    });
    for f in 0..corpus.n_files() {
        let h5 = corpus.file(f);
        let path = h5.path().to_path_buf();
        let bad = |detail: String| DataError::Mismatch {
            path: path.clone(),
            detail,
        };
        let obs: Option<Vec<f64>> = if use_obs {
            match h5.obs_column("n_counts")? {
                Column::F64(v) => Some(v),
                Column::I64(v) => Some(v.iter().map(|&x| x as f64).collect()),
                _ => {
                    return Err(bad(
                        "obs column `n_counts` is not numeric; Geneformer reads each cell's \
                         total count from it: fix or drop the column"
                            .into(),
                    ));
                }
            }
        } else {
            None
        };
        let names = h5.obs_names()?;
        let n = h5.n_obs();
        let (mut non_integer, mut example) = (0usize, None);
        let mut start = 0;
        while start < n {
            let end = (start + CHUNK).min(n);
            let chunk = corpus.read_chunk(f, start, end)?;
            for i in 0..chunk.n_cells() {
                let cell = start + i;
                let name = || names.get(cell).cloned().unwrap_or_else(|| cell.to_string());
                let (_, vals) = chunk.row(i);
                let mut sum = 0.0f64;
                let mut whole = true;
                for &v in vals {
                    if !(v.is_finite() && v >= 0.0) {
                        return Err(bad(format!(
                            "cell {} holds {v} in {matrix}: tokenizer.strategy: geneformer \
                             tokenizes raw counts (finite, not negative), and these look like \
                             scaled values; set data.use_raw: true if adata.raw holds the \
                             counts, or point data.paths at a file of raw counts",
                            name()
                        )));
                    }
                    whole &= v.fract() == 0.0;
                    sum += f64::from(v);
                }
                if !whole {
                    non_integer += 1;
                    if example.is_none() {
                        example = Some(name());
                    }
                }
                let total = match &obs {
                    Some(o) => {
                        let t = o.get(cell).copied().unwrap_or(f64::NAN);
                        if !(t.is_finite() && (t > 0.0 || sum == 0.0)) {
                            return Err(bad(format!(
                                "obs `n_counts` of cell {} is {t}, but its counts sum to \
                                 {sum}; Geneformer divides by it: fix or drop the column",
                                name()
                            )));
                        }
                        t
                    }
                    None => sum,
                };
                totals.push(total);
            }
            start = end;
        }
        if non_integer > 0 {
            warnings.push(format!(
                "{}: {non_integer} of {n} cells hold non-integer values in {matrix} (e.g. cell \
                 {}); tokenizer.strategy: geneformer expects raw counts: if these are \
                 normalised or log-transformed, set data.use_raw: true when adata.raw holds \
                 counts, or point data.paths at the counts",
                path.display(),
                example.unwrap_or_default()
            ));
        }
    }
    Ok((totals, warnings))
}

#[cfg(test)]
mod tests {
    use forge_core::config::ForgeConfig;
    use serde_json::Value;
    use tch::Tensor;

    use super::*;
    use crate::LoaderOptions;
    use crate::plan::StreamingOptions;
    use crate::test_util::{self, i64s};

    fn fixture(name: &str) -> String {
        test_util::fixture("data", name).display().to_string()
    }

    fn expected() -> Value {
        let text = std::fs::read_to_string(fixture("geneformer_pipeline.json")).unwrap();
        serde_json::from_str(&text).unwrap()
    }

    /// A config over the pipeline fixture; `extra` lines go under
    /// `tokenizer:`.
    fn yaml(version: &str, ext: &str, extra: &str) -> String {
        format!(
            "data:\n  paths: [{h5ad}]\n  gene_key: ensembl_id\n  preprocessing:\n    \
             normalize: null\n    log1p: false\ntokenizer:\n  strategy: geneformer\n  \
             geneformer_version: {version}\n  token_dictionary: {tokens}\n  \
             gene_median_dictionary: {medians}\n{extra}",
            h5ad = fixture("geneformer_pipeline.h5ad"),
            tokens = fixture(&format!("geneformer_pipeline_tokens_{version}.{ext}")),
            medians = fixture(&format!("geneformer_pipeline_medians.{ext}")),
        )
    }

    fn config(text: &str) -> ForgeConfig {
        ForgeConfig::from_yaml_str(text, "test.yaml").unwrap()
    }

    fn rows(t: &Tensor) -> Vec<Vec<i64>> {
        let (b, s) = t.size2().unwrap();
        let flat = Vec::<i64>::try_from(&t.to_kind(tch::Kind::Int64).flatten(0, -1)).unwrap();
        (0..b as usize)
            .map(|i| flat[i * s as usize..(i + 1) * s as usize].to_vec())
            .collect()
    }

    fn f32_rows(t: &Tensor) -> Vec<Vec<f32>> {
        let (b, s) = t.size2().unwrap();
        let flat = Vec::<f32>::try_from(&t.flatten(0, -1)).unwrap();
        (0..b as usize)
            .map(|i| flat[i * s as usize..(i + 1) * s as usize].to_vec())
            .collect()
    }

    /// Every cell's `input_ids` (and attention mask, values) in the batches
    /// equal the Python reference's tokens, padded with `<pad>` 0 to the
    /// longest cell of each batch, for both versions, both dictionary
    /// formats (pickle of NumPy scalars, JSON), in memory and streamed.
    #[test]
    fn batches_hold_the_python_reference_tokens() {
        let exp = expected();
        for version in ["v1", "v2"] {
            let want = &exp[version];
            let size = want["input_size"].as_u64().unwrap();
            let want_ids: Vec<Vec<i64>> = test_util::array(&want["input_ids"], i64s);
            let want_vals: Vec<Vec<f32>> = test_util::array(&want["values"], test_util::f32s);
            for ext in ["pkl", "json"] {
                let cfg = config(&yaml(
                    version,
                    ext,
                    &format!("  model_input_size: {size}\n"),
                ));
                let p = DataPipeline::from_config(&cfg).unwrap();
                assert_eq!(p.vocab().len() as u64, want["vocab_size"].as_u64().unwrap());
                assert!(p.warnings().is_empty(), "{:?}", p.warnings());
                for streaming in [
                    None,
                    Some(StreamingOptions {
                        chunk_size: 5,
                        shuffle_buffer: 1,
                    }),
                ] {
                    let opts = LoaderOptions {
                        streaming,
                        ..LoaderOptions::inference(5)
                    };
                    let loader = p.all().loader(opts).unwrap();
                    let mut cell = 0;
                    for batch in loader.epoch(0) {
                        let batch = batch.unwrap();
                        let ids = rows(batch.input_ids());
                        let attn = rows(batch.attention_mask());
                        let vals = f32_rows(batch.values().unwrap());
                        let longest = (cell..cell + ids.len())
                            .map(|c| want_ids[c].len())
                            .max()
                            .unwrap()
                            .max(1);
                        for ((row, a), v) in ids.iter().zip(&attn).zip(&vals) {
                            let w = &want_ids[cell];
                            let tag = format!(
                                "{version} {ext} streaming {} cell {cell}",
                                streaming.is_some()
                            );
                            assert_eq!(row.len(), longest, "{tag}");
                            assert_eq!(&row[..w.len()], &w[..], "{tag}");
                            assert!(row[w.len()..].iter().all(|&x| x == 0), "{tag}");
                            assert!(a[..w.len()].iter().all(|&x| x == 1), "{tag}");
                            assert!(a[w.len()..].iter().all(|&x| x == 0), "{tag}");
                            for (k, (&got, &exp)) in v.iter().zip(&want_vals[cell]).enumerate() {
                                assert!(
                                    (got - exp).abs() <= 1e-6 * exp.abs().max(1.0),
                                    "{tag} value {k}: {got} vs {exp}"
                                );
                            }
                            cell += 1;
                        }
                    }
                    assert_eq!(cell, want_ids.len());
                }
                // One path for inspection too.
                assert_eq!(p.tokenize_cell(0).unwrap().ids, want_ids[0]);
            }
        }
        // The fixture exercises truncation, short cells and a cell with no
        // gene token (cell 5).
        let v1: Vec<Vec<i64>> = test_util::array(&exp["v1"]["input_ids"], i64s);
        assert!(v1.iter().any(|c| c.len() == 16) && v1.iter().any(|c| c.len() < 16));
        assert!(v1[5].is_empty());
    }

    /// The version's published input size applies when model_input_size is
    /// not given: nothing of the fixture is truncated then.
    #[test]
    fn version_input_size_is_the_default() {
        let p = DataPipeline::from_config(&config(&yaml("v2", "pkl", ""))).unwrap();
        let Strategy::Geneformer(gf) = &p.tokenizer().strategy else {
            panic!("not geneformer")
        };
        assert_eq!(gf.input_size, 4096);
        assert_eq!(gf.special, Some((2, 3)));
        let ids = p.tokenize_cell(1).unwrap().ids;
        assert_eq!((ids[0], *ids.last().unwrap()), (2, 3));
        assert!(ids.len() > 12);
    }

    /// Masking writes Geneformer's `<mask>` (1), never chooses `<pad>`,
    /// `<cls>`, `<eos>`, and draws replacements from the gene ids.
    #[test]
    fn masking_uses_geneformer_ids() {
        for version in ["v1", "v2"] {
            let cfg = config(&yaml(
                version,
                "pkl",
                "  masking:\n    mask_ratio: 0.5\n    random_replace_ratio: 0.3\n    keep_ratio: 0.1\n",
            ));
            let p = DataPipeline::from_config(&cfg).unwrap();
            let first_gene = if version == "v1" { 2 } else { 4 };
            assert_eq!(p.masking().unwrap().special.first_gene, first_gene);
            let opts = LoaderOptions {
                mask: true,
                ..LoaderOptions::inference(4)
            };
            let (mut masked_to_mask, mut replaced) = (0, 0);
            for batch in p.all().loader(opts).unwrap().epoch(0) {
                let batch = batch.unwrap();
                let ids = rows(batch.input_ids());
                let labels = rows(batch.labels().unwrap());
                let attn = rows(batch.attention_mask());
                for ((row, lab), a) in ids.iter().zip(&labels).zip(&attn) {
                    for k in 0..row.len() {
                        if lab[k] == -100 {
                            continue;
                        }
                        assert_eq!(a[k], 1, "padding masked");
                        assert!(lab[k] >= first_gene, "special token {} masked", lab[k]);
                        if row[k] == 1 {
                            masked_to_mask += 1;
                        } else if row[k] != lab[k] {
                            assert!(row[k] >= first_gene && row[k] < p.vocab().len() as i64);
                            replaced += 1;
                        }
                    }
                    if version == "v2" && a[0] == 1 {
                        assert_eq!((row[0], lab[0]), (2, -100), "<cls> kept");
                    }
                }
            }
            assert!(masked_to_mask > 0 && replaced > 0, "{version}");
        }
    }

    fn refusal(text: &str) -> String {
        match ForgeConfig::from_yaml_str(text, "test.yaml") {
            Err(e) => e.to_string(),
            Ok(cfg) => DataPipeline::from_config(&cfg).unwrap_err().to_string(),
        }
    }

    #[test]
    fn config_refusals_name_the_key_and_file() {
        let ok = yaml("v1", "pkl", "");
        // Unknown version.
        let e = refusal(&ok.replace("geneformer_version: v1", "geneformer_version: v3"));
        assert!(
            e.contains("tokenizer.geneformer_version") && e.contains("v3"),
            "{e}"
        );
        assert!(e.contains("v1, v2"), "{e}");
        // Version missing.
        let e = refusal(&ok.replace("  geneformer_version: v1\n", ""));
        assert!(
            e.contains("tokenizer.geneformer_version") && e.contains("must be set"),
            "{e}"
        );
        // Dictionary key missing.
        let no_medians: String = ok
            .lines()
            .filter(|l| !l.contains("gene_median_dictionary"))
            .map(|l| format!("{l}\n"))
            .collect();
        let e = refusal(&no_medians);
        assert!(
            e.contains("tokenizer.gene_median_dictionary") && e.contains("must be set"),
            "{e}"
        );
        // Dictionary file missing.
        let gone = fixture("geneformer_pipeline_tokens_v1.pkl").replace("tokens_v1", "nope");
        let e = refusal(&ok.replace(&fixture("geneformer_pipeline_tokens_v1.pkl"), &gone));
        assert!(
            e.contains("tokenizer.token_dictionary") && e.contains(&gone),
            "{e}"
        );
        assert!(e.contains("cannot read"), "{e}");
        // Wrong file type, by name (at config load) ...
        let e = refusal(&ok.replace(
            &fixture("geneformer_pipeline_medians.pkl"),
            &fixture("geneformer_pipeline.h5ad"),
        ));
        assert!(e.contains("tokenizer.gene_median_dictionary"), "{e}");
        assert!(
            e.contains("geneformer_pipeline.h5ad") && e.contains(".pkl") && e.contains(".json"),
            "{e}"
        );
        // ... and by content (a .json name over other bytes).
        let scratch = test_util::Scratch::new("gf-refusals");
        let fake = scratch.path("medians.json");
        std::fs::write(&fake, b"ENSG,1.0\n").unwrap();
        let e = refusal(&ok.replace(
            &fixture("geneformer_pipeline_medians.pkl"),
            &fake.display().to_string(),
        ));
        assert!(
            e.contains("tokenizer.gene_median_dictionary") && e.contains("medians.json"),
            "{e}"
        );
        assert!(e.contains("JSON object"), "{e}");
        // <pad> must be 0.
        let shifted = scratch.path("tokens.json");
        std::fs::write(
            &shifted,
            br#"{"<pad>": 1, "<mask>": 0, "ENSG00000900000": 2}"#,
        )
        .unwrap();
        let e = refusal(&ok.replace(
            &fixture("geneformer_pipeline_tokens_v1.pkl"),
            &shifted.display().to_string(),
        ));
        assert!(
            e.contains("tokenizer.token_dictionary") && e.contains("<pad> has id 1"),
            "{e}"
        );
        // V2 needs <cls>/<eos>.
        let e = refusal(&ok.replace("geneformer_version: v1", "geneformer_version: v2"));
        assert!(
            e.contains("tokenizer.token_dictionary") && e.contains("<cls> and <eos>"),
            "{e}"
        );
        // Preprocessing switched on.
        let e = refusal(&ok.replace("log1p: false", "log1p: true"));
        assert!(
            e.contains("data.preprocessing") && e.contains("raw counts"),
            "{e}"
        );
        // Keys read only by geneformer, under another strategy.
        let e = refusal(&ok.replace("strategy: geneformer", "strategy: rank_value"));
        assert!(
            e.contains("tokenizer.token_dictionary") && e.contains("only with"),
            "{e}"
        );
        // max_genes that disagrees with the input size; prepend_cls: false.
        let e = refusal(&yaml("v1", "pkl", "  max_genes: 100\n"));
        assert!(
            e.contains("tokenizer.max_genes") && e.contains("model_input_size"),
            "{e}"
        );
        let e = refusal(&yaml("v1", "pkl", "  prepend_cls: false\n"));
        assert!(e.contains("tokenizer.prepend_cls"), "{e}");
        let e = refusal(&yaml("v2", "pkl", "  model_input_size: 1\n"));
        assert!(e.contains("tokenizer.model_input_size"), "{e}");
    }

    /// Scaled values (negative, NaN) are refused, naming the file and what
    /// to do.
    #[test]
    fn scaled_values_are_refused() {
        let bad = test_util::fixture("checks", "bad_values.h5ad")
            .display()
            .to_string();
        let text = yaml("v1", "pkl", "")
            .replace(&fixture("geneformer_pipeline.h5ad"), &bad)
            .replace("  gene_key: ensembl_id\n", "");
        let e = refusal(&text);
        assert!(
            e.contains("bad_values.h5ad") && e.contains("raw counts"),
            "{e}"
        );
        assert!(e.contains("data.use_raw"), "{e}");
    }
}
