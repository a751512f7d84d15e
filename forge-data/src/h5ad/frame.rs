//! AnnData dataframes (`obs`, `var`, `raw/var`): their index (cell or gene
//! names) and their columns, in both on-disk layouts.
//!
//! - Current layout (anndata >= 0.7): a group tagged `encoding-type =
//!   "dataframe"`, with attribute `_index` naming the index dataset and
//!   `column-order` listing the columns; a column is a dataset (numbers,
//!   booleans, `string-array`) or a group (`categorical` with `codes` and
//!   `categories`; `nullable-integer`, `nullable-boolean`,
//!   `nullable-string-array` with `values` and `mask`). anndata 0.7 wrote
//!   categoricals as integer datasets whose `categories` attribute refers to
//!   `__categories/<column>`; those are read through that conventional path.
//! - Old layout (anndata < 0.7): one compound dataset, one field per column
//!   plus the index field `index`; a categorical column is an integer field
//!   whose categories are the string dataset `uns/<column>_categories`.
//!
//! Opening a frame reads the index's length and each column's type
//! (cheap); the index itself (a million cell barcodes in a large file) and
//! column values are read only when asked for. This module does not interpret
//! columns (no label encoding, no batch keys).

use std::sync::OnceLock;

use super::error::Result;
use super::hdf::{FieldValues, Hdf, Kind, Scalar, attr_str, classify, decode_field, join};
use super::{Column, ColumnInfo, ColumnKind};
use hdf5_pure::Datatype;

/// Encodings of a dataframe column this reader accepts (current layout).
const SUPPORTED_COLUMNS: &str = "numeric or boolean `array`, `string-array`, `categorical`, \
     `nullable-integer`, `nullable-boolean`, `nullable-string-array`";

/// Where a column's values live.
#[derive(Debug, Clone)]
enum Source {
    /// A dataset of numbers, booleans or strings.
    Dataset(String),
    /// Integer codes and a string dataset of categories.
    Categorical { codes: String, categories: String },
    /// anndata's nullable arrays: `values` plus a boolean `mask` (true =
    /// missing).
    Nullable {
        values: String,
        mask: String,
        kind: Nullable,
    },
    /// One field of an old-layout compound dataset, optionally with
    /// categories in `uns`.
    Field {
        dataset: String,
        field: String,
        categories: Option<String>,
    },
}

#[derive(Debug, Clone, Copy)]
enum Nullable {
    Integer,
    Boolean,
    String,
}

/// One column: what it is called, what type it has, where it lives.
#[derive(Debug, Clone)]
pub(crate) struct FrameColumn {
    pub(crate) info: ColumnInfo,
    source: Source,
}

/// A dataframe's index and column descriptions.
#[derive(Debug, Clone)]
pub(crate) struct Frame {
    /// How the frame is named in messages: `obs`, `var`, `raw/var`.
    pub(crate) label: String,
    /// Row names (cell barcodes or gene names).
    pub(crate) index: Index,
    /// Columns in file order.
    pub(crate) columns: Vec<FrameColumn>,
}

/// A dataframe's row names: counted when the frame is opened, read when
/// first asked for.
#[derive(Debug, Clone)]
pub(crate) struct Index {
    len: usize,
    source: IndexSource,
    names: OnceLock<Vec<String>>,
}

/// Where an index's names live.
#[derive(Debug, Clone)]
enum IndexSource {
    /// A string dataset (current layout).
    Dataset(String),
    /// A string field of a compound dataset (old layout).
    Field { dataset: String, field: String },
}

impl Index {
    /// An index of `len` rows whose names are at `source`, not read yet.
    fn new(len: usize, source: IndexSource) -> Index {
        Index {
            len,
            source,
            names: OnceLock::new(),
        }
    }

    /// Number of rows.
    pub(crate) fn len(&self) -> usize {
        self.len
    }

    /// The names, read from the file on the first call.
    pub(crate) fn names(&self, h: &Hdf) -> Result<&[String]> {
        if let Some(names) = self.names.get() {
            return Ok(names);
        }
        let names = match &self.source {
            IndexSource::Dataset(path) => h.read_strings(path, Some(self.len))?,
            IndexSource::Field { dataset, field } => {
                match read_field(h, dataset, field, self.len)? {
                    FieldValues::Str(v) => v,
                    _ => {
                        return Err(h.corrupt(
                            dataset,
                            format!("index field `{field}` is not a string field"),
                        ));
                    }
                }
            }
        };
        Ok(self.names.get_or_init(|| names))
    }
}

