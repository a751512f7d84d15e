//! Packed execution: the real tokens of a padded batch as one (N,H) matrix,
//! so that per-token layers (projections, feed-forward, LayerNorm, heads)
//! never compute on padding, and attention runs on a few groups of cells of
//! similar length, each padded only to its own longest cell.
//!
//! Cells in a batch vary a lot in length (a few hundred to a few thousand
//! expressed genes), and a padded batch computes every layer at the longest
//! cell's length for every cell. A real token's result never depends on
//! padding (padding keys are masked out of attention; every other
//! operation is per token) nor on other cells, so the packed pass gives
//! every real token the same value as the padded pass, to float rounding.
//!
//! [`Packing::new`] reads the attention mask once (to the host), orders the
//! cells longest first and cuts them into attention groups where that saves
//! more padded attention slots than [`GROUP_OVERHEAD_TOKENS`]. Packed rows
//! follow that order: group by group, cell by cell, each cell's real tokens
//! in position order (so causal attention is unchanged). [`Packing::pack`]
//! and [`Packing::unpack`] move tensors between the two layouts, and
//! [`TransformerEncoder::forward_packed`] runs an encoder on packed rows.
//! Models do not use it directly: the components take and give
//! [`Tokens`](super::Tokens), which carry the rows with their packing.
//!
//! What this is not: it does not change what is computed for a real token,
//! and a cell without real tokens simply has no rows (its pooled embedding
//! is zero).

use tch::{Kind, Tensor};

use super::encoder::{MultiheadSelfAttention, TransformerEncoder, attend};
use super::mask::attention_bias;

/// The cost of one more attention group, in padded attention slots: below
/// this saving, two groups of cells stay one. Any value gives the same
/// results; only the speed changes (more groups means less padding but more,
/// smaller attention calls).
pub const GROUP_OVERHEAD_TOKENS: i64 = 256;

/// Where the real tokens of a padded batch go in the packed layout, and how
/// attention groups them.
#[derive(Debug)]
pub struct Packing {
    batch_size: i64,
    seq_len: i64,
    tokens: i64,
    /// (N) flat index into B*S of each packed row.
    gather: Tensor,
    /// Packed rows are the padded positions in batch order, nothing left
    /// out: packing is a reshape.
    identity: bool,
    groups: Vec<Group>,
    /// (B,S) bool: the planned tokens (1 where a row exists).
    real: Tensor,
}

/// Cells that attend in one padded attention call.
#[derive(Debug)]
struct Group {
    /// Packed rows (real tokens) of the group.
    rows: i64,
    /// Cells in the group.
    cells: i64,
    /// Tokens of its longest cell: the group's padded length.
    len: i64,
    /// How rows map to the (cells × len) padded layout; `None` when every
    /// cell of the group has `len` tokens (no padding: rows reshape).
    padding: Option<GroupPadding>,
}

#[derive(Debug)]
struct GroupPadding {
    /// (cells*len): the group row each padded slot reads (padding slots
    /// read row 0; they are masked out of attention and dropped).
    slots: Tensor,
    /// (rows): the padded slot of each group row.
    real_slots: Tensor,
    /// (cells, len): 1 for real slots, 0 for padding.
    mask: Tensor,
}

impl Packing {
    /// Plans the packed layout of a batch with `attention_mask` (B,S) (1
    /// real, 0 padding; real tokens need not be contiguous), with the
    /// default group overhead.
    pub fn new(attention_mask: &Tensor) -> Self {
        Self::with_overhead(attention_mask, GROUP_OVERHEAD_TOKENS)
    }

