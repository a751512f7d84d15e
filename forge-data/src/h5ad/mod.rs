//! Reading AnnData `.h5ad` files in pure Rust (no libhdf5), on top of the
//! `hdf5-pure` crate.
//!
//! [`H5ad::open`] reads a file's metadata: the shape, the cell (`obs`) and
//! gene (`var`) names, the obs/var columns and their types, the layout of
//! the expression matrix `X` (dense, CSR or CSC), whether a `raw` matrix
//! (with its own `var`) is present, and which AnnData on-disk layout the file
//! uses ([`AnnDataLayout`]): the current one (groups tagged with
//! `encoding-type`, anndata >= 0.7) or the old pre-0.7 one (obs/var as
//! compound datasets, categories in `uns/<column>_categories`, sparse
//! matrices tagged `h5sparse_format`, `raw.X`/`raw.var` at the root). Opening
//! validates that the parts agree (X is cells × genes, raw has as many cells
//! as X, sparse arrays are consistent) and refuses files with no cells.
//!
//! Expression is then read a block of cells at a time with
//! [`H5ad::cell_rows`], as a CSR
//! [`CellChunk`]. Only the rows asked for are read from disk (a row window of
//! a dense `X`, the `indptr`-delimited slice of a CSR matrix's `data` and
//! `indices`), so memory is bounded by the block, not the file. The file is
//! opened in `hdf5-pure`'s streaming mode: it is never loaded whole, and
//! read through positioned reads (`source`).
//!
//! Within a cell, gene indices are returned in file order, which AnnData does
//! not guarantee to be sorted; use [`CellChunk::sort_indices`] when order
//! matters.
//!
//! [`H5ad::summary`] computes what `forge inspect` prints (shape, layout,
//! columns, raw, value statistics of X and raw) in one streaming pass.
//!
//! [`write::write_embeddings`] writes a copy of a file with an added
//! `obsm` array; [`H5ad::obsm`] reads such an array back.
//!
//! What this module is not: a general AnnData writer; it does not read
//! `varm`/`obsp`/`layers`/`uns` (apart from the old layout's categories),
//! and does not normalise, filter or tokenise cells.

pub use forge_core::data_error as error;
mod frame;
mod hdf;
mod matrix;
mod source;
mod summary;
pub mod write;

#[cfg(test)]
mod tests;

use std::fmt;
use std::path::Path;

pub use error::{DataError, Result};
pub use summary::{MatrixSummary, Summary, ValueStats};

use frame::Frame;
use hdf::{Hdf, Kind};
use matrix::MatrixSource;

/// Which expression matrix to read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Matrix {
    /// `X`, the main matrix (often normalised or scaled).
    X,
    /// `raw.X`, the unprocessed matrix kept by scanpy, with its own genes.
    Raw,
}

impl fmt::Display for Matrix {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Matrix::X => "X",
            Matrix::Raw => "raw",
        })
    }
}

/// The AnnData on-disk layout of a file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AnnDataLayout {
    /// anndata >= 0.7: objects tagged with `encoding-type` attributes.
    Current,
    /// anndata < 0.7: obs/var as compound datasets, categories in `uns`,
    /// sparse matrices tagged `h5sparse_format`.
    Old,
}

impl fmt::Display for AnnDataLayout {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            AnnDataLayout::Current => "current AnnData layout (encoding-type attributes)",
            AnnDataLayout::Old => "old pre-0.7 AnnData layout (compound obs/var)",
        })
    }
}

/// How an expression matrix is stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MatrixLayout {
    /// A 2-D cells × genes array.
    Dense,
    /// Compressed sparse rows (one row per cell): cheap to read by cells.
    Csr,
    /// Compressed sparse columns (one column per gene): every block of cells
    /// costs a pass over the whole matrix.
    Csc,
}

impl fmt::Display for MatrixLayout {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            MatrixLayout::Dense => "dense",
            MatrixLayout::Csr => "CSR",
            MatrixLayout::Csc => "CSC",
        })
    }
}

