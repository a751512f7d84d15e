//! Expression matrices (`X`, `raw/X`): detecting their layout and reading a
//! block of cells as a CSR [`CellChunk`].
//!
//! Layouts:
//! - dense: a 2-D dataset, read a row window at a time (only the rows asked
//!   for are read, for contiguous and chunked storage alike);
//! - CSR: a group with `data`, `indices`, `indptr`, tagged `encoding-type =
//!   "csr_matrix"` (current) or `h5sparse_format = "csr"` (old). A block of
//!   cells reads `indptr[start..=end]` and then only that slice of `data` and
//!   `indices`, so memory is bounded by the block, not the file;
//! - CSC: the same, column-major. Cells are columns' entries scattered over
//!   the whole file, so a block of cells costs one pass over all stored
//!   entries (read in bounded windows). Correct, but slow for big files:
//!   convert them to CSR for training.
//!
//! Values of any numeric element type are delivered as `f32`. This module
//! does not normalise or transform values.

use super::error::{DataError, Result};
use super::hdf::{Hdf, Kind, Scalar, attr_str, classify, join};
use super::{CellChunk, MatrixInfo, MatrixLayout, ValueStats};
use hdf5_pure::AttrValue;

/// Entries read per window when streaming through `data`/`indices`.
pub(crate) const WINDOW: usize = 1 << 20;

const SUPPORTED_MATRICES: &str = "a dense 2-D dataset (`array`), `csr_matrix`, `csc_matrix`, \
     or an old-layout group with `h5sparse_format` = `csr`/`csc`";

/// A located, validated matrix.
#[derive(Debug, Clone)]
pub(crate) struct MatrixSource {
    pub(crate) info: MatrixInfo,
}

impl MatrixSource {
    /// Locates and validates the matrix at `object`.
    pub(crate) fn open(h: &Hdf, object: &str, kind: Kind) -> Result<MatrixSource> {
        match kind {
            Kind::Dataset => open_dense(h, object),
            Kind::Group => open_sparse(h, object),
        }
    }

    fn object(&self) -> &str {
        &self.info.object
    }

    /// Cells `[start, end)` as CSR.
    pub(crate) fn rows(&self, h: &Hdf, start: usize, end: usize) -> Result<CellChunk> {
        let n_rows = self.info.n_rows;
        if start > end || end > n_rows {
            return Err(DataError::OutOfRange {
                path: h.path.clone(),
                what: format!(
                    "cells {start}..{end} of `{}` requested, but it has {n_rows} cells",
                    self.object()
                ),
            });
        }
        match self.info.layout {
            MatrixLayout::Dense => self.dense_rows(h, start, end),
            MatrixLayout::Csr => self.csr_rows(h, start, end),
            MatrixLayout::Csc => self.csc_rows(h, start, end),
        }
    }

    fn dense_rows(&self, h: &Hdf, start: usize, end: usize) -> Result<CellChunk> {
        let obj = self.object();
        let n_cols = self.info.n_cols;
        let ds = h.dataset(obj)?;
        let n = end - start;
        let values = ds
            .read_f32_rows(start as u64, n as u64)
            .map_err(|e| h.h5(obj, e))?;
        h.check_len(obj, values.len(), n * n_cols)?;
        let mut chunk = CellChunk::empty(start, n_cols);
        chunk.indptr.reserve(n);
        if n_cols > 0 {
            for row in values.chunks_exact(n_cols) {
                for (j, &v) in row.iter().enumerate() {
                    if v != 0.0 {
                        chunk.indices.push(j as u32);
                        chunk.data.push(v);
                    }
                }
                chunk.indptr.push(chunk.data.len());
            }
        } else {
            chunk.indptr.resize(n + 1, 0);
        }
        Ok(chunk)
    }

