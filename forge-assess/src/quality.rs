//! scIB-style embedding quality: does the embedding keep cell types apart
//! (bio conservation) and mix batches (batch correction)?
//!
//! Mirrors scModelForge's `embedding_quality` benchmark, which calls scIB:
//!
//! | metric | scIB group | here |
//! |---|---|---|
//! | `nmi`, `ari` | bio | NMI (arithmetic) / ARI of the best clustering against cell types |
//! | `asw_celltype` | bio | silhouette on cell types, rescaled `(s + 1) / 2` |
//! | `asw_batch` | batch | `1 - abs(silhouette on batches)` within each cell type, averaged |
//! | `graph_connectivity` | batch | per type, share of cells in the largest kNN component |
//!
//! `bio = mean(nmi, ari, asw_celltype)`; `batch = mean(asw_batch,
//! graph_connectivity)`; `overall = 0.6 * bio + 0.4 * batch`. Without batch
//! labels, or with a single batch, there are no batch metrics (`asw_batch`
//! and `batch_score` are `None`) and `overall = bio`, as in scModelForge.
//! Graph connectivity is still computed and reported then, but it only
//! counts in `batch_score`. If every cell type holds a single batch, batch
//! ASW is undefined (`None`) and `batch_score` is graph connectivity alone.
//!
//! Differences from scIB, chosen to stay fast on 2 cores and dependency-light:
//! - Clustering: scIB sweeps Leiden resolutions 0.1..2.0 on the kNN graph
//!   and keeps the clustering with the best NMI. Here the sweep is over the
//!   number of clusters of k-means (linfa-clustering, one k-means++ start
//!   per k as scikit-learn's `n_init="auto"`): k from `ceil(n_types / 2)` to
//!   `2 * n_types` (at most [`MAX_K_VALUES`] values, evenly spaced, always
//!   including `n_types`), keeping the best NMI; its ARI is reported with
//!   it. Beyond [`QualityOptions::max_kmeans_cells`] cells (5,000), the
//!   centroids are fitted on a seeded random subsample and every cell is
//!   then assigned to its nearest centroid; NMI and ARI use all cells.
//! - Silhouettes: scIB uses every cell. Here both ASWs use one seeded
//!   random subsample of at most [`QualityOptions::max_silhouette_cells`]
//!   cells (5,000 by default) because the silhouette is `O(n^2)`.
//! - Graph: the exact Euclidean kNN graph with scanpy's edges
//!   (`n_neighbors = 15` counting the cell itself), not UMAP weights; only
//!   connectivity matters for the metric.

use linfa::prelude::*;
use linfa_clustering::KMeans;
use ndarray::{Array2, ArrayView2, Axis};
use rand::SeedableRng;
use rand::seq::index::sample;
use rand_xoshiro::{Xoshiro256Plus, Xoshiro256PlusPlus};
use rayon::prelude::*;
use serde::Serialize;

use super::distance::centered;
use super::labels::Labels;
use super::metrics::{ari, nmi};
use super::neighbors::{graph_connectivity_codes, knn_graph};
use super::silhouette::{batch_asw_codes, silhouette_codes};
use super::{AssessError, Result, check_embedding};

/// Most k values tried in the k-means sweep.
pub const MAX_K_VALUES: usize = 8;

/// Knobs of [`embedding_quality_with`]; [`Default`] gives the documented
/// protocol.
#[derive(Debug, Clone, PartialEq)]
pub struct QualityOptions {
    /// kNN graph size, counting the cell itself as scanpy does: 15.
    pub n_neighbors: usize,
    /// Most cells used for the silhouettes (random subsample): 5,000.
    pub max_silhouette_cells: usize,
    /// Most cells the k-means centroids are fitted on (random subsample;
    /// all cells are then assigned): 5,000.
    pub max_kmeans_cells: usize,
    /// k-means restarts per k (best inertia kept): 1.
    pub kmeans_runs: usize,
    /// k-means iteration cap per run: 300.
    pub kmeans_max_iterations: u64,
    /// Cluster counts to sweep; `None` = the documented default range.
    pub k_values: Option<Vec<usize>>,
    /// Seed of subsampling and k-means.
    pub seed: u64,
}

impl Default for QualityOptions {
    fn default() -> Self {
        QualityOptions {
            n_neighbors: 15,
            max_silhouette_cells: 5000,
            max_kmeans_cells: 5000,
            kmeans_runs: 1,
            kmeans_max_iterations: 300,
            k_values: None,
            seed: 0,
        }
    }
}