/// Where and how an expression matrix is stored.
#[derive(Debug, Clone, PartialEq)]
pub struct MatrixInfo {
    /// The HDF5 object (`X`, `raw/X`, `raw.X`).
    pub object: String,
    /// Dense, CSR or CSC.
    pub layout: MatrixLayout,
    /// Number of cells.
    pub n_rows: usize,
    /// Number of genes.
    pub n_cols: usize,
    /// numpy-style element type as stored (`float32`, `int64`, ...); values
    /// are always delivered as `f32`.
    pub dtype: String,
    /// Stored entries: `nnz` for sparse matrices (explicit zeros included),
    /// `n_rows * n_cols` for dense ones.
    pub stored: u64,
}

/// The type of an obs/var column.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ColumnKind {
    /// Integer codes into a list of category labels.
    Categorical {
        /// Number of categories.
        n_categories: usize,
        /// Whether the categories are ordered.
        ordered: bool,
    },
    /// Free text.
    Str,
    /// Floating-point numbers (also anndata's nullable integers, missing as
    /// NaN).
    F64,
    /// Integers.
    I64,
    /// Booleans.
    Bool,
}

impl fmt::Display for ColumnKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ColumnKind::Categorical {
                n_categories,
                ordered,
            } => write!(
                f,
                "categorical, {n_categories} {}{}",
                if *n_categories == 1 {
                    "category"
                } else {
                    "categories"
                },
                if *ordered { ", ordered" } else { "" }
            ),
            ColumnKind::Str => f.write_str("string"),
            ColumnKind::F64 => f.write_str("float"),
            ColumnKind::I64 => f.write_str("integer"),
            ColumnKind::Bool => f.write_str("bool"),
        }
    }
}

/// A column's name and type.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ColumnInfo {
    /// Column name.
    pub name: String,
    /// Column type.
    pub kind: ColumnKind,
}

/// The values of an obs/var column.
#[derive(Debug, Clone, PartialEq)]
pub enum Column {
    /// Categorical values. A code is an index into `categories`, or -1 for a
    /// missing value.
    Categorical {
        /// One code per row.
        codes: Vec<i32>,
        /// Category labels.
        categories: Vec<String>,
    },
    /// Strings (anndata's nullable strings: missing as "").
    Str(Vec<String>),
    /// Floats (missing as NaN).
    F64(Vec<f64>),
    /// Integers.
    I64(Vec<i64>),
    /// Booleans.
    Bool(Vec<bool>),
}

impl Column {
    /// Number of rows.
    pub fn len(&self) -> usize {
        match self {
            Column::Categorical { codes, .. } => codes.len(),
            Column::Str(v) => v.len(),
            Column::F64(v) => v.len(),
            Column::I64(v) => v.len(),
            Column::Bool(v) => v.len(),
        }
    }

    /// Whether the column has no rows.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The label of row `i` of a categorical column (`None` when missing,
    /// out of range, or the column is not categorical).
    pub fn label(&self, i: usize) -> Option<&str> {
        match self {
            Column::Categorical { codes, categories } => {
                let code = usize::try_from(*codes.get(i)?).ok()?;
                categories.get(code).map(String::as_str)
            }
            _ => None,
        }
    }
}

/// A block of consecutive cells in CSR form.
///
/// Row `i` (cell `start + i`) holds the genes `indices[indptr[i]..indptr[i +
/// 1]]` with values `data[..]` at the same positions. Indices are in file
/// order: AnnData does not promise sorted indices within a row (see
/// [`CellChunk::sort_indices`]). A dense source is converted with its zeros
/// dropped; a sparse source keeps any explicitly stored zeros.
#[derive(Debug, Clone, PartialEq)]
pub struct CellChunk {
    /// Index of the first cell of the block in the file.
    pub start: usize,
    /// Number of genes (columns) of the matrix the block was read from.
    pub n_vars: usize,
    /// Row pointers, `n_cells + 1` of them, starting at 0.
    pub indptr: Vec<usize>,
    /// Gene indices, each `< n_vars`.
    pub indices: Vec<u32>,
    /// Values, as `f32`.
    pub data: Vec<f32>,
}

impl CellChunk {
    /// A block of zero cells starting at `start`.
    pub fn empty(start: usize, n_vars: usize) -> CellChunk {
        CellChunk {
            start,
            n_vars,
            indptr: vec![0],
            indices: Vec::new(),
            data: Vec::new(),
        }
    }

