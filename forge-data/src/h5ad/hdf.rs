//! A thin layer over `hdf5-pure` that turns every library error into a
//! [`DataError`] naming the file and the object, classifies HDF5 datatypes
//! into the few kinds AnnData uses, and decodes compound records (the old
//! pre-0.7 AnnData layout stores obs/var as compound datasets).
//!
//! It knows nothing about AnnData itself beyond those datatype kinds; the
//! layout rules live in the sibling modules.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use hdf5_pure::{
    AttrValue, CharacterSet, CompoundMember, Dataset, Datatype, DatatypeByteOrder,
    FileAccessProperties, FormatError, Group, MetadataCacheConfig, StringPadding,
};

use super::error::{DataError, Result};

/// What a path in the file names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    /// An HDF5 group.
    Group,
    /// An HDF5 dataset.
    Dataset,
}

/// The AnnData-relevant kind of an HDF5 element type.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Scalar {
    /// IEEE float of the given byte width.
    Float(u32),
    /// Integer of the given byte width and signedness.
    Int { size: u32, signed: bool },
    /// h5py's boolean: an enumeration `{FALSE = 0, TRUE = 1}`.
    Bool,
    /// Fixed- or variable-length string.
    Str,
    /// Anything else, described for error messages.
    Other(String),
}

impl Scalar {
    /// numpy-style name of the type, for summaries.
    pub(crate) fn name(&self) -> String {
        match self {
            Scalar::Float(s) => format!("float{}", s * 8),
            Scalar::Int { size, signed: true } => format!("int{}", size * 8),
            Scalar::Int {
                size,
                signed: false,
            } => format!("uint{}", size * 8),
            Scalar::Bool => "bool".to_string(),
            Scalar::Str => "string".to_string(),
            Scalar::Other(s) => s.clone(),
        }
    }

    /// Whether the values are numbers (a bool counts: 0/1).
    pub(crate) fn is_numeric(&self) -> bool {
        matches!(self, Scalar::Float(_) | Scalar::Int { .. } | Scalar::Bool)
    }
}

