//! Per-cell preprocessing (`data.preprocessing`): library-size normalisation
//! and `log1p`. (Highly-variable-gene selection is `forge preprocess`'s:
//! see [`super::hvg`].)
//!
//! - Normalisation scales a cell so its values sum to `target_sum`. The
//!   total is the sum over **all** genes of the file's row (genes outside
//!   the vocabulary included), as scanpy's `normalize_total`
//!   does. With `target_sum: null` the target is the median total of the
//!   data (measured on up to 100,000 cells). A cell whose total is 0 is left
//!   as it is (all zeros).
//! - `log1p` is applied after normalisation, in `f32`.
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

    /// Preprocesses a cell's stored values in place; `total` is the sum of
    /// the cell's whole row in the file (an empty cell is not scaled).
    pub fn apply(&self, values: &mut [f32], total: f64) {
        let scale = self.target_sum.filter(|_| total > 0.0);
        let scale = scale.map(|t| (t / total) as f32);
        for v in values {
            let x = scale.map_or(*v, |s| *v * s);
            *v = if self.log1p { ln_1p(x) } else { x };
        }
    }
}

/// `ln(1 + x)` of an `f32`, through `f64`'s `ln` (several times faster
/// than libm's `log1pf`, and as accurate once rounded to `f32`: `1 + x` is
/// exact in `f64` for every `f32` x >= 2^-29); tiny values go through
/// `ln_1p`.
fn ln_1p(x: f32) -> f32 {
    if x.abs() < 1e-4 || x.is_nan() {
        x.ln_1p()
    } else {
        (1.0 + f64::from(x)).ln() as f32
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
}
