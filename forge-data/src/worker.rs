//! Building batches on a loader thread: each cell is tokenized into a
//! reusable [`Slot`], then a batch's slots are masked and collated into a
//! [`Batch`] ([`Worker::build`]).
//!
//! Both reading modes of the [`DataLoader`](super::DataLoader) use it: the
//! in-memory loader tokenizes prepared rows ([`Worker::tokenize`]), the
//! streaming one stored rows ([`Worker::tokenize_stored`], which prepares
//! them first). Either way a cell goes through [`Tokenizer::tokenize_into`],
//! so there is one tokenizer rule for every path.
//!
//! [`Tokenizer::tokenize_into`]: super::Tokenizer::tokenize_into

use std::borrow::Borrow;
use std::sync::Arc;

use forge_core::batch::Batch;

use super::DataError;
use super::collate::{CollateBuffers, collate_tokens};
use super::corpus::PreparedRow;
use super::pipeline::Inner;
use super::seed::cell_rng;
use super::tokenize::TokenizedCell;

/// What every batch of an epoch shares.
pub(super) struct Ctx {
    pub inner: Arc<Inner>,
    pub epoch: u64,
    pub seed: u64,
    pub mask: bool,
}

/// A built batch with the corpus indices of its cells, or the error that
/// stopped the epoch.
pub(super) type Loaded = Result<(Vec<usize>, Batch), DataError>;

/// One tokenized cell on its way into a batch. Its buffers are kept when
/// the slot is reused for another cell.
#[derive(Default)]
pub(super) struct Slot {
    /// Corpus index of the cell.
    pub cell: usize,
    /// Entries stored for the cell in its file (what length bucketing
    /// sorts streamed cells by).
    pub stored: usize,
    tokens: TokenizedCell,
}

impl Borrow<TokenizedCell> for Slot {
    fn borrow(&self) -> &TokenizedCell {
        &self.tokens
    }
}

impl Borrow<TokenizedCell> for Box<Slot> {
    fn borrow(&self) -> &TokenizedCell {
        &self.tokens
    }
}

/// Per-thread scratch space for tokenizing cells and building batches.
#[derive(Default)]
pub(super) struct Worker {
    keys: Vec<u64>,
    positions: Vec<u32>,
    row: PreparedRow,
    buffers: CollateBuffers,
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
        let total = inner
            .cell_totals
            .as_ref()
            .and_then(|t| t.get(cell).copied());
        inner.tokenizer.tokenize_cell_into(
            genes,
            values,
            &inner.gene_ids,
            total,
            &mut slot.tokens,
            &mut self.keys,
        );
    }

    /// Tokenizes corpus cell `cell` from its row as stored in file `file`
    /// into `slot`: the row is mapped to corpus genes and preprocessed
    /// ([`super::Corpus::prepare`]), then tokenized.
    pub fn tokenize_stored(
        &mut self,
        ctx: &Ctx,
        slot: &mut Slot,
        (cell, file): (usize, usize),
        cols: &[u32],
        vals: &[f32],
    ) {
        let mut row = std::mem::take(&mut self.row);
        ctx.inner.corpus.prepare(file, cols, vals, &mut row);
        self.tokenize(ctx, slot, cell, &row.genes, &row.values);
        slot.stored = cols.len();
        self.row = row;
    }

    /// The batch of `slots`, in order, masked when the epoch masks (each
    /// cell with its own generator, [`cell_rng`]).
    pub fn build<S>(&mut self, ctx: &Ctx, slots: &[S]) -> Result<Batch, DataError>
    where
        S: Borrow<Slot> + Borrow<TokenizedCell>,
    {
        let inner = &ctx.inner;
        let cell = |i: usize| Borrow::<Slot>::borrow(&slots[i]).cell;
        let task: Option<Vec<i64>> = inner
            .labels
            .as_ref()
            .map(|l| (0..slots.len()).map(|i| l.codes[cell(i)]).collect());
        let positions = &mut self.positions;
        let buffers = &mut self.buffers;
        let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            match (&inner.masking, ctx.mask) {
                (Some(m), true) => {
                    let mut mask =
                        |i: usize, input: &mut [i64], labels: &mut [i64], masked: &mut [bool]| {
                            let rng = cell_rng(ctx.seed, ctx.epoch, cell(i) as u64);
                            m.mask_row(input, rng, labels, masked, positions);
                        };
                    collate_tokens(slots, task.as_deref(), Some(&mut mask), buffers)
                }
                _ => collate_tokens(slots, task.as_deref(), None, buffers),
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
