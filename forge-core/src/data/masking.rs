//! Masking for masked-gene pretraining (`tokenizer.masking`), seeded and
//! reproducible.
//!
//! For one tokenized cell:
//! - maskable positions are every token that is not CLS or PAD;
//! - `n = max(1, round(n_maskable * mask_ratio))` of them are chosen
//!   uniformly at random without replacement (`round` is Python's: halves
//!   to even); a cell with no maskable token is left unmasked;
//! - at each chosen position `labels` holds the original id and
//!   `masked_positions` is true; elsewhere labels are -100 and masked is
//!   false;
//! - each chosen token independently becomes MASK with probability
//!   `1 - random_replace_ratio - keep_ratio`, a random gene id (uniform over
//!   `4..vocab_size`, never a special token) with probability
//!   `random_replace_ratio`, and stays as it is with probability
//!   `keep_ratio`;
//! - values and bin ids are not touched.
//!
//! Randomness comes from [`cell_rng`]: one generator per (seed, epoch,
//! cell index), so a cell is masked the same way whichever thread builds its
//! batch and in whatever order.
//!
//! What this module is not: it does not tokenise or pad.

use rand::{Rng, SeedableRng};
use rand_xoshiro::Xoshiro256PlusPlus;

use crate::batch::special;
use crate::config::MaskingConfig;

use super::DataError;

/// The generator of one cell in one epoch.
pub fn cell_rng(seed: u64, epoch: u64, cell: u64) -> Xoshiro256PlusPlus {
    Xoshiro256PlusPlus::seed_from_u64(mix(mix(mix(seed) ^ epoch) ^ cell))
}

/// SplitMix64 finaliser: spreads nearby inputs over the whole range.
pub(crate) fn mix(x: u64) -> u64 {
    let mut z = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

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
        })
    }

    /// Masks `ids` with `rng` into a fresh [`MaskedCell`].
    pub fn apply(&self, ids: &[i64], rng: &mut impl Rng) -> MaskedCell {
        let mut out = MaskedCell::default();
        let mut scratch = Vec::new();
        self.apply_into(ids, rng, &mut out, &mut scratch);
        out
    }

    /// Masks `ids` into `out`, reusing its buffers.
    pub fn apply_into(
        &self,
        ids: &[i64],
        rng: &mut impl Rng,
        out: &mut MaskedCell,
        scratch: &mut Vec<u32>,
    ) {
        out.input_ids.resize(ids.len(), 0);
        out.labels.resize(ids.len(), 0);
        out.masked.resize(ids.len(), false);
        self.apply_to(
            ids,
            rng,
            &mut out.input_ids,
            &mut out.labels,
            &mut out.masked,
            scratch,
        );
    }

    /// Masks `ids` into three slices of the same length (rows of a batch's
    /// `input_ids`, `labels` and `masked_positions`, for instance): the same
    /// result, and the same draws from `rng`, as [`Masking::apply_into`].
    ///
    /// # Panics
    /// When a slice's length differs from `ids.len()`.
    #[inline]
    pub fn apply_to(
        &self,
        ids: &[i64],
        rng: &mut impl Rng,
        input_ids: &mut [i64],
        labels: &mut [i64],
        masked: &mut [bool],
        scratch: &mut Vec<u32>,
    ) {
        input_ids.copy_from_slice(ids);
        maskable_positions(ids, scratch);
        self.mask_in_place(input_ids, &mut *rng, labels, masked, scratch);
    }

    /// [`Masking::apply_to`] on a row that already holds the cell's ids
    /// (`input_ids`, masked in place), with its maskable positions given:
    /// `maskable` must hold exactly the positions that are neither CLS nor
    /// PAD, ascending ([`maskable_positions`], or what the loader's fast
    /// path knows without a scan); it is reordered in place.
    #[inline]
    pub(crate) fn mask_in_place(
        &self,
        input_ids: &mut [i64],
        mut rng: impl Rng,
        labels: &mut [i64],
        masked: &mut [bool],
        maskable: &mut [u32],
    ) {
        debug_assert!({
            let mut check = Vec::new();
            maskable_positions(input_ids, &mut check);
            check == maskable
        });
        labels.fill(special::IGNORE_INDEX);
        masked.fill(false);
        let scratch = maskable;
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
        let n_genes = self.vocab_size - special::FIRST_GENE_ID;
        for &pos in &scratch[..n] {
            let pos = pos as usize;
            // Each position is chosen once: it still holds the cell's id.
            labels[pos] = input_ids[pos];
            masked[pos] = true;
            let r: f64 = rng.r#gen();
            if r < p_mask {
                input_ids[pos] = special::MASK;
            } else if r < p_random && n_genes > 0 {
                input_ids[pos] = special::FIRST_GENE_ID + rng.gen_range(0..n_genes);
            }
        }
    }
}

/// The positions of `ids` that are neither CLS nor PAD, into `out`. The
/// usual sequence (CLS first, genes after) is recognised with one
/// vectorised count and written as a range.
pub(crate) fn maskable_positions(ids: &[i64], out: &mut Vec<u32>) {
    out.clear();
    let special = |id: i64| id == special::CLS || id == special::PAD;
    let n_special = ids
        .iter()
        .map(|&id| usize::from(special(id)))
        .sum::<usize>();
    match ids.first() {
        Some(&first) if n_special == usize::from(special(first)) => {
            let from = n_special as u32;
            out.extend(from..ids.len() as u32);
        }
        _ => out.extend(
            ids.iter()
                .enumerate()
                .filter(|(_, id)| !special(**id))
                .map(|(i, _)| i as u32),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
    fn maskable_positions_skip_every_cls_and_pad() {
        let (c, p) = (special::CLS, special::PAD);
        let cases: [&[i64]; 7] = [
            &[],
            &[c],
            &[c, 9, 10],
            &[9, 10, 11],
            &[9, c, 10],
            &[c, 9, p, p],
            &[p, 9],
        ];
        let mut out = Vec::new();
        for ids in cases {
            maskable_positions(ids, &mut out);
            let naive: Vec<u32> = (0..ids.len() as u32)
                .filter(|&i| ids[i as usize] != c && ids[i as usize] != p)
                .collect();
            assert_eq!(out, naive, "{ids:?}");
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
        let err = Masking::from_config(&cfg, 10).unwrap_err().to_string();
        assert!(err.contains("tokenizer.masking"), "{err}");
        let cfg = MaskingConfig {
            mask_ratio: 1.5,
            ..MaskingConfig::default()
        };
        let err = Masking::from_config(&cfg, 10).unwrap_err().to_string();
        assert!(err.contains("mask_ratio") && err.contains("1.5"), "{err}");
    }
}
