//! Synthetic single-cell data: negative-binomial counts with realistic
//! sparsity and cell types a model can learn, written as `.h5ad` of any
//! size in bounded memory.
//!
//! The generative model, all seeded:
//! - every gene has a base expression weight, log-normal (σ = 1.5), so a few
//!   genes carry most counts as in real data;
//! - each of the K cell types multiplies every gene by a mild program
//!   (log-normal, σ = 0.3) and a random 5% of genes (its markers) by
//!   e² ≈ 7.4;
//! - each of the `n_batches` batches multiplies every gene by a small
//!   technical factor (log-normal, σ = 0.15);
//! - each cell gets a size factor (one of 16 log-normal quantiles, σ = 0.4)
//!   and a type and batch, uniformly;
//! - a count is negative binomial with that mean and dispersion
//!   `dispersion` (variance `m + m²/r`); the library size is calibrated so
//!   that a fraction `nonzero_fraction` (default 10%, i.e. ~90% zeros) of
//!   entries is nonzero.
//!
//! The file: `X` CSR float32 counts (indices sorted), `obs` with
//! `cell_type` and `batch` categoricals, `var` with the gene names as index
//! plus `gene_symbol` and `gene_id` (Ensembl-style) string columns, empty
//! `obsm`/`varm`/`obsp`/`varp`/`layers`/`uns`. Cells are generated and
//! appended a block at a time, so memory does not grow with the number of
//! cells (beyond the cell names and labels). The file is written beside
//! the target and renamed into place.
//!
//! What this module is not: a simulator of biology; the counts only have
//! the statistical shape of real data.

use std::path::Path;

use hdf5_pure::{
    AttrValue, File, FileBuilder, MaxExtent, make_f32_type, make_i32_type, make_i64_type,
};
use rand::Rng;
use rand::SeedableRng;
use rand_xoshiro::Xoshiro256PlusPlus;

use super::DataError;
use super::h5ad::write::{tag, vstr};
use super::seed::{cell_rng, mix};

/// How genes are named in the var index.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GeneNaming {
    /// `GENE00001`, ... (symbols).
    Symbols,
    /// `ENSG00000001000`, ... (human Ensembl ids).
    Ensembl,
    /// `ENSG00000001000.3`, ... (with version suffixes).
    EnsemblVersioned,
}

/// Settings of [`write_synthetic_with`].
#[derive(Debug, Clone, PartialEq)]
pub struct SyntheticOptions {
    /// Number of cells (>= 1).
    pub n_cells: usize,
    /// Number of genes (>= 1).
    pub n_genes: usize,
    /// Number of cell types (>= 1).
    pub n_types: usize,
    /// Number of batches (>= 1).
    pub n_batches: usize,
    /// Seed of everything.
    pub seed: u64,
    /// Target share of nonzero entries, in (0, 1).
    pub nonzero_fraction: f64,
    /// Negative-binomial dispersion `r` (> 0; smaller is noisier).
    pub dispersion: f64,
    /// Naming of the var index.
    pub naming: GeneNaming,
    /// Cells generated and appended per block.
    pub block_cells: usize,
}

impl Default for SyntheticOptions {
    fn default() -> Self {
        SyntheticOptions {
            n_cells: 1000,
            n_genes: 2000,
            n_types: 5,
            n_batches: 2,
            seed: 0,
            nonzero_fraction: 0.1,
            dispersion: 2.0,
            naming: GeneNaming::Symbols,
            block_cells: 4096,
        }
    }
}

/// Writes `n_cells` × `n_genes` counts of `n_types` cell types to `path`
/// (see the module docs), with the other settings at their defaults.
pub fn write_synthetic(
    path: &Path,
    n_cells: usize,
    n_genes: usize,
    n_types: usize,
    seed: u64,
) -> Result<(), DataError> {
    write_synthetic_with(
        path,
        &SyntheticOptions {
            n_cells,
            n_genes,
            n_types,
            seed,
            ..SyntheticOptions::default()
        },
    )
}