    fn csr_rows(&self, h: &Hdf, start: usize, end: usize) -> Result<CellChunk> {
        let obj = self.object();
        let n_cols = self.info.n_cols;
        let indptr_path = join(obj, "indptr");
        let ptr = read_i64_window(h, &indptr_path, start, end - start + 1)?;
        let mut indptr = Vec::with_capacity(ptr.len());
        let (lo, hi) = window_indptr(h, &indptr_path, &ptr, start, self.info.stored, &mut indptr)?;
        let data = read_f32_window(h, &join(obj, "data"), lo, hi - lo)?;
        let indices = read_indices(h, &join(obj, "indices"), lo, hi - lo, n_cols)?;
        Ok(CellChunk {
            start,
            n_vars: n_cols,
            indptr,
            indices,
            data,
        })
    }

    fn csc_rows(&self, h: &Hdf, start: usize, end: usize) -> Result<CellChunk> {
        let obj = self.object();
        let n_cols = self.info.n_cols;
        let n = end - start;
        let indptr_path = join(obj, "indptr");
        let ptr = read_i64_window(h, &indptr_path, 0, n_cols + 1)?;
        let ptr = ptr
            .into_iter()
            .map(|p| to_offset(h, &indptr_path, p, self.info.stored))
            .collect::<Result<Vec<_>>>()?;
        if ptr.windows(2).any(|w| w[1] < w[0]) {
            return Err(h.corrupt(
                &indptr_path,
                "indptr decreases; expected a non-decreasing array",
            ));
        }
        // (row within block, column, value), in column order.
        let mut entries: Vec<(u32, u32, f32)> = Vec::new();
        let first = ptr.first().copied().unwrap_or(0);
        let last = ptr.last().copied().unwrap_or(0);
        let mut col = 0usize;
        let mut pos = first;
        while pos < last {
            let len = WINDOW.min(last - pos);
            let rows = read_indices(h, &join(obj, "indices"), pos, len, self.info.n_rows)?;
            let data = read_f32_window(h, &join(obj, "data"), pos, len)?;
            for (k, (&r, &v)) in rows.iter().zip(&data).enumerate() {
                let p = pos + k;
                while col + 1 < ptr.len() && ptr[col + 1] <= p {
                    col += 1;
                }
                let r = r as usize;
                if (start..end).contains(&r) {
                    entries.push(((r - start) as u32, col as u32, v));
                }
            }
            pos += len;
        }
        // A stable sort by row keeps each row's columns ascending.
        entries.sort_by_key(|e| e.0);
        let indptr = (0..=n)
            .map(|r| entries.partition_point(|e| (e.0 as usize) < r))
            .collect();
        let indices = entries.iter().map(|e| e.1).collect();
        let data = entries.iter().map(|e| e.2).collect();
        Ok(CellChunk {
            start,
            n_vars: n_cols,
            indptr,
            indices,
            data,
        })
    }

    /// Statistics over every entry (implicit zeros of sparse storage
    /// included), in one streaming pass of bounded windows.
    pub(crate) fn stats(&self, h: &Hdf) -> Result<ValueStats> {
        let obj = self.object();
        let info = &self.info;
        let total = (info.n_rows as u64).saturating_mul(info.n_cols as u64);
        let mut acc = ValueStats::start(total);
        match info.layout {
            MatrixLayout::Dense => {
                let ds = h.dataset(obj)?;
                let rows_per = (WINDOW / info.n_cols.max(1)).max(1);
                let mut start = 0;
                while start < info.n_rows {
                    let n = rows_per.min(info.n_rows - start);
                    let v = ds
                        .read_f32_rows(start as u64, n as u64)
                        .map_err(|e| h.h5(obj, e))?;
                    h.check_len(obj, v.len(), n * info.n_cols)?;
                    acc.add(&v);
                    start += n;
                }
            }
            MatrixLayout::Csr | MatrixLayout::Csc => {
                let data = join(obj, "data");
                let stored = usize::try_from(info.stored)
                    .map_err(|_| h.corrupt(&data, "too many stored entries"))?;
                let mut pos = 0;
                while pos < stored {
                    let len = WINDOW.min(stored - pos);
                    acc.add(&read_f32_window(h, &data, pos, len)?);
                    pos += len;
                }
            }
        }
        Ok(acc.finish())
    }
}

