//! Model options given as `--option name:type=default`: parsing, and every
//! spelling of an option that the templates need (Rust type and default for
//! `ModelConfig`, a YAML value for the example config, a second value for
//! the generated test).
//!
//! This module knows nothing about files; whether an option clashes with an
//! existing `ModelConfig` field is checked where the schema is read.

use std::fmt;

use crate::names;

/// Accepted option types, for error messages.
pub const ACCEPTED_TYPES: &str =
    "i64, f64, bool, String, Option<i64>, Option<f64>, Option<bool>, Option<String>";

/// The scalar types an option may have.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scalar {
    /// `i64`
    I64,
    /// `f64`
    F64,
    /// `bool`
    Bool,
    /// `String`
    Str,
}

/// One value of an option.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    /// An integer.
    I64(i64),
    /// A finite float.
    F64(f64),
    /// A boolean.
    Bool(bool),
    /// A string.
    Str(String),
    /// `None` of an `Option<T>`.
    Null,
}

/// A parsed `--option`.
#[derive(Debug, Clone, PartialEq)]
pub struct ModelOption {
    /// Field name in `ModelConfig` and in the model struct.
    pub name: String,
    /// The scalar type.
    pub scalar: Scalar,
    /// Whether the type is `Option<scalar>`.
    pub optional: bool,
    /// The default value.
    pub default: Value,
    /// The text given on the command line, for the header of generated
    /// files.
    pub spec: String,
}

/// Why an `--option` was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OptionError(pub String);

impl fmt::Display for OptionError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for OptionError {}

impl ModelOption {
    /// Parses `name:type=default` (`=default` may be left out for an
    /// `Option<T>`, meaning `None`).
    pub fn parse(spec: &str) -> Result<Self, OptionError> {
        let fail = |what: String| {
            OptionError(format!(
                "--option `{spec}`: {what}\n  expected NAME:TYPE=DEFAULT, e.g. \
                 `--option decoder_scale:f64=0.5`, with TYPE one of {ACCEPTED_TYPES}"
            ))
        };
        let Some((name, rest)) = spec.split_once(':') else {
            return Err(fail("no `:` between the name and the type".into()));
        };
        let name = name.trim();
        // A field may be called `core` or `test`; not a keyword or non-snake.
        if let Err(err) = names::ModelName::parse(name)
            && (names::is_keyword(name) || !err.reason.contains("shadow"))
        {
            return Err(fail(format!(
                "`{name}` is not a valid field name ({})",
                err.reason
            )));
        }
        let (ty, default) = match rest.split_once('=') {
            Some((ty, default)) => (ty.trim(), Some(default)),
            None => (rest.trim(), None),
        };
        let (scalar, optional) = parse_type(ty).ok_or_else(|| {
            fail(format!(
                "unknown type `{ty}`; accepted types: {ACCEPTED_TYPES}"
            ))
        })?;
        let default = match default {
            None if optional => Value::Null,
            None => return Err(fail("a default value is required (`=...`)".into())),
            Some(text) if optional && is_null(text) => Value::Null,
            Some(text) => parse_value(scalar, text).map_err(fail)?,
        };
        Ok(ModelOption {
            name: name.to_string(),
            scalar,
            optional,
            default,
            spec: spec.to_string(),
        })
    }

    /// `f64`, `Option<String>`, ...
    pub fn rust_type(&self) -> String {
        let scalar = match self.scalar {
            Scalar::I64 => "i64",
            Scalar::F64 => "f64",
            Scalar::Bool => "bool",
            Scalar::Str => "String",
        };
        if self.optional {
            format!("Option<{scalar}>")
        } else {
            scalar.to_string()
        }
    }

    /// The default as a Rust expression.
    pub fn rust_default(&self) -> String {
        self.rust_value(&self.default)
    }

    /// A value other than the default, as a Rust expression (the
    /// generated test sets it and checks that the model follows).
    pub fn rust_other(&self) -> String {
        self.rust_value(&self.other())
    }

    /// The default as a YAML value.
    pub fn yaml_default(&self) -> String {
        match &self.default {
            Value::I64(v) => v.to_string(),
            Value::F64(v) => float_literal(*v),
            Value::Bool(v) => v.to_string(),
            Value::Str(s) => quote(s),
            Value::Null => "null".to_string(),
        }
    }

    fn other(&self) -> Value {
        match (&self.default, self.scalar) {
            (Value::Null, Scalar::I64) => Value::I64(1),
            (Value::Null, Scalar::F64) => Value::F64(0.5),
            (Value::Null, Scalar::Bool) => Value::Bool(true),
            (Value::Null, Scalar::Str) => Value::Str("changed".into()),
            _ if self.optional => Value::Null,
            (Value::I64(v), _) => Value::I64(v.wrapping_add(1)),
            (Value::F64(v), _) => Value::F64(v + 1.0),
            (Value::Bool(v), _) => Value::Bool(!v),
            (Value::Str(s), _) => Value::Str(format!("{s}_changed")),
        }
    }

