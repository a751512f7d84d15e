//! Linear probe: how much cell-type information a linear classifier can
//! read off the embedding.
//!
//! Mirrors scModelForge's `linear_probe` benchmark (scikit-learn
//! `LogisticRegression`, C = 1, on an 80/20 stratified split), with two
//! documented differences:
//! - features are standardized (mean 0, variance 1, statistics from the
//!   training cells only), so the fixed L2 penalty means the same thing for
//!   every embedding scale;
//! - a class with a single cell cannot be split, so that cell stays in the
//!   training set (scikit-learn's stratified split refuses such data). Every
//!   class with two or more cells puts `round(0.2 * n)` of them, at least one
//!   and at most `n - 1`, in the test set.
//!
//! The classifier is linfa-logistic's multinomial `MultiLogisticRegression`
//! (L-BFGS, L2 penalty `alpha = 1`, which is scikit-learn's `C = 1`, up to
//! 1000 iterations).

use linfa::prelude::*;
use linfa_logistic::MultiLogisticRegression;
use ndarray::{Array1, Array2, ArrayView2, Axis};
use rand::SeedableRng;
use rand::seq::SliceRandom;
use rand_xoshiro::Xoshiro256PlusPlus;
use serde::Serialize;

use super::labels::{Labels, class_counts};
use super::{AssessError, Result, check_embedding};

/// Fraction of each class held out for testing.
pub const TEST_FRACTION: f64 = 0.2;
/// L2 penalty of the logistic regression (scikit-learn's `1 / C`).
pub const ALPHA: f64 = 1.0;
/// L-BFGS iteration cap.
pub const MAX_ITERATIONS: u64 = 1000;

/// Scores of a linear probe on the held-out cells.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct ProbeResult {
    /// Fraction of test cells classified correctly.
    pub accuracy: f64,
    /// Unweighted mean of per-class F1 (classes in the test labels or the
    /// predictions, as scikit-learn's `average="macro"`).
    pub f1_macro: f64,
    /// Per-class F1 weighted by test support (`average="weighted"`).
    pub f1_weighted: f64,
    /// Training cells.
    pub n_train: usize,
    /// Test cells.
    pub n_test: usize,
    /// Distinct labels in the input.
    pub n_classes: usize,
}

/// Seeded stratified split of `codes`: returns sorted (train, test) indices.
pub fn stratified_split(
    codes: &[usize],
    n_classes: usize,
    test_fraction: f64,
    seed: u64,
) -> (Vec<usize>, Vec<usize>) {
    let mut rng = Xoshiro256PlusPlus::seed_from_u64(seed);
    let mut by_class: Vec<Vec<usize>> = vec![Vec::new(); n_classes];
    for (i, &c) in codes.iter().enumerate() {
        by_class[c].push(i);
    }
    let (mut train, mut test) = (Vec::new(), Vec::new());
    for mut members in by_class {
        let n = members.len();
        let n_test = if n >= 2 {
            ((test_fraction * n as f64).round() as usize).clamp(1, n - 1)
        } else {
            0
        };
        members.shuffle(&mut rng);
        test.extend_from_slice(&members[..n_test]);
        train.extend_from_slice(&members[n_test..]);
    }
    train.sort_unstable();
    test.sort_unstable();
    (train, test)
}

