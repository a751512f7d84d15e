//! The description of an `.h5ad` file that `forge inspect` prints, and the
//! value statistics behind it.
//!
//! [`ValueStats`] is accumulated over windows of values (never the whole
//! matrix at once) and accounts for the implicit zeros of sparse storage.
//! This module only formats and accumulates; reading is done by
//! [`super::H5ad::summary`].

use std::fmt;
use std::path::PathBuf;

use super::{AnnDataLayout, ColumnInfo, MatrixInfo};

/// Statistics over every entry of a matrix (zeros included; NaNs counted
/// apart and left out of min/max/mean).
#[derive(Debug, Clone, PartialEq)]
pub struct ValueStats {
    /// Number of entries (cells × genes).
    pub n_entries: u64,
    /// Smallest value (`None` when there are no non-NaN entries).
    pub min: Option<f64>,
    /// Largest value.
    pub max: Option<f64>,
    /// Mean over all non-NaN entries.
    pub mean: Option<f64>,
    /// Number of entries that are not zero (NaN included).
    pub nonzero: u64,
    /// Number of NaN entries.
    pub nan: u64,
    /// Whether every finite value is a whole number (raw counts).
    pub all_integer: bool,
}

impl ValueStats {
    /// Fraction of entries that are nonzero (0 for an empty matrix).
    pub fn frac_nonzero(&self) -> f64 {
        if self.n_entries == 0 {
            0.0
        } else {
            self.nonzero as f64 / self.n_entries as f64
        }
    }

    /// Whether the values look like raw counts: whole numbers, none
    /// negative.
    pub fn looks_like_counts(&self) -> bool {
        self.all_integer && self.min.is_none_or(|m| m >= 0.0)
    }

    /// Starts accumulating over a matrix of `n_entries` entries.
    pub(crate) fn start(n_entries: u64) -> Accumulator {
        Accumulator {
            n_entries,
            seen: 0,
            min: f64::INFINITY,
            max: f64::NEG_INFINITY,
            sum: 0.0,
            nonzero: 0,
            nan: 0,
            all_integer: true,
        }
    }
}

/// Running state of [`ValueStats`].
#[derive(Debug)]
pub(crate) struct Accumulator {
    n_entries: u64,
    seen: u64,
    min: f64,
    max: f64,
    sum: f64,
    nonzero: u64,
    nan: u64,
    all_integer: bool,
}

impl Accumulator {
    /// Adds explicitly stored values.
    pub(crate) fn add(&mut self, values: &[f32]) {
        for &v in values {
            self.seen += 1;
            if v.is_nan() {
                self.nan += 1;
                self.nonzero += 1;
                continue;
            }
            let x = f64::from(v);
            self.min = self.min.min(x);
            self.max = self.max.max(x);
            self.sum += x;
            if v != 0.0 {
                self.nonzero += 1;
            }
            if self.all_integer && (!v.is_finite() || v.fract() != 0.0) {
                self.all_integer = false;
            }
        }
    }

    /// Finishes; entries never seen are implicit zeros.
    pub(crate) fn finish(self) -> ValueStats {
        let implicit = self.n_entries.saturating_sub(self.seen);
        let (mut min, mut max) = (self.min, self.max);
        if implicit > 0 {
            min = min.min(0.0);
            max = max.max(0.0);
        }
        let counted = self.n_entries.saturating_sub(self.nan);
        let some = counted > 0 && min <= max;
        ValueStats {
            n_entries: self.n_entries,
            min: some.then_some(min),
            max: some.then_some(max),
            mean: some.then(|| self.sum / counted as f64),
            nonzero: self.nonzero,
            nan: self.nan,
            all_integer: self.all_integer,
        }
    }
}

/// A matrix's storage and statistics.
#[derive(Debug, Clone, PartialEq)]
pub struct MatrixSummary {
    /// Layout, shape, element type.
    pub info: MatrixInfo,
    /// Value statistics.
    pub stats: ValueStats,
}

/// What `forge inspect` prints about an `.h5ad` file.
#[derive(Debug, Clone, PartialEq)]
pub struct Summary {
    /// The file.
    pub path: PathBuf,
    /// Current or old AnnData layout.
    pub layout: AnnDataLayout,
    /// Number of cells.
    pub n_obs: usize,
    /// Number of genes of X.
    pub n_vars: usize,
    /// X.
    pub x: MatrixSummary,
    /// raw, when present (with its own number of genes in `info.n_cols`).
    pub raw: Option<MatrixSummary>,
    /// obs columns.
    pub obs_columns: Vec<ColumnInfo>,
    /// var columns (of X).
    pub var_columns: Vec<ColumnInfo>,
}