    fn rust_value(&self, value: &Value) -> String {
        let plain = match value {
            Value::I64(v) => v.to_string(),
            Value::F64(v) => float_literal(*v),
            Value::Bool(v) => v.to_string(),
            Value::Str(s) => format!("{}.to_string()", quote(s)),
            Value::Null => return "None".to_string(),
        };
        if self.optional {
            format!("Some({plain})")
        } else {
            plain
        }
    }
}

fn parse_type(ty: &str) -> Option<(Scalar, bool)> {
    let compact: String = ty.chars().filter(|c| !c.is_whitespace()).collect();
    let (inner, optional) = match compact
        .strip_prefix("Option<")
        .and_then(|s| s.strip_suffix('>'))
    {
        Some(inner) => (inner.to_string(), true),
        None => (compact, false),
    };
    let scalar = match inner.as_str() {
        "i64" => Scalar::I64,
        "f64" => Scalar::F64,
        "bool" => Scalar::Bool,
        "String" => Scalar::Str,
        _ => return None,
    };
    Some((scalar, optional))
}

fn is_null(text: &str) -> bool {
    matches!(text.trim(), "None" | "none" | "null" | "~")
}

fn parse_value(scalar: Scalar, text: &str) -> Result<Value, String> {
    let trimmed = text.trim();
    match scalar {
        Scalar::I64 => trimmed
            .replace('_', "")
            .parse()
            .map(Value::I64)
            .map_err(|_| format!("`{trimmed}` is not an i64")),
        Scalar::F64 => match trimmed.parse::<f64>() {
            Ok(v) if v.is_finite() => Ok(Value::F64(v)),
            _ => Err(format!("`{trimmed}` is not a finite f64")),
        },
        Scalar::Bool => match trimmed {
            "true" => Ok(Value::Bool(true)),
            "false" => Ok(Value::Bool(false)),
            _ => Err(format!("`{trimmed}` is not a bool (true or false)")),
        },
        Scalar::Str => {
            let unquoted = trimmed
                .strip_prefix('"')
                .and_then(|s| s.strip_suffix('"'))
                .unwrap_or(text);
            if unquoted.chars().any(|c| c.is_control() || c == '\'') {
                return Err("string defaults may not contain control characters or `'`".to_string());
            }
            Ok(Value::Str(unquoted.to_string()))
        }
    }
}

/// A float as both Rust and YAML write it: always with a `.` or exponent.
fn float_literal(v: f64) -> String {
    let text = format!("{v:?}");
    if text.contains(['.', 'e']) {
        text
    } else {
        format!("{text}.0")
    }
}

/// A double-quoted string, valid in Rust and in YAML.
fn quote(s: &str) -> String {
    let mut out = String::from("\"");
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_type_renders() {
        let cases = [
            ("a:i64=3", "i64", "3", "4", "3"),
            ("a:f64=1", "f64", "1.0", "2.0", "1.0"),
            ("a:f64=1e-4", "f64", "0.0001", "1.0001", "0.0001"),
            ("a:bool=true", "bool", "true", "false", "true"),
            (
                "a:String=gelu",
                "String",
                "\"gelu\".to_string()",
                "\"gelu_changed\".to_string()",
                "\"gelu\"",
            ),
            ("a:Option<i64>", "Option<i64>", "None", "Some(1)", "null"),
            (
                "a:Option<f64>=0.5",
                "Option<f64>",
                "Some(0.5)",
                "None",
                "0.5",
            ),
            (
                "a: Option< String > = null",
                "Option<String>",
                "None",
                "Some(\"changed\".to_string())",
                "null",
            ),
        ];
        for (spec, ty, default, other, yaml) in cases {
            let o = ModelOption::parse(spec).unwrap();
            assert_eq!(o.rust_type(), ty, "{spec}");
            assert_eq!(o.rust_default(), default, "{spec}");
            assert_eq!(o.rust_other(), other, "{spec}");
            assert_eq!(o.yaml_default(), yaml, "{spec}");
        }
    }

    #[test]
    fn refusals_say_what_is_accepted() {
        for (spec, why) in [
            ("scale", "no `:`"),
            ("Scale:f64=1", "not a valid field name"),
            ("type:f64=1", "not a valid field name"),
            ("scale:float=1", "unknown type `float`"),
            ("scale:f64", "default value is required"),
            ("scale:f64=abc", "not a finite f64"),
            ("scale:i64=1.5", "not an i64"),
            ("flag:bool=yes", "not a bool"),
        ] {
            let err = ModelOption::parse(spec).unwrap_err().to_string();
            assert!(err.contains(why), "{spec}: {err}");
            assert!(err.contains("NAME:TYPE=DEFAULT"), "{err}");
        }
    }
}
