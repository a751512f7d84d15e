//! Principal component analysis for the PCA baseline and for 2-D plots.
//!
//! Randomized SVD (Halko, Martinsson & Tropp 2011, as scikit-learn's
//! `PCA(svd_solver="randomized")`): a seeded Gaussian sketch with 10 extra
//! columns, 7 QR-orthonormalized power iterations, then an exact SVD of the
//! small projected matrix (linfa-linalg, pure Rust). On data with a spectral
//! gap this matches the exact PCA to rounding; it costs a few
//! `n x genes x (k + 10)` matrix products and QR steps (under a second for
//! 700 x 765 and 50 components). linfa-reduction's `Pca` is not used: its
//! BLAS-free LOBPCG path panicked with NaN eigenvalues on a 700 x 765
//! low-rank test matrix, even for 2 components.
//!
//! Signs follow scikit-learn's convention: each component's largest-magnitude
//! loading is positive.

use linfa_linalg::qr::QR;
use linfa_linalg::svd::SVD;
use ndarray::{Array1, Array2, ArrayView2, Axis};
use rand::SeedableRng;
use rand_xoshiro::Xoshiro256PlusPlus;

use super::{AssessError, Result, check_embedding};

/// Extra sketch columns beyond the requested components.
const OVERSAMPLE: usize = 10;
/// Power iterations (scikit-learn's `n_iter="auto"` for few components).
const POWER_ITERATIONS: usize = 7;

/// A fitted PCA: the cell scores and what produced them.
#[derive(Debug, Clone)]
pub struct Pca {
    /// Cell coordinates on the components, `n_cells x n_components` (the
    /// PCA embedding; centred data times `components`).
    pub embedding: Array2<f32>,
    /// Principal axes, `n_components x n_features`, orthonormal rows, in
    /// order of decreasing variance.
    pub components: Array2<f64>,
    /// Variance along each component (`sigma^2 / (n_cells - 1)`).
    pub explained_variance: Vec<f64>,
    /// `explained_variance` over the total variance of the data.
    pub explained_variance_ratio: Vec<f64>,
    /// Per-feature mean subtracted before projecting.
    pub mean: Array1<f64>,
}

fn numerical(what: &'static str, e: impl std::fmt::Display) -> AssessError {
    AssessError::Numerical {
        what,
        message: e.to_string(),
    }
}

/// Orthonormal basis of the columns of a tall matrix.
fn orthonormal(m: &Array2<f64>) -> Result<Array2<f64>> {
    Ok(m.qr().map_err(|e| numerical("PCA (QR)", e))?.generate_q())
}

/// PCA of `data` (`n_cells x n_features`, dense), keeping `n_components`
/// components, capped at `min(n_cells, n_features)` (check
/// `components.nrows()` for the number kept). Data are centred, not scaled.
/// Needs at least 2 cells; `seed` fixes the random sketch.
pub fn pca(data: ArrayView2<'_, f32>, n_components: usize, seed: u64) -> Result<Pca> {
    check_embedding(data, "PCA")?;
    let (n, p) = data.dim();
    if n < 2 {
        return Err(AssessError::TooFewCells {
            what: "PCA",
            need: 2,
            got: n,
        });
    }
    if n_components == 0 {
        return Err(AssessError::InvalidParameter {
            name: "n_components",
            message: "PCA needs at least 1 component".into(),
        });
    }
    let k = n_components.min(n).min(p);
    let l = (k + OVERSAMPLE).min(n).min(p);

    let x = data.mapv(f64::from);
    let mean = x.mean_axis(Axis(0)).unwrap_or_else(|| Array1::zeros(p));
    let x = x - &mean;

    let mut rng = Xoshiro256PlusPlus::seed_from_u64(seed);
    let omega = Array2::from_shape_simple_fn((p, l), || super::standard_normal(&mut rng));
    let mut q = orthonormal(&x.dot(&omega))?;
    for _ in 0..POWER_ITERATIONS {
        let z = orthonormal(&x.t().dot(&q))?;
        q = orthonormal(&x.dot(&z))?;
    }
    let b = q.t().dot(&x); // l x p
    let (_, sigma, vt) = b.svd(false, true).map_err(|e| numerical("PCA (SVD)", e))?;
    let vt = vt.ok_or_else(|| numerical("PCA (SVD)", "no singular vectors returned"))?;
    let mut order: Vec<usize> = (0..sigma.len()).collect();
    order.sort_by(|&a, &b| sigma[b].total_cmp(&sigma[a]));
    order.truncate(k);

    let mut components = vt.select(Axis(0), &order);
    for mut row in components.rows_mut() {
        let pivot = row
            .iter()
            .copied()
            .fold(0.0f64, |m, v| if v.abs() > m.abs() { v } else { m });
        if pivot < 0.0 {
            row.mapv_inplace(|v| -v);
        }
    }
    // Scores from the sign-fixed components: centred data times the axes.
    let scores = x.dot(&components.t());

    let denom = (n - 1) as f64;
    let explained_variance: Vec<f64> = order.iter().map(|&i| sigma[i] * sigma[i] / denom).collect();
    let total = x.iter().map(|v| v * v).sum::<f64>() / denom;
    let explained_variance_ratio = explained_variance
        .iter()
        .map(|v| if total > 0.0 { v / total } else { 0.0 })
        .collect();
    Ok(Pca {
        embedding: scores.mapv(|v| v as f32),
        components,
        explained_variance,
        explained_variance_ratio,
        mean,
    })
}

