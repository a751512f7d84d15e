//! Masking for masked-gene pretraining (`tokenizer.masking`), seeded and
//! reproducible.
//!
//! For one tokenized cell:
//! - maskable positions are every token that is not CLS or PAD (forge's
//!   ids; with Geneformer's dictionary, not `<pad>`, `<cls>`, `<eos>`:
//!   [`SpecialIds`]);
//! - `n = max(1, round(n_maskable * mask_ratio))` of them are chosen
//!   uniformly at random without replacement (`round` is Python's: halves
//!   to even); a cell with no maskable token is left unmasked;
//! - at each chosen position `labels` holds the original id and
//!   `masked_positions` is true; elsewhere labels are -100 and masked is
//!   false;
//! - each chosen token independently becomes MASK with probability
//!   `1 - random_replace_ratio - keep_ratio`, a random gene id (uniform over
//!   `4..vocab_size`, never a special token; Geneformer: from its first
//!   gene id) with probability
//!   `random_replace_ratio`, and stays as it is with probability
//!   `keep_ratio`;
//! - values and bin ids are not touched.
//!
//! Randomness comes from [`cell_rng`]: one generator per (seed, epoch,
//! cell index), so a cell is masked the same way whichever thread builds its
//! batch and in whatever order.
//!
//! What this module is not: it does not tokenise or pad.

use rand::Rng;

use forge_core::batch::special;
use forge_core::config::MaskingConfig;

use super::DataError;
pub use super::seed::cell_rng;

/// A cell after masking.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct MaskedCell {
    /// Ids with the chosen tokens replaced.
    pub input_ids: Vec<i64>,
    /// Original ids at chosen positions, -100 elsewhere.
    pub labels: Vec<i64>,
    /// Whether each position was chosen.
    pub masked: Vec<bool>,
}

/// The token ids masking treats specially.
#[derive(Debug, Clone, PartialEq)]
pub struct SpecialIds {
    /// What a chosen token becomes (MASK).
    pub mask: i64,
    /// Ids never chosen (CLS and PAD; Geneformer's `<pad>`, `<cls>`,
    /// `<eos>`).
    pub never_masked: Vec<i64>,
    /// Random replacements are drawn from `first_gene..vocab_size`.
    pub first_gene: i64,
}

impl SpecialIds {
    /// forge's own ids ([`special`]).
    pub fn forge() -> SpecialIds {
        SpecialIds {
            mask: special::MASK,
            never_masked: vec![special::CLS, special::PAD],
            first_gene: special::FIRST_GENE_ID,
        }
    }
}

impl Default for SpecialIds {
    fn default() -> Self {
        SpecialIds::forge()
    }
}

/// Masking settings, checked.
#[derive(Debug, Clone, PartialEq)]
pub struct Masking {
    /// Fraction of maskable tokens chosen.
    pub mask_ratio: f64,
    /// Of the chosen, fraction replaced by a random gene.
    pub random_replace_ratio: f64,
    /// Of the chosen, fraction left unchanged.
    pub keep_ratio: f64,
    /// Vocabulary size (random replacements are drawn from `4..vocab_size`).
    pub vocab_size: i64,
    /// The mask token and the tokens never masked.
    pub special: SpecialIds,
}

impl Masking {
    /// From `tokenizer.masking`, checking the ratios.
    pub fn from_config(cfg: &MaskingConfig, vocab_size: usize) -> Result<Masking, DataError> {
        let in01 = |key: &str, v: f64| {
            if (0.0..=1.0).contains(&v) {
                Ok(())
            } else {
                Err(DataError::setting(
                    format!("tokenizer.masking.{key}"),
                    format!("must be within [0, 1], found {v}"),
                ))
            }
        };
        in01("mask_ratio", cfg.mask_ratio)?;
        in01("random_replace_ratio", cfg.random_replace_ratio)?;
        in01("keep_ratio", cfg.keep_ratio)?;
        if cfg.random_replace_ratio + cfg.keep_ratio > 1.0 {
            return Err(DataError::setting(
                "tokenizer.masking",
                format!(
                    "random_replace_ratio + keep_ratio must be at most 1, found {} + {}",
                    cfg.random_replace_ratio, cfg.keep_ratio
                ),
            ));
        }
        Ok(Masking {
            mask_ratio: cfg.mask_ratio,
            random_replace_ratio: cfg.random_replace_ratio,
            keep_ratio: cfg.keep_ratio,
            vocab_size: vocab_size as i64,
            special: SpecialIds::forge(),
        })
    }

    /// Masks `ids` with `rng` into a fresh [`MaskedCell`].
    pub fn apply(&self, ids: &[i64], rng: &mut impl Rng) -> MaskedCell {
        let mut out = MaskedCell {
            input_ids: ids.to_vec(),
            labels: vec![0; ids.len()],
            masked: vec![false; ids.len()],
        };
        self.mask_row(
            &mut out.input_ids,
            rng,
            &mut out.labels,
            &mut out.masked,
            &mut Vec::new(),
        );
        out
    }

