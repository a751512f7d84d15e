//! Gene dictionaries from a pickle or a JSON file, recognised by content.
//!
//! Geneformer ships `gene -> median` (`str -> float`) and `gene -> token`
//! (`str -> int`) dictionaries as pickles; the same dictionaries saved as a
//! JSON object read the same. The format is told by the first byte:
//!
//! - `0x80`: a pickle of protocol 2 to 5 (what `pickle.dump` writes since
//!   Python 3.0), read by [`crate::loads`];
//! - `{` (after optional whitespace or a UTF-8 byte-order mark): a JSON
//!   object.
//!
//! Anything else is refused with an error naming the file and both accepted
//! formats. A key set twice (possible in JSON and in a crafted pickle) is
//! refused rather than silently keeping one of the values, as is any key
//! that is not a string or any value of the wrong type.

use std::collections::HashMap;
use std::fmt;
use std::path::{Path, PathBuf};

use crate::Value;

/// Why a dictionary file was not read; the message names the file.
#[derive(Debug)]
pub struct DictFileError {
    /// The file.
    pub path: PathBuf,
    /// What was wrong with it.
    pub message: String,
}

impl fmt::Display for DictFileError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.path.display(), self.message)
    }
}

impl std::error::Error for DictFileError {}

/// Reads a `str -> float` dictionary (e.g. Geneformer's
/// `gene_median_dictionary.pkl`). Integer values are accepted when exactly
/// representable as `f64` (|v| <= 2^53); booleans are not numbers here.
pub fn read_str_f64_map(path: &Path) -> Result<HashMap<String, f64>, DictFileError> {
    read_map(path, "float", |v| match *v {
        Value::Float(f) => Some(f),
        Value::Int(i) if i.unsigned_abs() <= 1 << 53 => Some(i as f64),
        _ => None,
    })
}

/// Reads a `str -> int` dictionary (e.g. Geneformer's
/// `token_dictionary.pkl`). Booleans and floats are refused.
pub fn read_str_i64_map(path: &Path) -> Result<HashMap<String, i64>, DictFileError> {
    read_map(path, "int", |v| match *v {
        Value::Int(i) => Some(i),
        _ => None,
    })
}

fn read_map<T>(
    path: &Path,
    want: &str,
    convert: impl Fn(&Value) -> Option<T>,
) -> Result<HashMap<String, T>, DictFileError> {
    let fail = |message: String| DictFileError {
        path: path.to_path_buf(),
        message,
    };
    let bytes = std::fs::read(path).map_err(|e| fail(format!("cannot read: {e}")))?;
    let entries = parse_entries(&bytes).map_err(fail)?;
    let mut out = HashMap::with_capacity(entries.len());
    for (k, v) in entries {
        let key = match k {
            Value::Str(s) => s,
            other => {
                return Err(fail(format!(
                    "a key is a {} ({other:?}); every key must be a string",
                    other.type_name()
                )));
            }
        };
        let Some(value) = convert(&v) else {
            return Err(fail(format!(
                "the value of {key:?} is a {} ({v:?}); expected {want}",
                v.type_name()
            )));
        };
        if out.insert(key.clone(), value).is_some() {
            return Err(fail(format!("the key {key:?} is set twice")));
        }
    }
    Ok(out)
}

/// The dictionary's entries, by content: a pickle or a JSON object.
fn parse_entries(bytes: &[u8]) -> Result<Vec<(Value, Value)>, String> {
    const ACCEPTED: &str = "accepted formats: a Python pickle of protocol 2-5 (first byte 0x80) \
                            or a JSON object (first character '{')";
    if bytes.first() == Some(&0x80) {
        return match crate::loads(bytes) {
            Ok(Value::Dict(entries)) => Ok(entries),
            Ok(other) => Err(format!(
                "the pickle holds a {}, not a dict",
                other.type_name()
            )),
            Err(e) => Err(format!("not a readable plain-data pickle: {e}")),
        };
    }
    let text = bytes.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(bytes);
    let first = text.iter().copied().find(|b| !b.is_ascii_whitespace());
    if first == Some(b'{') {
        return json_entries(text);
    }
    let what = match bytes.first() {
        None => "the file is empty".to_string(),
        Some(_) if first.is_none() => "the file holds only whitespace".to_string(),
        Some(&b) => format!("the file starts with byte 0x{b:02x}"),
    };
    Err(format!(
        "neither a pickle nor a JSON object ({what}); {ACCEPTED}"
    ))
}

/// A JSON object's entries in file order, duplicates kept (so that they
/// can be refused), values as [`Value`] numbers/strings/...
fn json_entries(text: &[u8]) -> Result<Vec<(Value, Value)>, String> {
    use serde::de::{Deserializer, MapAccess, Visitor};

    struct Entries;
    impl<'de> Visitor<'de> for Entries {
        type Value = Vec<(String, serde_json::Value)>;
        fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
            f.write_str("a JSON object")
        }
        fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
            let mut out = Vec::new();
            while let Some((k, v)) = map.next_entry::<String, serde_json::Value>()? {
                out.push((k, v));
            }
            Ok(out)
        }
    }
    let mut de = serde_json::Deserializer::from_slice(text);
    let entries = de
        .deserialize_map(Entries)
        .and_then(|e| de.end().map(|()| e))
        .map_err(|e| format!("not valid JSON: {e}"))?;
    Ok(entries
        .into_iter()
        .map(|(k, v)| {
            let v = match v {
                serde_json::Value::Null => Value::None,
                serde_json::Value::Bool(b) => Value::Bool(b),
                serde_json::Value::Number(n) => match n.as_i64() {
                    Some(i) => Value::Int(i),
                    // A float, or an integer beyond i64 (refused as an
                    // int by the typed readers).
                    None => Value::Float(n.as_f64().unwrap_or(f64::NAN)),
                },
                serde_json::Value::String(s) => Value::Str(s),
                serde_json::Value::Array(_) => Value::List(Vec::new()),
                serde_json::Value::Object(_) => Value::Dict(Vec::new()),
            };
            (Value::Str(k), v)
        })
        .collect())
}
