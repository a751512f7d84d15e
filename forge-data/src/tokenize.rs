//! Tokenizers: one preprocessed cell in, one token sequence out.
//!
//! A cell arrives as a sparse row over a gene universe (the genes of the
//! corpus, in their fixed order): ascending gene positions `genes` with
//! their `values`, plus `gene_ids`, the vocabulary id of every gene of the
//! universe (UNK for genes the vocabulary lacks). The three strategies of
//! scModelForge (`tokenizer.strategy`) are:
//!
//! - `rank_value` (Geneformer): genes with value > 0, sorted by value
//!   descending; ties keep gene order, which is the file's column order (a
//!   stable sort, as numpy's `argsort(-v, kind="stable")`); truncated to
//!   `max_genes` tokens, the CLS token included. One function
//!   (`rank_value`) does this for every path: the tokenizer, both loaders,
//!   `forge embed`.
//! - `binned_expression` (scGPT): the expressed genes in universe order (up
//!   to `max_genes` tokens); each value is also given a bin id in
//!   `0..n_bins`: a value <= 0 (or NaN) is bin 0; a positive value `v` is
//!   bin `1 + #{edges e : e < v}`, capped at `n_bins - 1`, over `n_bins - 2`
//!   inner edges. Uniform edges are `10 k / (n_bins - 1)` for `k = 1 ..=
//!   n_bins - 2` (equal-width bins over 0..10, values above 10 in the last
//!   bin); quantile edges are the `k / (n_bins - 1)` quantiles (linear
//!   interpolation, numpy's default) of the positive values of a sample of
//!   cells ([`BinEdges::quantile`]).
//! - `continuous_projection` (scFoundation): the expressed genes in universe
//!   order, values as they are or through `log1p` when `log1p` is on.
//!
//! The binned and continuous strategies take only genes with a value > 0,
//! as in scModelForge's pipeline, whose store hands its tokenizers the
//! expressed genes alone (its `include_zero_genes` never sees a zero).
//!
//! With `prepend_cls`, a CLS token (value 0, bin 0) comes first. A cell with
//! no expressed gene therefore tokenises to `[CLS]` alone under
//! `rank_value` (or to an empty sequence without CLS; collation pads it).
//!
//! `geneformer` (a forge extension) is Geneformer's own median-scaled rank
//! of raw counts ([`super::geneformer_tokenize`]), with Geneformer's token
//! ids: [`Strategy::Geneformer`]. It needs the corpus (each gene's median,
//! each cell's `n_counts`), so [`super::DataPipeline`] builds it
//! ([`super::DataPipeline::geneformer`]), not [`Tokenizer::from_config`].
//!
//! `gene_embedding` (pretrained gene embeddings) is not implemented and is
//! refused by [`Tokenizer::from_config`].
//!
//! What this module is not: no masking ([`super::masking`]), no padding
//! (the `collate` module), no preprocessing ([`super::preprocess`]).

use std::sync::Arc;

use forge_core::batch::special;
use forge_core::config::{BinningMethod, TokenizerConfig, TokenizerStrategy};

use super::DataError;

/// One cell as tokens (before masking and padding).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct TokenizedCell {
    /// Token ids (CLS first when prepended).
    pub ids: Vec<i64>,
    /// Expression value of each token (0 for CLS).
    pub values: Vec<f32>,
    /// Bin of each token (`binned_expression` only).
    pub bin_ids: Option<Vec<i64>>,
}

impl TokenizedCell {
    /// Number of tokens.
    pub fn len(&self) -> usize {
        self.ids.len()
    }

    /// Whether the cell has no token.
    pub fn is_empty(&self) -> bool {
        self.ids.is_empty()
    }

    fn clear(&mut self, with_bins: bool) {
        self.ids.clear();
        self.values.clear();
        match (&mut self.bin_ids, with_bins) {
            (Some(b), true) => b.clear(),
            (b, true) => *b = Some(Vec::new()),
            (b, false) => *b = None,
        }
    }
}