/// scIB-style scores of one embedding; all in 0..1 except `ari` (chance
/// about 0, can dip below).
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct QualityResult {
    /// NMI of the best k-means clustering against cell types.
    pub nmi: f64,
    /// ARI of that clustering against cell types.
    pub ari: f64,
    /// Cell-type silhouette rescaled to 0..1.
    pub asw_celltype: f64,
    /// scIB batch ASW; `None` without (usable) batch labels.
    pub asw_batch: Option<f64>,
    /// scIB graph connectivity on the kNN graph.
    pub graph_connectivity: f64,
    /// Mean of `nmi`, `ari`, `asw_celltype`.
    pub bio: f64,
    /// Mean of `asw_batch`, `graph_connectivity`; `None` without batches.
    pub batch_score: Option<f64>,
    /// `0.6 * bio + 0.4 * batch_score`, or `bio` without batches.
    pub overall: f64,
    /// Number of k-means clusters of the best clustering.
    pub n_clusters: usize,
    /// Cells the silhouettes were computed on.
    pub n_silhouette_cells: usize,
}

/// The default k sweep for `n_types` cell types and `n` cells.
fn default_k_values(n_types: usize, n: usize) -> Vec<usize> {
    let lo = n_types.div_ceil(2).max(2);
    let hi = (2 * n_types).min(n).max(lo);
    let span = hi - lo + 1;
    if span <= MAX_K_VALUES {
        return (lo..=hi).collect();
    }
    let mut ks: Vec<usize> = (0..MAX_K_VALUES)
        .map(|i| lo + (i * (hi - lo) + (MAX_K_VALUES - 1) / 2) / (MAX_K_VALUES - 1))
        .collect();
    ks.push(n_types);
    ks.sort_unstable();
    ks.dedup();
    ks
}

/// scIB-style quality of `emb` with the default [`QualityOptions`] and
/// `seed`. See the [module docs](self) for the metrics and how they differ from
/// scIB. `batches`, when given, must have one label per cell.
pub fn embedding_quality<S: AsRef<str>, B: AsRef<str>>(
    emb: ArrayView2<'_, f32>,
    cell_types: &[S],
    batches: Option<&[B]>,
    seed: u64,
) -> Result<QualityResult> {
    let options = QualityOptions {
        seed,
        ..QualityOptions::default()
    };
    embedding_quality_with(emb, cell_types, batches, &options)
}

/// [`embedding_quality`] with explicit options.
pub fn embedding_quality_with<S: AsRef<str>, B: AsRef<str>>(
    emb: ArrayView2<'_, f32>,
    cell_types: &[S],
    batches: Option<&[B]>,
    options: &QualityOptions,
) -> Result<QualityResult> {
    check_embedding(emb, "embedding_quality")?;
    let n = emb.nrows();
    let types = Labels::for_cells(cell_types, n, "cell-type labels")?;
    types.require_two("embedding_quality", "cell-type")?;
    if n < 3 {
        return Err(AssessError::TooFewCells {
            what: "embedding_quality",
            need: 3,
            got: n,
        });
    }
    let batch = match batches {
        Some(b) => Some(Labels::for_cells(b, n, "batch labels")?),
        None => None,
    }
    .filter(|b| b.n_classes() > 1);
    if options.n_neighbors < 2 {
        return Err(AssessError::InvalidParameter {
            name: "n_neighbors",
            message: format!(
                "needs at least 2 (the cell itself and one other), got {}",
                options.n_neighbors
            ),
        });
    }
    if options.max_silhouette_cells < 2 || options.max_kmeans_cells < 2 || options.kmeans_runs == 0
    {
        return Err(AssessError::InvalidParameter {
            name: "options",
            message: "max_silhouette_cells and max_kmeans_cells must be >= 2, kmeans_runs >= 1"
                .into(),
        });
    }

    let mut rng = Xoshiro256PlusPlus::seed_from_u64(options.seed);
    let kmeans_subset = subsample(&mut rng, n, options.max_kmeans_cells);
    let (nmi_best, ari_best, n_clusters) =
        best_clustering(emb, &kmeans_subset, types.codes(), options)?;

    let subset = subsample(&mut rng, n, options.max_silhouette_cells);
    let x_sub = centered(emb.select(Axis(0), &subset).mapv(f64::from).view());
    let (sub_types, n_sub_types) =
        super::labels::densify(&subset.iter().map(|&i| types.codes()[i]).collect::<Vec<_>>());
    let sil = silhouette_codes(x_sub.view(), &sub_types, n_sub_types);
    let asw_celltype = (sil.iter().sum::<f64>() / sil.len() as f64 + 1.0) / 2.0;

    let neighbors = knn_graph(emb, options.n_neighbors - 1)?;
    let graph_connectivity = graph_connectivity_codes(&neighbors, types.codes(), types.n_classes());

    let asw_batch = batch.as_ref().and_then(|b| {
        let sub_batches: Vec<usize> = subset.iter().map(|&i| b.codes()[i]).collect();
        batch_asw_codes(x_sub.view(), &sub_types, n_sub_types, &sub_batches)
    });
    let batch_score = batch.as_ref().map(|_| match asw_batch {
        Some(a) => (a + graph_connectivity) / 2.0,
        None => graph_connectivity,
    });
    let bio = (nmi_best + ari_best + asw_celltype) / 3.0;
    let overall = match batch_score {
        Some(b) => 0.6 * bio + 0.4 * b,
        None => bio,
    };
    Ok(QualityResult {
        nmi: nmi_best,
        ari: ari_best,
        asw_celltype,
        asw_batch,
        graph_connectivity,
        bio,
        batch_score,
        overall,
        n_clusters,
        n_silhouette_cells: subset.len(),
    })
}

