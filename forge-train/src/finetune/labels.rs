//! Fine-tuning targets from an obs column, and the train / validation
//! split.
//!
//! Classification takes a categorical, string, integer or boolean column
//! (the encoding of [`Corpus::task_labels`]: categories keep their order,
//! other columns get their distinct values sorted), the same ids as the
//! batch key `task_labels`; `n_classes: null` means "the classes found".
//! Regression takes a numeric column (floats, integers, booleans, or
//! strings / categories that all read as numbers). Cells with a missing
//! label are left out of training and validation.

use std::path::PathBuf;

use rand::SeedableRng;
use rand::seq::SliceRandom;
use rand_xoshiro::Xoshiro256PlusPlus;
use tch::{Device, Kind, Tensor};

use forge_core::config::{FinetuneHeadConfig, FinetuneTask};
use forge_core::error::Result;
use forge_data::h5ad::Column;
use forge_data::{Corpus, DataError};

/// Per-cell targets of a fine-tuning task, indexed by corpus cell.
#[derive(Debug, Clone, PartialEq)]
pub enum Targets {
    /// Class indices into `names`; -100 where a cell has no
    /// label.
    Classes {
        /// Class names, in id order.
        names: Vec<String>,
        /// One code per corpus cell.
        codes: Vec<i64>,
    },
    /// One number per corpus cell; NaN where a cell has no label.
    Values(Vec<f32>),
}

impl Targets {
    /// The targets of `head.task` from the obs column `key` of every file
    /// of `corpus`, checked against the head config: `n_classes` must not
    /// be smaller than the classes found, regression has one output per
    /// column (`output_dim: 1`).
    pub fn from_corpus(corpus: &Corpus, key: &str, head: &FinetuneHeadConfig) -> Result<Targets> {
        let targets = match head.task {
            FinetuneTask::Classification => Self::classes(corpus, key)?,
            FinetuneTask::Regression => Self::values(corpus, key)?,
        };
        let file = || {
            corpus
                .paths()
                .iter()
                .map(|p| p.display().to_string())
                .collect::<Vec<_>>()
                .join(", ")
        };
        match &targets {
            Targets::Classes { names, .. } => {
                if names.is_empty() {
                    return Err(mismatch(
                        corpus,
                        format!("obs column `{key}` has no labelled cell"),
                    ));
                }
                if let Some(n) = head.n_classes
                    && (n as usize) < names.len()
                {
                    return Err(DataError::setting(
                        "finetune.head.n_classes",
                        format!(
                            "is {n}, but obs column `{key}` of {} has {} classes ({}); set \
                             n_classes to null (the labels found) or at least {}",
                            file(),
                            names.len(),
                            preview(names),
                            names.len()
                        ),
                    )
                    .into());
                }
            }
            Targets::Values(v) => {
                if head.output_dim != 1 {
                    return Err(DataError::setting(
                        "finetune.head.output_dim",
                        format!(
                            "is {}, but regression reads one value per cell from obs column \
                             `{key}`; set output_dim to 1",
                            head.output_dim
                        ),
                    )
                    .into());
                }
                if v.iter().all(|x| x.is_nan()) {
                    return Err(mismatch(
                        corpus,
                        format!("obs column `{key}` has no labelled cell"),
                    ));
                }
            }
        }
        Ok(targets)
    }

    /// Classification targets from obs column `key`, encoded exactly as
    /// the batch key `task_labels` ([`Corpus::task_labels`]).
    pub fn classes(corpus: &Corpus, key: &str) -> Result<Targets> {
        let labels = corpus.task_labels(key)?;
        Ok(Targets::Classes {
            names: labels.classes,
            codes: labels.codes,
        })
    }

    /// Regression targets from the numeric obs column `key`.
    pub fn values(corpus: &Corpus, key: &str) -> Result<Targets> {
        let mut out = Vec::with_capacity(corpus.n_cells());
        for i in 0..corpus.n_files() {
            let h5 = corpus.file(i);
            let col = h5.obs_column(key)?;
            let n = col.len();
            let not_numeric = |value: &str| -> forge_core::ForgeError {
                DataError::Mismatch {
                    path: h5.path().to_path_buf(),
                    detail: format!(
                        "obs column `{key}` is not numeric (it holds {value:?}); regression \
                         (finetune.head.task) needs numbers; use classification for labels"
                    ),
                }
                .into()
            };
            let parse = |s: &str| -> Result<f32> {
                s.trim()
                    .parse::<f64>()
                    .map(|x| x as f32)
                    .map_err(|_| not_numeric(s))
            };
            match &col {
                Column::F64(v) => out.extend(v.iter().map(|&x| x as f32)),
                Column::I64(v) => out.extend(v.iter().map(|&x| x as f32)),
                Column::Bool(v) => out.extend(v.iter().map(|&b| if b { 1.0 } else { 0.0 })),
                Column::Str(v) => {
                    for s in v {
                        out.push(if s.is_empty() { f32::NAN } else { parse(s)? });
                    }
                }
                Column::Categorical { .. } => {
                    for r in 0..n {
                        out.push(match col.label(r) {
                            Some(s) => parse(s)?,
                            None => f32::NAN,
                        });
                    }
                }
            }
        }
        Ok(Targets::Values(out))
    }

