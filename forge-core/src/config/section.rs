//! `config_section!`: declares one config section (a YAML mapping) with each
//! key's doc comment, Rust type and default written once, in one place.
//!
//! ```text
//! config_section! {
//!     /// Optimizer settings (YAML section `training.optimizer`).
//!     pub struct OptimizerConfig {
//!         /// Optimizer to use.
//!         name: OptimizerName = OptimizerName::Adamw,
//!         /// Peak learning rate.
//!         lr: f64 = 1e-4,
//!     }
//! }
//! ```
//!
//! generates:
//! - the struct, with `pub` fields carrying the doc comments, deriving
//!   `Debug`, `Clone` and `PartialEq`;
//! - `Default`, built from the defaults written after `=`;
//! - `FIELDS` (the key names in declaration order) and `FIELD_DOCS`
//!   (key name, doc comment), plus `field_doc(name)`;
//! - [`ConfigValue`](super::value::ConfigValue): the node must be a mapping
//!   (an empty value reads as "all defaults"); every known key is read under
//!   its own path (`model.hidden_dim`); absent keys keep their default; every
//!   unknown key is an error naming its full path, with a did-you-mean
//!   suggestion when one field name is close, else the list of accepted
//!   keys. All problems are recorded, not just the first.
//!
//! Only `///` doc comments are allowed on fields. Plain `//` comments are
//! invisible to the macro, so marker comments (such as forge-gen's
//! `// forge-gen: model-options begin`) may sit anywhere in the field list,
//! and the last field may keep its trailing comma so that generated fields
//! can be appended after it.
//!
//! This module knows nothing about YAML or about any particular section;
//! the sections themselves live in `schema.rs`.

/// Cleans a raw `FIELD_DOCS` entry: one line per `///` line, without the
/// single space rustdoc keeps after `///`, surrounding blank lines dropped.
pub fn clean_doc(raw: &str) -> String {
    raw.lines()
        .map(|line| line.strip_prefix(' ').unwrap_or(line))
        .collect::<Vec<_>>()
        .join("\n")
        .trim()
        .to_string()
}

