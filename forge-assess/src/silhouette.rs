//! Silhouette widths (Euclidean), as scikit-learn's `silhouette_samples` /
//! `silhouette_score`, and scIB's batch ASW built on them.
//!
//! For cell `i` in class `c`: `a` = mean distance to the other cells of `c`,
//! `b` = the smallest mean distance to the cells of another class,
//! `s = (b - a) / max(a, b)`, and `s = 0` for a cell alone in its class.
//! Cost is `O(n^2 * dim)`; [`super::embedding_quality`] subsamples first.

use ndarray::{ArrayView2, Axis};

use super::distance::{centered, map_distance_rows};
use super::labels::{Labels, class_counts};
use super::{AssessError, Result, check_embedding};

/// Silhouette of each row of `x` (f64, ideally centred) for dense `codes`
/// in `0..k`. The caller guarantees `2 <= k` classes are present.
pub(crate) fn silhouette_codes(x: ArrayView2<'_, f64>, codes: &[usize], k: usize) -> Vec<f64> {
    let counts = class_counts(codes, k);
    map_distance_rows(x, false, |i, d| {
        let mut sums = vec![0.0f64; k];
        for (&c, &dist) in codes.iter().zip(d) {
            sums[c] += dist;
        }
        let own = codes[i];
        if counts[own] <= 1 {
            return 0.0;
        }
        let a = sums[own] / (counts[own] - 1) as f64;
        let b = (0..k)
            .filter(|&c| c != own && counts[c] > 0)
            .map(|c| sums[c] / counts[c] as f64)
            .fold(f64::INFINITY, f64::min);
        let m = a.max(b);
        if m > 0.0 && m.is_finite() {
            (b - a) / m
        } else {
            0.0
        }
    })
}

fn check_label_count(n_labels: usize, n: usize, what: &'static str) -> Result<()> {
    if n_labels < 2 {
        return Err(AssessError::TooFewClasses {
            what,
            key: "cell-type",
            found: n_labels,
        });
    }
    if n_labels >= n {
        return Err(AssessError::InvalidParameter {
            name: "labels",
            message: format!(
                "{what} needs fewer distinct labels than cells (got {n_labels} labels for {n} \
                 cells)"
            ),
        });
    }
    Ok(())
}

/// Silhouette width of every cell under `labels` (Euclidean distance), as
/// scikit-learn's `silhouette_samples`. Needs `2 <= n_labels <= n_cells - 1`.
/// Exact, `O(n^2)`: subsample large inputs first.
pub fn silhouette_samples<S: AsRef<str>>(
    emb: ArrayView2<'_, f32>,
    labels: &[S],
) -> Result<Vec<f64>> {
    check_embedding(emb, "silhouette")?;
    let labels = Labels::for_cells(labels, emb.nrows(), "labels")?;
    check_label_count(labels.n_classes(), emb.nrows(), "silhouette")?;
    let x = centered(emb.mapv(f64::from).view());
    Ok(silhouette_codes(
        x.view(),
        labels.codes(),
        labels.n_classes(),
    ))
}

/// Mean silhouette width over all cells, as scikit-learn's
/// `silhouette_score` (range -1..1; not rescaled).
pub fn silhouette_score<S: AsRef<str>>(emb: ArrayView2<'_, f32>, labels: &[S]) -> Result<f64> {
    let s = silhouette_samples(emb, labels)?;
    Ok(s.iter().sum::<f64>() / s.len() as f64)
}

/// scIB's batch ASW on rows of `x` (f64) with dense cell-type and batch
/// codes: per cell type with more than one batch (and not one batch per
/// cell), the silhouette of each cell on batch labels within that type,
/// turned into `1 - |s|`, averaged per type; the result is the mean over
/// those types. `None` when no cell type qualifies.
pub(crate) fn batch_asw_codes(
    x: ArrayView2<'_, f64>,
    types: &[usize],
    n_types: usize,
    batches: &[usize],
) -> Option<f64> {
    let mut per_type = Vec::new();
    for t in 0..n_types {
        let idx: Vec<usize> = (0..types.len()).filter(|&i| types[i] == t).collect();
        let (sub_batches, n_batches) =
            super::labels::densify(&idx.iter().map(|&i| batches[i]).collect::<Vec<_>>());
        if n_batches <= 1 || n_batches == idx.len() {
            continue;
        }
        let sub = centered(x.select(Axis(0), &idx).view());
        let s = silhouette_codes(sub.view(), &sub_batches, n_batches);
        let mean = s.iter().map(|v| 1.0 - v.abs()).sum::<f64>() / s.len() as f64;
        per_type.push(mean);
    }
    if per_type.is_empty() {
        None
    } else {
        Some(per_type.iter().sum::<f64>() / per_type.len() as f64)
    }
}