/// Classifies an HDF5 datatype.
pub(crate) fn classify(dt: &Datatype) -> Scalar {
    match dt {
        Datatype::FloatingPoint { size, .. } if *size == 4 || *size == 8 => Scalar::Float(*size),
        Datatype::FloatingPoint { size, .. } => Scalar::Other(format!("{size}-byte float")),
        Datatype::FixedPoint { size, layout, .. } if matches!(size, 1 | 2 | 4 | 8) => Scalar::Int {
            size: *size,
            signed: layout.signed,
        },
        Datatype::FixedPoint { size, .. } => Scalar::Other(format!("{size}-byte integer")),
        Datatype::Enumeration { .. } if is_bool_enum(dt) => Scalar::Bool,
        Datatype::Enumeration { members, .. } => Scalar::Other(format!(
            "enumeration {{{}}}",
            members
                .iter()
                .map(|m| m.name.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        )),
        Datatype::String { .. } => Scalar::Str,
        Datatype::VariableLength {
            is_string: true, ..
        } => Scalar::Str,
        Datatype::VariableLength { .. } => Scalar::Other("variable-length sequence".into()),
        Datatype::Compound { members, .. } => Scalar::Other(format!(
            "compound with fields {}",
            members
                .iter()
                .map(|m| m.name.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        )),
        Datatype::Array { .. } => Scalar::Other("array type".into()),
        Datatype::Reference { .. } => Scalar::Other("object reference".into()),
        Datatype::Opaque { .. } => Scalar::Other("opaque".into()),
        Datatype::BitField { .. } => Scalar::Other("bit field".into()),
        Datatype::Time { .. } => Scalar::Other("time".into()),
        _ => Scalar::Other("an unknown datatype".into()),
    }
}

/// h5py stores `numpy.bool_` as an enumeration over an integer base with the
/// members `FALSE` and `TRUE`.
fn is_bool_enum(dt: &Datatype) -> bool {
    match dt {
        Datatype::Enumeration {
            base_type, members, ..
        } => {
            matches!(**base_type, Datatype::FixedPoint { .. })
                && members.len() == 2
                && members.iter().any(|m| m.name.eq_ignore_ascii_case("true"))
                && members.iter().any(|m| m.name.eq_ignore_ascii_case("false"))
        }
        _ => false,
    }
}

/// An open HDF5 file plus its path, for error messages.
pub(crate) struct Hdf {
    pub(crate) file: hdf5_pure::File,
    pub(crate) path: PathBuf,
    /// Size of the file in bytes.
    pub(crate) len: u64,
}

impl std::fmt::Debug for Hdf {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Hdf").field("path", &self.path).finish()
    }
}

impl Hdf {
    /// Opens `path` for streaming reads (metadata and data are fetched on
    /// demand through positioned reads, [`super::source`]; the file is never
    /// buffered whole).
    pub(crate) fn open(path: &Path) -> Result<Self> {
        let io = |source| DataError::Io {
            path: path.to_path_buf(),
            source,
        };
        // One open file serves the checks below and hdf5-pure, so both see
        // the same file even if the path is replaced.
        let handle = std::fs::File::open(path).map_err(io)?;
        let meta = handle.metadata().map_err(io)?;
        if meta.is_dir() {
            return Err(DataError::NotHdf5 {
                path: path.to_path_buf(),
                detail: "it is a directory".into(),
            });
        }
        if meta.len() == 0 {
            return Err(DataError::NotHdf5 {
                path: path.to_path_buf(),
                detail: "the file is empty (0 bytes)".into(),
            });
        }
        match hdf5_pure::is_hdf5(path) {
            Ok(true) => {}
            Ok(false) => {
                return Err(DataError::NotHdf5 {
                    path: path.to_path_buf(),
                    detail: "no HDF5 signature at any permitted offset".into(),
                });
            }
            Err(e) => return Err(io(e)),
        }
        let source = super::source::PositionedFile {
            file: handle,
            len: meta.len(),
        };
        // hdf5-pure caches the small metadata reads (2 MiB at most); dataset
        // payloads go straight to the file.
        let cache = MetadataCacheConfig::new(2 << 20);
        let props = FileAccessProperties::new().with_metadata_cache(cache);
        let file =
            hdf5_pure::File::from_source_with_options(source, props).map_err(|e| match e {
                hdf5_pure::Error::Io(source) => io(source),
                other => DataError::Corrupt {
                    path: path.to_path_buf(),
                    object: "/".into(),
                    detail: format!("cannot parse the HDF5 superblock or root group ({other})"),
                },
            })?;
        let eof = file.superblock().eof_address;
        if eof > meta.len() {
            return Err(DataError::Corrupt {
                path: path.to_path_buf(),
                object: "/".into(),
                detail: format!(
                    "the file is truncated: it has {} bytes but its HDF5 superblock records {eof}",
                    meta.len()
                ),
            });
        }
        Ok(Hdf {
            file,
            path: path.to_path_buf(),
            len: meta.len(),
        })
    }

    /// A [`DataError::Corrupt`] about `object`.
    pub(crate) fn corrupt(&self, object: &str, detail: impl Into<String>) -> DataError {
        DataError::Corrupt {
            path: self.path.clone(),
            object: object.to_string(),
            detail: detail.into(),
        }
    }

    /// Wraps a library error raised while reading `object`.
    pub(crate) fn h5(&self, object: &str, e: hdf5_pure::Error) -> DataError {
        match e {
            hdf5_pure::Error::Io(source) => DataError::Io {
                path: self.path.clone(),
                source,
            },
            other => self.corrupt(
                object,
                format!("cannot read it (truncated or corrupt file?): {other}"),
            ),
        }
    }

    /// A [`DataError::UnsupportedEncoding`] about `object`.
    pub(crate) fn unsupported(
        &self,
        object: &str,
        encoding: impl Into<String>,
        supported: &str,
    ) -> DataError {
        DataError::UnsupportedEncoding {
            path: self.path.clone(),
            object: object.to_string(),
            encoding: encoding.into(),
            supported: supported.to_string(),
        }
    }

    /// A [`DataError::ShapeMismatch`] about `object`.
    pub(crate) fn shape_mismatch(
        &self,
        object: &str,
        expected: impl Into<String>,
        found: impl Into<String>,
    ) -> DataError {
        DataError::ShapeMismatch {
            path: self.path.clone(),
            object: object.to_string(),
            expected: expected.into(),
            found: found.into(),
        }
    }

    /// What `path` names, or `None` when nothing is there.
    pub(crate) fn kind(&self, path: &str) -> Result<Option<Kind>> {
        match self.file.group(path) {
            Ok(_) => Ok(Some(Kind::Group)),
            Err(hdf5_pure::Error::NotAGroup(p))
                if p.trim_matches('/') == path.trim_matches('/') =>
            {
                match self.file.dataset(path) {
                    Ok(_) => Ok(Some(Kind::Dataset)),
                    // A named datatype or other non-dataset object: not
                    // something AnnData stores data in.
                    Err(hdf5_pure::Error::NotADataset(_)) => Ok(None),
                    Err(e) => Err(self.h5(path, e)),
                }
            }
            // A component along the path is a dataset: nothing below it.
            Err(hdf5_pure::Error::NotAGroup(_)) => Ok(None),
            Err(hdf5_pure::Error::Format(FormatError::PathNotFound(_))) => Ok(None),
            Err(e) => Err(self.h5(path, e)),
        }
    }

    pub(crate) fn group(&self, path: &str) -> Result<Group> {
        self.file.group(path).map_err(|e| self.h5(path, e))
    }

    pub(crate) fn dataset(&self, path: &str) -> Result<Dataset> {
        self.file.dataset(path).map_err(|e| self.h5(path, e))
    }

    /// Opens a dataset that is about to be read whole, refusing one whose
    /// declared size is implausible for the file. `hdf5-pure` allocates what
    /// the shape declares before reading, so a corrupt shape would otherwise
    /// abort the process on allocation failure. The bound allows for
    /// compression (1024 × the file size, at least 1 GiB).
    pub(crate) fn whole(&self, path: &str) -> Result<Dataset> {
        let ds = self.dataset(path)?;
        let shape = ds.shape().map_err(|e| self.h5(path, e))?;
        let elem = ds.element_size().map_err(|e| self.h5(path, e))?;
        let bytes = shape.iter().try_fold(elem, |acc, &d| acc.checked_mul(d));
        let limit = self.len.saturating_mul(1024).max(1 << 30);
        match bytes {
            Some(b) if b <= limit => Ok(ds),
            _ => Err(self.corrupt(
                path,
                format!(
                    "its declared shape {shape:?} of {elem}-byte elements is implausible \
                     for a {}-byte file (corrupt file?)",
                    self.len
                ),
            )),
        }
    }

    /// Names of the members of a group, groups and datasets together, sorted.
    pub(crate) fn members(&self, path: &str) -> Result<Vec<String>> {
        let g = if path.is_empty() || path == "/" {
            self.file.root()
        } else {
            self.group(path)?
        };
        let mut names = g.groups().map_err(|e| self.h5(path, e))?;
        names.extend(g.datasets().map_err(|e| self.h5(path, e))?);
        names.sort();
        Ok(names)
    }

    /// Attributes of the object at `path`, whatever its kind.
    pub(crate) fn attrs(&self, path: &str, kind: Kind) -> Result<HashMap<String, AttrValue>> {
        let obj = if path.is_empty() { "/" } else { path };
        match kind {
            Kind::Group => {
                let g = if path.is_empty() || path == "/" {
                    self.file.root()
                } else {
                    self.group(path)?
                };
                g.attrs().map_err(|e| self.h5(obj, e))
            }
            Kind::Dataset => self.dataset(path)?.attrs().map_err(|e| self.h5(obj, e)),
        }
    }

    /// Shape of a dataset.
    pub(crate) fn shape(&self, path: &str, ds: &Dataset) -> Result<Vec<usize>> {
        let shape = ds.shape().map_err(|e| self.h5(path, e))?;
        shape
            .into_iter()
            .map(|d| {
                usize::try_from(d).map_err(|_| {
                    self.corrupt(path, format!("dimension {d} does not fit in memory"))
                })
            })
            .collect()
    }

    /// Length of a one-dimensional dataset (error for other ranks).
    pub(crate) fn len_1d(&self, path: &str, ds: &Dataset) -> Result<usize> {
        match self.shape(path, ds)?.as_slice() {
            [n] => Ok(*n),
            other => {
                Err(self.shape_mismatch(path, "a one-dimensional array", format!("{other:?}")))
            }
        }
    }

    pub(crate) fn datatype(&self, path: &str, ds: &Dataset) -> Result<Datatype> {
        ds.datatype().map_err(|e| self.h5(path, e))
    }

    /// A whole 1-D dataset of strings and its length (an error for any
    /// other element type), without reading the strings.
    pub(crate) fn string_dataset(&self, path: &str) -> Result<(Dataset, usize)> {
        let ds = self.whole(path)?;
        let n = self.len_1d(path, &ds)?;
        let dt = self.datatype(path, &ds)?;
        if classify(&dt) != Scalar::Str {
            return Err(self.unsupported(
                path,
                format!("element type {}", classify(&dt).name()),
                "strings (fixed- or variable-length)",
            ));
        }
        Ok((ds, n))
    }

    /// Reads a whole 1-D string dataset, checking its length.
    pub(crate) fn read_strings(
        &self,
        path: &str,
        expected_len: Option<usize>,
    ) -> Result<Vec<String>> {
        let (ds, n) = self.string_dataset(path)?;
        let values = ds.read_string().map_err(|e| self.h5(path, e))?;
        self.check_len(path, values.len(), n)?;
        if let Some(expected) = expected_len
            && n != expected
        {
            return Err(self.shape_mismatch(path, format!("({expected},)"), format!("({n},)")));
        }
        Ok(values)
    }

    /// A read returned a different number of elements than the shape says.
    pub(crate) fn check_len(&self, path: &str, got: usize, expected: usize) -> Result<()> {
        if got == expected {
            Ok(())
        } else {
            Err(self.corrupt(
                path,
                format!("read {got} elements where its shape promises {expected}"),
            ))
        }
    }
}

/// A string attribute, if present and a string.
pub(crate) fn attr_str(attrs: &HashMap<String, AttrValue>, key: &str) -> Option<String> {
    attrs
        .get(key)
        .and_then(AttrValue::as_str)
        .map(str::to_string)
}

/// Joins a group path and a member name.
pub(crate) fn join(group: &str, name: &str) -> String {
    let g = group.trim_end_matches('/');
    if g.is_empty() {
        name.to_string()
    } else {
        format!("{g}/{name}")
    }
}

/// One field of a compound dataset, decoded.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum FieldValues {
    F64(Vec<f64>),
    I64(Vec<i64>),
    Bool(Vec<bool>),
    Str(Vec<String>),
}

