//! `data.gene_selection`: which genes of a training batch are tokenized, as
//! scModelForge's `GeneSelectionCollator` chooses them, batch by batch,
//! before tokenization:
//!
//! - `most_expressed`: the `n_genes` genes with the largest total
//!   (preprocessed) expression summed over the batch's cells; ties go to
//!   the gene seen first (cells in batch order, genes in cell order);
//! - `random_expressed`: `n_genes` genes drawn uniformly without
//!   replacement from the genes expressed in any cell of the batch;
//! - `all`: no selection.
//!
//! A batch expressing no more than `n_genes` genes keeps them all. Each
//! cell then keeps only its selected genes. Random draws are seeded by
//! `training.seed`, the epoch and the batch's position, so an epoch is the
//! same on resume. Only training batches are selected from; validation
//! batches keep every gene, as in scModelForge.

use std::collections::HashMap;

use rand::SeedableRng;
use rand::seq::SliceRandom;
use rand_xoshiro::Xoshiro256PlusPlus;

use super::DataError;
use forge_core::config::{GeneSelectionConfig, GeneSelectionStrategy};

/// A batch-level gene selection other than `all`.
#[derive(Debug, Clone, PartialEq)]
pub struct GeneSelection {
    /// `MostExpressed` or `RandomExpressed`.
    pub strategy: GeneSelectionStrategy,
    /// Genes kept per batch.
    pub n_genes: usize,
    /// Seed of `random_expressed`.
    pub seed: u64,
}

impl GeneSelection {
    /// The selection `data.gene_selection` asks for, or `None` for `all`.
    /// `n_genes` must be set to a positive number otherwise.
    pub fn from_config(
        cfg: &GeneSelectionConfig,
        seed: u64,
    ) -> Result<Option<GeneSelection>, DataError> {
        if cfg.strategy == GeneSelectionStrategy::All {
            return Ok(None);
        }
        match cfg.n_genes {
            Some(n) if n >= 1 => Ok(Some(GeneSelection {
                strategy: cfg.strategy,
                n_genes: n as usize,
                seed,
            })),
            other => Err(DataError::setting(
                "data.gene_selection.n_genes",
                format!(
                    "must be a positive number of genes when strategy is {}, found {}",
                    cfg.strategy,
                    other.map_or("null".to_string(), |n| n.to_string())
                ),
            )),
        }
    }

    /// The genes (ascending) kept for a batch whose cells' genes and
    /// values are `rows`, batch `batch` of epoch `epoch`; `None` when the
    /// batch expresses no more than `n_genes` genes (all kept).
    pub fn select<'a>(
        &self,
        rows: impl Iterator<Item = (&'a [u32], &'a [f32])>,
        epoch: u64,
        batch: usize,
    ) -> Option<Vec<u32>> {
        // Totals in order of first appearance.
        let mut at: HashMap<u32, usize> = HashMap::new();
        let mut totals: Vec<(u32, f64)> = Vec::new();
        for (genes, values) in rows {
            for (&g, &v) in genes.iter().zip(values) {
                let k = *at.entry(g).or_insert_with(|| {
                    totals.push((g, 0.0));
                    totals.len() - 1
                });
                totals[k].1 += f64::from(v);
            }
        }
        if totals.len() <= self.n_genes {
            return None;
        }
        let mut keep: Vec<u32> = match self.strategy {
            GeneSelectionStrategy::RandomExpressed => {
                let mut genes: Vec<u32> = totals.iter().map(|&(g, _)| g).collect();
                genes.sort_unstable();
                use super::seed::mix;
                let seed = mix(mix(mix(self.seed ^ 0x6e5e) ^ epoch) ^ batch as u64);
                let mut rng = Xoshiro256PlusPlus::seed_from_u64(seed);
                genes
                    .choose_multiple(&mut rng, self.n_genes)
                    .copied()
                    .collect()
            }
            _ => {
                // Stable: equal totals keep their first-seen order.
                totals.sort_by(|a, b| b.1.total_cmp(&a.1));
                totals[..self.n_genes].iter().map(|&(g, _)| g).collect()
            }
        };
        keep.sort_unstable();
        Some(keep)
    }
}

/// The entries of one cell (`genes` ascending or not) whose gene is in
/// `keep` (ascending), into `out_genes` / `out_values`.
pub fn filter_cell(
    keep: &[u32],
    genes: &[u32],
    values: &[f32],
    out_genes: &mut Vec<u32>,
    out_values: &mut Vec<f32>,
) {
    out_genes.clear();
    out_values.clear();
    for (&g, &v) in genes.iter().zip(values) {
        if keep.binary_search(&g).is_ok() {
            out_genes.push(g);
            out_values.push(v);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sel(strategy: GeneSelectionStrategy, n: usize) -> GeneSelection {
        GeneSelection {
            strategy,
            n_genes: n,
            seed: 7,
        }
    }

    #[test]
    fn most_expressed_sums_over_the_batch() {
        let rows: Vec<(Vec<u32>, Vec<f32>)> = vec![
            (vec![1, 5, 9], vec![1.0, 2.0, 0.5]),
            (vec![5, 7, 9], vec![1.0, 4.0, 0.5]),
            (vec![2], vec![1.0]),
        ];
        let it = || rows.iter().map(|(g, v)| (g.as_slice(), v.as_slice()));
        let s = sel(GeneSelectionStrategy::MostExpressed, 2);
        // Totals: 1:1, 5:3, 9:1, 7:4, 2:1.
        assert_eq!(s.select(it(), 0, 0), Some(vec![5, 7]));
        // Ties at the cut go to the gene seen first (1 before 9 and 2).
        let s = sel(GeneSelectionStrategy::MostExpressed, 3);
        assert_eq!(s.select(it(), 0, 0), Some(vec![1, 5, 7]));
        // No more genes than asked for: all kept.
        let s = sel(GeneSelectionStrategy::MostExpressed, 5);
        assert_eq!(s.select(it(), 0, 0), None);
        let (mut g, mut v) = (Vec::new(), Vec::new());
        filter_cell(&[5, 7], &rows[1].0, &rows[1].1, &mut g, &mut v);
        assert_eq!((g, v), (vec![5, 7], vec![1.0, 4.0]));
    }

    #[test]
    fn random_expressed_draws_from_expressed_genes_reproducibly() {
        let rows: Vec<(Vec<u32>, Vec<f32>)> = (0..4)
            .map(|c| ((c * 10..c * 10 + 10).collect(), vec![1.0; 10]))
            .collect();
        let it = || rows.iter().map(|(g, v)| (g.as_slice(), v.as_slice()));
        let s = sel(GeneSelectionStrategy::RandomExpressed, 12);
        let a = s.select(it(), 1, 3).unwrap();
        assert_eq!(a.len(), 12);
        assert!(a.windows(2).all(|w| w[0] < w[1]) && a.iter().all(|&g| g < 40));
        assert_eq!(s.select(it(), 1, 3).unwrap(), a);
        assert_ne!(s.select(it(), 1, 4).unwrap(), a);
    }

    #[test]
    fn config_needs_n_genes() {
        let mut cfg = GeneSelectionConfig::default();
        assert_eq!(GeneSelection::from_config(&cfg, 0).unwrap(), None);
        cfg.strategy = GeneSelectionStrategy::MostExpressed;
        let unset = GeneSelection::from_config(&cfg, 0);
        crate::test_util::fails(unset, &["data.gene_selection.n_genes", "null"]);
        cfg.n_genes = Some(64);
        assert_eq!(
            GeneSelection::from_config(&cfg, 0)
                .unwrap()
                .unwrap()
                .n_genes,
            64
        );
    }
}
