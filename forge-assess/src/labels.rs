//! String labels turned into dense class codes, the way scikit-learn's
//! `LabelEncoder` does it: class names sorted, code = position in that list.

use super::{AssessError, Result};

/// One class code per cell plus the sorted class names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Labels {
    names: Vec<String>,
    codes: Vec<usize>,
}

impl Labels {
    /// Encodes `labels`: the distinct values, sorted, become the class names.
    pub fn new<S: AsRef<str>>(labels: &[S]) -> Self {
        let mut names: Vec<String> = labels.iter().map(|s| s.as_ref().to_owned()).collect();
        names.sort();
        names.dedup();
        let codes = labels
            .iter()
            .map(|s| {
                names
                    .binary_search_by(|n| n.as_str().cmp(s.as_ref()))
                    .unwrap_or_default()
            })
            .collect();
        Labels { names, codes }
    }

    /// Encodes `labels` after checking there is one per cell.
    pub(crate) fn for_cells<S: AsRef<str>>(
        labels: &[S],
        n_cells: usize,
        what: &'static str,
    ) -> Result<Self> {
        if labels.len() != n_cells {
            return Err(AssessError::LengthMismatch {
                what,
                expected: n_cells,
                got: labels.len(),
            });
        }
        Ok(Labels::new(labels))
    }

    /// Sorted distinct class names; a cell's code indexes this list.
    pub fn names(&self) -> &[String] {
        &self.names
    }

    /// One class code per cell.
    pub fn codes(&self) -> &[usize] {
        &self.codes
    }

    /// Number of distinct classes.
    pub fn n_classes(&self) -> usize {
        self.names.len()
    }

    /// Number of cells.
    pub fn len(&self) -> usize {
        self.codes.len()
    }

    /// Whether there are no cells.
    pub fn is_empty(&self) -> bool {
        self.codes.is_empty()
    }

    /// Cells per class, indexed by code.
    pub fn counts(&self) -> Vec<usize> {
        class_counts(&self.codes, self.names.len())
    }

    /// Errors unless there are at least two classes.
    pub(crate) fn require_two(&self, what: &'static str, key: &'static str) -> Result<()> {
        if self.n_classes() < 2 {
            return Err(AssessError::TooFewClasses {
                what,
                key,
                found: self.n_classes(),
            });
        }
        Ok(())
    }
}

/// Counts of each code in `0..n_classes`.
pub(crate) fn class_counts(codes: &[usize], n_classes: usize) -> Vec<usize> {
    let mut counts = vec![0; n_classes];
    for &c in codes {
        counts[c] += 1;
    }
    counts
}

/// Re-codes arbitrary codes to `0..k` (in order of first sight); returns
/// the dense codes and `k`.
pub(crate) fn densify(codes: &[usize]) -> (Vec<usize>, usize) {
    let mut map = std::collections::HashMap::new();
    let dense = codes
        .iter()
        .map(|c| {
            let next = map.len();
            *map.entry(*c).or_insert(next)
        })
        .collect();
    (dense, map.len())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encodes_sorted_like_label_encoder() {
        let l = Labels::new(&["b", "a", "c", "a"]);
        assert_eq!(l.names(), ["a", "b", "c"]);
        assert_eq!(l.codes(), [1, 0, 2, 0]);
        assert_eq!(l.counts(), [2, 1, 1]);
        assert!(l.require_two("x", "cell-type").is_ok());
        let one = Labels::new(&["a", "a"]);
        let err = one.require_two("linear_probe", "cell-type").unwrap_err();
        assert!(
            err.to_string()
                .contains("at least 2 distinct cell-type labels, found 1")
        );
    }

    #[test]
    fn length_is_checked() {
        let err = Labels::for_cells(&["a"], 3, "labels").unwrap_err();
        assert_eq!(
            err.to_string(),
            "labels has 1 entries but the embedding has 3 cells; give one per cell"
        );
    }

    #[test]
    fn densify_recodes() {
        assert_eq!(densify(&[7, 3, 7, 9]), (vec![0, 1, 0, 2], 3));
    }
}