/// Records "unknown key" for `key` found in the section at `path` whose
/// accepted keys are `fields`.
pub fn unknown_key(
    errors: &mut super::ConfigErrors,
    path: &str,
    key: &str,
    fields: &[&'static str],
) {
    let full = super::value::join_path(path, key);
    let message = match crate::suggest::closest(key, fields.iter().copied()) {
        Some(best) => format!("unknown key; did you mean \"{best}\"?"),
        None => format!("unknown key; accepted keys: {}", fields.join(", ")),
    };
    errors.push(full, message);
}

/// Records "expected a mapping" for a section node that is not one.
pub fn not_a_mapping(
    errors: &mut super::ConfigErrors,
    path: &str,
    found: &serde_json::Value,
    fields: &[&'static str],
) {
    let what = format!("a mapping with keys among: {}", fields.join(", "));
    let message = format!("expected {what}, found {}", super::value::describe(found));
    if path.is_empty() {
        let message = format!("the top level of a config must be a mapping of sections; {message}");
        errors.push("", message);
    } else {
        errors.push(path, message);
    }
}

/// Declares a config section; see the module documentation.
///
/// Exported (hidden) so that [`model_options!`](crate::model_options) can
/// declare a model's own options in any crate; inside forge-core it is used
/// as `config_section!`.
#[doc(hidden)]
#[macro_export]
macro_rules! __config_section {
    (
        $(#[$meta:meta])*
        $vis:vis struct $name:ident {
            $(
                $(#[doc = $doc:literal])*
                $field:ident : $ty:ty = $default:expr
            ),* $(,)?
        }
        $(.. $rest:ident)?
    ) => {
        $(#[$meta])*
        #[derive(Debug, Clone, PartialEq)]
        $vis struct $name {
            $(
                $(#[doc = $doc])*
                pub $field: $ty,
            )*
            $(
                /// The keys of this section that are none of its fields,
                /// as written (a model's own options, checked against the
                /// options its architecture declares).
                pub $rest: $crate::__private::serde_json::Map<::std::string::String, $crate::__private::serde_json::Value>,
            )?
        }

        impl Default for $name {
            fn default() -> Self {
                Self {
                    $($field: $default,)*
                    $($rest: $crate::__private::serde_json::Map::new(),)?
                }
            }
        }

        impl $name {
            /// The keys of this section, in declaration order.
            pub const FIELDS: &'static [&'static str] = &[$(stringify!($field)),*];

            /// `(key, raw doc comment)` for every key of this section; see
            /// [`Self::field_doc`] for the cleaned text.
            pub const FIELD_DOCS: &'static [(&'static str, &'static str)] =
                &[$((stringify!($field), concat!($($doc, "\n",)*))),*];

            /// The doc comment of key `name`, cleaned, or `None` for an
            /// unknown key.
            pub fn field_doc(name: &str) -> Option<String> {
                Self::FIELD_DOCS
                    .iter()
                    .find(|(field, _)| *field == name)
                    .map(|(_, doc)| $crate::config::section::clean_doc(doc))
            }
        }

        impl $crate::config::value::ConfigValue for $name {
            fn from_value(
                v: &$crate::__private::serde_json::Value,
                path: &str,
                errors: &mut $crate::config::ConfigErrors,
            ) -> Option<Self> {
                let map = match v {
                    $crate::__private::serde_json::Value::Object(map) => map,
                    $crate::__private::serde_json::Value::Null => return Some(Self::default()),
                    other => {
                        $crate::config::section::not_a_mapping(errors, path, other, Self::FIELDS);
                        return None;
                    }
                };
                // Keys that fail to read keep their default and are
                // reported; the section is still returned so the value
                // checks can look at every key that did read.
                let mut out = Self::default();
                for (key, value) in map {
                    match key.as_str() {
                        $(
                            stringify!($field) => {
                                let key_path = $crate::config::value::join_path(path, key);
                                if let Some(x) = <$ty as $crate::config::value::ConfigValue>::from_value(
                                    value, &key_path, errors,
                                ) {
                                    out.$field = x;
                                }
                            }
                        )*
                        _ => $crate::__section_other_key!(
                            out, errors, path, key, value, Self::FIELDS $(, $rest)?
                        ),
                    }
                }
                Some(out)
            }

            fn to_value(&self) -> $crate::__private::serde_json::Value {
                let mut map = $crate::__private::serde_json::Map::new();
                $(
                    map.insert(
                        stringify!($field).to_string(),
                        $crate::config::value::ConfigValue::to_value(&self.$field),
                    );
                )*
                $(
                    for (key, value) in &self.$rest {
                        map.insert(key.clone(), value.clone());
                    }
                )?
                $crate::__private::serde_json::Value::Object(map)
            }
        }
    };
}

/// A key that is none of a section's fields: refused (with did-you-mean),
/// or kept as written when the section has a `..rest` map.
#[doc(hidden)]
#[macro_export]
macro_rules! __section_other_key {
    ($out:ident, $errors:ident, $path:ident, $key:ident, $value:ident, $fields:expr) => {
        $crate::config::section::unknown_key($errors, $path, $key, $fields)
    };
    ($out:ident, $errors:ident, $path:ident, $key:ident, $value:ident, $fields:expr, $rest:ident) => {{
        $out.$rest.insert($key.clone(), $value.clone());
    }};
}

pub(crate) use crate::__config_section as config_section;

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::super::ConfigErrors;
    use super::super::value::ConfigValue;
    use super::config_section;

    config_section! {
        /// A section for testing the macro.
        pub struct Demo {
            /// Width.
            ///
            /// Second paragraph.
            width: i64 = 3,
            ratio: f64 = 0.5,
            // forge-gen: model-options begin
            /// An option as forge-gen inserts it.
            extra: Option<String> = None,
            // forge-gen: model-options end
        }
    }

    config_section! {
        /// Markers with nothing between them, last field without a comma.
        pub struct Empty {
            only: bool = true
            // forge-gen: model-options begin
            // forge-gen: model-options end
        }
    }

    #[test]
    fn defaults_fields_and_docs() {
        let d = Demo::default();
        assert_eq!((d.width, d.ratio, d.extra), (3, 0.5, None));
        assert_eq!(Demo::FIELDS, ["width", "ratio", "extra"]);
        assert_eq!(
            Demo::field_doc("width").as_deref(),
            Some("Width.\n\nSecond paragraph.")
        );
        assert_eq!(Demo::field_doc("ratio").as_deref(), Some(""));
        assert_eq!(Demo::field_doc("nope"), None);
        assert!(Empty::default().only);
        assert_eq!(Empty::field_doc("only").as_deref(), Some(""));
    }

    #[test]
    fn reads_known_keys_and_keeps_defaults() {
        let mut errors = ConfigErrors::new("<test>");
        let d = Demo::from_value(&json!({"ratio": 2}), "demo", &mut errors).unwrap();
        assert!(errors.is_empty());
        assert_eq!((d.width, d.ratio), (3, 2.0));
        assert_eq!(
            Demo::from_value(&d.to_value(), "demo", &mut errors),
            Some(d)
        );
        let e = Demo::from_value(&json!(null), "demo", &mut errors).unwrap();
        assert_eq!(e, Demo::default());
    }

    #[test]
    fn reports_every_bad_key() {
        let mut errors = ConfigErrors::new("<test>");
        let v = json!({"widht": 1, "ratio": "x", "zzz": 2, "extra": 5.5});
        // Bad keys keep their defaults; the errors say what went wrong.
        assert_eq!(
            Demo::from_value(&v, "demo", &mut errors),
            Some(Demo::default())
        );
        let text = errors.to_string();
        assert_eq!(errors.len(), 4, "{text}");
        assert!(
            text.contains("demo.widht: unknown key; did you mean \"width\"?"),
            "{text}"
        );
        assert!(text.contains("demo.zzz: unknown key; accepted keys: width, ratio, extra"));
        assert!(text.contains("demo.ratio: expected a number"));
        assert!(text.contains("demo.extra: expected a string"));
    }

    #[test]
    fn refuses_non_mappings() {
        let mut errors = ConfigErrors::new("<test>");
        assert_eq!(Demo::from_value(&json!([1]), "demo", &mut errors), None);
        assert_eq!(
            errors.to_string(),
            "<test>: demo: expected a mapping with keys among: width, ratio, extra, found a list"
        );
    }
}