    /// [`Packing::new`] with `overhead_tokens` per attention group:
    /// `i64::MAX` gives one group, 0 one group per distinct length.
    pub fn with_overhead(attention_mask: &Tensor, overhead_tokens: i64) -> Self {
        let (batch_size, seq_len) = attention_mask.size2().expect("attention_mask is (B, S)");
        let device = attention_mask.device();
        let real: Vec<bool> = Vec::try_from(
            attention_mask
                .ne(0)
                .reshape([-1])
                .to_device(tch::Device::Cpu),
        )
        .expect("a bool mask");
        let positions: Vec<Vec<i64>> = real
            .chunks(seq_len as usize)
            .map(|row| {
                row.iter()
                    .enumerate()
                    .filter(|(_, r)| **r)
                    .map(|(p, _)| p as i64)
                    .collect()
            })
            .collect();
        let count = |cell: usize| positions[cell].len() as i64;
        // Longest first; ties keep batch order. Cells without tokens have no
        // rows and join no group.
        let mut order: Vec<usize> = (0..positions.len()).filter(|&c| count(c) > 0).collect();
        order.sort_by_key(|&c| std::cmp::Reverse(count(c)));
        let sorted: Vec<i64> = order.iter().map(|&c| count(c)).collect();
        let cuts = best_cuts(&sorted, overhead_tokens);

        let mut gather = Vec::new();
        let mut groups = Vec::new();
        for w in cuts.windows(2) {
            let cells = &order[w[0]..w[1]];
            let len = count(cells[0]);
            let mut slots = Vec::new();
            let mut real_slots = Vec::new();
            let mut mask = Vec::new();
            let mut row = 0i64;
            for (j, &cell) in cells.iter().enumerate() {
                let n = count(cell);
                for t in 0..len {
                    mask.push(i64::from(t < n));
                    slots.push(if t < n { row + t } else { 0 });
                }
                real_slots.extend((0..n).map(|t| j as i64 * len + t));
                gather.extend(positions[cell].iter().map(|p| cell as i64 * seq_len + p));
                row += n;
            }
            let n_cells = cells.len() as i64;
            let to_device = |v: &[i64]| Tensor::from_slice(v).to_device(device);
            let padding = (row < n_cells * len).then(|| GroupPadding {
                slots: to_device(&slots),
                real_slots: to_device(&real_slots),
                mask: to_device(&mask).view([n_cells, len]),
            });
            groups.push(Group {
                rows: row,
                cells: n_cells,
                len,
                padding,
            });
        }
        let tokens = gather.len() as i64;
        let identity = tokens == batch_size * seq_len
            && gather.iter().enumerate().all(|(i, &g)| g == i as i64);
        Packing {
            batch_size,
            seq_len,
            tokens,
            gather: Tensor::from_slice(&gather).to_device(device),
            identity,
            groups,
            real: attention_mask.ne(0),
        }
    }

    /// (B,S) bool: true at the positions that have a packed row.
    pub fn real(&self) -> &Tensor {
        &self.real
    }

    /// (N) int64: the position in its cell (0..S) of each packed row.
    pub fn positions(&self) -> Tensor {
        self.gather.remainder(self.seq_len)
    }

    /// (N) int64: for each row of this packing, its row in `wider`, a
    /// packing of the same batch shape that holds every position this one
    /// does (e.g. a cell's visible tokens inside all its real tokens).
    pub fn rows_in(&self, wider: &Packing) -> Tensor {
        assert_eq!(
            (self.batch_size, self.seq_len),
            (wider.batch_size, wider.seq_len),
            "packings of different batch shapes"
        );
        let device = self.gather.device();
        let row_of = Tensor::zeros([wider.batch_size * wider.seq_len], (Kind::Int64, device))
            .index_copy(
                0,
                &wider.gather,
                &Tensor::arange(wider.tokens, (Kind::Int64, device)),
            );
        row_of.index_select(0, &self.gather)
    }

    /// Number of packed rows N: the real tokens of the batch.
    pub fn tokens(&self) -> i64 {
        self.tokens
    }

    /// Number of attention groups.
    pub fn groups(&self) -> usize {
        self.groups.len()
    }