impl Frame {
    /// Reads the frame at `object` (a group in the current layout, a
    /// compound dataset in the old one).
    pub(crate) fn open(h: &Hdf, object: &str, label: &str, kind: Kind) -> Result<Frame> {
        match kind {
            Kind::Group => open_group(h, object, label),
            Kind::Dataset => open_compound(h, object, label),
        }
    }

    /// Column names in file order.
    pub(crate) fn names(&self) -> Vec<String> {
        self.columns.iter().map(|c| c.info.name.clone()).collect()
    }

    /// Reads one column's values.
    pub(crate) fn read(&self, h: &Hdf, name: &str) -> Result<Column> {
        let Some(col) = self.columns.iter().find(|c| c.info.name == name) else {
            let available = self.names();
            return Err(super::DataError::MissingKey {
                path: h.path.clone(),
                frame: self.label.clone(),
                name: name.to_string(),
                suggestion: forge_core::suggest::closest(
                    name,
                    available.iter().map(String::as_str),
                )
                .map(str::to_owned),
                available,
            });
        };
        let n = self.index.len();
        let column = match &col.source {
            Source::Dataset(path) => read_plain(h, path, n)?,
            Source::Categorical { codes, categories } => {
                let codes = read_codes(h, codes, n)?;
                let categories = read_labels(h, categories)?;
                check_codes(h, &col_object(&col.source), &codes, categories.len())?;
                Column::Categorical { codes, categories }
            }
            Source::Nullable { values, mask, kind } => read_nullable(h, values, mask, *kind, n)?,
            Source::Field {
                dataset,
                field,
                categories,
            } => {
                let values = read_field(h, dataset, field, n)?;
                match (values, categories) {
                    (FieldValues::I64(codes), Some(cat_path)) => {
                        let categories = read_labels(h, cat_path)?;
                        let codes = codes
                            .into_iter()
                            .map(|c| i32::try_from(c).unwrap_or(i32::MIN))
                            .collect::<Vec<_>>();
                        check_codes(
                            h,
                            &format!("{dataset} (field `{field}`)"),
                            &codes,
                            categories.len(),
                        )?;
                        Column::Categorical { codes, categories }
                    }
                    (FieldValues::I64(v), None) => Column::I64(v),
                    (FieldValues::F64(v), _) => Column::F64(v),
                    (FieldValues::Bool(v), _) => Column::Bool(v),
                    (FieldValues::Str(v), _) => Column::Str(v),
                }
            }
        };
        if column.len() != n {
            return Err(h.shape_mismatch(
                &col_object(&col.source),
                format!("{n} values (one per row of {})", self.label),
                format!("{}", column.len()),
            ));
        }
        Ok(column)
    }
}

fn col_object(source: &Source) -> String {
    match source {
        Source::Dataset(p) => p.clone(),
        Source::Categorical { codes, .. } => codes.clone(),
        Source::Nullable { values, .. } => values.clone(),
        Source::Field { dataset, field, .. } => format!("{dataset} (field `{field}`)"),
    }
}

fn open_group(h: &Hdf, object: &str, label: &str) -> Result<Frame> {
    let attrs = h.attrs(object, Kind::Group)?;
    if let Some(enc) = attr_str(&attrs, "encoding-type")
        && enc != "dataframe"
    {
        return Err(h.unsupported(object, format!("`{enc}`"), "`dataframe`"));
    }
    let index_name = attr_str(&attrs, "_index").ok_or_else(|| {
        h.corrupt(
            object,
            "expected a string attribute `_index` naming the index dataset",
        )
    })?;
    let index_path = join(object, &index_name);
    let (_, n) = h.string_dataset(&index_path)?;
    let index = Index::new(n, IndexSource::Dataset(index_path));

    let members = h.members(object)?;
    let order: Vec<String> = match attrs.get("column-order") {
        // An empty `column-order` is written as an empty float array.
        Some(v) => v.as_strings().map(<[String]>::to_vec).unwrap_or_default(),
        None => members
            .iter()
            .filter(|m| **m != index_name && *m != "__categories")
            .cloned()
            .collect(),
    };

    let mut columns = Vec::with_capacity(order.len());
    for name in order {
        let path = join(object, &name);
        let kind = h.kind(&path)?.ok_or_else(|| {
            h.corrupt(
                object,
                format!("`column-order` lists `{name}` but there is no such member"),
            )
        })?;
        let column = match kind {
            Kind::Group => group_column(h, &path, &name)?,
            Kind::Dataset => dataset_column(h, object, &path, &name, n)?,
        };
        columns.push(column);
    }
    Ok(Frame {
        label: label.to_string(),
        index,
        columns,
    })
}

