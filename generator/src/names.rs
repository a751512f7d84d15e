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

pub use forge_names::to_snake_case;
use forge_names::{NameProblem, model_name_problem};

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
        let refuse = |reason: String, suggestion: Option<String>| NameError {
            name: name.to_string(),
            reason,
            suggestion,
        };
        match model_name_problem(name) {
            None => Ok(Self::from_snake(name)),
            Some(NameProblem::Empty) => Err(refuse("it is empty".into(), None)),
            Some(NameProblem::NotSnakeCase(reason)) => {
                Err(refuse(reason, to_snake_case(name).filter(|s| s != name)))
            }
            Some(NameProblem::Keyword) => Err(refuse(
                "it is a Rust keyword, so it cannot name a module".into(),
                Some(format!("{name}_model")),
            )),
            Some(NameProblem::ReservedModule) => Err(refuse(
                format!("a module named `{name}` would shadow the crate or harness of that name"),
                Some(format!("{name}_model")),
            )),
        }
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

fn capitalize(s: &str) -> String {
    let mut chars = s.chars();
    match chars.next() {
        Some(c) => c.to_ascii_uppercase().to_string() + chars.as_str(),
        None => String::new(),
    }
}

/// Whether `word` is a Rust keyword (also used for option names).
pub fn is_keyword(word: &str) -> bool {
    forge_names::RUST_KEYWORDS.contains(&word)
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