    /// Number of cells in the block.
    pub fn n_cells(&self) -> usize {
        self.indptr.len().saturating_sub(1)
    }

    /// Number of stored entries.
    pub fn nnz(&self) -> usize {
        self.data.len()
    }

    /// Gene indices and values of row `i` (0-based within the block).
    ///
    /// # Panics
    /// When `i >= self.n_cells()`.
    pub fn row(&self, i: usize) -> (&[u32], &[f32]) {
        let (lo, hi) = (self.indptr[i], self.indptr[i + 1]);
        (&self.indices[lo..hi], &self.data[lo..hi])
    }

    /// Whether every row's gene indices are strictly increasing.
    pub fn has_sorted_indices(&self) -> bool {
        (0..self.n_cells()).all(|i| self.row(i).0.windows(2).all(|w| w[0] < w[1]))
    }

    /// Sorts each row's entries by gene index (values follow their index).
    pub fn sort_indices(&mut self) {
        let mut pairs: Vec<(u32, f32)> = Vec::new();
        for i in 0..self.n_cells() {
            let (lo, hi) = (self.indptr[i], self.indptr[i + 1]);
            let idx = &self.indices[lo..hi];
            if idx.windows(2).all(|w| w[0] <= w[1]) {
                continue;
            }
            pairs.clear();
            pairs.extend(idx.iter().copied().zip(self.data[lo..hi].iter().copied()));
            pairs.sort_by_key(|p| p.0);
            for (k, (j, v)) in pairs.iter().enumerate() {
                self.indices[lo + k] = *j;
                self.data[lo + k] = *v;
            }
        }
    }

    /// The block as a row-major dense `n_cells × n_vars` array (duplicate
    /// indices, which AnnData does not produce, are summed).
    pub fn to_dense(&self) -> Vec<f32> {
        let mut out = vec![0f32; self.n_cells() * self.n_vars];
        for i in 0..self.n_cells() {
            let (idx, val) = self.row(i);
            for (&j, &v) in idx.iter().zip(val) {
                out[i * self.n_vars + j as usize] += v;
            }
        }
        out
    }

    /// Sum of each row's values.
    pub fn row_sums(&self) -> Vec<f64> {
        (0..self.n_cells())
            .map(|i| self.row(i).1.iter().map(|&v| f64::from(v)).sum())
            .collect()
    }
}

/// `raw`: a second matrix over the same cells with its own genes.
#[derive(Debug)]
struct RawPart {
    matrix: MatrixSource,
    var: Frame,
}

/// An open `.h5ad` file.
#[derive(Debug)]
pub struct H5ad {
    hdf: Hdf,
    layout: AnnDataLayout,
    obs: Frame,
    var: Frame,
    x: MatrixSource,
    raw: Option<RawPart>,
}

impl H5ad {
    /// Opens `path` and reads its metadata (names, column types, matrix
    /// layouts), validating that the parts of the file agree.
    pub fn open(path: impl AsRef<Path>) -> Result<H5ad> {
        let h = Hdf::open(path.as_ref())?;

        let root_attrs = h.attrs("", Kind::Group)?;
        if let Some(enc) = hdf::attr_str(&root_attrs, "encoding-type")
            && enc != "anndata"
        {
            return Err(h.unsupported("/", format!("`{enc}` at the root"), "`anndata`"));
        }
        let x_kind = h.kind("X")?.ok_or_else(|| DataError::NoX {
            path: h.path.clone(),
            found: h.members("").unwrap_or_default(),
        })?;
        let obs_kind = h
            .kind("obs")?
            .ok_or_else(|| h.corrupt("obs", "no `obs` (cell metadata and names) in the file"))?;
        let var_kind = h
            .kind("var")?
            .ok_or_else(|| h.corrupt("var", "no `var` (gene metadata and names) in the file"))?;
        let layout = if obs_kind == Kind::Dataset {
            AnnDataLayout::Old
        } else {
            AnnDataLayout::Current
        };

        let obs = Frame::open(&h, "obs", "obs", obs_kind)?;
        let var = Frame::open(&h, "var", "var", var_kind)?;
        let x = MatrixSource::open(&h, "X", x_kind)?;
        let (n_obs, n_vars) = (obs.index.len(), var.index.len());
        if (x.info.n_rows, x.info.n_cols) != (n_obs, n_vars) {
            return Err(h.shape_mismatch(
                "X",
                format!("{n_obs} × {n_vars} (cells in obs × genes in var)"),
                format!("{} × {}", x.info.n_rows, x.info.n_cols),
            ));
        }
        if n_obs == 0 {
            return Err(DataError::Empty {
                path: h.path.clone(),
                n_vars,
            });
        }

        let raw = open_raw(&h, n_obs)?;
        Ok(H5ad {
            hdf: h,
            layout,
            obs,
            var,
            x,
            raw,
        })
    }