    /// Masks a row holding a cell's ids (`input_ids`, changed in place) and
    /// writes its `labels` and `masked_positions` rows, all of the same
    /// length (rows of a batch, for instance); `scratch` is working memory.
    ///
    /// # Panics
    /// When a slice's length differs from `input_ids.len()`.
    pub(crate) fn mask_row(
        &self,
        input_ids: &mut [i64],
        mut rng: impl Rng,
        labels: &mut [i64],
        masked: &mut [bool],
        scratch: &mut Vec<u32>,
    ) {
        assert!(labels.len() == input_ids.len() && masked.len() == input_ids.len());
        labels.fill(special::IGNORE_INDEX);
        masked.fill(false);
        scratch.clear();
        scratch.extend(
            (0..input_ids.len() as u32)
                .filter(|&i| !self.special.never_masked.contains(&input_ids[i as usize])),
        );
        let n_maskable = scratch.len();
        if n_maskable == 0 {
            return;
        }
        let n =
            ((n_maskable as f64 * self.mask_ratio).round_ties_even() as usize).clamp(1, n_maskable);
        // Partial Fisher-Yates: the first n entries become a uniform sample.
        for i in 0..n {
            let j = rng.gen_range(i..n_maskable);
            scratch.swap(i, j);
        }
        let p_mask = 1.0 - self.random_replace_ratio - self.keep_ratio;
        let p_random = p_mask + self.random_replace_ratio;
        let first_gene = self.special.first_gene;
        let n_genes = self.vocab_size - first_gene;
        for &pos in &scratch[..n] {
            let pos = pos as usize;
            // Each position is chosen once: it still holds the cell's id.
            labels[pos] = input_ids[pos];
            masked[pos] = true;
            let r: f64 = rng.r#gen();
            if r < p_mask {
                input_ids[pos] = self.special.mask;
            } else if r < p_random && n_genes > 0 {
                input_ids[pos] = first_gene + rng.gen_range(0..n_genes);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_util::fails;

    fn masking() -> Masking {
        Masking::from_config(&MaskingConfig::default(), 100).unwrap()
    }

    #[test]
    fn never_masks_cls_or_pad_and_masks_at_least_one() {
        let m = masking();
        let ids = [special::CLS, 10, 11, special::PAD];
        for cell in 0..50 {
            let out = m.apply(&ids, &mut cell_rng(1, 0, cell));
            assert!(!out.masked[0] && !out.masked[3]);
            assert_eq!(out.masked.iter().filter(|m| **m).count(), 1);
            assert_eq!(out.labels[0], -100);
            for i in 0..4 {
                assert_eq!(out.masked[i], out.labels[i] != -100);
            }
        }
        let only_cls = m.apply(&[special::CLS], &mut cell_rng(1, 0, 0));
        assert_eq!(only_cls.masked, vec![false]);
        assert_eq!(only_cls.input_ids, vec![special::CLS]);
    }

    #[test]
    fn cls_and_pad_anywhere_are_never_masked() {
        let (c, p) = (special::CLS, special::PAD);
        let m = Masking {
            mask_ratio: 1.0,
            ..masking()
        };
        for ids in [&[9, c, 10][..], &[c, 9, p, p], &[p, 9], &[c, p]] {
            let out = m.apply(ids, &mut cell_rng(1, 0, 0));
            for (k, &id) in ids.iter().enumerate() {
                assert_eq!(out.masked[k], id != c && id != p, "{ids:?}");
            }
        }
    }

    #[test]
    fn count_uses_python_rounding() {
        let m = Masking {
            mask_ratio: 0.5,
            ..masking()
        };
        // 5 * 0.5 = 2.5 rounds to 2 (ties to even), 7 * 0.5 = 3.5 to 4.
        for (n, want) in [(5usize, 2usize), (7, 4), (1, 1)] {
            let ids: Vec<i64> = (0..n as i64).map(|i| i + 4).collect();
            let out = m.apply(&ids, &mut cell_rng(3, 0, n as u64));
            assert_eq!(out.masked.iter().filter(|m| **m).count(), want, "n={n}");
        }
    }

    #[test]
    fn same_seed_epoch_cell_same_mask() {
        let m = masking();
        let ids: Vec<i64> = (4..60).collect();
        let a = m.apply(&ids, &mut cell_rng(7, 2, 99));
        let b = m.apply(&ids, &mut cell_rng(7, 2, 99));
        let c = m.apply(&ids, &mut cell_rng(7, 3, 99));
        assert_eq!(a, b);
        assert_ne!(a, c);
    }

    #[test]
    fn bad_ratios_are_refused() {
        let cfg = MaskingConfig {
            keep_ratio: 0.6,
            random_replace_ratio: 0.6,
            ..MaskingConfig::default()
        };
        fails(Masking::from_config(&cfg, 10), &["tokenizer.masking"]);
        let cfg = MaskingConfig {
            mask_ratio: 1.5,
            ..MaskingConfig::default()
        };
        fails(Masking::from_config(&cfg, 10), &["mask_ratio", "1.5"]);
    }
}