/// Accuracy, macro-F1 and weighted-F1 of `pred` against `truth`, as
/// scikit-learn computes them (labels = union of both; F1 of a class with no
/// true and no predicted cells cannot occur; zero division gives 0).
pub fn classification_scores(truth: &[usize], pred: &[usize]) -> (f64, f64, f64) {
    let k = truth.iter().chain(pred).max().map_or(0, |m| m + 1);
    let (mut tp, mut fp, mut fn_) = (vec![0usize; k], vec![0usize; k], vec![0usize; k]);
    for (&t, &p) in truth.iter().zip(pred) {
        if t == p {
            tp[t] += 1;
        } else {
            fp[p] += 1;
            fn_[t] += 1;
        }
    }
    let support = class_counts(truth, k);
    let predicted = class_counts(pred, k);
    let present: Vec<usize> = (0..k)
        .filter(|&c| support[c] > 0 || predicted[c] > 0)
        .collect();
    let f1 = |c: usize| {
        let den = 2 * tp[c] + fp[c] + fn_[c];
        if den == 0 {
            0.0
        } else {
            2.0 * tp[c] as f64 / den as f64
        }
    };
    let n = truth.len().max(1) as f64;
    let accuracy = tp.iter().sum::<usize>() as f64 / n;
    let macro_f1 = present.iter().map(|&c| f1(c)).sum::<f64>() / present.len().max(1) as f64;
    let weighted = present
        .iter()
        .map(|&c| f1(c) * support[c] as f64)
        .sum::<f64>()
        / n;
    (accuracy, macro_f1, weighted)
}

/// Standardizes `x` in place with the mean and (population) standard
/// deviation of the rows in `fit_rows`; constant columns are only centred.
fn standardize(x: &mut Array2<f64>, fit_rows: &[usize]) {
    let fit = x.select(Axis(0), fit_rows);
    let mean = fit
        .mean_axis(Axis(0))
        .unwrap_or_else(|| Array1::zeros(x.ncols()));
    let std = fit
        .std_axis(Axis(0), 0.0)
        .mapv(|s| if s > 1e-12 { s } else { 1.0 });
    *x -= &mean;
    *x /= &std;
}

/// Trains a multinomial logistic regression on 80% of the cells (stratified
/// by `labels`, seeded) and scores it on the other 20%. See the [module docs](self)
/// for the exact protocol. Errors when there are fewer than two label
/// classes or no class has two cells to split.
pub fn linear_probe<S: AsRef<str>>(
    emb: ArrayView2<'_, f32>,
    labels: &[S],
    seed: u64,
) -> Result<ProbeResult> {
    linear_probe_with(emb, labels, TEST_FRACTION, MAX_ITERATIONS, seed)
}

