//! The two error types of the config schema.
//!
//! [`ConfigError`] is one problem at one key path (`model.hidden_dim`);
//! [`ConfigErrors`] is every problem found while loading or checking one
//! config, tagged with where the config came from (a file path, `<string>`,
//! ...). Loading never stops at the first problem: the user sees them all in
//! one go, one line each.
//!
//! This module only formats and collects; the wording of each problem is
//! decided where it is detected (`value.rs`, `section.rs`, `checks.rs`).

use std::fmt;

/// One problem in a config, at one key path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    /// Dotted key path of the offending key, e.g. `model.hidden_dim` or
    /// `eval.benchmarks[1].name`; empty for problems with the document as a
    /// whole (syntax errors, unreadable file).
    pub path: String,
    /// What is wrong and what would have been accepted, for a person.
    pub message: String,
}

impl ConfigError {
    /// A problem at `path`.
    pub fn new(path: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            path: path.into(),
            message: message.into(),
        }
    }
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.path.is_empty() {
            f.write_str(&self.message)
        } else {
            write!(f, "{}: {}", self.path, self.message)
        }
    }
}

impl std::error::Error for ConfigError {}

/// Every problem found in one config.
///
/// Displayed as one line per problem, each prefixed with the source:
/// `config.yaml: model.pooling: invalid value "bad"; accepted values: cls, mean`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigErrors {
    /// Where the config came from: a file path, `<string>`, ...
    pub source_name: String,
    /// The problems, in the order they were found.
    pub errors: Vec<ConfigError>,
}

impl ConfigErrors {
    /// An empty collection for a config read from `source_name`.
    pub fn new(source_name: impl Into<String>) -> Self {
        Self {
            source_name: source_name.into(),
            errors: Vec::new(),
        }
    }

    /// A collection holding exactly one problem.
    pub fn single(
        source_name: impl Into<String>,
        path: impl Into<String>,
        message: impl Into<String>,
    ) -> Self {
        let mut errors = Self::new(source_name);
        errors.push(path, message);
        errors
    }

    /// Records a problem at `path`.
    pub fn push(&mut self, path: impl Into<String>, message: impl Into<String>) {
        self.errors.push(ConfigError::new(path, message));
    }

    /// Number of problems recorded.
    pub fn len(&self) -> usize {
        self.errors.len()
    }

    /// Whether no problem was recorded.
    pub fn is_empty(&self) -> bool {
        self.errors.is_empty()
    }

    /// The problems, in the order they were found.
    pub fn iter(&self) -> std::slice::Iter<'_, ConfigError> {
        self.errors.iter()
    }

    /// Whether any problem concerns exactly the key `path`.
    pub fn has_path(&self, path: &str) -> bool {
        self.errors.iter().any(|e| e.path == path)
    }

    /// Each problem as a warning line, `warning: SOURCE: PATH: MESSAGE`,
    /// for problems that do not stop a run.
    pub fn warning_lines(&self) -> Vec<String> {
        self.errors
            .iter()
            .map(|e| format!("warning: {}: {e}", self.source_name))
            .collect()
    }

    /// Prints [`Self::warning_lines`] on stderr, one per line.
    pub fn print_warnings(&self) {
        for line in self.warning_lines() {
            eprintln!("{line}");
        }
    }

    /// `Ok(value)` when nothing was recorded, else `Err(self)`.
    pub fn into_result<T>(self, value: T) -> Result<T, Self> {
        if self.is_empty() {
            Ok(value)
        } else {
            Err(self)
        }
    }
}

impl fmt::Display for ConfigErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.errors.is_empty() {
            return write!(f, "{}: no configuration problems", self.source_name);
        }
        for (i, error) in self.errors.iter().enumerate() {
            if i > 0 {
                f.write_str("\n")?;
            }
            write!(f, "{}: {error}", self.source_name)?;
        }
        Ok(())
    }
}

impl std::error::Error for ConfigErrors {}

impl<'a> IntoIterator for &'a ConfigErrors {
    type Item = &'a ConfigError;
    type IntoIter = std::slice::Iter<'a, ConfigError>;

    fn into_iter(self) -> Self::IntoIter {
        self.errors.iter()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_line_per_problem_prefixed_with_the_source() {
        let mut errors = ConfigErrors::new("config.yaml");
        errors.push(
            "model.pooling",
            "invalid value \"bad\"; accepted values: cls, mean",
        );
        errors.push("", "YAML syntax error at line 3, column 1: oops");
        assert_eq!(
            errors.to_string(),
            "config.yaml: model.pooling: invalid value \"bad\"; accepted values: cls, mean\n\
             config.yaml: YAML syntax error at line 3, column 1: oops"
        );
        assert_eq!(errors.len(), 2);
        assert!(errors.has_path("model.pooling"));
        assert!(errors.into_result(()).is_err());
        assert_eq!(ConfigErrors::new("x").into_result(5), Ok(5));
    }
}
