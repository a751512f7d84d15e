//! Length-bucketed execution: a padded batch run as a few sub-batches of
//! cells of similar length, each trimmed to its own longest cell, so that
//! attention and feed-forward layers do not spend their time on padding.
//!
//! Cells in a batch vary a lot in length (a few hundred to a few thousand
//! expressed genes), and a padded batch computes every layer at the longest
//! cell's length for every cell. A cell's result never depends on the other
//! cells of its batch, nor on its padding (padding keys are masked out of
//! attention; every other operation is per token), so running the cells in
//! groups gives the same result for every real token, to float rounding.
//!
//! [`LengthBuckets::plan`] sorts the cells by extent (one past the last
//! real position) and cuts the sorted list where that saves more padded
//! tokens than
//! [`BUCKET_OVERHEAD_TOKENS`] (the cost of one more pass through the
//! model, in tokens). A batch of similar cells stays one bucket, and then no
//! tensor is copied. Models use it in `loss` and `encode`; `forward` keeps
//! the plain padded pass (it returns per-position outputs for the whole
//! padded batch).
//!
//! What this is not: it does not change what a model computes, only which
//! padded positions it skips, and it never splits a cell.

use tch::{Kind, Tensor};

use crate::batch::Batch;

/// The cost of one more bucket, in padded tokens: below this saving, two
/// groups of cells stay one bucket. Measured on CPU with the benchmark's
/// model (`cargo bench --bench model_step`); any value gives the same
/// results, only the speed changes.
pub const BUCKET_OVERHEAD_TOKENS: i64 = 64;

/// One sub-batch: which cells, and the length they are trimmed to.
#[derive(Debug)]
pub struct Bucket {
    /// Indices of the bucket's cells in the batch, (b) int64, on the batch's
    /// device.
    pub rows: Tensor,
    /// The same indices on the host.
    pub rows_host: Vec<i64>,
    /// Sequence length of the sub-batch: the longest extent among its cells
    /// (at least 1).
    pub len: i64,
}

/// A plan for running a batch as length buckets.
#[derive(Debug)]
pub struct LengthBuckets {
    batch_size: i64,
    seq_len: i64,
    buckets: Vec<Bucket>,
    /// For each cell of the batch, its row in the bucket-ordered
    /// concatenation; `None` when that order is the batch order.
    restore: Option<Tensor>,
}

impl LengthBuckets {
    /// Plans buckets for `attention_mask` (B,S) with the default overhead
    /// ([`BUCKET_OVERHEAD_TOKENS`]). Reads each cell's extent to the host
    /// (one small copy).
    pub fn plan(attention_mask: &Tensor) -> Self {
        Self::plan_with_overhead(attention_mask, BUCKET_OVERHEAD_TOKENS)
    }

    /// Plans buckets minimising padded tokens + `overhead_tokens` per
    /// bucket. `overhead_tokens` = `i64::MAX` keeps one bucket (trimmed to
    /// the longest cell); 0 gives one bucket per distinct length.
    pub fn plan_with_overhead(attention_mask: &Tensor, overhead_tokens: i64) -> Self {
        let (batch_size, seq_len) = attention_mask.size2().expect("attention_mask is (B, S)");
        let extents = extents(attention_mask);
        let device = attention_mask.device();
        let mut order: Vec<usize> = (0..extents.len()).collect();
        // Longest first; ties keep batch order, so an already sorted or
        // uniform batch keeps its order.
        order.sort_by_key(|&i| std::cmp::Reverse(extents[i]));
        let sorted: Vec<i64> = order.iter().map(|&i| extents[i]).collect();
        let cuts = best_cuts(&sorted, overhead_tokens);
        let buckets: Vec<Bucket> = cuts
            .windows(2)
            .map(|w| {
                let rows_host: Vec<i64> = order[w[0]..w[1]].iter().map(|&i| i as i64).collect();
                Bucket {
                    rows: Tensor::from_slice(&rows_host).to_device(device),
                    len: sorted[w[0]],
                    rows_host,
                }
            })
            .collect();
        let in_order = order.iter().enumerate().all(|(pos, &i)| pos == i);
        let restore = (!in_order).then(|| {
            let mut restore = vec![0i64; order.len()];
            for (pos, &i) in order.iter().enumerate() {
                restore[i] = pos as i64;
            }
            Tensor::from_slice(&restore).to_device(device)
        });
        LengthBuckets {
            batch_size,
            seq_len,
            buckets,
            restore,
        }
    }

    /// The buckets, longest cells first.
    pub fn buckets(&self) -> &[Bucket] {
        &self.buckets
    }

    /// Number of buckets.
    pub fn len(&self) -> usize {
        self.buckets.len()
    }

    /// Whether there are no buckets (never: a batch has at least one cell).
    pub fn is_empty(&self) -> bool {
        self.buckets.is_empty()
    }

    /// Padded tokens the plan computes, against B*S for the padded batch.
    pub fn tokens(&self) -> i64 {
        self.buckets
            .iter()
            .map(|b| b.rows_host.len() as i64 * b.len)
            .sum()
    }

