//! Reading windows of a CSR matrix's arrays straight from the file's bytes,
//! for the streaming loader's hot path.
//!
//! `hdf5-pure` reads a window of a 1-D dataset into a fresh buffer, chunk by
//! chunk, and looks the chunk index up again for each dataset handle. When a
//! dataset is stored without filters (no compression, what anndata and forge
//! write by default), in little-endian `float32`/`int32`/`int64` on a
//! little-endian machine, its elements are plain bytes at known file
//! offsets: contiguous storage is one run, chunked storage one run per chunk.
//! [`DirectCsr`] learns those offsets once (one pass over the chunk index
//! when the loader first reads the matrix) and then fills the caller's
//! buffers with positioned reads (`pread`), with no intermediate copy and no
//! allocation once the buffers have grown.
//!
//! Anything else (compressed chunks, other element types, unallocated
//! chunks, big-endian data) gets no [`DirectCsr`]; the caller reads it
//! through `hdf5-pure` as before. Values are the same either way: the bytes
//! are reinterpreted exactly as `hdf5-pure` would decode them.

use std::fs::File;
use std::os::unix::fs::FileExt;

use hdf5_pure::{Dataset, Datatype, DatatypeByteOrder, FixedPointLayout, FloatingPointLayout};

use super::error::{DataError, Result};
use super::hdf::{Hdf, join};

/// Where the elements of one unfiltered 1-D dataset lie in the file.
#[derive(Debug)]
enum Storage {
    /// One run starting at this file offset.
    Contiguous(u64),
    /// Chunk `i` holds elements `i * chunk .. (i + 1) * chunk` at
    /// `addresses[i]`.
    Chunked { chunk: u64, addresses: Vec<u64> },
}

/// A 1-D dataset readable by positioned reads.
#[derive(Debug)]
struct Spans {
    /// Bytes per element.
    elem: u64,
    /// Number of elements.
    len: u64,
    storage: Storage,
}

impl Spans {
    /// The layout of `ds`, when it is unfiltered, fully allocated, of
    /// `elem`-byte elements, and lies within the file's `file_len` bytes.
    fn locate(ds: &Dataset, elem: u64, file_len: u64) -> Option<Spans> {
        if !ds.filters().is_empty() {
            return None;
        }
        let shape = ds.shape().ok()?;
        let [len] = shape[..] else { return None };
        let bytes = len.checked_mul(elem)?;
        let storage = match ds.layout().ok()? {
            hdf5_pure::Layout::Contiguous {
                address: Some(a),
                size,
            } if size >= bytes && a.checked_add(bytes)? <= file_len => Storage::Contiguous(a),
            hdf5_pure::Layout::Chunked { chunk_shape, .. } => {
                let [chunk] = chunk_shape[..] else {
                    return None;
                };
                if chunk == 0 {
                    return None;
                }
                let n_chunks = len.div_ceil(chunk);
                let mut addresses = vec![u64::MAX; usize::try_from(n_chunks).ok()?];
                for c in ds.chunks().ok()? {
                    let first = *c.offset.first()?;
                    if first % chunk != 0 || c.storage_size != chunk * elem {
                        return None;
                    }
                    if c.address.checked_add(c.storage_size)? > file_len {
                        return None;
                    }
                    if let Some(slot) = addresses.get_mut((first / chunk) as usize) {
                        *slot = c.address;
                    }
                }
                // A chunk never written reads as the fill value: leave such
                // datasets to hdf5-pure.
                if addresses.contains(&u64::MAX) {
                    return None;
                }
                Storage::Chunked { chunk, addresses }
            }
            _ => return None,
        };
        Some(Spans { elem, len, storage })
    }

    /// Reads elements `start .. start + out.len() / elem` into `out`.
    fn read(&self, file: &File, start: u64, out: &mut [u8]) -> std::io::Result<()> {
        let n = out.len() as u64 / self.elem;
        if start + n > self.len {
            return Err(std::io::Error::new(
                std::io::ErrorKind::InvalidInput,
                format!("elements {start}..{} requested of {}", start + n, self.len),
            ));
        }
        match &self.storage {
            Storage::Contiguous(a) => file.read_exact_at(out, a + start * self.elem),
            Storage::Chunked { chunk, addresses } => {
                let mut at = start;
                let mut rest = out;
                while !rest.is_empty() {
                    let (ci, within) = (at / chunk, at % chunk);
                    let take = (chunk - within).min(rest.len() as u64 / self.elem);
                    let (now, later) = rest.split_at_mut((take * self.elem) as usize);
                    file.read_exact_at(now, addresses[ci as usize] + within * self.elem)?;
                    rest = later;
                    at += take;
                }
                Ok(())
            }
        }
    }
}