    /// The file's path.
    pub fn path(&self) -> &Path {
        &self.hdf.path
    }

    /// Which AnnData on-disk layout the file uses.
    pub fn layout(&self) -> AnnDataLayout {
        self.layout
    }

    /// Number of cells.
    pub fn n_obs(&self) -> usize {
        self.obs.index.len()
    }

    /// Number of genes of `X` (or of `raw`).
    pub fn n_vars(&self, which: Matrix) -> Result<usize> {
        Ok(self.matrix(which)?.info.n_cols)
    }

    /// Whether the file has a `raw` matrix.
    pub fn has_raw(&self) -> bool {
        self.raw.is_some()
    }

    /// Layout, shape and element type of `X` or `raw`.
    pub fn matrix_info(&self, which: Matrix) -> Result<&MatrixInfo> {
        Ok(&self.matrix(which)?.info)
    }

    /// Cell names (the obs index), read from the file on the first call.
    pub fn obs_names(&self) -> Result<&[String]> {
        self.obs.index.names(&self.hdf)
    }

    /// Gene names of `X` (the var index) or of `raw` (its own var index),
    /// read from the file on the first call.
    pub fn var_names(&self, which: Matrix) -> Result<&[String]> {
        self.var_frame(which)?.index.names(&self.hdf)
    }

    /// obs columns and their types, in file order.
    pub fn obs_columns(&self) -> Vec<ColumnInfo> {
        self.obs.columns.iter().map(|c| c.info.clone()).collect()
    }

    /// var columns of `X` or `raw` and their types, in file order.
    pub fn var_columns(&self, which: Matrix) -> Result<Vec<ColumnInfo>> {
        Ok(self
            .var_frame(which)?
            .columns
            .iter()
            .map(|c| c.info.clone())
            .collect())
    }

    /// Reads an obs column; a missing key is an error listing the available
    /// columns (with a did-you-mean suggestion).
    pub fn obs_column(&self, name: &str) -> Result<Column> {
        self.obs.read(&self.hdf, name)
    }

    /// Reads a var column of `X` or `raw`.
    pub fn var_column(&self, which: Matrix, name: &str) -> Result<Column> {
        self.var_frame(which)?.read(&self.hdf, name)
    }

    /// Cells `[start, end)` of `X` or `raw`, as CSR. Reads only those rows
    /// (for CSC storage, one pass over all stored entries).
    pub fn cell_rows(&self, which: Matrix, start: usize, end: usize) -> Result<CellChunk> {
        self.matrix(which)?.rows(&self.hdf, start, end)
    }

    /// Value statistics of `X` or `raw` over every entry (zeros included),
    /// computed in one streaming pass.
    pub fn stats(&self, which: Matrix) -> Result<ValueStats> {
        self.matrix(which)?.stats(&self.hdf)
    }

    /// Everything `forge inspect` prints; streams over X and raw once.
    pub fn summary(&self) -> Result<Summary> {
        let x = MatrixSummary {
            info: self.x.info.clone(),
            stats: self.stats(Matrix::X)?,
        };
        let raw = match &self.raw {
            Some(r) => Some(MatrixSummary {
                info: r.matrix.info.clone(),
                stats: r.matrix.stats(&self.hdf)?,
            }),
            None => None,
        };
        Ok(Summary {
            path: self.hdf.path.clone(),
            layout: self.layout,
            n_obs: self.n_obs(),
            n_vars: self.x.info.n_cols,
            x,
            raw,
            obs_columns: self.obs_columns(),
            var_columns: self.var_columns(Matrix::X)?,
        })
    }