    /// The part of `batch` in bucket `index`: its cells, every key trimmed
    /// to the bucket's length. The batch itself (no copy) when the bucket
    /// is the whole batch.
    pub fn sub_batch(&self, batch: &Batch, index: usize) -> Batch {
        let bucket = &self.buckets[index];
        let whole = self.buckets.len() == 1 && self.restore.is_none();
        let cells = |t: &Tensor| {
            let t = if whole {
                t.shallow_clone()
            } else {
                t.index_select(0, &bucket.rows)
            };
            if bucket.len < self.seq_len {
                t.narrow(1, 0, bucket.len)
            } else {
                t
            }
        };
        let mut builder = Batch::builder(cells(batch.input_ids()), cells(batch.attention_mask()));
        if let Some(t) = batch.values() {
            builder = builder.values(cells(t));
        }
        if let Some(t) = batch.labels() {
            builder = builder.labels(cells(t));
        }
        if let Some(t) = batch.masked_positions() {
            builder = builder.masked_positions(cells(t));
        }
        if let Some(t) = batch.bin_ids() {
            builder = builder.bin_ids(cells(t));
        }
        if let Some(t) = batch.task_labels() {
            builder = builder.task_labels(if whole {
                t.shallow_clone()
            } else {
                t.index_select(0, &bucket.rows)
            });
        }
        builder
            .build()
            .expect("a sub-batch of a valid batch is valid")
    }

    /// Runs `f` on every sub-batch; `f` returns one row per cell of its
    /// sub-batch (e.g. cell embeddings (b,H)). The rows come back in batch
    /// order, (B,...).
    pub fn map_cells(&self, batch: &Batch, mut f: impl FnMut(&Batch) -> Tensor) -> Tensor {
        self.check(batch);
        let parts: Vec<Tensor> = (0..self.buckets.len())
            .map(|k| f(&self.sub_batch(batch, k)))
            .collect();
        let joined = if parts.len() == 1 {
            parts.into_iter().next().expect("one part")
        } else {
            Tensor::cat(&parts, 0)
        };
        match &self.restore {
            Some(restore) => joined.index_select(0, restore),
            None => joined,
        }
    }

    /// Runs `f` on every sub-batch; `f` returns `N` tensors of any number
    /// of rows (e.g. hidden states and targets at labelled positions). Each
    /// of the `N` comes back concatenated over the buckets along dim 0, in
    /// bucket order: rows keep their pairing across the `N` outputs, not
    /// their batch order.
    pub fn map_concat<const N: usize>(
        &self,
        batch: &Batch,
        mut f: impl FnMut(&Batch) -> [Tensor; N],
    ) -> [Tensor; N] {
        self.check(batch);
        let mut parts: Vec<[Tensor; N]> = (0..self.buckets.len())
            .map(|k| f(&self.sub_batch(batch, k)))
            .collect();
        if parts.len() == 1 {
            return parts.pop().expect("one part");
        }
        std::array::from_fn(|i| {
            let column: Vec<&Tensor> = parts.iter().map(|p| &p[i]).collect();
            Tensor::cat(&column, 0)
        })
    }

    fn check(&self, batch: &Batch) {
        assert_eq!(
            (batch.batch_size(), batch.seq_len()),
            (self.batch_size, self.seq_len),
            "the length buckets were planned for another batch shape"
        );
    }
}

/// Per cell: last real position + 1, at least 1 (an all-padding cell keeps
/// one position so that it still yields an output row).
fn extents(attention_mask: &Tensor) -> Vec<i64> {
    let (_, s) = attention_mask.size2().expect("attention_mask is (B, S)");
    let positions = Tensor::arange_start(1, s + 1, (Kind::Int64, attention_mask.device()));
    let extent = (attention_mask.ne(0).to_kind(Kind::Int64) * positions.unsqueeze(0))
        .amax(1, false)
        .clamp_min(1)
        .to_device(tch::Device::Cpu);
    Vec::<i64>::try_from(&extent).expect("extents are int64")
}

/// Cut points (indices into `sorted`, descending lengths; first 0, last
/// `sorted.len()`) minimising Σ cells × longest + overhead per bucket.
fn best_cuts(sorted: &[i64], overhead: i64) -> Vec<usize> {
    let n = sorted.len();
    // best[j]: cost of the first j cells; from[j]: where their last bucket
    // starts.
    let mut best = vec![i128::MAX; n + 1];
    let mut from = vec![0usize; n + 1];
    best[0] = 0;
    for j in 1..=n {
        for i in 0..j {
            let cost = best[i] + (j - i) as i128 * sorted[i] as i128 + overhead as i128;
            // `<` keeps the earliest start on ties: fewer buckets.
            if cost < best[j] {
                best[j] = cost;
                from[j] = i;
            }
        }
    }
    let mut cuts = vec![n];
    let mut j = n;
    while j > 0 {
        j = from[j];
        cuts.push(j);
    }
    cuts.reverse();
    cuts
}

#[cfg(test)]
mod tests {
    use tch::{Device, nn::VarStore};