/// Formats a number compactly: integers plainly, others with 4 significant
/// decimals or in scientific notation when very large or small.
fn num(x: f64) -> String {
    if x.is_nan() {
        "NaN".into()
    } else if x.fract() == 0.0 && x.abs() < 1e15 {
        format!("{x:.0}")
    } else if x.abs() >= 1e5 || x.abs() < 1e-3 {
        format!("{x:.3e}")
    } else {
        let s = format!("{x:.4}");
        s.trim_end_matches('0').trim_end_matches('.').to_string()
    }
}

fn opt(x: Option<f64>) -> String {
    x.map_or_else(|| "-".into(), num)
}

fn write_matrix(f: &mut fmt::Formatter<'_>, label: &str, m: &MatrixSummary) -> fmt::Result {
    let i = &m.info;
    write!(
        f,
        "{label:<10}{} {}, {} × {}",
        i.layout, i.dtype, i.n_rows, i.n_cols
    )?;
    if i.layout != super::MatrixLayout::Dense {
        write!(f, ", {} stored entries", i.stored)?;
    }
    writeln!(f, "  (`{}`)", i.object)?;
    let s = &m.stats;
    write!(
        f,
        "{:<10}min {}  max {}  mean {}  nonzero {:.2}%  ",
        "",
        opt(s.min),
        opt(s.max),
        opt(s.mean),
        100.0 * s.frac_nonzero()
    )?;
    let kind = if s.looks_like_counts() {
        "integer counts"
    } else if s.all_integer {
        "integers"
    } else {
        "non-integer (normalised?)"
    };
    write!(f, "values: {kind}")?;
    if s.nan > 0 {
        write!(f, "  NaN: {}", s.nan)?;
    }
    writeln!(f)
}

fn write_columns(f: &mut fmt::Formatter<'_>, label: &str, cols: &[ColumnInfo]) -> fmt::Result {
    writeln!(f, "{label} columns ({}):", cols.len())?;
    if cols.is_empty() {
        return writeln!(f, "  (none)");
    }
    let width = cols
        .iter()
        .map(|c| c.name.chars().count())
        .max()
        .unwrap_or(0);
    for c in cols {
        writeln!(f, "  {:<width$}  {}", c.name, c.kind)?;
    }
    Ok(())
}

impl fmt::Display for Summary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "{:<10}{}", "file", self.path.display())?;
        writeln!(f, "{:<10}{}", "format", self.layout)?;
        writeln!(
            f,
            "{:<10}{} cells × {} genes",
            "shape", self.n_obs, self.n_vars
        )?;
        write_matrix(f, "X", &self.x)?;
        match &self.raw {
            Some(r) => write_matrix(f, "raw", r)?,
            None => writeln!(f, "{:<10}absent", "raw")?,
        }
        write_columns(f, "obs", &self.obs_columns)?;
        write_columns(f, "var", &self.var_columns)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn implicit_zeros_enter_the_statistics() {
        let mut acc = ValueStats::start(4);
        acc.add(&[2.0, 4.0]);
        let s = acc.finish();
        assert_eq!(s.min, Some(0.0));
        assert_eq!(s.max, Some(4.0));
        assert_eq!(s.mean, Some(1.5));
        assert_eq!(s.frac_nonzero(), 0.5);
        assert!(s.all_integer && s.looks_like_counts());
    }

    #[test]
    fn nans_and_fractions_are_reported() {
        let mut acc = ValueStats::start(3);
        acc.add(&[-0.5, f32::NAN, 1.0]);
        let s = acc.finish();
        assert_eq!(s.nan, 1);
        assert_eq!(s.min, Some(-0.5));
        assert_eq!(s.mean, Some(0.25));
        assert!(!s.all_integer);
    }

    #[test]
    fn numbers_format_compactly() {
        assert_eq!(num(3.0), "3");
        assert_eq!(num(0.12345), "0.1235");
        assert_eq!(num(-2.5), "-2.5");
        assert_eq!(num(1e-5), "1.000e-5");
    }
}
