//! Writing `.h5ad` files: embeddings into `obsm` of a copy of an input file
//! ([`write_embeddings`]), and the encoding helpers the synthetic data
//! generator shares.
//!
//! Files are written the way anndata writes them (groups and datasets
//! tagged with `encoding-type`/`encoding-version` as variable-length string
//! attributes), so Python's anndata reads them. Every write goes to a
//! temporary file beside the target, renamed into place only when complete.
//!
//! Old-layout (pre-0.7) inputs store `obsm` as one compound dataset; it is
//! rewritten as a current-layout `obsm` group holding each of its fields as
//! its own array (values unchanged) plus the new key, which anndata reads
//! alongside the rest of the old layout.
//!
//! What this module is not: a general AnnData writer; it does not change
//! `X`, `obs`, `var` or anything else of the input.

use std::path::Path;

use hdf5_pure::{AttrValue, Datatype, DatatypeByteOrder, File};

use super::{DataError, H5ad};

/// A variable-length string attribute, as h5py writes `str` attributes.
pub(crate) fn vstr(s: &str) -> AttrValue {
    AttrValue::VarLenString(s.to_string())
}

/// Gives an object being built (a group or dataset builder of `hdf5-pure`)
/// anndata's `encoding-type` and `encoding-version` attributes.
macro_rules! tag {
    ($builder:expr, $kind:expr, $version:expr) => {
        $builder.set_attr("encoding-type", $crate::h5ad::write::vstr($kind));
        $builder.set_attr("encoding-version", $crate::h5ad::write::vstr($version));
    };
}
pub(crate) use tag;

fn write_err(path: &Path, what: &str, e: impl std::fmt::Display) -> DataError {
    DataError::Write {
        path: path.to_path_buf(),
        detail: format!("{what}: {e}"),
    }
}

/// Writes a copy of `input` to `output` with `embeddings` (row-major,
/// `n_obs × dim`, float32) added as `obsm/<key>`; an existing `obsm/<key>`
/// is replaced. The copy is written beside `output` and renamed into place.
/// `input` and `output` may not be the same file.
pub fn write_embeddings(
    input: &Path,
    output: &Path,
    key: &str,
    embeddings: &[f32],
    dim: usize,
) -> Result<(), DataError> {
    if key.is_empty() || key.contains('/') {
        return Err(DataError::setting(
            "key",
            format!("`{key}` is not a valid obsm key: it must be non-empty and contain no `/`"),
        ));
    }
    let src = H5ad::open(input)?;
    let n_obs = src.n_obs();
    if dim == 0 || embeddings.len() != n_obs * dim {
        return Err(DataError::setting(
            "embeddings",
            format!(
                "expected {n_obs} × {dim} = {} values (one row per cell of {}), got {}",
                n_obs * dim,
                input.display(),
                embeddings.len()
            ),
        ));
    }
    drop(src);
    if let (Ok(a), Ok(b)) = (input.canonicalize(), output.canonicalize())
        && a == b
    {
        return Err(DataError::setting(
            "output",
            format!(
                "{} is the input file; write the embeddings to a new file",
                output.display()
            ),
        ));
    }
    forge_core::atomic::write_file_with(
        output,
        |tmp| {
            std::fs::copy(input, tmp).map_err(|e| DataError::io(tmp, e))?;
            add_obsm(tmp, output, key, embeddings, n_obs, dim)
        },
        |p, e| DataError::io(p, e),
    )
}

