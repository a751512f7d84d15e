//! Clustering agreement scores: normalized mutual information and the
//! adjusted Rand index, written to give the same numbers as scikit-learn's
//! `normalized_mutual_info_score` (arithmetic normalisation, its default)
//! and `adjusted_rand_score`, special cases included.

use std::collections::HashMap;

use super::labels::densify;
use super::{AssessError, Result};

/// Sparse contingency table of two labelings plus the marginals.
struct Contingency {
    n: usize,
    cells: Vec<(usize, usize, usize)>,
    rows: Vec<usize>,
    cols: Vec<usize>,
}

fn contingency(a: &[usize], b: &[usize]) -> Result<Contingency> {
    if a.len() != b.len() {
        return Err(AssessError::LengthMismatch {
            what: "the second labeling",
            expected: a.len(),
            got: b.len(),
        });
    }
    let (a, ka) = densify(a);
    let (b, kb) = densify(b);
    let mut map: HashMap<(usize, usize), usize> = HashMap::new();
    for (&i, &j) in a.iter().zip(&b) {
        *map.entry((i, j)).or_default() += 1;
    }
    let mut cells: Vec<_> = map.into_iter().map(|((i, j), v)| (i, j, v)).collect();
    cells.sort_unstable();
    let mut rows = vec![0; ka];
    let mut cols = vec![0; kb];
    for &(i, j, v) in &cells {
        rows[i] += v;
        cols[j] += v;
    }
    Ok(Contingency {
        n: a.len(),
        cells,
        rows,
        cols,
    })
}

fn entropy(counts: &[usize], n: usize) -> f64 {
    if n == 0 {
        return 0.0;
    }
    let ln_n = (n as f64).ln();
    -counts
        .iter()
        .filter(|&&c| c > 0)
        .map(|&c| (c as f64 / n as f64) * ((c as f64).ln() - ln_n))
        .sum::<f64>()
}

fn mutual_information(t: &Contingency) -> f64 {
    if t.rows.len() == 1 || t.cols.len() == 1 {
        return 0.0;
    }
    let n = t.n as f64;
    let ln_n = n.ln();
    let mi: f64 = t
        .cells
        .iter()
        .map(|&(i, j, v)| {
            let p = v as f64 / n;
            let log_outer = -((t.rows[i] as f64) * (t.cols[j] as f64)).ln() + 2.0 * ln_n;
            let term = p * ((v as f64).ln() - ln_n) + p * log_outer;
            if term.abs() < f64::EPSILON { 0.0 } else { term }
        })
        .sum();
    mi.max(0.0)
}

/// Normalized mutual information between two labelings, arithmetic
/// normalisation: `MI / ((H(a) + H(b)) / 2)`, as scikit-learn's
/// `normalized_mutual_info_score` (two single-cluster labelings score 1).
/// Labels are arbitrary integers; only equality matters.
pub fn nmi(a: &[usize], b: &[usize]) -> Result<f64> {
    let t = contingency(a, b)?;
    let (ka, kb) = (t.rows.len(), t.cols.len());
    if (ka == 1 && kb == 1) || (ka == 0 && kb == 0) {
        return Ok(1.0);
    }
    let mi = mutual_information(&t);
    if mi == 0.0 {
        return Ok(0.0);
    }
    let normalizer = (entropy(&t.rows, t.n) + entropy(&t.cols, t.n)) / 2.0;
    Ok(mi / normalizer.max(f64::EPSILON))
}

/// Adjusted Rand index between two labelings, as scikit-learn's
/// `adjusted_rand_score` (identical partitions score 1, chance about 0, it
/// can be negative). Labels are arbitrary integers; only equality matters.
pub fn ari(a: &[usize], b: &[usize]) -> Result<f64> {
    let t = contingency(a, b)?;
    let n = t.n as i128;
    let sum_squares: i128 = t.cells.iter().map(|&(_, _, v)| (v as i128).pow(2)).sum();
    let row_cross: i128 = t
        .cells
        .iter()
        .map(|&(_, j, v)| v as i128 * t.cols[j] as i128)
        .sum();
    let col_cross: i128 = t
        .cells
        .iter()
        .map(|&(i, _, v)| v as i128 * t.rows[i] as i128)
        .sum();
    // Pair confusion matrix over ordered pairs, as scikit-learn computes it.
    let tp = sum_squares - n;
    let fp = row_cross - sum_squares;
    let fn_ = col_cross - sum_squares;
    let tn = n * n - fp - fn_ - sum_squares;
    if fn_ == 0 && fp == 0 {
        return Ok(1.0);
    }
    let num = 2.0 * ((tp * tn - fn_ * fp) as f64);
    let den = ((tp + fn_) * (fn_ + tn) + (tp + fp) * (fp + tn)) as f64;
    Ok(num / den)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_support::fixture;

    #[test]
    fn match_sklearn_fixtures() {
        let fx = fixture("clustering.json");
        let cases = fx["cases"].as_array().unwrap();
        assert!(cases.len() >= 5);
        for case in cases {
            let a = crate::test_support::usizes(&case["a"]);
            let b = crate::test_support::usizes(&case["b"]);
            let name = case["name"].as_str().unwrap();
            let want_nmi = case["nmi"].as_f64().unwrap();
            let want_ari = case["ari"].as_f64().unwrap();
            let got_nmi = nmi(&a, &b).unwrap();
            let got_ari = ari(&a, &b).unwrap();
            assert!(
                (got_nmi - want_nmi).abs() < 1e-10,
                "{name}: nmi {got_nmi} vs sklearn {want_nmi}"
            );
            assert!(
                (got_ari - want_ari).abs() < 1e-10,
                "{name}: ari {got_ari} vs sklearn {want_ari}"
            );
        }
    }

    #[test]
    fn identical_and_relabelled_partitions_score_one() {
        let a = [0, 0, 1, 1, 2, 2];
        let b = [5, 5, 3, 3, 9, 9];
        assert!((nmi(&a, &b).unwrap() - 1.0).abs() < 1e-12);
        assert!((ari(&a, &b).unwrap() - 1.0).abs() < 1e-12);
    }

    #[test]
    fn length_mismatch_is_an_error() {
        assert!(matches!(
            nmi(&[0, 1], &[0]),
            Err(AssessError::LengthMismatch { .. })
        ));
        assert!(ari(&[0, 1], &[0, 1, 1]).is_err());
    }
}