/// At most `max` of `0..n`, sorted (all of them when `n <= max`).
fn subsample(rng: &mut Xoshiro256PlusPlus, n: usize, max: usize) -> Vec<usize> {
    if n <= max {
        return (0..n).collect();
    }
    let mut idx = sample(rng, n, max).into_vec();
    idx.sort_unstable();
    idx
}

/// k-means over the k sweep, centroids fitted on the rows `fit_rows`, all
/// rows assigned; the clustering with the best NMI against `types` (ties:
/// smaller k). Returns (nmi, ari, k).
fn best_clustering(
    emb: ArrayView2<'_, f32>,
    fit_rows: &[usize],
    types: &[usize],
    options: &QualityOptions,
) -> Result<(f64, f64, usize)> {
    let n_types = types.iter().max().map_or(0, |m| m + 1);
    let ks = match &options.k_values {
        Some(ks) => {
            let most = fit_rows.len();
            if ks.is_empty() || ks.iter().any(|&k| k == 0 || k > most) {
                return Err(AssessError::InvalidParameter {
                    name: "k_values",
                    message: format!(
                        "each k must be in 1..={most} (cells used for k-means), got {ks:?}"
                    ),
                });
            }
            ks.clone()
        }
        None => default_k_values(n_types, fit_rows.len()),
    };
    let fit: Array2<f32> = emb.select(Axis(0), fit_rows);
    let dataset = DatasetBase::from(fit.view());
    // One clustering per k, in parallel (each k has its own seeded rng, so
    // the result does not depend on scheduling).
    let scored: Vec<Result<(f64, f64, usize)>> = ks
        .par_iter()
        .map(|&k| {
            let rng = Xoshiro256Plus::seed_from_u64(options.seed.wrapping_add(k as u64));
            let model = KMeans::params_with_rng(k, rng)
                .n_runs(options.kmeans_runs)
                .max_n_iterations(options.kmeans_max_iterations)
                .tolerance(1e-4)
                .fit(&dataset)
                .map_err(|e| AssessError::Numerical {
                    what: "k-means",
                    message: e.to_string(),
                })?;
            let clusters: Vec<usize> = model.predict(&emb).to_vec();
            Ok((nmi(types, &clusters)?, ari(types, &clusters)?, k))
        })
        .collect();
    let mut best: Option<(f64, f64, usize)> = None;
    for result in scored {
        let (score, ari, k) = result?;
        if best.is_none_or(|(b, _, bk)| score > b || (score == b && k < bk)) {
            best = Some((score, ari, k));
        }
    }
    best.ok_or_else(|| AssessError::InvalidParameter {
        name: "k_values",
        message: "no k to try".into(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_support::{clusters, noise};

    #[test]
    fn k_sweep_covers_half_to_double_the_types() {
        assert_eq!(default_k_values(2, 100), vec![2, 3, 4]);
        assert_eq!(default_k_values(5, 100), (3..=10).collect::<Vec<_>>());
        let ks = default_k_values(30, 10_000);
        assert!(ks.len() <= MAX_K_VALUES + 1);
        assert_eq!((ks[0], *ks.last().unwrap()), (15, 60));
        assert!(ks.contains(&30));
        assert_eq!(default_k_values(4, 5), vec![2, 3, 4, 5]);
    }

    #[test]
    fn perfect_embedding_scores_high() {
        // One tight point cloud per type.
        let (emb, labels) = clusters(6, 40, 8, 30.0, 2);
        let r = embedding_quality(emb.view(), &labels, None::<&[String]>, 0).unwrap();
        assert!(r.nmi > 0.99 && r.ari > 0.99, "{r:?}");
        assert!(r.asw_celltype > 0.8, "{r:?}");
        assert!((r.graph_connectivity - 1.0).abs() < 1e-12, "{r:?}");
        assert_eq!(r.n_clusters, 6);
        assert_eq!((r.asw_batch, r.batch_score), (None, None));
        assert!((r.overall - r.bio).abs() < 1e-12);
        assert!((r.bio - (r.nmi + r.ari + r.asw_celltype) / 3.0).abs() < 1e-12);
    }

    #[test]
    fn shuffled_labels_score_low() {
        let (emb, _) = clusters(6, 40, 8, 30.0, 2);
        let shuffled: Vec<String> = (0..240)
            .map(|i| format!("t{}", (i * 7 + i / 5) % 6))
            .collect();
        let r = embedding_quality(emb.view(), &shuffled, None::<&[String]>, 0).unwrap();
        assert!(r.nmi < 0.2 && r.ari < 0.1, "{r:?}");
        assert!(r.asw_celltype < 0.55, "{r:?}");
        assert!(r.overall < 0.35, "{r:?}");
    }

    #[test]
    fn batches_enter_the_overall_score() {
        let (emb, labels) = clusters(4, 50, 6, 20.0, 4);
        let batches: Vec<String> = (0..200).map(|i| format!("b{}", (i / 4) % 2)).collect();
        let r = embedding_quality(emb.view(), &labels, Some(&batches[..]), 0).unwrap();
        let asw_b = r.asw_batch.expect("two batches in every type");
        assert!(asw_b > 0.85, "{r:?}");
        let b = r.batch_score.unwrap();
        assert!((b - (asw_b + r.graph_connectivity) / 2.0).abs() < 1e-12);
        assert!((r.overall - (0.6 * r.bio + 0.4 * b)).abs() < 1e-12);
        // A single batch means no batch metrics.
        let one = vec!["b"; 200];
        let r1 = embedding_quality(emb.view(), &labels, Some(&one[..]), 0).unwrap();
        assert_eq!(r1.batch_score, None);
        assert!((r1.overall - r1.bio).abs() < 1e-12);
    }

    #[test]
    fn silhouettes_are_subsampled_and_seeded() {
        let (emb, labels) = clusters(3, 100, 5, 8.0, 6);
        let options = QualityOptions {
            max_silhouette_cells: 120,
            k_values: Some(vec![3]),
            ..QualityOptions::default()
        };
        let a = embedding_quality_with(emb.view(), &labels, None::<&[&str]>, &options).unwrap();
        let b = embedding_quality_with(emb.view(), &labels, None::<&[&str]>, &options).unwrap();
        assert_eq!(a, b);
        assert_eq!(a.n_silhouette_cells, 120);
        assert_eq!(a.n_clusters, 3);
    }

    #[test]
    fn bad_inputs_are_errors() {
        let emb = noise(20, 3, 0);
        let one = vec!["a"; 20];
        assert!(matches!(
            embedding_quality(emb.view(), &one, None::<&[&str]>, 0),
            Err(AssessError::TooFewClasses { .. })
        ));
        let two: Vec<&str> = (0..20).map(|i| if i < 10 { "a" } else { "b" }).collect();
        let short = ["x"; 3];
        let err = embedding_quality(emb.view(), &two, Some(&short[..]), 0).unwrap_err();
        assert!(
            err.to_string().starts_with("batch labels has 3 entries"),
            "{err}"
        );
        let options = QualityOptions {
            k_values: Some(vec![0]),
            ..QualityOptions::default()
        };
        assert!(embedding_quality_with(emb.view(), &two, None::<&[&str]>, &options).is_err());
    }
}