fn add_obsm(
    tmp: &Path,
    output: &Path,
    key: &str,
    embeddings: &[f32],
    n_obs: usize,
    dim: usize,
) -> Result<(), DataError> {
    let f = File::open_rw(tmp).map_err(|e| write_err(output, "cannot open the copy", e))?;
    let root = f.root();
    let obsm_group = f.group("obsm").is_ok();
    let obsm_dataset = !obsm_group && f.dataset("obsm").is_ok();
    let edit = |e| write_err(output, "cannot add obsm", e);
    if obsm_dataset {
        let old = decode_compound_obsm(&f, output, n_obs)?;
        root.delete("obsm").map_err(edit)?;
        root.create_group_with("obsm", |g| {
            tag!(g, "dict", "0.1.0");
        })
        .map_err(edit)?;
        for field in old.into_iter().filter(|fl| fl.name != key) {
            let path = format!("obsm/{}", field.name);
            root.create_dataset(&path, |b| {
                match &field.values {
                    Values::F32(v) => b.with_f32_data(v),
                    Values::F64(v) => b.with_f64_data(v),
                };
                if field.width > 0 {
                    b.with_shape(&[n_obs as u64, field.width as u64]);
                }
                tag!(b, "array", "0.2.0");
            })
            .map_err(edit)?;
        }
    } else if obsm_group {
        if f.dataset(&format!("obsm/{key}")).is_ok() || f.group(&format!("obsm/{key}")).is_ok() {
            root.delete(&format!("obsm/{key}")).map_err(edit)?;
        }
    } else {
        root.create_group_with("obsm", |g| {
            tag!(g, "dict", "0.1.0");
        })
        .map_err(edit)?;
    }
    root.create_dataset(&format!("obsm/{key}"), |b| {
        b.with_f32_data(embeddings)
            .with_shape(&[n_obs as u64, dim as u64]);
        tag!(b, "array", "0.2.0");
    })
    .map_err(edit)?;
    f.commit()
        .map_err(|e| write_err(output, "cannot commit", e))?;
    Ok(())
}

enum Values {
    F32(Vec<f32>),
    F64(Vec<f64>),
}

struct Field {
    name: String,
    /// Columns (0 for a 1-D field).
    width: usize,
    values: Values,
}

/// Decodes an old-layout `obsm` compound dataset into one array per field
/// (float fields, scalar or fixed-size array members).
fn decode_compound_obsm(f: &File, output: &Path, n_obs: usize) -> Result<Vec<Field>, DataError> {
    let bad = |detail: String| write_err(output, "cannot convert the old-layout `obsm`", detail);
    let ds = f.dataset("obsm").map_err(|e| bad(e.to_string()))?;
    let Datatype::Compound { size, members } = ds.datatype().map_err(|e| bad(e.to_string()))?
    else {
        return Err(bad("`obsm` is a dataset but not a compound one".into()));
    };
    let raw = ds.read_raw().map_err(|e| bad(e.to_string()))?;
    let record = size as usize;
    if record == 0 || raw.len() != record * n_obs {
        return Err(bad(format!(
            "{} bytes for {n_obs} records of {record} bytes",
            raw.len()
        )));
    }
    let mut out = Vec::new();
    for m in members {
        let (base, width) = match &m.datatype {
            Datatype::Array {
                base_type,
                dimensions,
            } => (
                (**base_type).clone(),
                dimensions.iter().map(|&d| d as usize).product::<usize>(),
            ),
            other => (other.clone(), 0),
        };
        let Datatype::FloatingPoint {
            size: fsize,
            byte_order,
            ..
        } = base
        else {
            return Err(bad(format!(
                "field `{}` is not a float field; only float obsm fields are supported",
                m.name
            )));
        };
        let big = matches!(byte_order, DatatypeByteOrder::BigEndian);
        let per = width.max(1);
        let off = m.byte_offset as usize;
        if off + per * fsize as usize > record {
            return Err(bad(format!("field `{}` lies outside its record", m.name)));
        }
        // The field's `per` values of each record, as `size`-byte slices.
        let fields = |size: usize| {
            let raw = &raw;
            (0..n_obs).flat_map(move |r| {
                let start = r * record + off;
                raw[start..start + per * size].chunks_exact(size)
            })
        };
        let values = match fsize {
            4 => Values::F32(
                fields(4)
                    .map(|b| {
                        let b = b.try_into().unwrap_or([0; 4]);
                        if big {
                            f32::from_be_bytes(b)
                        } else {
                            f32::from_le_bytes(b)
                        }
                    })
                    .collect(),
            ),
            8 => Values::F64(
                fields(8)
                    .map(|b| {
                        let b = b.try_into().unwrap_or([0; 8]);
                        if big {
                            f64::from_be_bytes(b)
                        } else {
                            f64::from_le_bytes(b)
                        }
                    })
                    .collect(),
            ),
            s => return Err(bad(format!("field `{}` has {s}-byte floats", m.name))),
        };
        out.push(Field {
            name: m.name.clone(),
            width,
            values,
        });
    }
    Ok(out)
}