/// Decodes the field `member` of every record in `raw` (records of
/// `record_size` bytes). Errors are plain strings; the caller adds the file
/// and object.
pub(crate) fn decode_field(
    raw: &[u8],
    record_size: usize,
    member: &CompoundMember,
) -> std::result::Result<FieldValues, String> {
    if record_size == 0 || !raw.len().is_multiple_of(record_size) {
        return Err(format!(
            "{} bytes of records is not a whole number of {record_size}-byte records",
            raw.len()
        ));
    }
    let offset = usize::try_from(member.byte_offset).map_err(|_| "field offset overflow")?;
    let width = element_size(&member.datatype)
        .ok_or_else(|| format!("field `{}` has no fixed size", member.name))?;
    if offset
        .checked_add(width)
        .is_none_or(|end| end > record_size)
    {
        return Err(format!(
            "field `{}` ({width} bytes at offset {offset}) lies outside its {record_size}-byte record",
            member.name
        ));
    }
    let fields = raw
        .chunks_exact(record_size)
        .map(|rec| &rec[offset..offset + width]);
    match (&member.datatype, classify(&member.datatype)) {
        (Datatype::FloatingPoint { byte_order, .. }, Scalar::Float(size)) => {
            let big = matches!(byte_order, DatatypeByteOrder::BigEndian);
            Ok(FieldValues::F64(
                fields.map(|b| decode_float(b, size, big)).collect(),
            ))
        }
        (Datatype::FixedPoint { byte_order, .. }, Scalar::Int { signed, .. }) => {
            let big = matches!(byte_order, DatatypeByteOrder::BigEndian);
            let values = fields
                .map(|b| decode_int(b, signed, big))
                .collect::<std::result::Result<Vec<_>, _>>()?;
            Ok(FieldValues::I64(values))
        }
        (
            Datatype::Enumeration {
                base_type, members, ..
            },
            Scalar::Bool,
        ) => {
            let big = matches!(
                **base_type,
                Datatype::FixedPoint {
                    byte_order: DatatypeByteOrder::BigEndian,
                    ..
                }
            );
            let signed =
                matches!(**base_type, Datatype::FixedPoint { layout, .. } if layout.signed);
            let truth = members
                .iter()
                .find(|m| m.name.eq_ignore_ascii_case("true"))
                .map(|m| decode_int(&m.value, signed, big))
                .transpose()?
                .unwrap_or(1);
            let values = fields
                .map(|b| decode_int(b, signed, big).map(|v| v == truth))
                .collect::<std::result::Result<Vec<_>, _>>()?;
            Ok(FieldValues::Bool(values))
        }
        (
            Datatype::String {
                padding, charset, ..
            },
            Scalar::Str,
        ) => Ok(FieldValues::Str(
            fields
                .map(|b| decode_fixed_string(b, padding, charset))
                .collect(),
        )),
        (_, kind) => Err(format!(
            "field `{}` has element type {}, expected a number, bool or fixed-length string",
            member.name,
            kind.name()
        )),
    }
}