/// Inner bin edges of `binned_expression`.
#[derive(Debug, Clone, PartialEq)]
pub struct BinEdges {
    n_bins: usize,
    inner: Vec<f32>,
}

impl BinEdges {
    /// Equal-width bins over 0..10 (see the module docs). `n_bins` >= 2.
    pub fn uniform(n_bins: usize) -> BinEdges {
        let n_bins = n_bins.max(2);
        let inner = (1..n_bins - 1)
            .map(|k| (10.0 * k as f64 / (n_bins - 1) as f64) as f32)
            .collect();
        BinEdges { n_bins, inner }
    }

    /// Quantile edges fitted on the positive, finite values of `sample`
    /// (linear interpolation between order statistics, as numpy's
    /// `np.quantile`); falls back to uniform edges when the sample holds no
    /// positive value.
    pub fn quantile(n_bins: usize, sample: &[f32]) -> BinEdges {
        let n_bins = n_bins.max(2);
        let mut v: Vec<f64> = sample
            .iter()
            .filter(|x| x.is_finite() && **x > 0.0)
            .map(|&x| f64::from(x))
            .collect();
        if v.is_empty() {
            return BinEdges::uniform(n_bins);
        }
        v.sort_by(f64::total_cmp);
        let n = v.len();
        let inner = (1..n_bins - 1)
            .map(|k| {
                let q = k as f64 / (n_bins - 1) as f64;
                let pos = q * (n - 1) as f64;
                let lo = pos.floor() as usize;
                let hi = (lo + 1).min(n - 1);
                let frac = pos - lo as f64;
                (v[lo] + (v[hi] - v[lo]) * frac) as f32
            })
            .collect();
        BinEdges { n_bins, inner }
    }

    /// Number of bins.
    pub fn n_bins(&self) -> usize {
        self.n_bins
    }

    /// The inner edges.
    pub fn edges(&self) -> &[f32] {
        &self.inner
    }

    /// The bin of `v`.
    pub fn bin(&self, v: f32) -> i64 {
        if v.is_nan() || v <= 0.0 {
            return 0;
        }
        // Number of edges strictly below v (edges are sorted).
        let below = self.inner.partition_point(|&e| e < v);
        (1 + below).min(self.n_bins - 1) as i64
    }
}

/// The tokenization strategy and its settings.
#[derive(Debug, Clone, PartialEq)]
pub enum Strategy {
    /// Expressed genes by value, descending.
    RankValue,
    /// Genes in fixed order, with bins.
    BinnedExpression {
        /// Bin edges.
        edges: BinEdges,
    },
    /// Genes in fixed order, continuous values.
    ContinuousProjection {
        /// Apply `log1p` to the values.
        log1p: bool,
    },
    /// Geneformer's median-scaled rank of raw counts.
    Geneformer(GeneformerRank),
}

/// [`Strategy::Geneformer`]'s settings over one corpus's genes.
#[derive(Debug, Clone, PartialEq)]
pub struct GeneformerRank {
    /// Per corpus gene, its median over Geneformer's corpus; 0 for a gene
    /// without one (never tokenized).
    pub medians: Arc<Vec<f64>>,
    /// `(<cls>, <eos>)` when the version frames cells with them (V2).
    pub special: Option<(i64, i64)>,
    /// Most tokens per cell, the special tokens included.
    pub input_size: usize,
}

/// Turns cells into token sequences.
#[derive(Debug, Clone, PartialEq)]
pub struct Tokenizer {
    /// The strategy.
    pub strategy: Strategy,
    /// Most tokens per cell, the CLS token included (>= 1).
    pub max_genes: usize,
    /// Put a CLS token first.
    pub prepend_cls: bool,
}

impl Tokenizer {
    /// `rank_value` with `max_genes` tokens.
    pub fn rank_value(max_genes: usize, prepend_cls: bool) -> Tokenizer {
        Tokenizer {
            strategy: Strategy::RankValue,
            max_genes: max_genes.max(1),
            prepend_cls,
        }
    }