fn group_column(h: &Hdf, path: &str, name: &str) -> Result<FrameColumn> {
    let attrs = h.attrs(path, Kind::Group)?;
    let enc = attr_str(&attrs, "encoding-type").unwrap_or_default();
    let (kind, source) = match enc.as_str() {
        "categorical" => {
            let codes = join(path, "codes");
            let categories = join(path, "categories");
            let ds = h.dataset(&categories)?;
            let n_categories = h.len_1d(&categories, &ds)?;
            let ordered = attrs
                .get("ordered")
                .and_then(hdf5_pure::AttrValue::as_i64)
                .is_some_and(|v| v != 0);
            (
                ColumnKind::Categorical {
                    n_categories,
                    ordered,
                },
                Source::Categorical { codes, categories },
            )
        }
        "nullable-integer" | "nullable-boolean" | "nullable-string-array" => {
            let (kind, nk) = match enc.as_str() {
                "nullable-integer" => (ColumnKind::F64, Nullable::Integer),
                "nullable-boolean" => (
                    ColumnKind::Categorical {
                        n_categories: 2,
                        ordered: false,
                    },
                    Nullable::Boolean,
                ),
                _ => (ColumnKind::Str, Nullable::String),
            };
            (
                kind,
                Source::Nullable {
                    values: join(path, "values"),
                    mask: join(path, "mask"),
                    kind: nk,
                },
            )
        }
        "" => {
            return Err(h.unsupported(path, "a group without `encoding-type`", SUPPORTED_COLUMNS));
        }
        other => return Err(h.unsupported(path, format!("`{other}`"), SUPPORTED_COLUMNS)),
    };
    Ok(FrameColumn {
        info: ColumnInfo {
            name: name.to_string(),
            kind,
        },
        source,
    })
}

fn dataset_column(h: &Hdf, frame: &str, path: &str, name: &str, n: usize) -> Result<FrameColumn> {
    let ds = h.dataset(path)?;
    let attrs = ds.attrs().map_err(|e| h.h5(path, e))?;
    if let Some(enc) = attr_str(&attrs, "encoding-type")
        && enc != "array"
        && enc != "string-array"
    {
        return Err(h.unsupported(path, format!("`{enc}`"), SUPPORTED_COLUMNS));
    }
    let len = h.len_1d(path, &ds)?;
    if len != n {
        return Err(h.shape_mismatch(
            path,
            format!("({n},) to match the index"),
            format!("({len},)"),
        ));
    }
    let scalar = classify(&h.datatype(path, &ds)?);
    // anndata 0.7: integer codes whose `categories` attribute is an object
    // reference to `__categories/<name>`.
    let attr_types = ds.attr_datatypes().map_err(|e| h.h5(path, e))?;
    if let Some(Datatype::Reference { .. }) = attr_types.get("categories") {
        let categories = join(&join(frame, "__categories"), name);
        if !matches!(scalar, Scalar::Int { .. }) || h.kind(&categories)? != Some(Kind::Dataset) {
            return Err(h.unsupported(
                path,
                "anndata 0.7 categorical without `__categories` dataset",
                SUPPORTED_COLUMNS,
            ));
        }
        let cds = h.dataset(&categories)?;
        let n_categories = h.len_1d(&categories, &cds)?;
        return Ok(FrameColumn {
            info: ColumnInfo {
                name: name.to_string(),
                kind: ColumnKind::Categorical {
                    n_categories,
                    ordered: false,
                },
            },
            source: Source::Categorical {
                codes: path.to_string(),
                categories,
            },
        });
    }
    let kind = scalar_kind(h, path, &scalar)?;
    Ok(FrameColumn {
        info: ColumnInfo {
            name: name.to_string(),
            kind,
        },
        source: Source::Dataset(path.to_string()),
    })
}

fn scalar_kind(h: &Hdf, object: &str, scalar: &Scalar) -> Result<ColumnKind> {
    Ok(match scalar {
        Scalar::Float(_) => ColumnKind::F64,
        Scalar::Int { .. } => ColumnKind::I64,
        Scalar::Bool => ColumnKind::Bool,
        Scalar::Str => ColumnKind::Str,
        Scalar::Other(t) => {
            return Err(h.unsupported(
                object,
                format!("element type {t}"),
                "numbers, booleans and strings",
            ));
        }
    })
}

