//! `training.sampling`: the order in which an epoch visits the training
//! cells, as scModelForge's `WeightedCellSampler` draws it.
//!
//! With `strategy: weighted` every epoch draws as many cells as the
//! training set holds. Cell `i` of class `c` (its `label_key` obs value)
//! has the inverse-frequency weight `n / count(c)`, normalised to sum to 1;
//! with `curriculum_warmup_epochs: W > 0` the weights of epoch `e`
//! (0-based) are `(1 - a) * uniform + a * inverse_frequency` with
//! `a = min(1, e / W)`, so the first epoch is uniform and epoch `W` fully
//! weighted. Draws are with replacement (a multinomial) unless
//! `replacement: false` (then a weighted random permutation: every cell
//! once, in an order where heavy cells tend to come first).
//!
//! Draws are seeded by `training.seed` and the epoch, so an epoch is the
//! same on resume; the random numbers are forge's own, not torch's. Class
//! frequencies are counted over the training cells only (the validation
//! split excluded), as scModelForge counts them on its training subset.
//!
//! What this module is not: it does not batch (see [`super::loader`]).

use std::collections::HashMap;
use std::sync::Arc;

use rand::Rng;

use super::DataError;
use super::corpus::Corpus;
use super::seed::epoch_rng;
use forge_core::config::{SamplingConfig, SamplingStrategy};

/// Inverse-frequency weighted draws of training cells.
#[derive(Debug, Clone, PartialEq)]
pub struct WeightedSampler {
    /// Class of every corpus cell.
    classes: Arc<Vec<u32>>,
    /// Class names, by class code.
    names: Vec<String>,
    replacement: bool,
    warmup_epochs: u64,
    seed: u64,
}

impl WeightedSampler {
    /// The sampler `training.sampling` asks for over `corpus`, or `None` for
    /// `strategy: random` (a plain shuffle). The classes come from the obs
    /// column `label_key`, which every file must have.
    pub fn from_config(
        corpus: &Corpus,
        cfg: &SamplingConfig,
        seed: u64,
    ) -> Result<Option<WeightedSampler>, DataError> {
        if cfg.strategy == SamplingStrategy::Random {
            return Ok(None);
        }
        if cfg.curriculum_warmup_epochs < 0 {
            return Err(DataError::setting(
                "training.sampling.curriculum_warmup_epochs",
                format!(
                    "must be 0 (no curriculum) or a positive number of epochs, found {}",
                    cfg.curriculum_warmup_epochs
                ),
            ));
        }
        let mut index: HashMap<String, u32> = HashMap::new();
        let mut names = Vec::new();
        let mut classes = Vec::with_capacity(corpus.n_cells());
        for f in 0..corpus.n_files() {
            let h5 = corpus.file(f);
            let column = h5.obs_column(&cfg.label_key).map_err(|_| {
                let have: Vec<String> = h5.obs_columns().into_iter().map(|c| c.name).collect();
                DataError::setting(
                    "training.sampling.label_key",
                    format!(
                        "{} has no obs column `{}` to weight cells by; its obs columns: {}",
                        h5.path().display(),
                        cfg.label_key,
                        have.join(", ")
                    ),
                )
            })?;
            for i in 0..column.len() {
                let label = column.label(i).unwrap_or("unknown");
                let next = names.len() as u32;
                let code = *index.entry(label.to_string()).or_insert_with(|| {
                    names.push(label.to_string());
                    next
                });
                classes.push(code);
            }
        }
        Ok(Some(WeightedSampler {
            classes: Arc::new(classes),
            names,
            replacement: cfg.replacement,
            warmup_epochs: cfg.curriculum_warmup_epochs as u64,
            seed,
        }))
    }

    /// The raw inverse-frequency weight `n / count` of each class present
    /// among `cells` (corpus indices), by class name.
    pub fn class_weights(&self, cells: &[usize]) -> Vec<(String, f64)> {
        let counts = self.counts(cells);
        let n = cells.len() as f64;
        counts
            .iter()
            .enumerate()
            .filter(|&(_, &c)| c > 0)
            .map(|(k, &c)| (self.names[k].clone(), n / c as f64))
            .collect()
    }

    fn counts(&self, cells: &[usize]) -> Vec<usize> {
        let mut counts = vec![0usize; self.names.len()];
        for &c in cells {
            counts[self.classes[c] as usize] += 1;
        }
        counts
    }

