//! [`ConfigValue`]: how one config value is read from, and written back to,
//! the in-memory tree (`serde_json::Value`).
//!
//! Every config file is first turned into a `serde_json::Value` tree (see
//! `yaml.rs`); each Rust type that can appear in the schema then reads
//! itself from its node, reporting problems under its key path instead of
//! stopping. This file holds the trait and its implementations for the
//! primitive, optional, list and map types; sections get theirs from
//! `config_section!` and string enums from `config_enum!`.
//!
//! Leniency, on purpose and only where scModelForge's own YAML stack
//! (PyYAML + OmegaConf) is lenient too: a string that reads as a number is
//! accepted for a number (PyYAML reads `1e-4` as a string), an integer is
//! accepted for a float, and `yes`/`no`/`on`/`off` are accepted for booleans
//! (YAML 1.1 booleans).

use std::collections::BTreeMap;

use serde_json::{Map, Number, Value};

use super::error::ConfigErrors;

/// A type that can be read from and written to a config tree.
pub trait ConfigValue: Sized {
    /// Reads `v`, found at key path `path`. On failure, records every
    /// problem in `errors` (under `path` or below) and returns `None`.
    fn from_value(v: &Value, path: &str, errors: &mut ConfigErrors) -> Option<Self>;

    /// Writes `self` back as a tree that [`ConfigValue::from_value`] reads
    /// back to an equal value.
    fn to_value(&self) -> Value;
}

/// The key path of `key` inside the node at `path` (`model` + `hidden_dim`
/// gives `model.hidden_dim`; the top level has the empty path).
pub fn join_path(path: &str, key: &str) -> String {
    if path.is_empty() {
        key.to_string()
    } else {
        format!("{path}.{key}")
    }
}

/// The key path of item `index` of the list at `path`: `eval.benchmarks[0]`.
pub fn index_path(path: &str, index: usize) -> String {
    format!("{path}[{index}]")
}

/// A short description of what a node holds, for "expected X, found Y".
pub fn describe(v: &Value) -> String {
    match v {
        Value::Null => "null (an empty value)".to_string(),
        Value::Bool(b) => format!("boolean {b}"),
        Value::Number(n) if n.is_f64() => format!("number {n}"),
        Value::Number(n) => format!("integer {n}"),
        Value::String(s) => format!("string {}", quote(s)),
        Value::Array(_) => "a list".to_string(),
        Value::Object(_) => "a mapping".to_string(),
    }
}

/// `s` in double quotes, with JSON escapes, for messages.
pub fn quote(s: &str) -> String {
    serde_json::to_string(s).unwrap_or_else(|_| format!("\"{s}\""))
}

/// Records "expected `what`, found ..." at `path`.
pub fn type_error(errors: &mut ConfigErrors, path: &str, what: &str, found: &Value) {
    errors.push(path, format!("expected {what}, found {}", describe(found)));
}

/// Reads a float written the YAML way: `1e-4`, `1.0e-4`, `.5`, `+3`,
/// `.inf`, `-.inf`, `.nan` (any case). Rust-only spellings such as `inf` or
/// `NaN` are refused.
pub fn parse_float(text: &str) -> Option<f64> {
    let t = text.trim();
    let (sign, body) = match t.strip_prefix('-') {
        Some(rest) => (-1.0, rest),
        None => (1.0, t.strip_prefix('+').unwrap_or(t)),
    };
    match body {
        ".inf" | ".Inf" | ".INF" => return Some(sign * f64::INFINITY),
        ".nan" | ".NaN" | ".NAN" if t == body => return Some(f64::NAN),
        _ => {}
    }
    let well_formed = !body.is_empty()
        && body.chars().any(|c| c.is_ascii_digit())
        && body
            .chars()
            .all(|c| c.is_ascii_digit() || matches!(c, '.' | 'e' | 'E' | '+' | '-' | '_'));
    if !well_formed {
        return None;
    }
    body.replace('_', "").parse::<f64>().ok().map(|x| sign * x)
}

/// A float as a tree node: a number when finite, else its YAML spelling
/// (`.inf`, `-.inf`, `.nan`) as a string, which [`parse_float`] reads back.
pub fn float_value(x: f64) -> Value {
    match Number::from_f64(x) {
        Some(n) => Value::Number(n),
        None if x.is_nan() => Value::String(".nan".to_string()),
        None if x > 0.0 => Value::String(".inf".to_string()),
        None => Value::String("-.inf".to_string()),
    }
}

impl ConfigValue for i64 {
    fn from_value(v: &Value, path: &str, errors: &mut ConfigErrors) -> Option<Self> {
        let parsed = match v {
            Value::Number(n) => n.as_i64(),
            Value::String(s) => s.trim().parse::<i64>().ok(),
            _ => None,
        };
        if parsed.is_none() {
            type_error(errors, path, "an integer", v);
        }
        parsed
    }