fn open_compound(h: &Hdf, object: &str, label: &str) -> Result<Frame> {
    let ds = h.dataset(object)?;
    let n = h.len_1d(object, &ds)?;
    let Datatype::Compound { members, .. } = h.datatype(object, &ds)? else {
        return Err(h.unsupported(
            object,
            "a non-compound dataset",
            "a dataframe group (current layout) or a compound dataset (old layout)",
        ));
    };
    let index_field = ["index", "_index"]
        .into_iter()
        .find(|f| members.iter().any(|m| m.name == *f))
        .or_else(|| {
            members
                .iter()
                .find(|m| classify(&m.datatype) == Scalar::Str)
                .map(|m| m.name.as_str())
        })
        .ok_or_else(|| {
            h.corrupt(
                object,
                "expected a string field `index` holding the row names",
            )
        })?
        .to_string();
    let index_type = members.iter().find(|m| m.name == index_field);
    if index_type.is_none_or(|m| classify(&m.datatype) != Scalar::Str) {
        return Err(h.corrupt(
            object,
            format!("index field `{index_field}` is not a string field"),
        ));
    }
    let index = Index::new(
        n,
        IndexSource::Field {
            dataset: object.to_string(),
            field: index_field.clone(),
        },
    );
    let mut columns = Vec::new();
    for m in members.iter().filter(|m| m.name != index_field) {
        let field_obj = format!("{object} (field `{}`)", m.name);
        let scalar = classify(&m.datatype);
        let mut kind = scalar_kind(h, &field_obj, &scalar)?;
        let mut categories = None;
        if matches!(scalar, Scalar::Int { .. }) {
            let cat_path = format!("uns/{}_categories", m.name);
            if h.kind(&cat_path)? == Some(Kind::Dataset) {
                let cds = h.dataset(&cat_path)?;
                kind = ColumnKind::Categorical {
                    n_categories: h.len_1d(&cat_path, &cds)?,
                    ordered: false,
                };
                categories = Some(cat_path);
            }
        }
        columns.push(FrameColumn {
            info: ColumnInfo {
                name: m.name.clone(),
                kind,
            },
            source: Source::Field {
                dataset: object.to_string(),
                field: m.name.clone(),
                categories,
            },
        });
    }
    Ok(Frame {
        label: label.to_string(),
        index,
        columns,
    })
}

/// Reads one field of the compound dataset `object`.
fn read_field(h: &Hdf, object: &str, field: &str, n: usize) -> Result<FieldValues> {
    let ds = h.whole(object)?;
    let Datatype::Compound { size, members } = h.datatype(object, &ds)? else {
        return Err(h.corrupt(object, "expected a compound dataset"));
    };
    let member = members
        .iter()
        .find(|m| m.name == field)
        .ok_or_else(|| h.corrupt(object, format!("no field `{field}`")))?;
    let raw = ds.read_raw().map_err(|e| h.h5(object, e))?;
    let record = usize::try_from(size).map_err(|_| h.corrupt(object, "record size overflow"))?;
    let values = decode_field(&raw, record, member).map_err(|e| h.corrupt(object, e))?;
    let got = match &values {
        FieldValues::F64(v) => v.len(),
        FieldValues::I64(v) => v.len(),
        FieldValues::Bool(v) => v.len(),
        FieldValues::Str(v) => v.len(),
    };
    h.check_len(object, got, n)?;
    Ok(values)
}

/// Reads category labels: strings as they are, numbers and booleans
/// spelled the way pandas prints them (`3`, `0.5`, `1.0`, `True`), since
/// anndata stores the categories of a numeric categorical as numbers.
fn read_labels(h: &Hdf, path: &str) -> Result<Vec<String>> {
    let ds = h.whole(path)?;
    let n = h.len_1d(path, &ds)?;
    let labels: Vec<String> = match classify(&h.datatype(path, &ds)?) {
        Scalar::Str => return h.read_strings(path, None),
        Scalar::Int { .. } => ds
            .read_i64()
            .map_err(|e| h.h5(path, e))?
            .into_iter()
            .map(|v| v.to_string())
            .collect(),
        Scalar::Float(_) => ds
            .read_f64()
            .map_err(|e| h.h5(path, e))?
            .into_iter()
            .map(python_float)
            .collect(),
        Scalar::Bool => read_bools(h, path)?
            .into_iter()
            .map(|b| if b { "True" } else { "False" }.to_string())
            .collect(),
        Scalar::Other(t) => {
            return Err(h.unsupported(
                path,
                format!("categories of element type {t}"),
                "string, integer, float or boolean categories",
            ));
        }
    };
    h.check_len(path, labels.len(), n)?;
    Ok(labels)
}