    /// Names of the arrays in `obsm` (members of the `obsm` group, or the
    /// fields of an old-layout compound `obsm`); empty when there is none.
    pub fn obsm_keys(&self) -> Result<Vec<String>> {
        match self.hdf.kind("obsm")? {
            Some(Kind::Group) => self.hdf.members("obsm"),
            Some(Kind::Dataset) => {
                let ds = self.hdf.dataset("obsm")?;
                match self.hdf.datatype("obsm", &ds)? {
                    hdf5_pure::Datatype::Compound { members, .. } => {
                        Ok(members.into_iter().map(|m| m.name).collect())
                    }
                    _ => Ok(Vec::new()),
                }
            }
            None => Ok(Vec::new()),
        }
    }

    /// Reads the 2-D array `obsm/<key>` (current layout) as row-major `f32`
    /// with its number of columns.
    pub fn obsm(&self, key: &str) -> Result<(Vec<f32>, usize)> {
        let path = format!("obsm/{key}");
        if self.hdf.kind(&path)? != Some(Kind::Dataset) {
            return Err(DataError::MissingKey {
                path: self.hdf.path.clone(),
                frame: "obsm".into(),
                name: key.to_string(),
                suggestion: None,
                available: self.obsm_keys().unwrap_or_default(),
            });
        }
        let ds = self.hdf.whole(&path)?;
        let shape = self.hdf.shape(&path, &ds)?;
        let (rows, cols) = match shape[..] {
            [r, c] => (r, c),
            [r] => (r, 1),
            _ => {
                return Err(self.hdf.shape_mismatch(
                    &path,
                    "a 1-D or 2-D array",
                    format!("{shape:?}"),
                ));
            }
        };
        if rows != self.n_obs() {
            return Err(self.hdf.shape_mismatch(
                &path,
                format!("{} rows (one per cell)", self.n_obs()),
                format!("{rows}"),
            ));
        }
        let v = ds.read_f32().map_err(|e| self.hdf.h5(&path, e))?;
        self.hdf.check_len(&path, v.len(), rows * cols)?;
        Ok((v, cols))
    }

    fn matrix(&self, which: Matrix) -> Result<&MatrixSource> {
        match which {
            Matrix::X => Ok(&self.x),
            Matrix::Raw => Ok(&self.raw_part()?.matrix),
        }
    }

    fn var_frame(&self, which: Matrix) -> Result<&Frame> {
        match which {
            Matrix::X => Ok(&self.var),
            Matrix::Raw => Ok(&self.raw_part()?.var),
        }
    }

    fn raw_part(&self) -> Result<&RawPart> {
        self.raw.as_ref().ok_or_else(|| DataError::OutOfRange {
            path: self.hdf.path.clone(),
            what: "the file has no `raw` matrix (neither `raw/X` nor `raw.X`)".into(),
        })
    }
}

/// Finds `raw` (current: group `raw` with `X` and `var`; old: `raw.X` and
/// `raw.var` at the root, or the group form) and validates it.
fn open_raw(h: &Hdf, n_obs: usize) -> Result<Option<RawPart>> {
    let candidates = [("raw/X", "raw/var"), ("raw.X", "raw.var")];
    for (x_path, var_path) in candidates {
        let Some(x_kind) = h.kind(x_path)? else {
            continue;
        };
        let var_kind = h.kind(var_path)?.ok_or_else(|| {
            h.corrupt(
                x_path,
                format!("raw matrix without its gene table `{var_path}`"),
            )
        })?;
        let var = Frame::open(h, var_path, var_path, var_kind)?;
        let matrix = MatrixSource::open(h, x_path, x_kind)?;
        if (matrix.info.n_rows, matrix.info.n_cols) != (n_obs, var.index.len()) {
            return Err(h.shape_mismatch(
                x_path,
                format!(
                    "{n_obs} × {} (cells in obs × genes in {var_path})",
                    var.index.len()
                ),
                format!("{} × {}", matrix.info.n_rows, matrix.info.n_cols),
            ));
        }
        return Ok(Some(RawPart { matrix, var }));
    }
    Ok(None)
}