    fn to_value(&self) -> Value {
        Value::from(*self)
    }
}

impl ConfigValue for f64 {
    fn from_value(v: &Value, path: &str, errors: &mut ConfigErrors) -> Option<Self> {
        let parsed = match v {
            Value::Number(n) => n.as_f64(),
            Value::String(s) => parse_float(s),
            _ => None,
        };
        if parsed.is_none() {
            type_error(errors, path, "a number", v);
        }
        parsed
    }

    fn to_value(&self) -> Value {
        float_value(*self)
    }
}

impl ConfigValue for bool {
    fn from_value(v: &Value, path: &str, errors: &mut ConfigErrors) -> Option<Self> {
        let parsed = match v {
            Value::Bool(b) => Some(*b),
            Value::String(s) => match s.trim().to_ascii_lowercase().as_str() {
                "true" | "yes" | "on" => Some(true),
                "false" | "no" | "off" => Some(false),
                _ => None,
            },
            _ => None,
        };
        if parsed.is_none() {
            type_error(errors, path, "true or false", v);
        }
        parsed
    }

    fn to_value(&self) -> Value {
        Value::Bool(*self)
    }
}

impl ConfigValue for String {
    fn from_value(v: &Value, path: &str, errors: &mut ConfigErrors) -> Option<Self> {
        match v {
            Value::String(s) => Some(s.clone()),
            // An unquoted integer such as a dataset id: its text is exact.
            Value::Number(n) if !n.is_f64() => Some(n.to_string()),
            _ => {
                let hint = if v.is_null() {
                    "a string"
                } else {
                    "a string (put the value in quotes to keep it as text)"
                };
                type_error(errors, path, hint, v);
                None
            }
        }
    }

    fn to_value(&self) -> Value {
        Value::String(self.clone())
    }
}

/// `null` reads as `None`; anything else must read as a `T`.
impl<T: ConfigValue> ConfigValue for Option<T> {
    fn from_value(v: &Value, path: &str, errors: &mut ConfigErrors) -> Option<Self> {
        if v.is_null() {
            Some(None)
        } else {
            T::from_value(v, path, errors).map(Some)
        }
    }

    fn to_value(&self) -> Value {
        self.as_ref().map_or(Value::Null, T::to_value)
    }
}

/// A YAML list; every item is checked and every bad item reported.
impl<T: ConfigValue> ConfigValue for Vec<T> {
    fn from_value(v: &Value, path: &str, errors: &mut ConfigErrors) -> Option<Self> {
        let Value::Array(items) = v else {
            type_error(
                errors,
                path,
                "a list (one `- item` line per entry, or `[a, b]`)",
                v,
            );
            return None;
        };
        let mut out = Vec::with_capacity(items.len());
        let mut ok = true;
        for (i, item) in items.iter().enumerate() {
            match T::from_value(item, &index_path(path, i), errors) {
                Some(x) => out.push(x),
                None => ok = false,
            }
        }
        ok.then_some(out)
    }

    fn to_value(&self) -> Value {
        Value::Array(self.iter().map(T::to_value).collect())
    }
}

/// A mapping with free-form keys and typed values.
impl<T: ConfigValue> ConfigValue for BTreeMap<String, T> {
    fn from_value(v: &Value, path: &str, errors: &mut ConfigErrors) -> Option<Self> {
        let map = match v {
            Value::Object(map) => map,
            Value::Null => return Some(BTreeMap::new()),
            _ => {
                type_error(errors, path, "a mapping", v);
                return None;
            }
        };
        let mut out = BTreeMap::new();
        let mut ok = true;
        for (key, item) in map {
            match T::from_value(item, &join_path(path, key), errors) {
                Some(x) => {
                    out.insert(key.clone(), x);
                }
                None => ok = false,
            }
        }
        ok.then_some(out)
    }

    fn to_value(&self) -> Value {
        Value::Object(
            self.iter()
                .map(|(k, v)| (k.clone(), v.to_value()))
                .collect(),
        )
    }
}

/// An opaque sub-section: any mapping, kept as written (order included).
/// An empty value (`census:` with nothing under it) reads as an empty
/// mapping.
impl ConfigValue for Map<String, Value> {
    fn from_value(v: &Value, path: &str, errors: &mut ConfigErrors) -> Option<Self> {
        match v {
            Value::Object(map) => Some(map.clone()),
            Value::Null => Some(Map::new()),
            _ => {
                type_error(errors, path, "a mapping", v);
                None
            }
        }
    }

    fn to_value(&self) -> Value {
        Value::Object(self.clone())
    }
}

/// Any value at all, kept as written.
impl ConfigValue for Value {
    fn from_value(v: &Value, _path: &str, _errors: &mut ConfigErrors) -> Option<Self> {
        Some(v.clone())
    }

