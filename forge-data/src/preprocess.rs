//! Per-cell preprocessing (`data.preprocessing`): library-size normalisation
//! and `log1p`, plus highly-variable-gene selection.
//!
//! - Normalisation scales a cell so its values sum to `target_sum`. The
//!   total is the sum over **all** genes of the file's row (genes outside
//!   the vocabulary or the HVG set included), as scanpy's `normalize_total`
//!   does. With `target_sum: null` the target is the median total of the
//!   data (measured on up to 100,000 cells). A cell whose total is 0 is left
//!   as it is (all zeros).
//! - `log1p` is applied after normalisation, in `f32`.
//! - HVG selection ([`HvgAccumulator`]) keeps the N genes whose preprocessed
//!   (normalised, log1p) values have the largest variance over all cells,
//!   zeros included; ties go to the gene that comes first. This is the plain
//!   variance of log-normalised expression, computed in one streaming pass
//!   (sum and sum of squares in `f64` per gene): not scanpy's `seurat` or
//!   `cell_ranger` flavours, which rank by mean-binned, normalised
//!   dispersion.
//!
//! What this module is not: it does not read files (see [`super::corpus`])
//! and does not tokenise.

use forge_core::config::{Normalize, PreprocessingConfig};

/// Normalisation and log1p of one cell.
#[derive(Debug, Clone, PartialEq)]
pub struct Preprocessing {
    /// Scale each cell to this total; `None`: no normalisation.
    pub target_sum: Option<f64>,
    /// Apply `log1p` afterwards.
    pub log1p: bool,
}

impl Preprocessing {
    /// No normalisation, no log1p: values as stored.
    pub fn identity() -> Preprocessing {
        Preprocessing {
            target_sum: None,
            log1p: false,
        }
    }

    /// From `data.preprocessing`; `median_total` is called only when
    /// normalisation is on and `target_sum` is `null`.
    pub fn from_config(
        cfg: &PreprocessingConfig,
        median_total: impl FnOnce() -> f64,
    ) -> Preprocessing {
        let target_sum = cfg
            .normalize
            .map(|Normalize::LibrarySize| cfg.target_sum.unwrap_or_else(median_total));
        Preprocessing {
            target_sum,
            log1p: cfg.log1p,
        }
    }

    /// The factor the values of a cell whose stored row sums to `total` are
    /// multiplied by: `None` without normalisation or for an empty cell.
    pub fn scale(&self, total: f64) -> Option<f32> {
        match self.target_sum {
            Some(t) if total > 0.0 => Some((t / total) as f32),
            _ => None,
        }
    }

    /// One stored value `x` after preprocessing, for a cell of [`scale`].
    ///
    /// [`scale`]: Preprocessing::scale
    #[inline]
    pub fn value(&self, x: f32, scale: Option<f32>) -> f32 {
        let x = scale.map_or(x, |s| x * s);
        if self.log1p { ln_1p(x) } else { x }
    }

    /// Preprocesses a cell's stored values in place; `total` is the sum of
    /// the cell's whole row in the file.
    pub fn apply(&self, values: &mut [f32], total: f64) {
        let scale = self.scale(total);
        match (scale, self.log1p) {
            (Some(_), true) => {
                // Counts are mostly small integers: compute each distinct
                // one once per cell.
                let mut lut = [f32::NAN; 64];
                for v in values.iter_mut() {
                    let x = *v;
                    let c = x as usize;
                    if c < 64 && c as f32 == x {
                        if lut[c].is_nan() {
                            lut[c] = self.value(x, scale);
                        }
                        *v = lut[c];
                    } else {
                        *v = self.value(x, scale);
                    }
                }
            }
            (Some(s), false) => values.iter_mut().for_each(|v| *v *= s),
            (None, true) => values.iter_mut().for_each(|v| *v = ln_1p(*v)),
            (None, false) => {}
        }
    }
}