fn open_dense(h: &Hdf, object: &str) -> Result<MatrixSource> {
    let ds = h.dataset(object)?;
    let attrs = ds.attrs().map_err(|e| h.h5(object, e))?;
    if let Some(enc) = attr_str(&attrs, "encoding-type")
        && enc != "array"
    {
        return Err(h.unsupported(object, format!("`{enc}`"), SUPPORTED_MATRICES));
    }
    let shape = h.shape(object, &ds)?;
    let [n_rows, n_cols] = shape[..] else {
        return Err(h.shape_mismatch(object, "a 2-D array (cells × genes)", format!("{shape:?}")));
    };
    let scalar = classify(&h.datatype(object, &ds)?);
    if !scalar.is_numeric() {
        return Err(h.unsupported(object, format!("element type {}", scalar.name()), "numbers"));
    }
    Ok(MatrixSource {
        info: MatrixInfo {
            object: object.to_string(),
            layout: MatrixLayout::Dense,
            n_rows,
            n_cols,
            dtype: scalar.name(),
            stored: (n_rows as u64).saturating_mul(n_cols as u64),
        },
    })
}

fn open_sparse(h: &Hdf, object: &str) -> Result<MatrixSource> {
    let attrs = h.attrs(object, Kind::Group)?;
    let (layout, shape_attr) = match (
        attr_str(&attrs, "encoding-type").as_deref(),
        attr_str(&attrs, "h5sparse_format").as_deref(),
    ) {
        (Some("csr_matrix"), _) => (MatrixLayout::Csr, "shape"),
        (Some("csc_matrix"), _) => (MatrixLayout::Csc, "shape"),
        (None, Some("csr")) => (MatrixLayout::Csr, "h5sparse_shape"),
        (None, Some("csc")) => (MatrixLayout::Csc, "h5sparse_shape"),
        (Some(other), _) => {
            return Err(h.unsupported(object, format!("`{other}`"), SUPPORTED_MATRICES));
        }
        (None, Some(other)) => {
            return Err(h.unsupported(
                object,
                format!("h5sparse_format `{other}`"),
                SUPPORTED_MATRICES,
            ));
        }
        (None, None) => {
            return Err(h.unsupported(
                object,
                "a group with neither `encoding-type` nor `h5sparse_format`",
                SUPPORTED_MATRICES,
            ));
        }
    };
    let shape = attrs
        .get(shape_attr)
        .and_then(AttrValue::to_i64s)
        .ok_or_else(|| {
            h.corrupt(
                object,
                format!("expected an integer attribute `{shape_attr}` holding (cells, genes)"),
            )
        })?;
    let [r, c] = shape[..] else {
        return Err(h.shape_mismatch(
            object,
            format!("a 2-element `{shape_attr}` attribute"),
            format!("{shape:?}"),
        ));
    };
    let (Ok(n_rows), Ok(n_cols)) = (usize::try_from(r), usize::try_from(c)) else {
        return Err(h.corrupt(object, format!("negative `{shape_attr}` {shape:?}")));
    };

    let mut lens = Vec::with_capacity(3);
    for name in ["data", "indices", "indptr"] {
        let path = join(object, name);
        if h.kind(&path)? != Some(Kind::Dataset) {
            return Err(h.corrupt(
                object,
                format!(
                    "sparse matrix without a `{name}` dataset (expected data, indices, indptr)"
                ),
            ));
        }
        let ds = h.dataset(&path)?;
        let scalar = classify(&h.datatype(&path, &ds)?);
        let ok = match name {
            "data" => scalar.is_numeric(),
            _ => matches!(scalar, Scalar::Int { .. }),
        };
        if !ok {
            return Err(h.unsupported(
                &path,
                format!("element type {}", scalar.name()),
                if name == "data" {
                    "numbers"
                } else {
                    "integers"
                },
            ));
        }
        lens.push((h.len_1d(&path, &ds)?, scalar));
    }
    let (n_data, data_type) = lens[0].clone();
    let n_indices = lens[1].0;
    let n_indptr = lens[2].0;
    if n_indices != n_data {
        return Err(h.shape_mismatch(
            &join(object, "indices"),
            format!("({n_data},) like `data`"),
            format!("({n_indices},)"),
        ));
    }
    let major = match layout {
        MatrixLayout::Csc => n_cols,
        _ => n_rows,
    };
    let indptr_path = join(object, "indptr");
    if n_indptr != major + 1 {
        return Err(h.shape_mismatch(
            &indptr_path,
            format!(
                "({},) = {} + 1",
                major + 1,
                if layout == MatrixLayout::Csc {
                    "genes"
                } else {
                    "cells"
                }
            ),
            format!("({n_indptr},)"),
        ));
    }
    let ends = read_i64_window(h, &indptr_path, 0, 1)?;
    let last = read_i64_window(h, &indptr_path, major, 1)?;
    if ends.first() != Some(&0) || last.first().copied() != i64::try_from(n_data).ok() {
        return Err(h.corrupt(
            &indptr_path,
            format!(
                "expected indptr to run from 0 to {n_data} (the length of `data`), found {:?} .. {:?}",
                ends.first(),
                last.first()
            ),
        ));
    }
    Ok(MatrixSource {
        info: MatrixInfo {
            object: object.to_string(),
            layout,
            n_rows,
            n_cols,
            dtype: data_type.name(),
            stored: n_data as u64,
        },
    })
}

