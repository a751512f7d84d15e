//! Highly variable genes as scanpy's `highly_variable_genes` finds them
//! with its default flavor, `seurat`, and `n_top_genes` (what
//! scModelForge's `preprocess` calls on log-normalised data):
//!
//! 1. per gene, the mean and the variance (`ddof = 1`) of `expm1(X)` over
//!    all cells (zeros included);
//! 2. a mean of 0 becomes 1e-12; dispersion = variance / mean; a
//!    dispersion of 0 becomes NaN; then `dispersion = ln(dispersion)` and
//!    `mean = ln(1 + mean)`;
//! 3. genes are put into 20 equal-width bins of their mean (pandas `cut`:
//!    right-closed bins, the lowest edge lowered by 0.1% of the range);
//! 4. within each bin the dispersions (NaN skipped) are standardised by the
//!    bin's mean and standard deviation (`ddof = 1`); a bin holding a single
//!    dispersion gets mean 0 and that dispersion as its deviation (so the
//!    gene scores 1);
//! 5. the genes whose normalised dispersion is at least the `n_top`-th
//!    highest (NaN never) are highly variable: ties at the cut-off are all
//!    kept, as in scanpy.
//!
//! The statistics are computed from sums in `f64` ([`HvgStats`]), in one
//! pass over the cells. This module neither reads nor writes files.

/// Per-gene running sums of `expm1(x)` and its square.
#[derive(Debug, Clone)]
pub struct HvgStats {
    sum: Vec<f64>,
    sumsq: Vec<f64>,
    n_cells: u64,
}

/// scanpy's `highly_variable_genes` columns for every gene.
#[derive(Debug, Clone, PartialEq)]
pub struct HvgTable {
    /// `ln(1 + mean of expm1(x))`.
    pub means: Vec<f64>,
    /// `ln(variance / mean)` (NaN for a zero dispersion).
    pub dispersions: Vec<f64>,
    /// Dispersion standardised within its mean bin.
    pub dispersions_norm: Vec<f64>,
    /// Selected.
    pub highly_variable: Vec<bool>,
}

impl HvgTable {
    /// Indices of the selected genes, ascending.
    pub fn selected(&self) -> Vec<usize> {
        (0..self.highly_variable.len())
            .filter(|&g| self.highly_variable[g])
            .collect()
    }
}

impl HvgStats {
    /// Starts over `n_genes` genes.
    pub fn new(n_genes: usize) -> Self {
        HvgStats {
            sum: vec![0.0; n_genes],
            sumsq: vec![0.0; n_genes],
            n_cells: 0,
        }
    }

    /// Adds one cell: its log-normalised values at `genes` (others are 0).
    pub fn add(&mut self, genes: &[u32], values: &[f32]) {
        self.n_cells += 1;
        for (&g, &v) in genes.iter().zip(values) {
            // scanpy takes expm1 of the float32 matrix, in float32.
            let x = f64::from(v.exp_m1());
            self.sum[g as usize] += x;
            self.sumsq[g as usize] += x * x;
        }
    }

    /// The `seurat` table with the `n_top` most dispersed genes selected
    /// (all genes when `n_top` exceeds their number).
    pub fn seurat(&self, n_top: usize) -> HvgTable {
        let n = self.n_cells as f64;
        let (mut means, mut dispersions) = (Vec::new(), Vec::new());
        for (s, sq) in self.sum.iter().zip(&self.sumsq) {
            let mean = s / n;
            let var = if n > 1.0 {
                (sq / n - mean * mean) * n / (n - 1.0)
            } else {
                f64::NAN
            };
            let mean = if mean == 0.0 { 1e-12 } else { mean };
            let d = var / mean;
            dispersions.push(if d == 0.0 { f64::NAN } else { d.ln() });
            means.push(mean.ln_1p());
        }
        let bins = cut(&means, 20);
        let n_bins = bins.iter().max().map_or(0, |b| b + 1);
        let mut avg = vec![f64::NAN; n_bins];
        let mut dev = vec![f64::NAN; n_bins];
        for b in 0..n_bins {
            let d: Vec<f64> = (0..means.len())
                .filter(|&g| bins[g] == b && !dispersions[g].is_nan())
                .map(|g| dispersions[g])
                .collect();
            let k = d.len() as f64;
            if !d.is_empty() {
                avg[b] = d.iter().sum::<f64>() / k;
            }
            if d.len() >= 2 {
                let ss: f64 = d.iter().map(|x| (x - avg[b]).powi(2)).sum();
                dev[b] = (ss / (k - 1.0)).sqrt();
            } else {
                // pandas gives NaN; scanpy then uses the mean as deviation
                // and 0 as the mean.
                dev[b] = avg[b];
                avg[b] = 0.0;
            }
        }
        let dispersions_norm: Vec<f64> = (0..means.len())
            .map(|g| (dispersions[g] - avg[bins[g]]) / dev[bins[g]])
            .collect();
        let mut finite: Vec<f64> = dispersions_norm
            .iter()
            .copied()
            .filter(|x| !x.is_nan())
            .collect();
        finite.sort_by(|a, b| b.total_cmp(a));
        let highly_variable = match finite.get(n_top.min(finite.len()).wrapping_sub(1)) {
            Some(&cut_off) => dispersions_norm
                .iter()
                .map(|&x| !x.is_nan() && x >= cut_off)
                .collect(),
            None => vec![false; means.len()],
        };
        HvgTable {
            means,
            dispersions,
            dispersions_norm,
            highly_variable,
        }
    }
}

