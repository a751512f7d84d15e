//! Model names: validation of what the user typed, and the casings a name
//! takes in generated code and prose.
//!
//! A model name is the registry name (`model.architecture` in a config), the
//! module and file name, and the root of every other spelling: `MyModel`
//! (types), `MY_MODEL` (constants), `my-model` (kebab) and `my model`
//! (words in prose). This module only checks the name on its own; clashes
//! with what already exists in a tree are checked by the caller, which knows
//! the tree.

use std::fmt;

/// Words Rust reserves in edition 2024 (strict, reserved and the weak
/// `union`), none of which can be a module name.
const RUST_KEYWORDS: &[&str] = &[
    "abstract", "as", "async", "await", "become", "box", "break", "const", "continue", "crate",
    "do", "dyn", "else", "enum", "extern", "false", "final", "fn", "for", "gen", "if", "impl",
    "in", "let", "loop", "macro", "match", "mod", "move", "mut", "override", "priv", "pub", "ref",
    "return", "self", "static", "struct", "super", "trait", "true", "try", "type", "typeof",
    "union", "unsafe", "unsized", "use", "virtual", "where", "while", "yield",
];

/// Module names that would shadow a crate every module can name (`core::`,
/// `std::`) or that Rust's test harness and build use.
const RESERVED_MODULES: &[&str] = &["alloc", "core", "proc_macro", "std", "test", "tests"];

/// A validated model name with all of its casings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ModelName {
    /// `my_model`: registry name, module, file name.
    pub snake: String,
    /// `MyModel`: the model struct.
    pub camel: String,
    /// `MY_MODEL`: constants.
    pub screaming: String,
    /// `my-model`: kebab case (crate-style names, CLI examples).
    pub kebab: String,
    /// `my model`: words in prose.
    pub words: String,
}

/// Why a name was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NameError {
    /// The name as typed.
    pub name: String,
    /// What is wrong with it.
    pub reason: String,
    /// A corrected spelling, when one is obvious.
    pub suggestion: Option<String>,
}

impl fmt::Display for NameError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "`{}` cannot be a model name: {}", self.name, self.reason)?;
        if let Some(s) = &self.suggestion {
            write!(f, "; did you mean `{s}`?")?;
        }
        write!(f, "\n  {ACCEPTED}")
    }
}

impl std::error::Error for NameError {}

/// What a valid name looks like, for error messages.
pub const ACCEPTED: &str = "accepted: snake_case of lowercase ASCII letters, digits and single \
                            underscores, starting with a letter, not a Rust keyword \
                            (e.g. `my_model`, `scgpt_v2`)";

impl ModelName {
    /// Checks `name` and derives its casings.
    pub fn parse(name: &str) -> Result<Self, NameError> {
        check_snake_case(name)?;
        if RUST_KEYWORDS.contains(&name) {
            return Err(NameError {
                name: name.to_string(),
                reason: "it is a Rust keyword, so it cannot name a module".to_string(),
                suggestion: Some(format!("{name}_model")),
            });
        }
        if RESERVED_MODULES.contains(&name) {
            return Err(NameError {
                name: name.to_string(),
                reason: format!(
                    "a module named `{name}` would shadow the crate or harness of that name"
                ),
                suggestion: Some(format!("{name}_model")),
            });
        }
        Ok(Self::from_snake(name))
    }

    /// The casings of a name already known to be snake_case (existing
    /// models found in a tree).
    pub fn from_snake(name: &str) -> Self {
        let parts: Vec<&str> = name.split('_').collect();
        let camel = parts.iter().map(|p| capitalize(p)).collect::<String>();
        ModelName {
            snake: name.to_string(),
            camel,
            screaming: name.to_uppercase(),
            kebab: parts.join("-"),
            words: parts.join(" "),
        }
    }

    /// `My model`: the words with the first letter capitalised, for the
    /// start of a sentence.
    pub fn sentence(&self) -> String {
        capitalize(&self.words)
    }
}