    /// Padded attention slots over all groups (Σ cells × len), against B*S
    /// for the padded batch.
    pub fn attention_slots(&self) -> i64 {
        self.groups.iter().map(|g| g.cells * g.len).sum()
    }

    /// (B,S,...) -> (N,...): the rows of the real tokens, in packed order.
    pub fn pack(&self, x: &Tensor) -> Tensor {
        let size = x.size();
        assert_eq!(
            &size[..2],
            &[self.batch_size, self.seq_len],
            "packing was planned for another batch shape"
        );
        let mut flat = vec![self.batch_size * self.seq_len];
        flat.extend_from_slice(&size[2..]);
        let flat = x.reshape(flat.as_slice());
        if self.identity {
            flat
        } else {
            flat.index_select(0, &self.gather)
        }
    }

    /// (N,...) -> (B,S,...), zeros at padding.
    pub fn unpack(&self, x: &Tensor) -> Tensor {
        let mut padded = vec![self.batch_size, self.seq_len];
        padded.extend_from_slice(&x.size()[1..]);
        self.scatter_onto(&Tensor::zeros(padded.as_slice(), (x.kind(), x.device())), x)
    }

    /// `base` (B,S,...) with the packed rows `x` (N,...) written over the
    /// positions they came from.
    pub fn scatter_onto(&self, base: &Tensor, x: &Tensor) -> Tensor {
        let size = base.size();
        let mut flat = vec![self.batch_size * self.seq_len];
        flat.extend_from_slice(&size[2..]);
        if self.identity {
            return x.reshape(size.as_slice());
        }
        base.reshape(flat.as_slice())
            .index_copy(0, &self.gather, x)
            .reshape(size.as_slice())
    }

    /// The additive attention bias of every group (`None` where a group
    /// needs none: no padding and not causal), for [`Packing::attend`].
    pub fn attention_biases(&self, causal: bool, kind: Kind) -> Vec<Option<Tensor>> {
        self.groups
            .iter()
            .map(|g| match (&g.padding, causal) {
                (None, false) => None,
                (Some(p), _) => Some(attention_bias(&p.mask, causal, kind)),
                (None, true) => {
                    let all = Tensor::ones([g.cells, g.len], (Kind::Int64, self.gather.device()));
                    Some(attention_bias(&all, true, kind))
                }
            })
            .collect()
    }
}

impl MultiheadSelfAttention {
    /// Self-attention over packed rows (N,H): each attention group of
    /// `packing` attends within its cells. `biases` come from the packing
    /// (one per group).
    fn forward_packed(
        &self,
        x: &Tensor,
        packing: &Packing,
        biases: &[Option<Tensor>],
        train: bool,
    ) -> Tensor {
        let p = if train { self.dropout } else { 0.0 };
        let qkv = x.linear(&self.in_proj_weight, Some(&self.in_proj_bias));
        packing
            .attend(&qkv, biases, self.num_heads, p)
            .apply(&self.out_proj)
    }
}