    /// From the `tokenizer` config section. `fit_sample` supplies the values
    /// quantile edges are fitted on; it is called only for
    /// `binned_expression` with `binning_method: quantile`.
    pub fn from_config(
        cfg: &TokenizerConfig,
        fit_sample: impl FnOnce() -> Result<Vec<f32>, DataError>,
    ) -> Result<Tokenizer, DataError> {
        if cfg.max_genes < 1 {
            return Err(DataError::setting(
                "tokenizer.max_genes",
                format!("must be at least 1, found {}", cfg.max_genes),
            ));
        }
        let strategy = match cfg.strategy {
            TokenizerStrategy::RankValue => Strategy::RankValue,
            TokenizerStrategy::BinnedExpression => {
                if cfg.n_bins < 2 {
                    return Err(DataError::setting(
                        "tokenizer.n_bins",
                        format!(
                            "must be at least 2 (bin 0 holds zeros), found {}",
                            cfg.n_bins
                        ),
                    ));
                }
                let n = cfg.n_bins as usize;
                let edges = match cfg.binning_method {
                    BinningMethod::Uniform => BinEdges::uniform(n),
                    BinningMethod::Quantile => BinEdges::quantile(n, &fit_sample()?),
                };
                // scModelForge's store hands its tokenizers only values > 0,
                // so zeros never become tokens in its pipeline.
                Strategy::BinnedExpression { edges }
            }
            TokenizerStrategy::ContinuousProjection => {
                Strategy::ContinuousProjection { log1p: false }
            }
            TokenizerStrategy::Geneformer => {
                return Err(DataError::setting(
                    "tokenizer.strategy",
                    "`geneformer` needs the corpus (gene medians, cell totals): build the \
                     pipeline with DataPipeline::geneformer",
                ));
            }
            TokenizerStrategy::GeneEmbedding => {
                return Err(DataError::setting(
                    "tokenizer.strategy",
                    "`gene_embedding` (pretrained gene embeddings) is not supported by forge; \
                     accepted: rank_value, binned_expression, continuous_projection, geneformer",
                ));
            }
        };
        Ok(Tokenizer {
            strategy,
            max_genes: cfg.max_genes as usize,
            prepend_cls: cfg.prepend_cls,
        })
    }

    /// Whether cells get `bin_ids`.
    pub fn has_bins(&self) -> bool {
        matches!(self.strategy, Strategy::BinnedExpression { .. })
    }

    /// Tokens left for genes once CLS is accounted for.
    fn gene_budget(&self) -> usize {
        self.max_genes.saturating_sub(usize::from(self.prepend_cls))
    }

    /// Whether cells start with a CLS token.
    fn has_cls(&self) -> bool {
        self.prepend_cls && self.max_genes > 0
    }

    /// Empties `out` and puts CLS in it when prepended.
    fn start(&self, out: &mut TokenizedCell) {
        out.clear(self.has_bins());
        if self.has_cls() {
            out.ids.push(special::CLS);
            out.values.push(0.0);
            if let Some(b) = &mut out.bin_ids {
                b.push(0);
            }
        }
    }

    /// Tokenizes one cell into a fresh [`TokenizedCell`].
    pub fn tokenize(&self, genes: &[u32], values: &[f32], gene_ids: &[i64]) -> TokenizedCell {
        let mut out = TokenizedCell::default();
        let mut scratch = Vec::new();
        self.tokenize_into(genes, values, gene_ids, &mut out, &mut scratch);
        out
    }

    /// Tokenizes one cell into `out`, reusing its buffers. `genes` are
    /// ascending positions into `gene_ids` (out-of-range positions are
    /// skipped); `scratch` is working memory.
    pub fn tokenize_into(
        &self,
        genes: &[u32],
        values: &[f32],
        gene_ids: &[i64],
        out: &mut TokenizedCell,
        scratch: &mut Vec<u64>,
    ) {
        self.tokenize_cell_into(genes, values, gene_ids, None, out, scratch);
    }

