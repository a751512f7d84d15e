//! forge-assess: assessment of cell embeddings: how well do they separate cell types, and
//! how well do they mix batches?
//!
//! This is the metric half of `forge assess`. Everything here is a pure
//! function of an embedding matrix and label vectors; nothing reads files,
//! touches a model or draws (drawing lives in [`crate::plot`]).
//!
//! - [`linear_probe`]: multinomial logistic regression on standardized
//!   embeddings, stratified 80/20 split; accuracy, macro-F1, weighted-F1.
//! - [`embedding_quality`]: scIB-style NMI, ARI, cell-type ASW, batch ASW,
//!   graph connectivity and the `0.6 * bio + 0.4 * batch` overall score.
//! - [`pca()`] / [`project_2d`]: the PCA baseline and the 2-D projection used
//!   for scatter plots.
//! - [`AssessReport`]: several named embeddings side by side, as a table
//!   ([`std::fmt::Display`]) and as JSON.
//! - [`nmi`], [`ari`], [`silhouette_samples`], [`silhouette_score`]: the
//!   building blocks, matching scikit-learn's definitions; [`batch_asw`],
//!   [`knn_graph`] and [`graph_connectivity`] as scIB defines them.
//!
//! # Inputs
//!
//! Embeddings are an [`ndarray::ArrayView2<f32>`] of shape
//! `(n_cells, dim)`, one row per cell. A row-major `Vec<f32>` (for example
//! from a `tch::Tensor`) becomes one without copying:
//! `ArrayView2::from_shape((n_cells, dim), &values)?`. This module re-exports
//! the [`ndarray`] version it uses, so callers need not depend on it.
//!
//! Labels (cell types, batches) are one string per cell (`&[String]`,
//! `&[&str]`, anything `AsRef<str>`). Every function checks that lengths
//! agree, that values are finite and that there are at least two classes,
//! and returns an [`AssessError`] saying what is wrong instead of panicking.
//!
//! Randomness (splits, k-means starts, subsampling, randomized SVD) comes
//! from a `seed`: the same inputs and seed give the same numbers.

pub mod benchmarks;
mod distance;
pub mod labels;
pub mod metrics;
pub mod neighbors;
pub mod pca;
pub mod plot;
pub mod probe;
pub mod quality;
pub mod report;
pub mod silhouette;

pub use ndarray;

pub use labels::Labels;
pub use metrics::{ari, nmi};
pub use neighbors::{graph_connectivity, knn_graph};
pub use pca::{Pca, pca, project_2d};
pub use probe::{ProbeResult, linear_probe, linear_probe_with};
pub use quality::{QualityOptions, QualityResult, embedding_quality, embedding_quality_with};
pub use report::{AssessReport, EmbeddingAssessment, assess_embedding};
pub use silhouette::{batch_asw, silhouette_samples, silhouette_score};

/// Everything that can go wrong while assessing an embedding. Each message
/// names the input at fault and what would have been accepted.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum AssessError {
    /// Two inputs that must describe the same cells have different lengths.
    #[error("{what} has {got} entries but the embedding has {expected} cells; give one per cell")]
    LengthMismatch {
        /// Which input, e.g. `labels`.
        what: &'static str,
        /// Number of cells (embedding rows).
        expected: usize,
        /// Number of entries given.
        got: usize,
    },

    /// Too few cells for the computation.
    #[error("{what} needs at least {need} cells, got {got}")]
    TooFewCells {
        /// The computation, e.g. `linear_probe`.
        what: &'static str,
        /// Minimum number of cells.
        need: usize,
        /// Number given.
        got: usize,
    },

    /// Fewer than two distinct labels.
    #[error(
        "{what} needs at least 2 distinct {key} labels, found {found}; \
         check that the label key is the one you meant"
    )]
    TooFewClasses {
        /// The computation, e.g. `linear_probe`.
        what: &'static str,
        /// Which labels, e.g. `cell-type` or `batch`.
        key: &'static str,
        /// Number of distinct labels found.
        found: usize,
    },

    /// The embedding has no columns.
    #[error("the embedding has {n_cells} cells but 0 dimensions")]
    NoDimensions {
        /// Number of rows.
        n_cells: usize,
    },

    /// An embedding value is NaN or infinite.
    #[error(
        "the embedding has a non-finite value ({value}) at cell {row}, dimension {col}; \
         the model or the data produced NaN/inf"
    )]
    NonFinite {
        /// Cell (row) index.
        row: usize,
        /// Dimension (column) index.
        col: usize,
        /// The offending value.
        value: f32,
    },

    /// A parameter is out of range.
    #[error("invalid {name}: {message}")]
    InvalidParameter {
        /// Parameter name.
        name: &'static str,
        /// What is wrong and what is accepted.
        message: String,
    },

    /// A numerical routine from a dependency failed.
    #[error("{what} failed: {message}")]
    Numerical {
        /// The step, e.g. `logistic regression`.
        what: &'static str,
        /// The dependency's message.
        message: String,
    },
}

/// Result alias of this module.
pub type Result<T, E = AssessError> = std::result::Result<T, E>;

/// Checks that `emb` is non-empty, has columns and only finite values.
pub(crate) fn check_embedding(emb: ndarray::ArrayView2<'_, f32>, what: &'static str) -> Result<()> {
    let (n, d) = emb.dim();
    if n == 0 {
        return Err(AssessError::TooFewCells {
            what,
            need: 1,
            got: 0,
        });
    }
    if d == 0 {
        return Err(AssessError::NoDimensions { n_cells: n });
    }
    for ((row, col), &value) in emb.indexed_iter() {
        if !value.is_finite() {
            return Err(AssessError::NonFinite { row, col, value });
        }
    }
    Ok(())
}

/// A standard normal draw (Box-Muller), for seeded random sketches.
pub(crate) fn standard_normal(rng: &mut impl rand::Rng) -> f64 {
    let u1: f64 = rng.gen_range(f64::EPSILON..1.0);
    let u2: f64 = rng.r#gen();
    (-2.0 * u1.ln()).sqrt() * (2.0 * std::f64::consts::PI * u2).cos()
}

#[cfg(test)]
pub(crate) mod test_support;