impl Packing {
    /// Scaled dot-product attention over packed rows: `qkv` (N,3H) holds
    /// each row's query, key and value projections side by side (as
    /// `nn.MultiheadAttention`'s packed input projection gives them), split
    /// into `num_heads` heads; each attention group attends within its
    /// cells. `biases` come from [`Packing::attention_biases`]; `dropout`
    /// is the attention-weight dropout (0 outside training). Returns the
    /// per-head outputs concatenated, (N,H), before any output projection.
    ///
    /// Any attention with separate q/k/v projections runs packed through
    /// this (e.g. [`super::bert`]'s `query`/`key`/`value`: concatenate
    /// their outputs).
    pub fn attend(
        &self,
        qkv: &Tensor,
        biases: &[Option<Tensor>],
        num_heads: i64,
        dropout: f64,
    ) -> Tensor {
        let h = qkv.size()[1] / 3;
        let head_dim = h / num_heads;
        let parts = match self.groups.len() {
            0 => return qkv.narrow(1, 0, h).zeros_like(),
            1 => vec![qkv.shallow_clone()],
            _ => {
                let sizes: Vec<i64> = self.groups.iter().map(|g| g.rows).collect();
                qkv.split_with_sizes(&sizes, 0)
            }
        };
        let outputs: Vec<Tensor> = self
            .groups
            .iter()
            .zip(parts)
            .zip(biases)
            .map(|((g, rows), bias)| {
                let slots = match &g.padding {
                    Some(pad) => rows.index_select(0, &pad.slots),
                    None => rows,
                };
                let qkv = slots
                    .view([g.cells, g.len, 3, num_heads, head_dim])
                    .permute([2, 0, 3, 1, 4]);
                let out = attend(
                    &qkv.get(0),
                    &qkv.get(1),
                    &qkv.get(2),
                    bias.as_ref(),
                    dropout,
                )
                .transpose(1, 2)
                .reshape([g.cells * g.len, h]);
                match &g.padding {
                    Some(pad) => out.index_select(0, &pad.real_slots),
                    None => out,
                }
            })
            .collect();
        if outputs.len() == 1 {
            outputs.into_iter().next().expect("one group")
        } else {
            Tensor::cat(&outputs, 0)
        }
    }
}

impl TransformerEncoder {
    /// Runs every layer over packed rows `x` (N,H) of the batch `packing`
    /// was planned for: the same result for every real token as
    /// [`TransformerEncoder::forward_padded`] on the padded batch, without work
    /// on padding. With `causal`, a token attends to the tokens before it
    /// in its cell.
    pub fn forward_packed(
        &self,
        x: &Tensor,
        packing: &Packing,
        causal: bool,
        train: bool,
    ) -> Tensor {
        let biases = packing.attention_biases(causal, x.kind());
        let mut x = x.shallow_clone();
        for layer in &self.layers {
            x = layer.forward_with(&x, train, |normed| {
                layer
                    .self_attn
                    .forward_packed(normed, packing, &biases, train)
            });
        }
        x
    }
}