/// The integer width of a CSR `indptr`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum PtrWidth {
    I32,
    I64,
}

/// A CSR matrix whose `data` (`float32`), `indices` (`int32`) and `indptr`
/// (`int32` or `int64`), all little-endian, are read by positioned reads.
#[derive(Debug)]
pub(crate) struct DirectCsr {
    data: Spans,
    indices: Spans,
    indptr: Spans,
    ptr_width: PtrWidth,
}

impl DirectCsr {
    /// The direct reader of the CSR group `object`, or `None` when one of
    /// its arrays is not stored in a way this module reads (see the module
    /// documentation). It reads through `h`'s open file, the one hdf5-pure
    /// reads.
    pub(crate) fn open(h: &Hdf, object: &str) -> Option<DirectCsr> {
        if cfg!(target_endian = "big") {
            return None;
        }
        let file_len = h.len;
        let ds = |name: &str| h.file.dataset(&join(object, name)).ok();
        let (data_ds, indices_ds, indptr_ds) = (ds("data")?, ds("indices")?, ds("indptr")?);
        if !is_le_f32(&data_ds.datatype().ok()?) || le_int_width(&indices_ds.datatype().ok()?)? != 4
        {
            return None;
        }
        let ptr_width = match le_int_width(&indptr_ds.datatype().ok()?)? {
            4 => PtrWidth::I32,
            8 => PtrWidth::I64,
            _ => return None,
        };
        let ptr_elem = if ptr_width == PtrWidth::I32 { 4 } else { 8 };
        Some(DirectCsr {
            data: Spans::locate(&data_ds, 4, file_len)?,
            indices: Spans::locate(&indices_ds, 4, file_len)?,
            indptr: Spans::locate(&indptr_ds, ptr_elem, file_len)?,
            ptr_width,
        })
    }

    /// `indptr[start .. start + out.len()]` into `out`.
    pub(crate) fn read_indptr(&self, h: &Hdf, start: usize, out: &mut [i64]) -> Result<()> {
        let n = out.len();
        match self.ptr_width {
            PtrWidth::I64 => self.fill(&self.indptr, h, start, out),
            PtrWidth::I32 => {
                let mut narrow = vec![0i32; n];
                self.fill(&self.indptr, h, start, &mut narrow)?;
                for (o, v) in out.iter_mut().zip(narrow) {
                    *o = i64::from(v);
                }
                Ok(())
            }
        }
    }

    /// `data[start .. start + out.len()]` into `out`.
    pub(crate) fn read_data(&self, h: &Hdf, start: usize, out: &mut [f32]) -> Result<()> {
        self.fill(&self.data, h, start, out)
    }

    /// `indices[start .. start + out.len()]` into `out`, unchecked (as
    /// `u32`, a negative index is at least 2^31).
    pub(crate) fn read_indices(&self, h: &Hdf, start: usize, out: &mut [u32]) -> Result<()> {
        self.fill(&self.indices, h, start, out)
    }

    fn fill<T: bytemuck::Pod>(
        &self,
        spans: &Spans,
        h: &Hdf,
        start: usize,
        out: &mut [T],
    ) -> Result<()> {
        spans
            .read(&h.handle, start as u64, bytemuck::cast_slice_mut(out))
            .map_err(|e| DataError::io(&h.path, e))
    }
}

/// Whether `dt` is a little-endian IEEE `float32`.
pub(crate) fn is_le_f32(dt: &Datatype) -> bool {
    matches!(dt, Datatype::FloatingPoint { size: 4, byte_order: DatatypeByteOrder::LittleEndian, layout }
        if *layout == FloatingPointLayout::IEEE754_BINARY32)
}

/// The size of a little-endian, signed, full-width integer type.
pub(crate) fn le_int_width(dt: &Datatype) -> Option<u32> {
    match dt {
        Datatype::FixedPoint {
            size,
            byte_order: DatatypeByteOrder::LittleEndian,
            layout:
                FixedPointLayout {
                    signed: true,
                    bit_offset: 0,
                    bit_precision,
                },
        } if u32::from(*bit_precision) == size * 8 && matches!(size, 4 | 8) => Some(*size),
        _ => None,
    }
}
