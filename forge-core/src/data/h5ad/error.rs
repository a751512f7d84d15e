//! The error type of `.h5ad` reading.
//!
//! Every variant names the file and, where one is at fault, the HDF5 object
//! or key, and says what was expected, so that the message alone is enough
//! for the person at the terminal. Nothing in this module reads files.

use std::fmt;
use std::path::PathBuf;

/// Result alias of the `.h5ad` reader.
pub type Result<T, E = DataError> = std::result::Result<T, E>;

/// Everything that can go wrong between an `.h5ad` file and a batch:
/// reading the file, the gene vocabulary, settings, writing.
#[derive(Debug, thiserror::Error)]
pub enum DataError {
    /// The file could not be opened or read at all.
    #[error("{}: cannot read the file: {source}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// The operating-system error.
        source: std::io::Error,
    },

    /// The file exists but is not HDF5.
    #[error(
        "{}: not an HDF5 file ({detail}); expected an AnnData `.h5ad` file, \
         which is HDF5",
        path.display()
    )]
    NotHdf5 {
        /// The file.
        path: PathBuf,
        /// What was found instead (e.g. "the file is empty").
        detail: String,
    },

    /// The file is HDF5 but cannot be parsed: truncated, corrupt, or an
    /// object has contents that contradict the AnnData format.
    #[error("{}: {}: {detail}", path.display(), Object(object))]
    Corrupt {
        /// The file.
        path: PathBuf,
        /// The HDF5 object at fault (`/` for the file as a whole).
        object: String,
        /// What is wrong and what was expected.
        detail: String,
    },

    /// The file has no expression matrix `X`.
    #[error(
        "{}: no expression matrix: expected a dataset or group `X` at the root \
         (found: {})",
        path.display(),
        list_or_nothing(found)
    )]
    NoX {
        /// The file.
        path: PathBuf,
        /// The root members that were found instead.
        found: Vec<String>,
    },

    /// An object uses an encoding this reader does not implement.
    #[error(
        "{}: {}: unsupported encoding {encoding}; supported: {supported}",
        path.display(),
        Object(object)
    )]
    UnsupportedEncoding {
        /// The file.
        path: PathBuf,
        /// The HDF5 object.
        object: String,
        /// The encoding found (an `encoding-type` value, a datatype, ...).
        encoding: String,
        /// What would have been accepted.
        supported: String,
    },

    /// Two parts of the file disagree about a dimension.
    #[error(
        "{}: {}: shape mismatch: expected {expected}, found {found}",
        path.display(),
        Object(object)
    )]
    ShapeMismatch {
        /// The file.
        path: PathBuf,
        /// The HDF5 object whose shape is wrong.
        object: String,
        /// The shape implied by the rest of the file.
        expected: String,
        /// The shape found.
        found: String,
    },

    /// The file holds no cells.
    #[error(
        "{}: the file holds 0 cells (X is 0 × {n_vars}); expected at least one cell",
        path.display()
    )]
    Empty {
        /// The file.
        path: PathBuf,
        /// Number of genes in X.
        n_vars: usize,
    },

    /// A requested obs/var column does not exist.
    #[error("{}", missing_key_message(path, frame, name, available, suggestion.as_deref()))]
    MissingKey {
        /// The file.
        path: PathBuf,
        /// The dataframe searched (`obs`, `var`, `raw/var`).
        frame: String,
        /// The key that was asked for.
        name: String,
        /// Every column of that dataframe, in file order.
        available: Vec<String>,
        /// The closest available name, when one is close.
        suggestion: Option<String>,
    },

    /// A request outside the data (a cell range past the end, raw absent).
    #[error("{}: {what}", path.display())]
    OutOfRange {
        /// The file.
        path: PathBuf,
        /// What was asked and what exists.
        what: String,
    },

    /// A gene vocabulary file (`gene_vocab.json`) is malformed.
    #[error("{}: invalid gene vocabulary: {detail}", path.display())]
    Vocab {
        /// The vocabulary file.
        path: PathBuf,
        /// What is wrong and what was expected.
        detail: String,
    },

    /// A setting (a config key or an argument) has a value the data pipeline
    /// cannot work with.
    #[error("{key}: {detail}")]
    Setting {
        /// The config key or argument, e.g. `tokenizer.max_genes`.
        key: String,
        /// The value found and what would be accepted.
        detail: String,
    },

    /// The data do not fit together or do not fit the model: no genes shared
    /// between files, too few of a file's genes in the vocabulary, a label
    /// column that cannot be used, ...
    #[error("{}: {detail}", path.display())]
    Mismatch {
        /// The file concerned.
        path: PathBuf,
        /// What does not fit and what to change.
        detail: String,
    },

    /// Writing a file failed.
    #[error("{}: cannot write: {detail}", path.display())]
    Write {
        /// The file being written.
        path: PathBuf,
        /// What failed.
        detail: String,
    },

    /// A background data-loading thread stopped unexpectedly.
    #[error("data loading: {0}")]
    Loader(String),
}

impl DataError {
    /// A [`DataError::Setting`].
    pub fn setting(key: impl Into<String>, detail: impl Into<String>) -> DataError {
        DataError::Setting {
            key: key.into(),
            detail: detail.into(),
        }
    }

    /// A [`DataError::Io`] about `path`.
    pub fn io(path: impl Into<PathBuf>, source: std::io::Error) -> DataError {
        DataError::Io {
            path: path.into(),
            source,
        }
    }
}

/// Displays an object name, with `/` for the file as a whole.
struct Object<'a>(&'a str);

impl fmt::Display for Object<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.0.is_empty() || self.0 == "/" {
            write!(f, "file structure")
        } else {
            write!(f, "`{}`", self.0)
        }
    }
}

fn list_or_nothing(items: &[String]) -> String {
    if items.is_empty() {
        "nothing".to_string()
    } else {
        items.join(", ")
    }
}

fn missing_key_message(
    path: &std::path::Path,
    frame: &str,
    name: &str,
    available: &[String],
    suggestion: Option<&str>,
) -> String {
    let mut msg = format!("{}: no column `{name}` in {frame}", path.display());
    if let Some(s) = suggestion {
        msg.push_str(&format!("; did you mean `{s}`?"));
    }
    if available.is_empty() {
        msg.push_str(&format!(" ({frame} has no columns)"));
    } else {
        msg.push_str(&format!(" (available: {})", available.join(", ")));
    }
    msg
}

/// The candidate closest to `input` (forge's one did-you-mean rule,
/// [`forge_names::closest`]).
pub(crate) fn closest(input: &str, candidates: &[String]) -> Option<String> {
    forge_names::closest(input, candidates.iter().map(String::as_str)).map(str::to_string)
}