/// scIB's batch ASW (`scib.metrics.silhouette_batch`, scaled): within each
/// cell type, `1 - |silhouette on batch labels|` per cell, averaged per cell
/// type, then over cell types. 1 = batches perfectly mixed, 0 = separated.
/// Cell types with a single batch, or one batch per cell, are skipped as in
/// scIB; `Ok(None)` when every type is skipped. Exact, `O(n^2)`.
pub fn batch_asw<S: AsRef<str>, B: AsRef<str>>(
    emb: ArrayView2<'_, f32>,
    cell_types: &[S],
    batches: &[B],
) -> Result<Option<f64>> {
    check_embedding(emb, "batch ASW")?;
    let types = Labels::for_cells(cell_types, emb.nrows(), "cell-type labels")?;
    let batch = Labels::for_cells(batches, emb.nrows(), "batch labels")?;
    batch.require_two("batch ASW", "batch")?;
    let x = emb.mapv(f64::from);
    Ok(batch_asw_codes(
        x.view(),
        types.codes(),
        types.n_classes(),
        batch.codes(),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_support::{f64s, fixture, matrix, strings};

    #[test]
    fn match_sklearn_fixtures() {
        let fx = fixture("silhouette.json");
        for case in fx["cases"].as_array().unwrap() {
            let name = case["name"].as_str().unwrap();
            let x = matrix(&case["x"]);
            let labels = strings(&case["labels"]);
            let want = f64s(&case["samples"]);
            let got = silhouette_samples(x.view(), &labels).unwrap();
            for (i, (g, w)) in got.iter().zip(&want).enumerate() {
                assert!((g - w).abs() < 1e-5, "{name}: cell {i}: {g} vs sklearn {w}");
            }
            let score = silhouette_score(x.view(), &labels).unwrap();
            let want_score = case["score"].as_f64().unwrap();
            assert!(
                (score - want_score).abs() < 1e-6,
                "{name}: {score} vs {want_score}"
            );
            if let Some(batches) = case.get("batches") {
                let batches = strings(batches);
                let got = batch_asw(x.view(), &labels, &batches).unwrap();
                let want = case["batch_asw"].as_f64();
                match (got, want) {
                    (Some(g), Some(w)) => {
                        assert!((g - w).abs() < 1e-5, "{name}: batch asw {g} vs {w}")
                    }
                    (None, None) => {}
                    other => panic!("{name}: batch asw {other:?}"),
                }
            }
        }
    }

    #[test]
    fn bad_label_counts_are_errors() {
        let x = ndarray::Array2::<f32>::zeros((3, 2));
        let err = silhouette_score(x.view(), &["a", "a", "a"]).unwrap_err();
        assert!(matches!(err, AssessError::TooFewClasses { found: 1, .. }));
        let err = silhouette_score(x.view(), &["a", "b", "c"]).unwrap_err();
        assert!(err.to_string().contains("fewer distinct labels than cells"));
        let err = silhouette_score(x.view(), &["a", "b"]).unwrap_err();
        assert!(matches!(err, AssessError::LengthMismatch { .. }));
    }

    #[test]
    fn well_mixed_batches_score_high_separated_low() {
        // Two cell types; batches either interleaved or split apart.
        let (emb, types) = crate::test_support::clusters(2, 60, 4, 8.0, 3);
        let mixed: Vec<String> = (0..120).map(|i| format!("b{}", (i / 2) % 2)).collect();
        let mixed_score = batch_asw(emb.view(), &types, &mixed).unwrap().unwrap();
        let mut shifted = emb.clone();
        for i in 0..120 {
            if (i / 2) % 2 == 1 {
                shifted[[i, 3]] += 20.0;
            }
        }
        let split_score = batch_asw(shifted.view(), &types, &mixed).unwrap().unwrap();
        assert!(mixed_score > 0.9, "{mixed_score}");
        assert!(split_score < 0.3, "{split_score}");
        let one_batch = vec!["b"; 120];
        assert!(batch_asw(emb.view(), &types, &one_batch).is_err());
    }
}