/// An `indptr` value as an offset into `data`, checked against its length.
/// Checks the stored `indptr` window `ptr` of rows starting at `start`
/// (offsets within `stored` entries, never decreasing) and appends it to
/// `out` relative to its first offset. Returns the window's stored entry
/// range `(lo, hi)`.
fn window_indptr(
    h: &Hdf,
    indptr_path: &str,
    ptr: &[i64],
    start: usize,
    stored: u64,
    out: &mut Vec<usize>,
) -> Result<(usize, usize)> {
    let base = to_offset(h, indptr_path, ptr.first().copied().unwrap_or(0), stored)?;
    let mut prev = base;
    for (i, &p) in ptr.iter().enumerate() {
        let p = to_offset(h, indptr_path, p, stored)?;
        if p < prev {
            return Err(h.corrupt(
                indptr_path,
                format!(
                    "indptr decreases at row {} ({prev} then {p}); expected a non-decreasing array",
                    start + i
                ),
            ));
        }
        prev = p;
        out.push(p - base);
    }
    Ok((base, prev))
}

fn to_offset(h: &Hdf, object: &str, p: i64, stored: u64) -> Result<usize> {
    match u64::try_from(p) {
        Ok(u) if u <= stored => Ok(u as usize),
        _ => Err(h.corrupt(
            object,
            format!("indptr value {p} is outside 0..={stored} (the length of `data`)"),
        )),
    }
}

fn read_i64_window(h: &Hdf, path: &str, start: usize, len: usize) -> Result<Vec<i64>> {
    if len == 0 {
        return Ok(Vec::new());
    }
    let ds = h.dataset(path)?;
    let v = ds
        .read_i64_rows(start as u64, len as u64)
        .map_err(|e| h.h5(path, e))?;
    h.check_len(path, v.len(), len)?;
    Ok(v)
}

fn read_f32_window(h: &Hdf, path: &str, start: usize, len: usize) -> Result<Vec<f32>> {
    if len == 0 {
        return Ok(Vec::new());
    }
    let ds = h.dataset(path)?;
    let v = ds
        .read_f32_rows(start as u64, len as u64)
        .map_err(|e| h.h5(path, e))?;
    h.check_len(path, v.len(), len)?;
    Ok(v)
}

/// Reads `len` sparse indices from `start`, checking each is in `0..bound`.
fn read_indices(h: &Hdf, path: &str, start: usize, len: usize, bound: usize) -> Result<Vec<u32>> {
    let bad = |i: i64, k: usize| {
        h.corrupt(
            path,
            format!("index {i} at position {} is outside 0..{bound}", start + k),
        )
    };
    let raw = read_i64_window(h, path, start, len)?;
    let mut out = Vec::with_capacity(raw.len());
    for (k, i) in raw.into_iter().enumerate() {
        match usize::try_from(i) {
            Ok(u) if u < bound && u <= u32::MAX as usize => out.push(u as u32),
            _ => return Err(bad(i, k)),
        }
    }
    Ok(out)
}
