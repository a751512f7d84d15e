//! How a loader cuts an epoch into batches: its options
//! ([`LoaderOptions`], [`StreamingOptions`]) and the cutting itself, with
//! length bucketing ([`plan_batches`]); shared by the in-memory and the
//! streaming loader.

use rand::seq::SliceRandom;
use rand_xoshiro::Xoshiro256PlusPlus;

use forge_core::config::ForgeConfig;

use super::DataError;

/// Streaming settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StreamingOptions {
    /// Consecutive cells read per block (`data.streaming_chunk_size`).
    pub chunk_size: usize,
    /// Cells held for shuffling (`data.streaming_shuffle_buffer`).
    pub shuffle_buffer: usize,
}

/// How a [`DataLoader`](super::DataLoader) batches.
#[derive(Debug, Clone, PartialEq)]
pub struct LoaderOptions {
    /// Cells per batch.
    pub batch_size: usize,
    /// Shuffle each epoch (seeded by `seed` and the epoch).
    pub shuffle: bool,
    /// Drop a last, incomplete batch.
    pub drop_last: bool,
    /// Threads building batches (0 counts as 1).
    pub num_workers: usize,
    /// Finished batches each worker may hold ahead of the consumer.
    pub prefetch: usize,
    /// Seed of shuffling and masking.
    pub seed: u64,
    /// Mask cells (pretraining): adds `labels` and `masked_positions`.
    pub mask: bool,
    /// Stream from disk instead of loading the dataset.
    pub streaming: Option<StreamingOptions>,
    /// Length bucketing over windows of this many batches; `None` (default)
    /// for none.
    pub bucket_window: Option<usize>,
    /// Weighted draws of each epoch's cells (`training.sampling`); `None`
    /// (default): the order `shuffle` says. Not with streaming.
    pub sampler: Option<super::sampling::WeightedSampler>,
    /// Batch-level gene selection (`data.gene_selection`); `None`
    /// (default): every gene. Not with streaming.
    pub gene_selection: Option<super::gene_selection::GeneSelection>,
    /// This rank's share of each epoch in a distributed job: PyTorch's
    /// `DistributedSampler` over the dataset, ordered by `shuffle` and
    /// `seed`; `None` (default): every cell. Not with streaming or weighted
    /// sampling.
    pub shard: Option<super::shard::Shard>,
}

impl Default for LoaderOptions {
    fn default() -> Self {
        LoaderOptions {
            batch_size: 64,
            shuffle: true,
            drop_last: false,
            num_workers: 4,
            prefetch: 2,
            seed: 42,
            mask: true,
            streaming: None,
            bucket_window: None,
            sampler: None,
            gene_selection: None,
            shard: None,
        }
    }
}

impl LoaderOptions {
    /// Pretraining loader settings from a config: `training.batch_size`,
    /// `training.seed`, `training.num_workers` (scModelForge's DataLoader
    /// workers), `data.streaming*`; shuffled and masked.
    pub fn from_config(cfg: &ForgeConfig) -> Result<LoaderOptions, DataError> {
        let positive = |key: &str, v: i64| {
            usize::try_from(v).ok().filter(|&v| v > 0).ok_or_else(|| {
                DataError::setting(key, format!("must be a positive integer, found {v}"))
            })
        };
        let streaming = if cfg.data.streaming {
            Some(StreamingOptions {
                chunk_size: positive("data.streaming_chunk_size", cfg.data.streaming_chunk_size)?,
                shuffle_buffer: positive(
                    "data.streaming_shuffle_buffer",
                    cfg.data.streaming_shuffle_buffer,
                )?,
            })
        } else {
            None
        };
        Ok(LoaderOptions {
            batch_size: positive("training.batch_size", cfg.training.batch_size)?,
            num_workers: usize::try_from(cfg.training.num_workers).unwrap_or(0),
            seed: cfg.training.seed as u64,
            streaming,
            ..LoaderOptions::default()
        })
    }

    /// Settings for computing embeddings: in file order, no masking.
    pub fn inference(batch_size: usize) -> LoaderOptions {
        LoaderOptions {
            batch_size,
            shuffle: false,
            mask: false,
            ..LoaderOptions::default()
        }
    }
}

/// Cuts an ordered list of cells into batches, with optional bucketing and
/// `drop_last`.
pub(crate) fn plan_batches<T: Copy>(
    order: Vec<T>,
    opts: &LoaderOptions,
    rng: &mut Xoshiro256PlusPlus,
    len: impl Fn(T) -> usize,
) -> Vec<Vec<T>> {
    let bs = opts.batch_size;
    let mut out: Vec<Vec<T>> = Vec::with_capacity(order.len().div_ceil(bs));
    match opts.bucket_window {
        Some(w) if w > 1 => {
            for window in order.chunks(w * bs) {
                let mut cells = window.to_vec();
                cells.sort_by_key(|&c| len(c));
                let mut batches: Vec<Vec<T>> = cells.chunks(bs).map(<[T]>::to_vec).collect();
                // The short batch, if any, stays last so drop_last works.
                let full = if batches.last().is_some_and(|b| b.len() < bs) {
                    batches.len() - 1
                } else {
                    batches.len()
                };
                if opts.shuffle {
                    batches[..full].shuffle(rng);
                    if full < batches.len() {
                        let short = batches.remove(full);
                        batches.push(short);
                    }
                }
                out.extend(batches);
            }
        }
        _ => out.extend(order.chunks(bs).map(<[T]>::to_vec)),
    }
    // Short batches can only come from the last window; keep them last.
    if let Some(pos) = out.iter().position(|b| b.len() < bs)
        && pos + 1 != out.len()
    {
        let short = out.remove(pos);
        out.push(short);
    }
    if opts.drop_last && out.last().is_some_and(|b| b.len() < bs) {
        out.pop();
    }
    out
}