/// Byte width of a fixed-size datatype.
fn element_size(dt: &Datatype) -> Option<usize> {
    let size = match dt {
        Datatype::FixedPoint { size, .. }
        | Datatype::FloatingPoint { size, .. }
        | Datatype::String { size, .. }
        | Datatype::Enumeration { size, .. }
        | Datatype::Compound { size, .. }
        | Datatype::Opaque { size, .. }
        | Datatype::BitField { size, .. }
        | Datatype::Time { size, .. }
        | Datatype::Reference { size, .. } => *size,
        _ => return None,
    };
    usize::try_from(size).ok()
}

fn decode_float(b: &[u8], size: u32, big: bool) -> f64 {
    match size {
        4 => {
            let mut a = [0u8; 4];
            a.copy_from_slice(&b[..4]);
            f64::from(if big {
                f32::from_be_bytes(a)
            } else {
                f32::from_le_bytes(a)
            })
        }
        _ => {
            let mut a = [0u8; 8];
            a.copy_from_slice(&b[..8]);
            if big {
                f64::from_be_bytes(a)
            } else {
                f64::from_le_bytes(a)
            }
        }
    }
}

fn decode_int(b: &[u8], signed: bool, big: bool) -> std::result::Result<i64, String> {
    if b.is_empty() || b.len() > 8 {
        return Err(format!("{}-byte integers are not supported", b.len()));
    }
    // Widen to 8 little-endian bytes, sign-extending when signed.
    let mut le: Vec<u8> = if big {
        b.iter().rev().copied().collect()
    } else {
        b.to_vec()
    };
    let negative = signed && le.last().is_some_and(|&x| x & 0x80 != 0);
    le.resize(8, if negative { 0xff } else { 0 });
    let mut a = [0u8; 8];
    a.copy_from_slice(&le);
    if signed {
        Ok(i64::from_le_bytes(a))
    } else {
        let v = u64::from_le_bytes(a);
        i64::try_from(v).map_err(|_| format!("unsigned value {v} does not fit in int64"))
    }
}