/// [`linear_probe`] with the held-out fraction (`test_size` of
/// scModelForge's benchmark, in (0, 1)) and the iteration cap (`max_iter`)
/// given.
pub fn linear_probe_with<S: AsRef<str>>(
    emb: ArrayView2<'_, f32>,
    labels: &[S],
    test_size: f64,
    max_iterations: u64,
    seed: u64,
) -> Result<ProbeResult> {
    if !(test_size > 0.0 && test_size < 1.0) {
        return Err(AssessError::InvalidParameter {
            name: "test_size",
            message: format!("{test_size} is not in (0, 1)"),
        });
    }
    if max_iterations == 0 {
        return Err(AssessError::InvalidParameter {
            name: "max_iter",
            message: "must be at least 1".into(),
        });
    }
    check_embedding(emb, "linear_probe")?;
    let labels = Labels::for_cells(labels, emb.nrows(), "labels")?;
    labels.require_two("linear_probe", "cell-type")?;
    let codes = labels.codes();
    let (train, test) = stratified_split(codes, labels.n_classes(), test_size, seed);
    if test.is_empty() {
        return Err(AssessError::TooFewCells {
            what: "linear_probe (every class has a single cell, so none can be held out)",
            need: 2,
            got: 1,
        });
    }
    let mut x = emb.mapv(f64::from);
    standardize(&mut x, &train);
    let x_train = x.select(Axis(0), &train);
    let y_train: Array1<usize> = train.iter().map(|&i| codes[i]).collect();
    let x_test = x.select(Axis(0), &test);
    let y_test: Vec<usize> = test.iter().map(|&i| codes[i]).collect();

    let model = MultiLogisticRegression::default()
        .alpha(ALPHA)
        .max_iterations(max_iterations)
        .fit(&Dataset::new(x_train, y_train))
        .map_err(|e| AssessError::Numerical {
            what: "logistic regression",
            message: e.to_string(),
        })?;
    let pred: Vec<usize> = model.predict(&x_test).to_vec();
    let (accuracy, f1_macro, f1_weighted) = classification_scores(&y_test, &pred);
    Ok(ProbeResult {
        accuracy,
        f1_macro,
        f1_weighted,
        n_train: train.len(),
        n_test: test.len(),
        n_classes: labels.n_classes(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_support::{clusters, fixture, noise, usizes};

    #[test]
    fn f1_matches_sklearn() {
        let fx = fixture("f1.json");
        for case in fx["cases"].as_array().unwrap() {
            let name = case["name"].as_str().unwrap();
            let (acc, mac, wei) =
                classification_scores(&usizes(&case["y_true"]), &usizes(&case["y_pred"]));
            for (got, key) in [(acc, "accuracy"), (mac, "f1_macro"), (wei, "f1_weighted")] {
                let want = case[key].as_f64().unwrap();
                assert!(
                    (got - want).abs() < 1e-12,
                    "{name} {key}: {got} vs sklearn {want}"
                );
            }
        }
    }

    #[test]
    fn split_is_stratified_seeded_and_keeps_singletons_in_train() {
        // class 0: 10 cells, class 1: 2 cells, class 2: 1 cell.
        let mut codes = vec![0; 10];
        codes.extend([1, 1, 2]);
        let (train, test) = stratified_split(&codes, 3, 0.2, 7);
        assert_eq!(train.len() + test.len(), 13);
        let test_classes: Vec<usize> = test.iter().map(|&i| codes[i]).collect();
        assert_eq!(test_classes.iter().filter(|&&c| c == 0).count(), 2);
        assert_eq!(test_classes.iter().filter(|&&c| c == 1).count(), 1);
        assert!(train.contains(&12), "the single cell of class 2 trains");
        assert_eq!(
            stratified_split(&codes, 3, 0.2, 7),
            (train.clone(), test.clone())
        );
        assert_ne!(stratified_split(&codes, 3, 0.2, 8).1, test);
    }

    #[test]
    fn separated_clusters_are_probed_perfectly() {
        let (emb, labels) = clusters(5, 80, 16, 6.0, 11);
        let r = linear_probe(emb.view(), &labels, 0).unwrap();
        assert_eq!((r.n_train, r.n_test, r.n_classes), (320, 80, 5));
        assert!(r.accuracy > 0.98, "{r:?}");
        assert!(r.f1_macro > 0.98 && r.f1_weighted > 0.98, "{r:?}");
    }

    #[test]
    fn random_labels_give_chance() {
        let emb = noise(1000, 16, 5);
        let labels: Vec<String> = (0..1000).map(|i| format!("c{}", (i * 7919) % 4)).collect();
        let r = linear_probe(emb.view(), &labels, 0).unwrap();
        assert!(r.accuracy > 0.12 && r.accuracy < 0.40, "{r:?}");
    }

    #[test]
    fn bad_inputs_are_errors() {
        let emb = noise(10, 3, 1);
        let one = vec!["a"; 10];
        let err = linear_probe(emb.view(), &one, 0).unwrap_err();
        assert!(
            matches!(err, AssessError::TooFewClasses { found: 1, .. }),
            "{err}"
        );
        let err = linear_probe(emb.view(), &one[..3], 0).unwrap_err();
        assert!(matches!(err, AssessError::LengthMismatch { .. }));
        let singletons: Vec<String> = (0..10).map(|i| i.to_string()).collect();
        assert!(linear_probe(emb.view(), &singletons, 0).is_err());
        let mut nan = emb.clone();
        nan[[4, 1]] = f32::NAN;
        let err = linear_probe(nan.view(), &singletons, 0).unwrap_err();
        assert!(err.to_string().contains("cell 4, dimension 1"), "{err}");
    }
}