/// 2-D coordinates of each cell for a scatter plot: the first two principal
/// components of `emb` (seed 0). A 1-D embedding gets `y = 0`.
pub fn project_2d(emb: ArrayView2<'_, f32>) -> Result<Vec<(f32, f32)>> {
    let fitted = pca(emb, 2, 0)?;
    let e = fitted.embedding;
    Ok(e.rows()
        .into_iter()
        .map(|r| (r[0], if r.len() > 1 { r[1] } else { 0.0 }))
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_support::{f64s, fixture, matrix, noise};
    use ndarray::s;

    #[test]
    fn matches_sklearn_pca() {
        let fx = fixture("pca.json");
        let x = matrix(&fx["x"]);
        let k = fx["n_components"].as_u64().unwrap() as usize;
        let fitted = pca(x.view(), k, 0).unwrap();
        let want_ratio = f64s(&fx["explained_variance_ratio"]);
        let want_var = f64s(&fx["explained_variance"]);
        for i in 0..k {
            assert!((fitted.explained_variance_ratio[i] - want_ratio[i]).abs() < 1e-6);
            assert!(
                (fitted.explained_variance[i] - want_var[i]).abs() < 1e-6 * want_var[i].max(1.0)
            );
            let want = f64s(&fx["components"][i]);
            let dot: f64 = fitted
                .components
                .row(i)
                .iter()
                .zip(&want)
                .map(|(a, b)| a * b)
                .sum();
            assert!((dot - 1.0).abs() < 1e-5, "component {i}: dot {dot}");
        }
    }

    #[test]
    fn components_are_orthonormal_and_ordered() {
        let x = noise(120, 30, 9);
        let fitted = pca(x.view(), 8, 1).unwrap();
        let gram = fitted.components.dot(&fitted.components.t());
        for i in 0..8 {
            for j in 0..8 {
                let want = if i == j { 1.0 } else { 0.0 };
                assert!(
                    (gram[[i, j]] - want).abs() < 1e-9,
                    "{i},{j}: {}",
                    gram[[i, j]]
                );
            }
        }
        let ev = &fitted.explained_variance;
        assert!(ev.windows(2).all(|w| w[0] >= w[1]), "{ev:?}");
        assert!(fitted.explained_variance_ratio.iter().sum::<f64>() < 1.0);
        assert_eq!(fitted.embedding.dim(), (120, 8));
        // Scores have the explained variance as their variance.
        let col = fitted.embedding.column(0).mapv(f64::from);
        let var = col.var(1.0);
        assert!((var - ev[0]).abs() < 1e-3 * ev[0]);
    }

    #[test]
    fn caps_components_and_rejects_bad_input() {
        let x = noise(5, 3, 2);
        assert_eq!(pca(x.view(), 10, 0).unwrap().components.nrows(), 3);
        assert!(pca(x.view(), 0, 0).is_err());
        assert!(pca(x.slice(s![..1, ..]), 1, 0).is_err());
        let xy = project_2d(x.slice(s![.., ..1])).unwrap();
        assert!(xy.iter().all(|&(_, y)| y == 0.0));
        assert_eq!(project_2d(x.view()).unwrap().len(), 5);
    }

    #[test]
    fn pbmc_sized_input_is_fast() {
        // 700 cells x 765 genes, low-rank signal plus noise, 50 components.
        let signal = noise(700, 10, 3).dot(&noise(10, 765, 4));
        let x = signal + noise(700, 765, 5) * 0.1;
        let t = std::time::Instant::now();
        let fitted = pca(x.view(), 50, 0).unwrap();
        let secs = t.elapsed().as_secs_f64();
        assert_eq!(fitted.embedding.dim(), (700, 50));
        assert!(fitted.explained_variance_ratio[..10].iter().sum::<f64>() > 0.9);
        assert!(secs < 10.0, "PCA of 700 x 765 took {secs:.2}s");
    }
}