fn decode_fixed_string(b: &[u8], padding: &StringPadding, charset: &CharacterSet) -> String {
    let _ = charset; // ASCII is a subset of UTF-8; decode both as UTF-8.
    let end = match padding {
        StringPadding::SpacePad => b.iter().rposition(|&c| c != b' ').map_or(0, |p| p + 1),
        StringPadding::NullTerminate | StringPadding::NullPad => {
            b.iter().position(|&c| c == 0).unwrap_or(b.len())
        }
    };
    String::from_utf8_lossy(&b[..end]).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn integers_decode_with_sign_and_byte_order() {
        assert_eq!(decode_int(&[0xff], true, false), Ok(-1));
        assert_eq!(decode_int(&[0xff], false, false), Ok(255));
        assert_eq!(decode_int(&[0x01, 0x00], false, true), Ok(256));
        assert_eq!(decode_int(&[0xfe, 0xff, 0xff, 0xff], true, false), Ok(-2));
        assert!(decode_int(&[0xff; 8], false, false).is_err());
        assert!(decode_int(&[], true, false).is_err());
    }

    #[test]
    fn fixed_strings_stop_at_padding() {
        let nul = StringPadding::NullPad;
        assert_eq!(
            decode_fixed_string(b"CD4\0\0\0", &nul, &CharacterSet::Ascii),
            "CD4"
        );
        assert_eq!(
            decode_fixed_string(b"ab  ", &StringPadding::SpacePad, &CharacterSet::Ascii),
            "ab"
        );
        assert_eq!(
            decode_fixed_string(b"full", &nul, &CharacterSet::Utf8),
            "full"
        );
    }
}
