//! Test helpers: committed scikit-learn fixtures and synthetic embeddings.

use ndarray::Array2;
use rand::{Rng, SeedableRng};
use rand_xoshiro::Xoshiro256PlusPlus;

/// Parses `forge-core/tests/fixtures/assess/NAME`.
pub(crate) fn fixture(name: &str) -> serde_json::Value {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../forge-core/tests/fixtures/assess")
        .join(name);
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| {
        panic!(
            "{}: {e} (run scripts/make_assess_fixtures.py)",
            path.display()
        )
    });
    serde_json::from_str(&text).unwrap()
}

pub(crate) fn usizes(v: &serde_json::Value) -> Vec<usize> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_u64().unwrap() as usize)
        .collect()
}

pub(crate) fn f64s(v: &serde_json::Value) -> Vec<f64> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_f64().unwrap())
        .collect()
}

pub(crate) fn strings(v: &serde_json::Value) -> Vec<String> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_str().unwrap().to_owned())
        .collect()
}

/// A `rows x cols` matrix from a JSON list of lists.
pub(crate) fn matrix(v: &serde_json::Value) -> Array2<f32> {
    let rows: Vec<Vec<f64>> = v.as_array().unwrap().iter().map(f64s).collect();
    let (n, d) = (rows.len(), rows[0].len());
    Array2::from_shape_fn((n, d), |(i, j)| rows[i][j] as f32)
}

pub(crate) fn rng(seed: u64) -> Xoshiro256PlusPlus {
    Xoshiro256PlusPlus::seed_from_u64(seed)
}

/// A standard normal draw (Box-Muller).
pub(crate) fn normal(rng: &mut impl Rng) -> f32 {
    super::standard_normal(rng) as f32
}

/// `n_types` Gaussian clusters in `dim` dimensions, `per_type` cells each,
/// centres `sep` apart along distinct axes, unit noise. Labels `t0`, `t1`...
pub(crate) fn clusters(
    n_types: usize,
    per_type: usize,
    dim: usize,
    sep: f32,
    seed: u64,
) -> (Array2<f32>, Vec<String>) {
    let mut r = rng(seed);
    let n = n_types * per_type;
    let mut emb = Array2::zeros((n, dim));
    let mut labels = Vec::with_capacity(n);
    for i in 0..n {
        let t = i % n_types;
        for j in 0..dim {
            emb[[i, j]] = normal(&mut r);
        }
        emb[[i, t % dim]] += sep;
        labels.push(format!("t{t}"));
    }
    (emb, labels)
}

/// `n x dim` standard normal noise.
pub(crate) fn noise(n: usize, dim: usize, seed: u64) -> Array2<f32> {
    let mut r = rng(seed);
    Array2::from_shape_simple_fn((n, dim), || normal(&mut r))
}