    fn to_value(&self) -> Value {
        self.clone()
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn read<T: ConfigValue>(v: Value) -> Result<T, ConfigErrors> {
        let mut errors = ConfigErrors::new("<test>");
        let out = T::from_value(&v, "a.b", &mut errors);
        match out {
            Some(x) if errors.is_empty() => Ok(x),
            _ => Err(errors),
        }
    }

    #[test]
    fn floats_accept_ints_and_yaml_float_strings() {
        assert_eq!(read::<f64>(json!(3)).unwrap(), 3.0);
        assert_eq!(read::<f64>(json!(0.5)).unwrap(), 0.5);
        assert_eq!(read::<f64>(json!("1e-4")).unwrap(), 1e-4);
        assert_eq!(read::<f64>(json!("1.0e-4")).unwrap(), 1e-4);
        assert_eq!(read::<f64>(json!(" .5 ")).unwrap(), 0.5);
        assert_eq!(read::<f64>(json!("1_000.5")).unwrap(), 1000.5);
        assert_eq!(read::<f64>(json!(".inf")).unwrap(), f64::INFINITY);
        assert_eq!(read::<f64>(json!("-.inf")).unwrap(), f64::NEG_INFINITY);
        assert!(read::<f64>(json!(".nan")).unwrap().is_nan());
        for bad in [
            json!("inf"),
            json!("abc"),
            json!("1e"),
            json!(true),
            json!(null),
        ] {
            let err = read::<f64>(bad).unwrap_err();
            assert!(err.to_string().contains("a.b: expected a number"), "{err}");
        }
    }

    #[test]
    fn non_finite_floats_round_trip_through_strings() {
        for x in [f64::INFINITY, f64::NEG_INFINITY, 1e-300, -2.5] {
            assert_eq!(read::<f64>(x.to_value()).unwrap(), x);
        }
        assert!(read::<f64>(f64::NAN.to_value()).unwrap().is_nan());
    }

    #[test]
    fn integers_refuse_fractions_and_words() {
        assert_eq!(read::<i64>(json!(7)).unwrap(), 7);
        assert_eq!(read::<i64>(json!("12")).unwrap(), 12);
        let err = read::<i64>(json!(0.5)).unwrap_err();
        assert_eq!(
            err.to_string(),
            "<test>: a.b: expected an integer, found number 0.5"
        );
        let err = read::<i64>(json!("lots")).unwrap_err();
        assert_eq!(
            err.to_string(),
            "<test>: a.b: expected an integer, found string \"lots\""
        );
    }

    #[test]
    fn booleans_accept_yaml_1_1_spellings() {
        assert!(read::<bool>(json!(true)).unwrap());
        assert!(read::<bool>(json!("yes")).unwrap());
        assert!(!read::<bool>(json!("Off")).unwrap());
        assert!(read::<bool>(json!(1)).is_err());
    }

    #[test]
    fn strings_accept_integers_but_not_floats() {
        assert_eq!(read::<String>(json!("x")).unwrap(), "x");
        assert_eq!(read::<String>(json!(2023)).unwrap(), "2023");
        let err = read::<String>(json!(1.5)).unwrap_err();
        assert!(err.to_string().contains("put the value in quotes"), "{err}");
        assert!(read::<String>(json!(null)).is_err());
    }

    #[test]
    fn options_lists_and_maps() {
        assert_eq!(read::<Option<i64>>(json!(null)).unwrap(), None);
        assert_eq!(read::<Option<i64>>(json!(4)).unwrap(), Some(4));
        assert_eq!(read::<Vec<i64>>(json!([1, 2])).unwrap(), vec![1, 2]);
        // Every bad item is reported, each at its own index.
        let err = read::<Vec<i64>>(json!([1, "x", 2.5])).unwrap_err();
        assert_eq!(err.len(), 2);
        assert!(err.has_path("a.b[1]") && err.has_path("a.b[2]"));
        let err = read::<Vec<String>>(json!("one.h5ad")).unwrap_err();
        assert!(err.to_string().contains("expected a list"), "{err}");
        let m = read::<BTreeMap<String, f64>>(json!({"x": 1, "y": "2e3"})).unwrap();
        assert_eq!(m["y"], 2000.0);
        let err = read::<BTreeMap<String, f64>>(json!({"x": "no"})).unwrap_err();
        assert!(err.has_path("a.b.x"));
        let opaque = read::<Map<String, Value>>(json!({"z": 1, "a": [1]})).unwrap();
        assert_eq!(opaque.keys().collect::<Vec<_>>(), ["z", "a"]);
        assert!(read::<Map<String, Value>>(json!(null)).unwrap().is_empty());
        assert!(read::<Map<String, Value>>(json!(3)).is_err());
    }

    #[test]
    fn paths_join() {
        assert_eq!(join_path("", "model"), "model");
        assert_eq!(join_path("model", "hidden_dim"), "model.hidden_dim");
        assert_eq!(index_path("eval.benchmarks", 2), "eval.benchmarks[2]");
    }
}