    use super::*;
    use crate::components::{GeneExpressionEmbedding, TransformerEncoder};
    use crate::config::Activation;

    fn mask(lengths: &[i64], s: i64) -> Tensor {
        let positions = Tensor::arange(s, (Kind::Int64, Device::Cpu)).unsqueeze(0);
        positions
            .lt_tensor(&Tensor::from_slice(lengths).unsqueeze(1))
            .to_kind(Kind::Int64)
    }

    fn batch(lengths: &[i64], s: i64) -> Batch {
        let m = mask(lengths, s);
        let ids =
            Tensor::randint_low(4, 50, [lengths.len() as i64, s], (Kind::Int64, Device::Cpu)) * &m;
        let labels = ids.where_self(&m.ne(0), &Tensor::from(-100i64));
        Batch::builder(ids, m).labels(labels).build().unwrap()
    }

    #[test]
    fn cuts_minimise_padding_plus_overhead() {
        assert_eq!(best_cuts(&[10, 10, 10], 64), [0, 3]);
        assert_eq!(best_cuts(&[500, 490, 200, 190], 64), [0, 2, 4]);
        assert_eq!(best_cuts(&[500, 490, 200, 190], i64::MAX / 4), [0, 4]);
        assert_eq!(best_cuts(&[5, 4, 3], 0), [0, 1, 2, 3]);
        assert_eq!(best_cuts(&[7], 64), [0, 1]);
    }

    #[test]
    fn plan_sorts_trims_and_restores_batch_order() {
        let m = mask(&[3, 500, 2, 480, 0], 512);
        let plan = LengthBuckets::plan(&m);
        assert_eq!(plan.len(), 2);
        assert_eq!(plan.buckets()[0].rows_host, [1, 3]);
        assert_eq!(plan.buckets()[0].len, 500);
        assert_eq!(plan.buckets()[1].rows_host, [0, 2, 4]);
        assert_eq!(plan.buckets()[1].len, 3);
        assert_eq!(plan.tokens(), 2 * 500 + 3 * 3);
        let b = Batch::builder(
            Tensor::arange(5, (Kind::Int64, Device::Cpu))
                .unsqueeze(1)
                .repeat([1, 512]),
            m,
        )
        .build()
        .unwrap();
        let first = plan.map_cells(&b, |sub| sub.input_ids().select(1, 0));
        assert_eq!(Vec::<i64>::try_from(&first).unwrap(), [0, 1, 2, 3, 4]);
    }

    #[test]
    fn extent_counts_holes_in_the_mask() {
        let m = Tensor::from_slice(&[1i64, 0, 1, 0, 0, 0, 0, 0]).view([2, 4]);
        assert_eq!(extents(&m), [3, 1]);
    }

    #[test]
    fn a_uniform_batch_is_one_bucket_without_copies() {
        let b = batch(&[6, 6], 6);
        let plan = LengthBuckets::plan(b.attention_mask());
        assert_eq!(plan.len(), 1);
        let sub = plan.sub_batch(&b, 0);
        assert_eq!(sub.input_ids().data_ptr(), b.input_ids().data_ptr());
    }

    #[test]
    fn bucketed_layers_equal_the_padded_pass_at_every_real_token() {
        tch::manual_seed(5);
        let vs = VarStore::new(Device::Cpu);
        let emb = GeneExpressionEmbedding::new(&vs.root() / "emb", 50, 16, 64, 0.0, false);
        let enc = TransformerEncoder::new(&vs.root() / "enc", 2, 16, 4, 32, 0.0, Activation::Gelu);
        let b = batch(&[40, 3, 37, 12, 0, 1], 40);
        let plan = LengthBuckets::plan_with_overhead(b.attention_mask(), 0);
        assert!(plan.len() > 2);
        let real = b.attention_mask().ne(0).unsqueeze(-1);
        for causal in [false, true] {
            let run = |sub: &Batch| {
                let x = emb.forward(sub.input_ids(), None, false);
                enc.forward(&x, sub.attention_mask(), causal, false)
            };
            let padded = run(&b);
            let bucketed = plan.map_cells(&b, |sub| {
                let h = run(sub);
                h.constant_pad_nd([0, 0, 0, 40 - sub.seq_len()])
            });
            let diff = ((padded - bucketed) * &real).abs().max().double_value(&[]);
            assert!(diff < 1e-5, "causal={causal}: max diff {diff}");
        }
    }

    #[test]
    fn map_concat_keeps_rows_paired() {
        let b = batch(&[5, 2, 4], 5);
        let plan = LengthBuckets::plan_with_overhead(b.attention_mask(), 0);
        let [ids, labels] = plan.map_concat(&b, |sub| {
            let at = sub.labels().unwrap().ne(-100);
            [
                sub.input_ids().masked_select(&at),
                sub.labels().unwrap().masked_select(&at),
            ]
        });
        assert_eq!(ids.size(), [11]);
        assert_eq!(
            Vec::<i64>::try_from(&ids).unwrap(),
            Vec::<i64>::try_from(&labels).unwrap()
        );
    }
}