/// Cut points (indices into `sorted`, descending lengths; first 0, last
/// `sorted.len()`) minimising Σ cells × longest + overhead per group.
fn best_cuts(sorted: &[i64], overhead: i64) -> Vec<usize> {
    let n = sorted.len();
    // best[j]: cost of the first j cells; from[j]: where their last group
    // starts.
    let mut best = vec![i128::MAX; n + 1];
    let mut from = vec![0usize; n + 1];
    best[0] = 0;
    for j in 1..=n {
        for i in 0..j {
            let cost = best[i] + (j - i) as i128 * sorted[i] as i128 + overhead as i128;
            // `<` keeps the earliest start on ties: fewer groups.
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
    use crate::components::GeneExpressionEmbedding;
    use crate::config::Activation;

    fn mask(lengths: &[i64], s: i64) -> Tensor {
        Tensor::arange(s, (Kind::Int64, Device::Cpu))
            .unsqueeze(0)
            .lt_tensor(&Tensor::from_slice(lengths).unsqueeze(1))
            .to_kind(Kind::Int64)
    }

    #[test]
    fn cuts_minimise_padding_plus_overhead() {
        assert_eq!(best_cuts(&[10, 10, 10], 64), [0, 3]);
        assert_eq!(best_cuts(&[500, 490, 200, 190], 64), [0, 2, 4]);
        assert_eq!(best_cuts(&[500, 490, 200, 190], i64::MAX / 4), [0, 4]);
        assert_eq!(best_cuts(&[5, 4, 3], 0), [0, 1, 2, 3]);
        assert_eq!(best_cuts(&[7], 64), [0, 1]);
        assert_eq!(best_cuts(&[], 64), [0]);
    }

    #[test]
    fn pack_and_unpack_round_trip_with_holes_and_empty_cells() {
        let m = Tensor::from_slice(&[1i64, 0, 1, 1, 0, 0, 0, 0, 1, 1, 1, 0]).view([3, 4]);
        let packing = Packing::with_overhead(&m, 0);
        assert_eq!(packing.tokens(), 6);
        assert_eq!(
            packing.groups(),
            1,
            "cells of 3 and 3 tokens; the empty one has no rows"
        );
        let x = Tensor::arange(12, (Kind::Int64, Device::Cpu)).view([3, 4]);
        let packed = packing.pack(&x);
        assert_eq!(Vec::<i64>::try_from(&packed).unwrap(), [0, 2, 3, 8, 9, 10]);
        let back = packing.unpack(&packed);
        assert!(back.equal(&(x * &m)));
    }

    #[test]
    fn uniform_batches_pack_by_reshaping() {
        let m = mask(&[5, 5], 5);
        let packing = Packing::new(&m);
        assert!(packing.identity);
        assert_eq!(packing.groups(), 1);
        assert!(packing.groups[0].padding.is_none());
    }

    #[test]
    fn groups_follow_the_overhead() {
        let m = mask(&[500, 3, 490, 2, 0], 512);
        let packing = Packing::with_overhead(&m, 64);
        assert_eq!(packing.groups(), 2);
        assert_eq!(packing.attention_slots(), 2 * 500 + 2 * 3);
        assert_eq!(Packing::with_overhead(&m, i64::MAX / 4).groups(), 1);
    }

    #[test]
    fn packed_encoder_equals_the_padded_pass_at_every_real_token() {
        tch::manual_seed(5);
        let vs = VarStore::new(Device::Cpu);
        let emb = GeneExpressionEmbedding::new(&vs.root() / "emb", 50, 16, 64, 0.0, false);
        let enc = TransformerEncoder::new(&vs.root() / "enc", 2, 16, 4, 32, 0.0, Activation::Gelu);
        let lengths = [40, 3, 37, 12, 0, 1, 40];
        let m = mask(&lengths, 40);
        // A hole in one cell: real tokens need not be contiguous.
        let _ = m.get(0).get(7).fill_(0);
        let ids = Tensor::randint_low(4, 50, [7, 40], (Kind::Int64, Device::Cpu)) * &m;
        let x = emb.forward_padded(&ids, None, false);
        let real = m.ne(0).unsqueeze(-1);
        for overhead in [0, 64, i64::MAX / 4] {
            let packing = Packing::with_overhead(&m, overhead);
            for causal in [false, true] {
                let padded = enc.forward_padded(&x, &m, causal, false);
                let packed = enc.forward_packed(&packing.pack(&x), &packing, causal, false);
                let diff = ((padded - packing.unpack(&packed)) * &real)
                    .abs()
                    .max()
                    .double_value(&[]);
                assert!(diff < 1e-5, "overhead {overhead}, causal={causal}: {diff}");
            }
        }
    }

    #[test]
    fn gradients_flow_through_the_packed_layout() {
        tch::manual_seed(6);
        let vs = VarStore::new(Device::Cpu);
        let enc = TransformerEncoder::new(vs.root(), 1, 8, 2, 16, 0.0, Activation::Gelu);
        let m = mask(&[6, 2, 4], 6);
        let x = Tensor::randn([3, 6, 8], (Kind::Float, Device::Cpu)).set_requires_grad(true);
        let packing = Packing::with_overhead(&m, 0);
        let out = enc.forward_packed(&packing.pack(&x), &packing, false, true);
        (&out * &out).sum(Kind::Float).backward();
        let grad = x.grad();
        let at_padding = (grad * m.eq(0).unsqueeze(-1))
            .abs()
            .sum(Kind::Float)
            .double_value(&[]);
        assert_eq!(at_padding, 0.0, "padding gets no gradient");
        assert!(
            enc.layers[0]
                .self_attn
                .in_proj_weight
                .grad()
                .abs()
                .sum(Kind::Float)
                .double_value(&[])
                > 0.0
        );
    }

    #[test]
    fn bf16_attention_on_the_cpu_runs_as_matmuls_with_the_fused_kernels_values() {
        use crate::components::encoder::attend_within;
        tch::manual_seed(8);
        let (cells, heads, len, d) = (3, 2, 7, 8);
        let randn = || Tensor::randn([cells, heads, len, d], (Kind::Float, Device::Cpu));
        let (q, k, v) = (randn(), randn(), randn());
        let m = mask(&[7, 3, 5], len);
        let real_queries = m.ne(0).view([cells, 1, len, 1]);
        let fused = |q: &Tensor, k: &Tensor, v: &Tensor, bias: &Tensor| {
            Tensor::scaled_dot_product_attention(q, k, v, Some(bias), 0.0, false, None, false)
        };
        let bf16 = |t: &Tensor| t.to_kind(Kind::BFloat16).set_requires_grad(true);
        for causal in [false, true] {
            let bias = attention_bias(&m, causal, Kind::Float);
            // float32: the fused kernel, bit for bit.
            assert!(attend(&q, &k, &v, Some(&bias), 0.0).equal(&fused(&q, &k, &v, &bias)));
            let (qb, kb, vb) = (bf16(&q), bf16(&k), bf16(&v));
            let got = attend(&qb, &kb, &vb, Some(&bias), 0.0);
            assert_eq!(got.kind(), Kind::BFloat16);
            let off = |want: &Tensor| {
                ((got.to_kind(Kind::Float) - want.to_kind(Kind::Float)) * &real_queries)
                    .abs()
                    .max()
                    .double_value(&[])
            };
            let want = fused(&q, &k, &v, &bias);
            let fused_bf16 = fused(&qb, &kb, &vb, &bias.to_kind(Kind::BFloat16));
            assert!(off(&want) < 3e-2, "causal={causal}: {}", off(&want));
            assert!(
                off(&fused_bf16) < 3e-2,
                "causal={causal}: {}",
                off(&fused_bf16)
            );
            // Above the score limit: the fused kernel itself.
            let above = attend_within(
                &qb,
                &kb,
                &vb,
                Some(&bias),
                0.0,
                cells * heads * len * len - 1,
            );
            assert!(above.equal(&fused_bf16));
            // Gradients flow to q, k and v (float32 leaves through the casts).
            let leaves: Vec<Tensor> = [&q, &k, &v]
                .iter()
                .map(|t| t.copy().set_requires_grad(true))
                .collect();
            let cast: Vec<Tensor> = leaves.iter().map(|t| t.to_kind(Kind::BFloat16)).collect();
            let out = attend(&cast[0], &cast[1], &cast[2], Some(&bias), 0.0);
            (out.to_kind(Kind::Float) * &real_queries)
                .sum(Kind::Float)
                .backward();
            for leaf in &leaves {
                let g = leaf.grad().abs().sum(Kind::Float).double_value(&[]);
                assert!(g > 0.0 && g.is_finite());
            }
        }
        // Dropout applies to the attention weights in training only.
        let (qb, kb, vb) = (bf16(&q), bf16(&k), bf16(&v));
        let a = attend(&qb, &kb, &vb, None, 0.5);
        let b = attend(&qb, &kb, &vb, None, 0.5);
        assert!(!a.equal(&b));
        assert!(attend(&qb, &kb, &vb, None, 0.0).equal(&attend(&qb, &kb, &vb, None, 0.0)));
    }

    #[test]
    fn packed_attention_and_heads_compute_in_bf16_under_autocast() {
        use crate::components::MaskedGenePredictionHead;
        use crate::config::Precision;
        use crate::precision::with_precision;
        tch::manual_seed(7);
        let vs = VarStore::new(Device::Cpu);
        let enc = TransformerEncoder::new(vs.root(), 1, 16, 4, 32, 0.0, Activation::Gelu);
        let head = MaskedGenePredictionHead::new(&vs.root() / "head", 16, 30);
        let m = mask(&[6, 2, 4], 6);
        let x = Tensor::randn([3, 6, 16], (Kind::Float, Device::Cpu));
        let packing = Packing::with_overhead(&m, 0);
        let rows = packing.pack(&x);
        let biases = packing.attention_biases(false, rows.kind());
        let bf16 = |f: &dyn Fn() -> Tensor| with_precision(Precision::Bf16Mixed, Device::Cpu, f);
        let attn = &enc.layers[0].self_attn;
        let attended = bf16(&|| attn.forward_packed(&rows, &packing, &biases, false));
        assert_eq!(attended.kind(), Kind::BFloat16);
        // The residual stream (and so LayerNorm's input) stays float32.
        let hidden = bf16(&|| enc.forward_packed(&rows, &packing, false, false));
        assert_eq!(hidden.kind(), Kind::Float);
        assert_eq!(bf16(&|| head.forward(&hidden)).kind(), Kind::BFloat16);
        // Same values as float32, to bfloat16 rounding.
        let plain = enc.forward_packed(&rows, &packing, false, false);
        let diff = (&hidden - &plain).abs().max().double_value(&[]);
        assert!(diff > 0.0 && diff < 0.1, "{diff}");
    }
}

/// The packed components against their padded references: every model's
/// one forward pass runs through these, so they guard what the padded and
/// packed paths of each model used to.
#[cfg(test)]
mod token_tests {
    use std::rc::Rc;

    use tch::{Device, Kind, Tensor, nn::VarStore};

    use super::Packing;
    use crate::batch::Batch;
    use crate::components::{
        GeneExpressionEmbedding, MaskedGenePredictionHead, Tokens, TransformerEncoder, pool,
    };
    use crate::config::{Activation, Pooling};
    use crate::model::Pass;
    use crate::models::loss::{cross_entropy, labelled};

    /// A batch with ragged cells, a hole, an all-padding cell, values and
    /// labels at some real positions.
    fn batch() -> Batch {
        let lengths = [12i64, 3, 9, 0, 1, 12];
        let mask = Tensor::arange(12, (Kind::Int64, Device::Cpu))
            .unsqueeze(0)
            .lt_tensor(&Tensor::from_slice(&lengths).unsqueeze(1))
            .to_kind(Kind::Int64);
        let _ = mask.get(0).get(5).fill_(0);
        let ids = Tensor::randint_low(4, 40, [6, 12], (Kind::Int64, Device::Cpu)) * &mask;
        let values = Tensor::rand([6, 12], (Kind::Float, Device::Cpu)) * &mask;
        let pick = Tensor::rand([6, 12], (Kind::Float, Device::Cpu))
            .lt(0.4)
            .logical_and(&mask.ne(0));
        let labels = ids.where_scalarother(&pick, -100);
        Batch::builder(ids, mask)
            .values(values)
            .labels(labels)
            .build()
            .unwrap()
    }

    fn max_diff(a: &Tensor, b: &Tensor) -> f64 {
        (a - b).abs().max().double_value(&[])
    }

    #[test]
    fn token_components_equal_their_padded_references_at_real_tokens() {
        tch::manual_seed(11);
        let vs = VarStore::new(Device::Cpu);
        let emb = GeneExpressionEmbedding::new(&vs.root() / "emb", 40, 16, 16, 0.0, true);
        let enc = TransformerEncoder::new(&vs.root() / "enc", 2, 16, 4, 32, 0.0, Activation::Gelu);
        let head = MaskedGenePredictionHead::new(&vs.root() / "head", 16, 40);
        let b = batch();
        let real = b.attention_mask().ne(0);
        let x = emb.forward(&b, false);
        let x_padded = emb.forward_padded(b.input_ids(), b.values(), false);
        assert!(max_diff(&x.padded(), &(&x_padded * real.unsqueeze(-1))) < 1e-6);
        for causal in [false, true] {
            let hidden = enc.forward(&x, causal, false);
            let padded = enc.forward_padded(&x_padded, b.attention_mask(), causal, false);
            let padded_real = &padded * real.unsqueeze(-1);
            assert!(max_diff(&hidden.padded(), &padded_real) < 1e-5);
            for pooling in [Pooling::Cls, Pooling::Mean] {
                let want = pool(pooling, &padded, b.attention_mask());
                // cls of a cell whose position 0 is padding: zero, not the
                // padded pass's value there.
                let want = want * real.select(1, 0).unsqueeze(-1);
                assert!(max_diff(&hidden.pool(pooling), &want) < 1e-5, "{pooling}");
            }
            // The loss: the head at labelled rows only, the same value as
            // cross-entropy over the padded logits (ignoring -100).
            let labels = b.labels().unwrap();
            let logits = head.forward(&padded);
            let want = cross_entropy(&logits.view([-1, 40]), &labels.view([-1]));
            let at = labelled(labels);
            for pass in [Pass::loss(false), Pass::everything(false)] {
                let (loss, all) = hidden.head_loss(
                    pass,
                    Some((&at, labels)),
                    |rows| head.forward(rows),
                    cross_entropy,
                );
                assert!(max_diff(&loss.unwrap(), &want) < 1e-5);
                assert_eq!(all.is_some(), pass.wants_everything());
                if let Some(all) = all {
                    assert!(max_diff(&all, &(&logits * real.unsqueeze(-1))) < 1e-5);
                }
            }
            let (loss, all) = hidden.head_loss(
                Pass::encode(),
                Some((&at, labels)),
                |rows| head.forward(rows),
                cross_entropy,
            );
            assert!(loss.is_none() && all.is_none(), "no head for embeddings");
        }
    }

    #[test]
    fn the_head_runs_only_at_the_rows_a_loss_needs() {
        let b = batch();
        let tokens = Tokens::new(
            Tensor::randn(
                [b.attention_mask().sum(Kind::Int64).int64_value(&[]), 4],
                (Kind::Float, Device::Cpu),
            ),
            Rc::new(Packing::new(b.attention_mask())),
        );
        let at = tokens.at(&labelled(b.labels().unwrap()));
        let labelled_rows = at.sum(Kind::Int64).int64_value(&[]);
        let seen = std::cell::Cell::new(0);
        let head = |rows: &Tensor| {
            seen.set(rows.size()[0]);
            rows.shallow_clone()
        };
        let out = tokens.head(Pass::loss(true), Some(&at), head);
        assert_eq!(seen.get(), labelled_rows);
        assert_eq!(out.labelled.unwrap().size()[0], labelled_rows);
        let out = tokens.head(Pass::everything(true), Some(&at), head);
        assert_eq!(seen.get(), tokens.packing().tokens());
        assert_eq!(out.labelled.unwrap().size()[0], labelled_rows);
        assert_eq!(out.logits.unwrap().size(), [6, 12, 4]);
    }

    #[test]
    fn tokens_onto_a_wider_packing_keep_their_positions_and_fill_the_rest() {
        let b = batch();
        let real = Rc::new(Packing::new(b.attention_mask()));
        let some = b
            .attention_mask()
            .ne(0)
            .logical_and(&b.labels().unwrap().eq(-100));
        let visible = Rc::new(Packing::new(&some));
        let x = Tensor::randn([6, 12, 3], (Kind::Float, Device::Cpu));
        let tokens = Tokens::new(visible.pack(&x), visible);
        let fill = Tensor::from_slice(&[7.0f32, 8.0, 9.0]);
        let wide = tokens.onto(&real, &fill);
        let want = fill
            .view([1, 1, 3])
            .expand([6, 12, 3], false)
            .where_self(&some.logical_not().unsqueeze(-1), &x)
            * b.attention_mask().ne(0).unsqueeze(-1);
        assert!(wide.padded().equal(&want));
    }
}
