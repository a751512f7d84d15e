//! Building batches on a loader thread: each cell is tokenized into a
//! reusable [`Slot`], then a batch's slots are masked and collated straight
//! into the [`Batch`]'s tensors ([`Worker::build`]).
//!
//! Both reading modes of the [`DataLoader`](super::DataLoader) use it: the
//! in-memory loader tokenizes prepared rows ([`Worker::tokenize`]), the
//! streaming one stored rows ([`Worker::tokenize_stored`], which ranks whole
//! counts directly when it can).

use std::borrow::Borrow;
use std::sync::Arc;

use crate::batch::Batch;

use super::DataError;
use super::collate::{RowTokens, collate_rows};
use super::corpus::PreparedRow;
use super::loader::Inner;
use super::masking::{cell_rng, maskable_positions};
use super::rank_counts::{CountRanker, RankedCell};
use super::tokenize::TokenizedCell;

/// What every batch of an epoch shares.
pub(super) struct Ctx {
    pub inner: Arc<Inner>,
    pub epoch: u64,
    pub seed: u64,
    pub mask: bool,
}

/// One tokenized cell on its way into a batch: tokenized by the general
/// path, or ranked straight from its counts. The buffers of both are kept
/// when the slot is reused for another cell.
#[derive(Default)]
pub(super) struct Slot {
    /// Corpus index of the cell.
    pub cell: usize,
    /// Entries stored for the cell in its file (what length bucketing
    /// sorts streamed cells by).
    pub stored: usize,
    ranked: bool,
    tokens: TokenizedCell,
    counts: RankedCell,
    /// The position from which every token is maskable, when the fast path
    /// knows it (see [`Worker::tokenize_stored`]).
    maskable_from: Option<usize>,
}

impl RowTokens for Slot {
    fn len(&self) -> usize {
        if self.ranked {
            self.counts.len()
        } else {
            self.tokens.len()
        }
    }

    fn consistent(&self) -> bool {
        self.ranked || self.tokens.consistent()
    }

    fn write(&self, ids: &mut [i64], values: &mut [f32]) {
        if self.ranked {
            self.counts.write(ids, values);
        } else {
            self.tokens.write(ids, values);
        }
    }

    fn bins(&self) -> Option<&[i64]> {
        if self.ranked {
            None
        } else {
            self.tokens.bins()
        }
    }

    fn prefetch(&self) {
        // Streamed cells waited in the shuffle buffer: out of cache.
        if self.ranked {
            self.counts.prefetch();
        }
    }
}

/// Per-thread scratch space for tokenizing cells and building batches.
#[derive(Default)]
pub(super) struct Worker {
    keys: Vec<u64>,
    positions: Vec<u32>,
    ranker: CountRanker,
    row: PreparedRow,
}

impl Worker {
    /// Tokenizes corpus cell `cell`, prepared as `genes`/`values`, into
    /// `slot`.
    pub fn tokenize(
        &mut self,
        ctx: &Ctx,
        slot: &mut Slot,
        cell: usize,
        genes: &[u32],
        values: &[f32],
    ) {
        let inner = &ctx.inner;
        slot.cell = cell;
        slot.stored = genes.len();
        slot.ranked = false;
        slot.maskable_from = None;
        inner.tokenizer.tokenize_into(
            genes,
            values,
            &inner.gene_ids,
            &mut slot.tokens,
            &mut self.keys,
        );
    }

    /// Tokenizes corpus cell `cell` from its row as stored in file `file`
    /// into `slot`: straight from the counts when
    /// [`Tokenizer::rank_counts`](super::Tokenizer::rank_counts) can, else
    /// prepared first.
    pub fn tokenize_stored(
        &mut self,
        ctx: &Ctx,
        slot: &mut Slot,
        (cell, file): (usize, usize),
        cols: &[u32],
        vals: &[f32],
    ) {
        let inner = &ctx.inner;
        let columns = &inner.columns[file];
        if inner.tokenizer.rank_counts(
            cols,
            vals,
            columns,
            inner.corpus.preprocessing(),
            &mut self.ranker,
            &mut slot.counts,
        ) {
            slot.cell = cell;
            slot.stored = cols.len();
            slot.ranked = true;
            // Gene tokens from plain columns are never CLS or PAD: all but a
            // prepended CLS are maskable.
            let first = usize::from(slot.counts.cls);
            slot.maskable_from = columns.plain().then_some(first);
            return;
        }
        let mut row = std::mem::take(&mut self.row);
        inner.corpus.prepare(file, cols, vals, &mut row);
        self.tokenize(ctx, slot, cell, &row.genes, &row.values);
        slot.stored = cols.len();
        self.row = row;
    }

    /// The batch of `slots`, in order, masked when the epoch masks (each
    /// cell with its own generator, [`cell_rng`]).
    pub fn build<S>(&mut self, ctx: &Ctx, slots: &[S]) -> Result<Batch, DataError>
    where
        S: Borrow<Slot> + RowTokens,
    {
        let inner = &ctx.inner;
        let task: Option<Vec<i64>> = inner
            .labels
            .as_ref()
            .map(|l| slots.iter().map(|s| l.codes[s.borrow().cell]).collect());
        let positions = &mut self.positions;
        let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            match (&inner.masking, ctx.mask) {
                (Some(m), true) => {
                    let mut mask =
                        |i: usize, input: &mut [i64], labels: &mut [i64], masked: &mut [bool]| {
                            let slot: &Slot = slots[i].borrow();
                            let rng = cell_rng(ctx.seed, ctx.epoch, slot.cell as u64);
                            match slot.maskable_from {
                                Some(first) => {
                                    positions.clear();
                                    positions.extend(first as u32..input.len() as u32);
                                }
                                None => maskable_positions(input, positions),
                            }
                            m.mask_in_place(input, rng, labels, masked, positions);
                        };
                    collate_rows(slots, task.as_deref(), Some(&mut mask))
                }
                _ => collate_rows(slots, task.as_deref(), None),
            }
        }));
        match result {
            Ok(r) => r,
            Err(_) => Err(DataError::Loader(
                "building a batch failed unexpectedly (libtorch error while creating tensors)"
                    .into(),
            )),
        }
    }
}