/// Formats a float like Python's `str(float)`: shortest round-trip digits,
/// with `.0` on whole numbers.
fn python_float(x: f64) -> String {
    if x.is_nan() {
        "nan".into()
    } else if x.is_infinite() {
        if x > 0.0 { "inf" } else { "-inf" }.into()
    } else if x.fract() == 0.0 && x.abs() < 1e16 {
        format!("{x:.1}")
    } else {
        format!("{x}")
    }
}

/// Reads a plain column dataset.
fn read_plain(h: &Hdf, path: &str, n: usize) -> Result<Column> {
    let ds = h.whole(path)?;
    let scalar = classify(&h.datatype(path, &ds)?);
    let column = match scalar {
        Scalar::Float(_) => Column::F64(ds.read_f64().map_err(|e| h.h5(path, e))?),
        Scalar::Int { .. } => Column::I64(ds.read_i64().map_err(|e| h.h5(path, e))?),
        Scalar::Bool => Column::Bool(read_bools(h, path)?),
        Scalar::Str => Column::Str(h.read_strings(path, Some(n))?),
        Scalar::Other(t) => {
            return Err(h.unsupported(
                path,
                format!("element type {t}"),
                "numbers, booleans and strings",
            ));
        }
    };
    h.check_len(path, column.len(), n)?;
    Ok(column)
}

fn read_bools(h: &Hdf, path: &str) -> Result<Vec<bool>> {
    let ds = h.whole(path)?;
    Ok(ds
        .read_i64()
        .map_err(|e| h.h5(path, e))?
        .into_iter()
        .map(|v| v != 0)
        .collect())
}

fn read_codes(h: &Hdf, path: &str, n: usize) -> Result<Vec<i32>> {
    let ds = h.whole(path)?;
    match classify(&h.datatype(path, &ds)?) {
        Scalar::Int { .. } => {}
        other => {
            return Err(h.unsupported(
                path,
                format!("categorical codes of type {}", other.name()),
                "integer codes",
            ));
        }
    }
    let codes = ds.read_i64().map_err(|e| h.h5(path, e))?;
    h.check_len(path, codes.len(), n)?;
    Ok(codes
        .into_iter()
        .map(|c| i32::try_from(c).unwrap_or(i32::MIN))
        .collect())
}

/// Every code is -1 (missing) or a valid category index.
fn check_codes(h: &Hdf, object: &str, codes: &[i32], n_categories: usize) -> Result<()> {
    if let Some(bad) = codes
        .iter()
        .find(|&&c| c < -1 || (c >= 0 && c as usize >= n_categories))
    {
        return Err(h.corrupt(
            object,
            format!(
                "categorical code {bad} is out of range: expected -1 (missing) or 0..{n_categories}"
            ),
        ));
    }
    Ok(())
}

fn read_nullable(h: &Hdf, values: &str, mask: &str, kind: Nullable, n: usize) -> Result<Column> {
    let mask_values = read_bools(h, mask)?;
    h.check_len(mask, mask_values.len(), n)?;
    Ok(match kind {
        Nullable::Integer => {
            let ds = h.whole(values)?;
            let v = ds.read_f64().map_err(|e| h.h5(values, e))?;
            h.check_len(values, v.len(), n)?;
            Column::F64(
                v.into_iter()
                    .zip(&mask_values)
                    .map(|(x, &m)| if m { f64::NAN } else { x })
                    .collect(),
            )
        }
        Nullable::Boolean => {
            let v = read_bools(h, values)?;
            h.check_len(values, v.len(), n)?;
            Column::Categorical {
                codes: v
                    .into_iter()
                    .zip(&mask_values)
                    .map(|(x, &m)| if m { -1 } else { i32::from(x) })
                    .collect(),
                categories: vec!["False".to_string(), "True".to_string()],
            }
        }
        Nullable::String => {
            let v = h.read_strings(values, Some(n))?;
            Column::Str(
                v.into_iter()
                    .zip(&mask_values)
                    .map(|(x, &m)| if m { String::new() } else { x })
                    .collect(),
            )
        }
    })
}