/// Size-factor levels.
const LEVELS: usize = 16;

/// Writes a synthetic `.h5ad` file with `opts`.
pub fn write_synthetic_with(path: &Path, opts: &SyntheticOptions) -> Result<(), DataError> {
    let positive = |key: &str, v: usize| {
        if v == 0 {
            Err(DataError::setting(key, "must be at least 1, found 0"))
        } else {
            Ok(())
        }
    };
    positive("n_cells", opts.n_cells)?;
    positive("n_genes", opts.n_genes)?;
    positive("n_types", opts.n_types)?;
    positive("n_batches", opts.n_batches)?;
    if !(opts.nonzero_fraction > 0.0 && opts.nonzero_fraction < 1.0) {
        return Err(DataError::setting(
            "nonzero_fraction",
            format!("must be within (0, 1), found {}", opts.nonzero_fraction),
        ));
    }
    if !(opts.dispersion > 0.0 && opts.dispersion.is_finite()) {
        return Err(DataError::setting(
            "dispersion",
            format!("must be a positive number, found {}", opts.dispersion),
        ));
    }
    if opts.n_genes > i32::MAX as usize {
        return Err(DataError::setting("n_genes", "must fit in int32"));
    }
    let model = Model::new(opts);
    forge_core::atomic::write_file_with(
        path,
        |tmp| write_file(tmp, path, opts, &model),
        |p, e| DataError::io(p, e),
    )
}

/// The per-(type, batch, level) tables of the generative model.
struct Model {
    n_genes: usize,
    n_batches: usize,
    r: f64,
    /// Mean count, per (type, batch, level) row, per gene.
    mean: Vec<f32>,
    /// Probability of a zero count, same layout.
    p0: Vec<f32>,
}

