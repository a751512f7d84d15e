//! The error type of forge-core.
//!
//! Every variant is written for the person at the terminal: it names the
//! file, key or value at fault and says what would have been accepted.
//! Configuration problems keep their own type ([`crate::config::ConfigErrors`])
//! because one load can report many of them at once.

use std::path::PathBuf;

/// Result alias used throughout forge-core.
pub type Result<T, E = ForgeError> = std::result::Result<T, E>;

/// Everything that can go wrong in forge-core.
#[derive(Debug, thiserror::Error)]
pub enum ForgeError {
    /// One or more problems in a configuration (file or programmatic).
    #[error(transparent)]
    Config(#[from] crate::config::ConfigErrors),

    /// A batch tensor has the wrong shape or dtype.
    #[error("invalid batch: `{key}` {message}")]
    Batch {
        /// The batch key at fault, e.g. `values`.
        key: &'static str,
        /// What is wrong and what was expected.
        message: String,
    },

    /// No model is registered under the requested name.
    #[error("{}", unknown_model_message(name, available, suggestion.as_deref()))]
    UnknownModel {
        /// The name that was asked for.
        name: String,
        /// Every registered name, sorted.
        available: Vec<String>,
        /// The closest registered name, when one is close.
        suggestion: Option<String>,
    },

    /// Two model types claim the same registry name.
    #[error(
        "model name `{name}` is registered twice: by `{first}` and by `{second}`; \
         give one of them another name"
    )]
    DuplicateModel {
        /// The contested registry name.
        name: String,
        /// Type registered first.
        first: String,
        /// Type registered second.
        second: String,
    },

    /// A file could not be read or written.
    #[error("{}: {source}", path.display())]
    Io {
        /// The file involved.
        path: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },

    /// A data file could not be read or written (names the file and key).
    #[error(transparent)]
    Data(#[from] crate::data_error::DataError),

    /// A checkpoint or weights file is missing, unreadable or does not fit.
    #[error("{}: {message}", path.display())]
    Checkpoint {
        /// The file or folder at fault.
        path: PathBuf,
        /// What is wrong and what was expected.
        message: String,
    },

    /// Training stopped because the loss stopped being a number.
    #[error(
        "the loss became {value} at step {step} (epoch {epoch}); training stopped. The last good \
         checkpoint is kept. Lower training.optimizer.lr, raise warmup_steps, or check the data \
         for NaN/inf values"
    )]
    NonFiniteLoss {
        /// The loss value (NaN or inf).
        value: f64,
        /// Optimizer step.
        step: i64,
        /// Epoch.
        epoch: usize,
    },

    /// The loss of a batch with no labelled position (every label is -100)
    /// is not a number: there was nothing to predict.
    #[error(
        "the loss became NaN at step {step} (epoch {epoch}) because the batch has no labelled \
         position: none of its cells has a gene token to mask (every cell tokenized to CLS \
         alone, e.g. no value above 0 for rank_value), so there is nothing to predict; this is \
         not the learning rate. Check the data's values (data.use_raw: true reads adata.raw \
         when X holds scaled values)"
    )]
    NoLabelledPosition {
        /// Optimizer step.
        step: i64,
        /// Epoch.
        epoch: usize,
    },

    /// libtorch reported an error.
    #[error("libtorch: {0}")]
    Torch(#[from] tch::TchError),

    /// A process of a distributed run failed, or a collective with the
    /// other ranks did (the message names the ranks).
    #[error("distributed training: {0}")]
    Distributed(String),
}

fn unknown_model_message(name: &str, available: &[String], suggestion: Option<&str>) -> String {
    let mut msg = format!("no model named `{name}` is registered");
    if let Some(s) = suggestion {
        msg.push_str(&format!("; did you mean `{s}`?"));
    }
    if available.is_empty() {
        msg.push_str(" (no models are registered: is the crate defining them linked?)");
    } else {
        msg.push_str(&format!(" (available: {})", available.join(", ")));
    }
    msg
}

impl ForgeError {
    /// A checkpoint problem at `path`.
    pub fn checkpoint(path: impl Into<PathBuf>, message: impl Into<String>) -> Self {
        ForgeError::Checkpoint {
            path: path.into(),
            message: message.into(),
        }
    }

    /// Wraps an I/O error with the path it concerns.
    pub fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        ForgeError::Io {
            path: path.into(),
            source,
        }
    }
}

impl From<crate::config::ConfigError> for ForgeError {
    fn from(err: crate::config::ConfigError) -> Self {
        ForgeError::Config(crate::config::ConfigErrors {
            source_name: "model config".to_string(),
            errors: vec![err],
        })
    }
}