/// pandas `cut(x, bins)` with an integer bin count: the bin index of each
/// value (equal-width, right-closed, lowest edge lowered by 0.1% of the
/// range; a constant input gets a range of +-0.1% around it).
fn cut(x: &[f64], bins: usize) -> Vec<usize> {
    let lo = x.iter().copied().fold(f64::INFINITY, f64::min);
    let hi = x.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    let mut edges: Vec<f64>;
    if lo == hi {
        let pad = if lo != 0.0 { 0.001 * lo.abs() } else { 0.001 };
        edges = linspace(lo - pad, hi + pad, bins + 1);
    } else {
        edges = linspace(lo, hi, bins + 1);
        edges[0] -= (hi - lo) * 0.001;
    }
    x.iter()
        .map(|&v| {
            // First edge >= v, minus one: v lies in (edges[i], edges[i+1]].
            let i = edges.partition_point(|&e| e < v);
            i.saturating_sub(1).min(bins - 1)
        })
        .collect()
}

/// numpy's `linspace(start, stop, num)` (endpoint included, exact).
fn linspace(start: f64, stop: f64, num: usize) -> Vec<f64> {
    let step = (stop - start) / (num - 1) as f64;
    let mut v: Vec<f64> = (0..num).map(|i| start + i as f64 * step).collect();
    v[num - 1] = stop;
    v
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `forge-core/tests/fixtures/data/hvg_seurat.json`, written by
    /// `scripts/make_hvg_fixture.py` (an independent numpy/pandas-free
    /// implementation of scanpy 1.11's seurat flavor).
    #[test]
    fn matches_the_numpy_reference() {
        let path = crate::test_util::fixture("data", "hvg_seurat.json");
        let text = std::fs::read_to_string(&path).unwrap_or_else(|e| {
            panic!("{}: {e} (run scripts/make_hvg_fixture.py)", path.display())
        });
        let fx: serde_json::Value = serde_json::from_str(&text).unwrap();
        for case in fx["cases"].as_array().unwrap() {
            let name = case["name"].as_str().unwrap();
            let x: Vec<Vec<f32>> = serde_json::from_value(case["x"].clone()).unwrap();
            let n_genes = x[0].len();
            let mut stats = HvgStats::new(n_genes);
            for row in &x {
                let genes: Vec<u32> = (0..n_genes as u32)
                    .filter(|&g| row[g as usize] != 0.0)
                    .collect();
                let values: Vec<f32> = genes.iter().map(|&g| row[g as usize]).collect();
                stats.add(&genes, &values);
            }
            let n_top = case["n_top"].as_u64().unwrap() as usize;
            let table = stats.seurat(n_top);
            let want =
                |k: &str| -> Vec<Option<f64>> { serde_json::from_value(case[k].clone()).unwrap() };
            for (key, got) in [
                ("means", &table.means),
                ("dispersions", &table.dispersions),
                ("dispersions_norm", &table.dispersions_norm),
            ] {
                for (g, (a, b)) in got.iter().zip(want(key)).enumerate() {
                    match b {
                        None => assert!(a.is_nan(), "{name} {key}[{g}]: {a} vs NaN"),
                        Some(b) => assert!(
                            (a - b).abs() <= 1e-6 * b.abs().max(1.0),
                            "{name} {key}[{g}]: {a} vs {b}"
                        ),
                    }
                }
            }
            // The same genes, except where two normalised dispersions at
            // the cut-off are equal up to rounding (bins of two genes score
            // +-1/sqrt(2) exactly in theory): either side may keep those.
            let selected: Vec<usize> = serde_json::from_value(case["selected"].clone()).unwrap();
            let mut norms: Vec<f64> = want("dispersions_norm").into_iter().flatten().collect();
            norms.sort_by(|a, b| b.total_cmp(a));
            let cut_off = norms[n_top.min(norms.len()) - 1];
            let got = table.selected();
            for g in got
                .iter()
                .filter(|g| !selected.contains(g))
                .chain(selected.iter().filter(|g| !got.contains(g)))
            {
                let x = table.dispersions_norm[*g];
                assert!(
                    (x - cut_off).abs() < 1e-9,
                    "{name}: gene {g} ({x}) differs, cut-off {cut_off}"
                );
            }
            assert!(got.len() >= n_top.min(norms.len()), "{name}");
        }
    }

    #[test]
    fn cut_is_right_closed_with_the_low_edge_lowered() {
        assert_eq!(cut(&[0.0, 1.0, 1.00001, 2.0], 2), [0, 0, 1, 1]);
        let same = cut(&[3.0, 3.0], 20);
        assert_eq!(same[0], same[1]);
    }
}