fn normal(rng: &mut impl Rng) -> f64 {
    let u1: f64 = rng.r#gen::<f64>().max(1e-300);
    let u2: f64 = rng.r#gen();
    (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos()
}

/// Inverse of the standard normal CDF (Acklam's rational approximation).
#[allow(clippy::excessive_precision)] // the published coefficients, as published
fn probit(p: f64) -> f64 {
    const A: [f64; 6] = [
        -3.969683028665376e1,
        2.209460984245205e2,
        -2.759285104469687e2,
        1.383577518672690e2,
        -3.066479806614716e1,
        2.506628277459239,
    ];
    const B: [f64; 5] = [
        -5.447609879822406e1,
        1.615858368580409e2,
        -1.556989798598866e2,
        6.680131188771972e1,
        -1.328068155288572e1,
    ];
    const C: [f64; 6] = [
        -7.784894002430293e-3,
        -3.223964580411365e-1,
        -2.400758277161838,
        -2.549732539343734,
        4.374664141464968,
        2.938163982698783,
    ];
    const D: [f64; 4] = [
        7.784695709041462e-3,
        3.224671290700398e-1,
        2.445134137142996,
        3.754408661907416,
    ];
    let tail = |q: f64| {
        (((((C[0] * q + C[1]) * q + C[2]) * q + C[3]) * q + C[4]) * q + C[5])
            / ((((D[0] * q + D[1]) * q + D[2]) * q + D[3]) * q + 1.0)
    };
    if p < 0.02425 {
        tail((-2.0 * p.ln()).sqrt())
    } else if p > 1.0 - 0.02425 {
        -tail((-2.0 * (1.0 - p).ln()).sqrt())
    } else {
        let q = p - 0.5;
        let r = q * q;
        (((((A[0] * r + A[1]) * r + A[2]) * r + A[3]) * r + A[4]) * r + A[5]) * q
            / (((((B[0] * r + B[1]) * r + B[2]) * r + B[3]) * r + B[4]) * r + 1.0)
    }
}

impl Model {
    fn new(opts: &SyntheticOptions) -> Model {
        let (g, k, b) = (opts.n_genes, opts.n_types, opts.n_batches);
        let mut rng = Xoshiro256PlusPlus::seed_from_u64(mix(opts.seed ^ 0x5e7));
        let base: Vec<f64> = (0..g).map(|_| (1.5 * normal(&mut rng)).exp()).collect();
        let mut programs = vec![0f64; k * g];
        for t in 0..k {
            let row = &mut programs[t * g..(t + 1) * g];
            for (j, p) in row.iter_mut().enumerate() {
                *p = base[j] * (0.3 * normal(&mut rng)).exp();
            }
            let n_markers = (g / 20).max(1);
            for _ in 0..n_markers {
                let j = rng.gen_range(0..g);
                row[j] *= 2f64.exp();
            }
            let sum: f64 = row.iter().sum();
            for p in row.iter_mut() {
                *p /= sum;
            }
        }
        let batch: Vec<f64> = (0..b * g)
            .map(|_| (0.15 * normal(&mut rng)).exp())
            .collect();
        let levels: Vec<f64> = (0..LEVELS)
            .map(|l| (0.4 * probit((l as f64 + 0.5) / LEVELS as f64)).exp())
            .collect();
        let r = opts.dispersion;
        let p_nonzero = |lib: f64| {
            let mut acc = 0.0;
            for t in 0..k {
                for bi in 0..b {
                    for &s in &levels {
                        for j in 0..g {
                            let m = lib * s * programs[t * g + j] * batch[bi * g + j];
                            acc += 1.0 - (r / (r + m)).powf(r);
                        }
                    }
                }
            }
            acc / (k * b * LEVELS * g) as f64
        };
        // Bisection on log library size for the target sparsity.
        let (mut lo, mut hi) = (0f64, 25f64);
        for _ in 0..30 {
            let mid = 0.5 * (lo + hi);
            if p_nonzero(mid.exp()) < opts.nonzero_fraction {
                lo = mid;
            } else {
                hi = mid;
            }
        }
        let lib = (0.5 * (lo + hi)).exp();
        let rows = k * b * LEVELS;
        let mut mean = vec![0f32; rows * g];
        let mut p0 = vec![0f32; rows * g];
        for t in 0..k {
            for bi in 0..b {
                for (l, &s) in levels.iter().enumerate() {
                    let row = (t * b + bi) * LEVELS + l;
                    for j in 0..g {
                        let m = lib * s * programs[t * g + j] * batch[bi * g + j];
                        mean[row * g + j] = m as f32;
                        p0[row * g + j] = (r / (r + m)).powf(r) as f32;
                    }
                }
            }
        }
        Model {
            n_genes: g,
            n_batches: b,
            r,
            mean,
            p0,
        }
    }

    /// Nonzero entries of one cell, appended to `idx`/`val`.
    fn cell(
        &self,
        rng: &mut impl Rng,
        t: usize,
        bi: usize,
        idx: &mut Vec<i32>,
        val: &mut Vec<f32>,
    ) {
        let g = self.n_genes;
        let l = rng.gen_range(0..LEVELS);
        let row = ((t * self.n_batches + bi) * LEVELS + l) * g;
        let (mean, p0) = (&self.mean[row..row + g], &self.p0[row..row + g]);
        for j in 0..g {
            let u: f32 = rng.r#gen();
            if u < p0[j] {
                continue;
            }
            let m = f64::from(mean[j]);
            let c = if m < 30.0 {
                // Inversion of the NB CDF from the zero term, conditioned on
                // u >= P(0).
                let q = m / (m + self.r);
                let mut p = f64::from(p0[j]);
                let mut cdf = p;
                let u = f64::from(u);
                let mut c = 0u32;
                while cdf < u && c < 10_000 {
                    c += 1;
                    p *= (f64::from(c) - 1.0 + self.r) / f64::from(c) * q;
                    cdf += p;
                }
                c.max(1)
            } else {
                // Gamma-Poisson with a normal approximation of the Poisson.
                let lambda = m * gamma(rng, self.r) / self.r;
                (lambda + lambda.sqrt() * normal(rng)).round().max(1.0) as u32
            };
            idx.push(j as i32);
            val.push(c as f32);
        }
    }
}

/// Gamma(shape, 1) by Marsaglia and Tsang.
fn gamma(rng: &mut impl Rng, shape: f64) -> f64 {
    if shape < 1.0 {
        let u: f64 = rng.r#gen::<f64>().max(1e-300);
        return gamma(rng, shape + 1.0) * u.powf(1.0 / shape);
    }
    let d = shape - 1.0 / 3.0;
    let c = 1.0 / (9.0 * d).sqrt();
    loop {
        let x = normal(rng);
        let v = (1.0 + c * x).powi(3);
        if v <= 0.0 {
            continue;
        }
        let u: f64 = rng.r#gen();
        if u.ln() < 0.5 * x * x + d - d * v + d * v.ln() {
            return d * v;
        }
    }
}

fn gene_name(naming: GeneNaming, j: usize) -> String {
    match naming {
        GeneNaming::Symbols => format!("GENE{:05}", j + 1),
        GeneNaming::Ensembl => format!("ENSG{:011}", 1000 + j),
        GeneNaming::EnsemblVersioned => format!("ENSG{:011}.{}", 1000 + j, 1 + j % 7),
    }
}

fn write_file(
    tmp: &Path,
    target: &Path,
    opts: &SyntheticOptions,
    model: &Model,
) -> Result<(), DataError> {
    let err = |what: &str, e: hdf5_pure::Error| DataError::Write {
        path: target.to_path_buf(),
        detail: format!("{what}: {e}"),
    };
    let n = opts.n_cells;
    let mut label_rng = Xoshiro256PlusPlus::seed_from_u64(mix(opts.seed ^ 0x1abe1));
    let types: Vec<i32> = (0..n)
        .map(|_| label_rng.gen_range(0..opts.n_types) as i32)
        .collect();
    let batches: Vec<i32> = (0..n)
        .map(|_| label_rng.gen_range(0..opts.n_batches) as i32)
        .collect();

    let mut b = FileBuilder::new();
    tag!(b, "anndata", "0.1.0");
    // obs
    let cell_names: Vec<String> = (0..n).map(|i| format!("cell_{i}")).collect();
    let refs: Vec<&str> = cell_names.iter().map(String::as_str).collect();
    let mut obs = b.create_group("obs");
    dataframe_attrs(&mut obs, &["cell_type", "batch"]);
    let idx = obs.create_dataset("_index").with_vlen_strings(&refs);
    tag!(idx, "string-array", "0.2.0");
    categorical(&mut obs, "cell_type", "type", opts.n_types, &types);
    categorical(&mut obs, "batch", "batch", opts.n_batches, &batches);
    b.add_group(obs.finish());
    drop(cell_names);
    // var
    let names: Vec<String> = (0..opts.n_genes)
        .map(|j| gene_name(opts.naming, j))
        .collect();
    let symbols: Vec<String> = (0..opts.n_genes)
        .map(|j| gene_name(GeneNaming::Symbols, j))
        .collect();
    let ids: Vec<String> = (0..opts.n_genes)
        .map(|j| gene_name(GeneNaming::Ensembl, j))
        .collect();
    let mut var = b.create_group("var");
    dataframe_attrs(&mut var, &["gene_symbol", "gene_id"]);
    for (name, values) in [
        ("_index", &names),
        ("gene_symbol", &symbols),
        ("gene_id", &ids),
    ] {
        let r: Vec<&str> = values.iter().map(String::as_str).collect();
        let d = var.create_dataset(name).with_vlen_strings(&r);
        tag!(d, "string-array", "0.2.0");
    }
    b.add_group(var.finish());
    // X: empty, growable CSR
    let mut x = b.create_group("X");
    tag!(x, "csr_matrix", "0.1.0");
    x.set_attr(
        "shape",
        AttrValue::I64Array(vec![n as i64, opts.n_genes as i64]),
    );
    // 128 KiB chunks: with larger chunks hdf5-pure 0.47 writes a chunk
    // index that libhdf5 (h5py) refuses to open ("stored chunk dimension
    // encoding length does not match").
    for (name, dtype, chunk) in [
        ("data", make_f32_type(), 1u64 << 15),
        ("indices", make_i32_type(), 1 << 15),
        ("indptr", make_i64_type(), 1 << 14),
    ] {
        x.create_dataset(name)
            .with_dtype(dtype)
            .with_shape(&[0])
            .with_maxshape(&[MaxExtent::Unlimited])
            .with_chunks(&[chunk]);
    }
    b.add_group(x.finish());
    for g in ["obsm", "varm", "obsp", "varp", "layers", "uns"] {
        let mut grp = b.create_group(g);
        tag!(grp, "dict", "0.1.0");
        b.add_group(grp.finish());
    }
    b.write(tmp).map_err(|e| err("cannot create the file", e))?;

    let f = File::open_rw(tmp).map_err(|e| err("cannot reopen the file", e))?;
    let mut data = f.dataset("X/data").map_err(|e| err("X/data", e))?;
    let mut indices = f.dataset("X/indices").map_err(|e| err("X/indices", e))?;
    let mut indptr = f.dataset("X/indptr").map_err(|e| err("X/indptr", e))?;
    indptr.append(&[0i64]).map_err(|e| err("X/indptr", e))?;
    let mut nnz = 0i64;
    let (mut idx, mut val, mut ptr) = (Vec::new(), Vec::new(), Vec::new());
    let block = opts.block_cells.max(1);
    let mut start = 0;
    while start < n {
        let end = (start + block).min(n);
        idx.clear();
        val.clear();
        ptr.clear();
        for c in start..end {
            let mut rng = cell_rng(opts.seed, 0x5717, c as u64);
            model.cell(
                &mut rng,
                types[c] as usize,
                batches[c] as usize,
                &mut idx,
                &mut val,
            );
            ptr.push(nnz + idx.len() as i64);
        }
        nnz += idx.len() as i64;
        data.append(&val).map_err(|e| err("X/data", e))?;
        indices.append(&idx).map_err(|e| err("X/indices", e))?;
        indptr.append(&ptr).map_err(|e| err("X/indptr", e))?;
        start = end;
    }
    drop((data, indices, indptr));
    f.commit().map_err(|e| err("cannot finish the file", e))?;
    Ok(())
}

fn dataframe_attrs(g: &mut hdf5_pure::GroupBuilder, columns: &[&str]) {
    tag!(g, "dataframe", "0.2.0");
    g.set_attr("_index", vstr("_index"));
    g.set_attr(
        "column-order",
        AttrValue::VarLenStringArray(columns.iter().map(|c| c.to_string()).collect()),
    );
}

fn categorical(
    parent: &mut hdf5_pure::GroupBuilder,
    name: &str,
    prefix: &str,
    n_categories: usize,
    codes: &[i32],
) {
    let mut g = parent.create_group(name);
    tag!(g, "categorical", "0.2.0");
    g.set_attr("ordered", AttrValue::U8(0));
    let cats: Vec<String> = (0..n_categories).map(|i| format!("{prefix}_{i}")).collect();
    let refs: Vec<&str> = cats.iter().map(String::as_str).collect();
    let c = g.create_dataset("categories").with_vlen_strings(&refs);
    tag!(c, "string-array", "0.2.0");
    let d = g.create_dataset("codes").with_i32_data(codes);
    tag!(d, "array", "0.2.0");
    parent.add_group(g.finish());
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn probit_is_accurate() {
        assert!(probit(0.5).abs() < 1e-9);
        assert!((probit(0.975) - 1.959964).abs() < 1e-5);
        assert!((probit(0.01) + 2.326348).abs() < 1e-5);
    }
}