/// Snake_case check with a precise reason and a suggested spelling.
fn check_snake_case(name: &str) -> Result<(), NameError> {
    let refuse = |reason: &str| NameError {
        name: name.to_string(),
        reason: reason.to_string(),
        suggestion: to_snake_case(name).filter(|s| s != name),
    };
    if name.is_empty() {
        return Err(refuse("it is empty"));
    }
    if let Some(c) = name
        .chars()
        .find(|c| !(c.is_ascii_lowercase() || c.is_ascii_digit() || *c == '_'))
    {
        let reason = if c.is_ascii_uppercase() {
            "it has uppercase letters".to_string()
        } else {
            format!("it contains {c:?}")
        };
        return Err(refuse(&reason));
    }
    if !name.starts_with(|c: char| c.is_ascii_lowercase()) {
        return Err(refuse("it must start with a lowercase letter"));
    }
    if name.ends_with('_') || name.contains("__") {
        return Err(refuse(
            "underscores separate words: no double or trailing underscore",
        ));
    }
    Ok(())
}

/// A best-effort snake_case spelling of `name` (`MyModel`, `my-model`,
/// `My Model` -> `my_model`), or `None` when nothing sensible remains.
pub fn to_snake_case(name: &str) -> Option<String> {
    let mut out = String::new();
    let mut prev_lower_or_digit = false;
    for c in name.chars() {
        if c.is_ascii_alphanumeric() {
            if c.is_ascii_uppercase() && prev_lower_or_digit && !out.ends_with('_') {
                out.push('_');
            }
            out.push(c.to_ascii_lowercase());
            prev_lower_or_digit = c.is_ascii_lowercase() || c.is_ascii_digit();
        } else {
            if !out.is_empty() && !out.ends_with('_') {
                out.push('_');
            }
            prev_lower_or_digit = false;
        }
    }
    let out = out.trim_matches('_').to_string();
    let out = out.trim_start_matches(|c: char| c.is_ascii_digit() || c == '_');
    (!out.is_empty()).then(|| out.to_string())
}

fn capitalize(s: &str) -> String {
    let mut chars = s.chars();
    match chars.next() {
        Some(c) => c.to_ascii_uppercase().to_string() + chars.as_str(),
        None => String::new(),
    }
}

/// Whether `word` is a Rust keyword (also used for option names).
pub fn is_keyword(word: &str) -> bool {
    RUST_KEYWORDS.contains(&word)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn casings() {
        let n = ModelName::parse("scgpt_v2_model").unwrap();
        assert_eq!(n.camel, "ScgptV2Model");
        assert_eq!(n.screaming, "SCGPT_V2_MODEL");
        assert_eq!(n.kebab, "scgpt-v2-model");
        assert_eq!(n.words, "scgpt v2 model");
        assert_eq!(n.sentence(), "Scgpt v2 model");
    }

    #[test]
    fn refusals_say_why_and_suggest() {
        let cases = [
            ("MyModel", "uppercase", Some("my_model")),
            ("my-model", "contains '-'", Some("my_model")),
            ("2model", "start with a lowercase letter", Some("model")),
            ("my__model", "double or trailing", Some("my_model")),
            ("model_", "double or trailing", Some("model")),
            ("", "empty", None),
            ("type", "Rust keyword", Some("type_model")),
            ("core", "shadow", Some("core_model")),
        ];
        for (name, reason, suggestion) in cases {
            let err = ModelName::parse(name).unwrap_err();
            assert!(err.reason.contains(reason), "{name}: {err}");
            assert_eq!(err.suggestion.as_deref(), suggestion, "{name}");
            assert!(err.to_string().contains("accepted: snake_case"), "{err}");
        }
    }

    #[test]
    fn snake_case_guesses() {
        assert_eq!(
            to_snake_case("TransformerEncoder").unwrap(),
            "transformer_encoder"
        );
        assert_eq!(to_snake_case("My Model 2").unwrap(), "my_model_2");
        assert_eq!(to_snake_case("--"), None);
    }
}