    /// [`Tokenizer::tokenize_into`] with the cell's total count, which
    /// `geneformer` divides by (Geneformer's `n_counts`: `obs["n_counts"]`,
    /// else the sum of the file's whole row); `None` uses the sum of
    /// `values`. The other strategies do not read it.
    pub fn tokenize_cell_into(
        &self,
        genes: &[u32],
        values: &[f32],
        gene_ids: &[i64],
        total: Option<f64>,
        out: &mut TokenizedCell,
        scratch: &mut Vec<u64>,
    ) {
        self.start(out);
        let budget = self.gene_budget();
        let n = genes.len().min(values.len());
        match &self.strategy {
            Strategy::RankValue => {
                rank_value(&genes[..n], &values[..n], gene_ids, budget, scratch);
                for &key in scratch.iter() {
                    let k = (key & 0xffff_ffff) as usize;
                    out.ids.push(gene_ids[genes[k] as usize]);
                    out.values.push(values[k]);
                }
            }
            Strategy::BinnedExpression { edges } => {
                let bins = out.bin_ids.get_or_insert_with(Vec::new);
                for_each_gene(genes, values, gene_ids.len(), budget, |g, v| {
                    out.ids.push(gene_ids[g]);
                    out.values.push(v);
                    bins.push(edges.bin(v));
                });
            }
            Strategy::ContinuousProjection { log1p } => {
                for_each_gene(genes, values, gene_ids.len(), budget, |g, v| {
                    out.ids.push(gene_ids[g]);
                    out.values.push(if *log1p { v.ln_1p() } else { v });
                });
            }
            Strategy::Geneformer(gf) => geneformer_into(gf, genes, values, gene_ids, total, out),
        }
    }
}

/// Geneformer's rule on one cell of raw counts over the corpus genes: each
/// gene with a count > 0 and a median is scaled (`count / total * 10_000 /
/// median`), ranked by [`super::geneformer_tokenize`]'s one rule, framed
/// with `<cls>`/`<eos>` when the version has them. `values` gets each
/// token's scaled value (0 for `<cls>`/`<eos>`).
fn geneformer_into(
    gf: &GeneformerRank,
    genes: &[u32],
    values: &[f32],
    gene_ids: &[i64],
    total: Option<f64>,
    out: &mut TokenizedCell,
) {
    out.clear(false);
    let n = genes.len().min(values.len());
    let total = total.unwrap_or_else(|| values[..n].iter().map(|&v| f64::from(v)).sum());
    let mut scored: Vec<(f64, i64)> = Vec::with_capacity(n);
    for (&g, &v) in genes[..n].iter().zip(&values[..n]) {
        let g = g as usize;
        let median = gf.medians.get(g).copied().unwrap_or(0.0);
        if v > 0.0 && median > 0.0 && g < gene_ids.len() {
            let x = super::geneformer_tokenize::scaled(f64::from(v), total, median);
            scored.push((x, gene_ids[g]));
        }
    }
    super::geneformer_tokenize::rank(&mut scored, gf.input_size, gf.special.is_some());
    if let Some((cls, _)) = gf.special {
        out.ids.push(cls);
        out.values.push(0.0);
    }
    for &(x, id) in &scored {
        out.ids.push(id);
        out.values.push(x as f32);
    }
    if let Some((_, eos)) = gf.special {
        out.ids.push(eos);
        out.values.push(0.0);
    }
}

/// The `rank_value` rule, the one every path uses: the entries with a
/// positive value (and a gene of the universe), ordered by value
/// descending, ties in entry order (the file's column order: a stable sort, as numpy's
/// `argsort(-v, kind="stable")`), the first `budget` kept. Leaves them in
/// `keys` as `(key << 32) | entry`, the key growing as the value falls.
///
/// Every key is unique (it holds the entry), so keeping the `budget`
/// smallest (`select_nth_unstable`, O(n)) and sorting those by the whole
/// key gives exactly the stable sort's first `budget`.
fn rank_value(genes: &[u32], values: &[f32], gene_ids: &[i64], budget: usize, keys: &mut Vec<u64>) {
    keys.clear();
    for (k, (&g, &v)) in genes.iter().zip(values).enumerate() {
        if v > 0.0 && (g as usize) < gene_ids.len() {
            // For positive floats the bit pattern grows with the value.
            keys.push((u64::from(u32::MAX - v.to_bits()) << 32) | k as u64);
        }
    }
    if keys.len() > budget {
        if budget > 0 {
            keys.select_nth_unstable(budget - 1);
        }
        keys.truncate(budget);
    }
    keys.sort_unstable();
}