    /// The probability of drawing each of `cells` (corpus indices) in
    /// `epoch`, after the curriculum.
    pub fn epoch_weights(&self, cells: &[usize], epoch: u64) -> Vec<f64> {
        let n = cells.len();
        if n == 0 {
            return Vec::new();
        }
        let counts = self.counts(cells);
        let inv: Vec<f64> = cells
            .iter()
            .map(|&c| n as f64 / counts[self.classes[c] as usize] as f64)
            .collect();
        let total: f64 = inv.iter().sum();
        let alpha = if self.warmup_epochs == 0 {
            1.0
        } else {
            (epoch as f64 / self.warmup_epochs as f64).min(1.0)
        };
        let uniform = 1.0 / n as f64;
        inv.iter()
            .map(|w| (1.0 - alpha) * uniform + alpha * w / total)
            .collect()
    }

    /// The order of `epoch`: `cells.len()` positions into `cells`.
    pub fn epoch_order(&self, cells: &[usize], epoch: u64) -> Vec<u32> {
        let weights = self.epoch_weights(cells, epoch);
        let mut rng = epoch_rng(self.seed, epoch, 0x5a3b);
        if self.replacement {
            let mut cumulative = Vec::with_capacity(weights.len());
            let mut acc = 0.0;
            for w in &weights {
                acc += w;
                cumulative.push(acc);
            }
            (0..weights.len())
                .map(|_| {
                    let u: f64 = rng.r#gen::<f64>() * acc;
                    cumulative
                        .partition_point(|&c| c <= u)
                        .min(weights.len() - 1) as u32
                })
                .collect()
        } else {
            // Efraimidis-Spirakis: sorting by u^(1/w) descending draws a
            // weighted permutation, as successive draws without
            // replacement would.
            let mut keyed: Vec<(f64, u32)> = weights
                .iter()
                .enumerate()
                .map(|(i, &w)| {
                    let u: f64 = rng.gen_range(f64::MIN_POSITIVE..1.0);
                    (u.ln() / w, i as u32)
                })
                .collect();
            keyed.sort_by(|a, b| b.0.total_cmp(&a.0));
            keyed.into_iter().map(|(_, i)| i).collect()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sampler(
        classes: Vec<u32>,
        names: &[&str],
        replacement: bool,
        warmup: u64,
    ) -> WeightedSampler {
        WeightedSampler {
            classes: Arc::new(classes),
            names: names.iter().map(|s| s.to_string()).collect(),
            replacement,
            warmup_epochs: warmup,
            seed: 42,
        }
    }

    #[test]
    fn weights_are_inverse_frequency_with_a_linear_curriculum() {
        // 6 cells of class a, 2 of class b.
        let s = sampler(vec![0, 0, 0, 0, 0, 0, 1, 1], &["a", "b"], true, 2);
        let cells: Vec<usize> = (0..8).collect();
        assert_eq!(
            s.class_weights(&cells),
            [("a".to_string(), 8.0 / 6.0), ("b".to_string(), 4.0)]
        );
        let close = |a: &[f64], b: &[f64]| a.iter().zip(b).all(|(x, y)| (x - y).abs() < 1e-12);
        // Epoch 0 of a 2-epoch curriculum: uniform.
        assert!(close(&s.epoch_weights(&cells, 0), &[0.125; 8]));
        // Full weighting: each class gets half the mass.
        let full = [1.0 / 12.0; 6]
            .iter()
            .chain(&[0.25, 0.25])
            .copied()
            .collect::<Vec<_>>();
        assert!(close(&s.epoch_weights(&cells, 2), &full));
        assert!(close(&s.epoch_weights(&cells, 5), &full));
        // Half way.
        let half: Vec<f64> = full.iter().map(|w| 0.5 * 0.125 + 0.5 * w).collect();
        assert!(close(&s.epoch_weights(&cells, 1), &half));
        // Only the training cells count: without cells 6, 7 class b is gone.
        assert!(close(&s.epoch_weights(&cells[..6], 3), &[1.0 / 6.0; 6]));
    }

    #[test]
    fn draws_follow_the_weights_and_repeat_per_epoch() {
        // 90 cells of a, 10 of b: weighted draws give b about half the time.
        let mut classes = vec![0u32; 90];
        classes.extend([1u32; 10]);
        let s = sampler(classes, &["a", "b"], true, 0);
        let cells: Vec<usize> = (0..100).collect();
        let mut b = 0usize;
        for epoch in 0..50 {
            let order = s.epoch_order(&cells, epoch);
            assert_eq!(order.len(), 100);
            b += order.iter().filter(|&&i| i >= 90).count();
        }
        let share = b as f64 / 5000.0;
        assert!((share - 0.5).abs() < 0.05, "{share}");
        assert_eq!(s.epoch_order(&cells, 3), s.epoch_order(&cells, 3));
        assert_ne!(s.epoch_order(&cells, 3), s.epoch_order(&cells, 4));
        // Without replacement: a permutation.
        let s = WeightedSampler {
            replacement: false,
            ..s
        };
        let mut order = s.epoch_order(&cells, 0);
        order.sort_unstable();
        assert_eq!(order, (0..100).collect::<Vec<u32>>());
    }
}