    /// Number of head outputs: `n_classes` (or the classes found) for
    /// classification, `output_dim` for regression.
    pub fn n_outputs(&self, head: &FinetuneHeadConfig) -> i64 {
        match self {
            Targets::Classes { names, .. } => head.n_classes.unwrap_or(names.len() as i64),
            Targets::Values(_) => head.output_dim,
        }
    }

    /// Class names (empty for regression).
    pub fn class_names(&self) -> &[String] {
        match self {
            Targets::Classes { names, .. } => names,
            Targets::Values(_) => &[],
        }
    }

    /// Whether corpus cell `cell` has a label.
    pub fn is_labelled(&self, cell: usize) -> bool {
        match self {
            Targets::Classes { codes, .. } => codes.get(cell).is_some_and(|&c| c >= 0),
            Targets::Values(v) => v.get(cell).is_some_and(|x| !x.is_nan()),
        }
    }

    /// Number of corpus cells.
    pub fn len(&self) -> usize {
        match self {
            Targets::Classes { codes, .. } => codes.len(),
            Targets::Values(v) => v.len(),
        }
    }

    /// Whether there are no cells.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The targets of `cells` (corpus indices, batch order) on `device`:
    /// int64 `(B)` class ids, or float `(B, 1)` values.
    pub fn batch(&self, cells: &[usize], device: Device) -> Tensor {
        match self {
            Targets::Classes { codes, .. } => {
                let v: Vec<i64> = cells.iter().map(|&c| codes[c]).collect();
                Tensor::from_slice(&v).to_device(device)
            }
            Targets::Values(values) => {
                let v: Vec<f32> = cells.iter().map(|&c| values[c]).collect();
                Tensor::from_slice(&v)
                    .view([-1, 1])
                    .to_kind(Kind::Float)
                    .to_device(device)
            }
        }
    }
}

fn mismatch(corpus: &Corpus, detail: String) -> forge_core::ForgeError {
    DataError::Mismatch {
        path: corpus.paths().first().cloned().unwrap_or_else(PathBuf::new),
        detail,
    }
    .into()
}

fn preview(names: &[String]) -> String {
    let shown: Vec<&str> = names.iter().take(8).map(String::as_str).collect();
    let more = names.len().saturating_sub(shown.len());
    if more > 0 {
        format!("{}, ... {more} more", shown.join(", "))
    } else {
        shown.join(", ")
    }
}

/// The train / validation split of the labelled cells (corpus indices,
/// ascending).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Split {
    /// Cells trained on.
    pub train: Vec<usize>,
    /// Cells validated on.
    pub val: Vec<usize>,
    /// Classes with a single labelled cell: that cell trains, and the class
    /// is absent from validation.
    pub singletons: Vec<String>,
}

/// Splits the labelled cells, seeded by `seed`. Classification is
/// stratified: in every class, `round(val_split * n)` cells (at least one
/// when the class has two or more cells, never all of them) go to
/// validation; a class with one cell keeps it for training (listed in
/// [`Split::singletons`]). Regression sends a random `round(val_split * n)`
/// of the cells to validation. `val_split = 0` validates on nothing.
pub fn split_cells(targets: &Targets, val_split: f64, seed: u64) -> Result<Split> {
    if !(0.0..1.0).contains(&val_split) {
        return Err(DataError::setting(
            "training.val_split",
            format!("must be within [0, 1), found {val_split}"),
        )
        .into());
    }
    let labelled: Vec<usize> = (0..targets.len())
        .filter(|&c| targets.is_labelled(c))
        .collect();
    if val_split == 0.0 {
        return Ok(Split {
            train: labelled,
            ..Split::default()
        });
    }
    match targets {
        Targets::Classes { names, codes } => {
            let local: Vec<usize> = labelled.iter().map(|&c| codes[c] as usize).collect();
            let (train, val) =
                forge_assess::probe::stratified_split(&local, names.len(), val_split, seed);
            let mut counts = vec![0usize; names.len()];
            for &c in &local {
                counts[c] += 1;
            }
            Ok(Split {
                train: train.into_iter().map(|i| labelled[i]).collect(),
                val: val.into_iter().map(|i| labelled[i]).collect(),
                singletons: names
                    .iter()
                    .zip(&counts)
                    .filter(|&(_, &n)| n == 1)
                    .map(|(name, _)| name.clone())
                    .collect(),
            })
        }
        Targets::Values(_) => {
            let mut cells = labelled;
            let mut rng = Xoshiro256PlusPlus::seed_from_u64(seed);
            cells.shuffle(&mut rng);
            let n = cells.len();
            let n_val = ((val_split * n as f64).round() as usize).min(n.saturating_sub(1));
            let mut val = cells[..n_val].to_vec();
            let mut train = cells[n_val..].to_vec();
            val.sort_unstable();
            train.sort_unstable();
            Ok(Split {
                train,
                val,
                singletons: Vec::new(),
            })
        }
    }
}