/// `ln(1 + x)` of an `f32`, through `f64`'s `ln` (several times faster
/// than libm's `log1pf`, and as accurate once rounded to `f32`: `1 + x` is
/// exact in `f64` for every `f32` x >= 2^-29); tiny values go through
/// `ln_1p`.
#[inline]
pub fn ln_1p(x: f32) -> f32 {
    if x.abs() < 1e-4 || x.is_nan() {
        x.ln_1p()
    } else {
        (1.0 + f64::from(x)).ln() as f32
    }
}

/// Running per-gene sums for HVG selection.
#[derive(Debug, Clone)]
pub struct HvgAccumulator {
    sum: Vec<f64>,
    sumsq: Vec<f64>,
    n_cells: u64,
}

impl HvgAccumulator {
    /// Starts over `n_genes` genes.
    pub fn new(n_genes: usize) -> HvgAccumulator {
        HvgAccumulator {
            sum: vec![0.0; n_genes],
            sumsq: vec![0.0; n_genes],
            n_cells: 0,
        }
    }

    /// Adds one cell's preprocessed values (genes absent are zeros).
    pub fn add(&mut self, genes: &[u32], values: &[f32]) {
        self.n_cells += 1;
        for (&g, &v) in genes.iter().zip(values) {
            if v.is_finite() {
                let x = f64::from(v);
                self.sum[g as usize] += x;
                self.sumsq[g as usize] += x * x;
            }
        }
    }

    /// Sample variance (n - 1 denominator) of each gene.
    pub fn variances(&self) -> Vec<f64> {
        let n = self.n_cells as f64;
        self.sum
            .iter()
            .zip(&self.sumsq)
            .map(|(&s, &q)| {
                if n < 2.0 {
                    0.0
                } else {
                    ((q - s * s / n) / (n - 1.0)).max(0.0)
                }
            })
            .collect()
    }

    /// Indices of the `n_top` most variable genes, in ascending gene order.
    pub fn top(&self, n_top: usize) -> Vec<usize> {
        let var = self.variances();
        let mut order: Vec<usize> = (0..var.len()).collect();
        order.sort_by(|&a, &b| var[b].total_cmp(&var[a]).then(a.cmp(&b)));
        order.truncate(n_top);
        order.sort_unstable();
        order
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalises_then_log1p() {
        let p = Preprocessing {
            target_sum: Some(10.0),
            log1p: true,
        };
        let mut v = [1.0f32, 4.0];
        p.apply(&mut v, 5.0);
        assert!((v[0] - 2f32.ln_1p()).abs() < 1e-6);
        assert!((v[1] - 8f32.ln_1p()).abs() < 1e-6);
        let mut zero = [0.0f32];
        p.apply(&mut zero, 0.0);
        assert_eq!(zero, [0.0]);
    }

    #[test]
    fn from_config_uses_the_median_only_when_asked() {
        let mut cfg = PreprocessingConfig::default();
        let p = Preprocessing::from_config(&cfg, || panic!("not needed"));
        assert_eq!(p.target_sum, Some(1e4));
        cfg.target_sum = None;
        assert_eq!(
            Preprocessing::from_config(&cfg, || 1234.0).target_sum,
            Some(1234.0)
        );
        cfg.normalize = None;
        cfg.log1p = false;
        assert_eq!(
            Preprocessing::from_config(&cfg, || 1.0),
            Preprocessing::identity()
        );
    }

    #[test]
    fn hvg_keeps_the_most_variable_genes_in_order() {
        let mut acc = HvgAccumulator::new(4);
        // gene 0 constant, gene 1 varies a lot, gene 2 a little, gene 3 never
        acc.add(&[0, 1, 2], &[1.0, 5.0, 1.0]);
        acc.add(&[0, 2], &[1.0, 2.0]);
        acc.add(&[0, 1], &[1.0, 9.0]);
        assert_eq!(acc.top(2), vec![1, 2]);
        assert_eq!(acc.top(10), vec![0, 1, 2, 3]);
        let var = acc.variances();
        assert_eq!(var[0], 0.0);
        assert!((var[2] - 1.0).abs() < 1e-12);
    }
}