/// Calls `f(gene, value)` for the first `budget` stored entries with a
/// value > 0 and a gene of the universe, in their order: what
/// scModelForge's pipeline hands its tokenizers.
fn for_each_gene(
    genes: &[u32],
    values: &[f32],
    universe: usize,
    budget: usize,
    mut f: impl FnMut(usize, f32),
) {
    let expressed = genes
        .iter()
        .zip(values)
        .filter(|&(&g, &v)| (g as usize) < universe && v > 0.0);
    for (&g, &v) in expressed.take(budget) {
        f(g as usize, v);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const IDS: [i64; 5] = [4, 5, 6, 7, 8];

    #[test]
    fn rank_value_sorts_stably_and_truncates() {
        let t = Tokenizer::rank_value(4, true);
        let c = t.tokenize(&[0, 1, 2, 3, 4], &[1.0, 3.0, 0.0, 3.0, 2.0], &IDS);
        assert_eq!(c.ids, vec![special::CLS, 5, 7, 8]);
        assert_eq!(c.values, vec![0.0, 3.0, 3.0, 2.0]);
        assert!(c.bin_ids.is_none());
        let t = Tokenizer::rank_value(10, false);
        let c = t.tokenize(&[0, 1, 2, 3, 4], &[1.0, 3.0, 0.0, 3.0, 2.0], &IDS);
        assert_eq!(c.ids, vec![5, 7, 8, 4]);
    }

    #[test]
    fn ranking_is_a_stable_sort_then_truncation() {
        // Few distinct values (ties at the cut and above it) and many, cut
        // below and above the selection's size.
        let gene_ids: Vec<i64> = (0..3000).map(|g| 4 + (g * 7 % 3000)).collect();
        let mut x: u64 = 7;
        for (n, budget, few) in [
            (300, 255, true),
            (2900, 999, false),
            (2900, 999, true),
            (50, 100, true),
        ] {
            let genes: Vec<u32> = (0..n as u32).map(|g| g + g / 3).collect();
            let values: Vec<f32> = (0..n)
                .map(|_| {
                    x = x
                        .wrapping_mul(6364136223846793005)
                        .wrapping_add(1442695040888963407);
                    match x >> 61 {
                        0 => 0.0,
                        1 => -1.0,
                        _ if few => ((x >> 58) as f32 * 3.0).ln_1p(),
                        _ => (x >> 52) as f32 / 7.0,
                    }
                })
                .collect();
            let t = Tokenizer::rank_value(budget + 1, true);
            let got = t.tokenize(&genes, &values, &gene_ids);
            let mut kept: Vec<usize> = (0..n)
                .filter(|&k| values[k] > 0.0 && (genes[k] as usize) < gene_ids.len())
                .collect();
            kept.sort_by(|&a, &b| values[b].total_cmp(&values[a]));
            kept.truncate(budget);
            let mut want_ids = vec![special::CLS];
            want_ids.extend(kept.iter().map(|&k| gene_ids[genes[k] as usize]));
            let mut want_values = vec![0.0];
            want_values.extend(kept.iter().map(|&k| values[k]));
            assert_eq!(got.ids, want_ids, "n={n}");
            assert_eq!(got.values, want_values, "n={n}");
        }
    }

    #[test]
    fn a_cell_without_expression_is_cls_alone() {
        let t = Tokenizer::rank_value(8, true);
        assert_eq!(t.tokenize(&[], &[], &IDS).ids, vec![special::CLS]);
        assert_eq!(t.tokenize(&[1], &[0.0], &IDS).ids, vec![special::CLS]);
        let t = Tokenizer::rank_value(8, false);
        assert!(t.tokenize(&[], &[], &IDS).is_empty());
    }

    #[test]
    fn uniform_bins_put_zero_in_bin_zero() {
        let e = BinEdges::uniform(11);
        assert_eq!(e.edges().len(), 9);
        assert_eq!(e.bin(0.0), 0);
        assert_eq!(e.bin(-1.0), 0);
        assert_eq!(e.bin(f32::NAN), 0);
        assert_eq!(e.bin(0.5), 1);
        assert_eq!(e.bin(1.0), 1);
        assert_eq!(e.bin(1.0001), 2);
        assert_eq!(e.bin(9.5), 10);
        assert_eq!(e.bin(100.0), 10);
    }

    #[test]
    fn quantile_edges_interpolate_like_numpy() {
        // np.quantile([1,2,3,4], [1/3, 2/3]) == [2.0, 3.0]
        let e = BinEdges::quantile(4, &[4.0, 0.0, 2.0, 1.0, 3.0]);
        assert_eq!(e.edges(), &[2.0, 3.0]);
        assert_eq!(e.bin(2.0), 1);
        assert_eq!(e.bin(2.5), 2);
        assert_eq!(e.bin(4.0), 3);
    }

    #[test]
    fn binned_keeps_input_order_without_zeros() {
        let t = Tokenizer {
            strategy: Strategy::BinnedExpression {
                edges: BinEdges::uniform(11),
            },
            max_genes: 3,
            prepend_cls: true,
        };
        let c = t.tokenize(&[0, 1, 2, 3], &[0.0, 2.5, 20.0, 1.0], &IDS);
        assert_eq!(c.ids, vec![special::CLS, 5, 6]);
        assert_eq!(c.values, vec![0.0, 2.5, 20.0]);
        assert_eq!(c.bin_ids, Some(vec![0, 3, 10]));
    }

    #[test]
    fn continuous_is_fixed_order_with_optional_log1p() {
        let t = Tokenizer {
            strategy: Strategy::ContinuousProjection { log1p: true },
            max_genes: 10,
            prepend_cls: false,
        };
        let c = t.tokenize(&[0, 4], &[1.0, 3.0], &IDS);
        assert_eq!(c.ids, vec![4, 8]);
        assert!((c.values[1] - 3f32.ln_1p()).abs() < 1e-7);
    }

    #[test]
    fn configured_fixed_order_strategies_take_positive_values_only() {
        for strategy in [
            TokenizerStrategy::BinnedExpression,
            TokenizerStrategy::ContinuousProjection,
        ] {
            let cfg = TokenizerConfig {
                strategy,
                max_genes: 3,
                ..TokenizerConfig::default()
            };
            let t = Tokenizer::from_config(&cfg, || Ok(vec![])).unwrap();
            // Stored zeros and negatives (dense or scaled rows) are dropped;
            // the budget counts kept genes only.
            let c = t.tokenize(&[0, 1, 2, 3, 4], &[0.0, -1.5, 2.0, f32::NAN, 4.0], &IDS);
            assert_eq!(c.ids, vec![special::CLS, 6, 8], "{strategy:?}");
            assert_eq!(c.values, vec![0.0, 2.0, 4.0], "{strategy:?}");
        }
    }

    #[test]
    fn config_errors_name_the_key() {
        let cfg = TokenizerConfig {
            strategy: TokenizerStrategy::GeneEmbedding,
            ..TokenizerConfig::default()
        };
        let err = Tokenizer::from_config(&cfg, || Ok(vec![]))
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("tokenizer.strategy") && err.contains("rank_value"),
            "{err}"
        );
        let cfg = TokenizerConfig {
            max_genes: 0,
            ..TokenizerConfig::default()
        };
        let err = Tokenizer::from_config(&cfg, || Ok(vec![]))
            .unwrap_err()
            .to_string();
        assert!(err.contains("tokenizer.max_genes"), "{err}");
    }
}
