//! Collation: cells of unequal length into one padded [`Batch`].
//!
//! Every key is padded to the longest cell of the batch (at least one
//! position, so a batch whose cells are all empty is one PAD column):
//! `input_ids` PAD (0), `attention_mask` 0, `values` 0.0, `labels` -100,
//! `masked_positions` false, `bin_ids` 0. `labels`/`masked_positions` are
//! present when the cells were masked, `bin_ids` when the tokenizer bins,
//! `task_labels` when every cell carries one.
//!
//! The padded arrays are filled in plain vectors and copied into tensors
//! once ([`tensor_from`]); [`Batch`]'s builder validates shapes and dtypes.

use tch::Tensor;

use forge_core::batch::{Batch, special};

use std::borrow::Borrow;

use super::DataError;
use super::tokenize::TokenizedCell;

/// What [`collate_tokens`] calls to mask row `i` in place: its `input_ids`
/// row (holding the cell's unmasked ids), then its `labels` and
/// `masked_positions` rows, all as long as the cell, to write.
pub(crate) type MaskRow<'a> = dyn FnMut(usize, &mut [i64], &mut [i64], &mut [bool]) + 'a;

/// The loader's collation: pads `cells` into a batch, masking each row in
/// place with `mask` when given (adding `labels` and `masked_positions`);
/// `task_labels`, one per cell, when fine-tuning. Every cell must have bins
/// when the first has.
/// `buffers` are the padded keys' working memory, kept between batches by
/// a loader thread: a batch's keys are megabytes, which the allocator
/// would otherwise return to the system and fault back in page by page
/// for every batch.
pub(crate) fn collate_tokens<C: Borrow<TokenizedCell>>(
    cells: &[C],
    task_labels: Option<&[i64]>,
    mask: Option<&mut MaskRow<'_>>,
    buffers: &mut CollateBuffers,
) -> Result<Batch, DataError> {
    let cells: Vec<&TokenizedCell> = cells.iter().map(Borrow::borrow).collect();
    if cells.is_empty() {
        return Err(DataError::Loader("cannot collate an empty batch".into()));
    }
    let b = cells.len();
    let s = cells.iter().map(|c| c.len()).max().unwrap_or(0).max(1);
    let has_bins = cells[0].bin_ids.is_some();
    let consistent = |c: &TokenizedCell| {
        c.values.len() == c.ids.len()
            && c.bin_ids.as_ref().map(Vec::len) == has_bins.then_some(c.ids.len())
    };
    if !cells.iter().all(|c| consistent(c)) || task_labels.is_some_and(|t| t.len() != b) {
        return Err(DataError::Loader(
            "the cells of a batch do not carry the same keys, or their keys differ in length"
                .into(),
        ));
    }
    let CollateBuffers {
        ids,
        attn,
        values,
        bins,
        labels,
        masked,
    } = buffers;
    let mut ids = Rows::new(ids, b, s, special::PAD);
    let mut attn = Rows::new(attn, b, s, 0i64);
    let mut values = Rows::new(values, b, s, 0f32);
    let mut bins = Rows::new(bins, if has_bins { b } else { 0 }, s, 0i64);
    let mut masked_keys = mask.map(|m| {
        (
            m,
            Rows::new(labels, b, s, special::IGNORE_INDEX),
            Rows::new(masked, b, s, false),
        )
    });
    for (i, c) in cells.iter().enumerate() {
        let n = c.len();
        ids.row(i, n).copy_from_slice(&c.ids);
        values.row(i, n).copy_from_slice(&c.values);
        attn.row(i, n).fill(1);
        if let Some(c_bins) = &c.bin_ids {
            bins.row(i, n).copy_from_slice(c_bins);
        }
        if let Some((mask, labels, masked)) = &mut masked_keys {
            mask(i, ids.row(i, n), labels.row(i, n), masked.row(i, n));
        }
    }
    let mut builder = Batch::builder(ids.tensor(), attn.tensor()).values(values.tensor());
    if let Some((_, labels, masked)) = masked_keys {
        builder = builder
            .labels(labels.tensor())
            .masked_positions(masked.tensor());
    }
    if has_bins {
        builder = builder.bin_ids(bins.tensor());
    }
    if let Some(t) = task_labels {
        builder = builder.task_labels(Tensor::from_slice(t));
    }
    builder
        .build()
        .map_err(|e| DataError::Loader(format!("collated batch is invalid: {e}")))
}

/// Working memory of [`collate_tokens`], one vector per padded key.
#[derive(Debug, Default)]
pub(crate) struct CollateBuffers {
    ids: Vec<i64>,
    attn: Vec<i64>,
    values: Vec<f32>,
    bins: Vec<i64>,
    labels: Vec<i64>,
    masked: Vec<bool>,
}

/// One padded (B, S) key, filled row by row in a plain vector, then copied
/// into a tensor.
struct Rows<'a, T> {
    s: usize,
    data: &'a mut Vec<T>,
}

impl<'a, T: tch::kind::Element + Copy> Rows<'a, T> {
    /// `data` emptied and filled with `b` rows of `s` times `pad`.
    fn new(data: &'a mut Vec<T>, b: usize, s: usize, pad: T) -> Rows<'a, T> {
        data.clear();
        data.resize(b * s, pad);
        Rows { s, data }
    }

    /// The first `n` elements of row `i`.
    fn row(&mut self, i: usize, n: usize) -> &mut [T] {
        &mut self.data[i * self.s..i * self.s + n]
    }

    fn tensor(&self) -> Tensor {
        let b = self.data.len() / self.s;
        tensor_from(self.data, [b as i64, self.s as i64])
    }
}

/// A new CPU tensor of `shape` holding `data` (row-major), copied with one
/// `memcpy`: the data module's one `unsafe` block, behind this safe API.
///
/// Why not `Tensor::from_slice`: it zero-fills the new tensor first, and
/// for a batch-sized tensor libtorch runs that fill on its OpenMP threads,
/// which then spin waiting for more work and take the CPU from the other
/// loader threads (the benchmark's streaming loader ran 4x slower so).
///
/// # Panics
/// When `data.len()` differs from the number of elements of `shape`, or a
/// dimension is negative.
pub(crate) fn tensor_from<T: tch::kind::Element + Copy>(data: &[T], shape: [i64; 2]) -> Tensor {
    let len = shape
        .iter()
        .map(|&d| usize::try_from(d).expect("a tensor dimension is not negative"))
        .product::<usize>();
    assert_eq!(data.len(), len, "data for a tensor of shape {shape:?}");
    let t = Tensor::empty(shape, (T::KIND, tch::Device::Cpu));
    if len == 0 {
        // An empty tensor may have no storage at all (a null data pointer).
        return t;
    }
    // SAFETY: `t` was just allocated as a contiguous CPU tensor of `len`
    // elements of kind `T::KIND`, that is of Rust type `T`, and nothing else
    // refers to it; the slice is only written, and dropped before `t` is
    // returned.
    let dst = unsafe { std::slice::from_raw_parts_mut(t.data_ptr().cast::<T>(), len) };
    dst.copy_from_slice(data);
    t
}

#[cfg(test)]
mod tests {
    use super::*;
    use tch::Kind;

    fn cell(ids: &[i64]) -> TokenizedCell {
        TokenizedCell {
            ids: ids.to_vec(),
            values: ids.iter().map(|&i| i as f32 / 10.0).collect(),
            bin_ids: Some(ids.iter().map(|&i| i % 3).collect()),
        }
    }

    /// Collates `cells`, masking every token 5 when `mask` (its label is 5).
    fn collate(
        cells: &[TokenizedCell],
        task: Option<&[i64]>,
        mask: bool,
    ) -> Result<Batch, DataError> {
        let mut fives = |_: usize, ids: &mut [i64], labels: &mut [i64], masked: &mut [bool]| {
            for k in 0..ids.len() {
                masked[k] = ids[k] == 5;
                labels[k] = if masked[k] { 5 } else { -100 };
            }
        };
        let mask = mask.then_some(&mut fives as &mut MaskRow<'_>);
        collate_tokens(cells, task, mask, &mut CollateBuffers::default())
    }

    fn rows<T: tch::kind::Element + Copy>(t: &Tensor) -> Vec<Vec<T>> {
        (0..t.size()[0])
            .map(|i| Vec::<T>::try_from(&t.get(i).contiguous()).unwrap())
            .collect()
    }

    #[test]
    fn tensor_from_copies_every_element_accepts_empty_shapes_and_refuses_bad_ones() {
        let ids: Vec<i64> = (0..6).map(|i| i * 1_000_000_007).collect();
        let t = tensor_from(&ids, [2, 3]);
        assert_eq!((t.size(), t.kind()), (vec![2, 3], Kind::Int64));
        assert_eq!(rows::<i64>(&t), vec![ids[..3].to_vec(), ids[3..].to_vec()]);
        let flags = [true, false, true];
        assert_eq!(
            rows::<bool>(&tensor_from(&flags, [3, 1])),
            vec![vec![true], vec![false], vec![true]]
        );
        let values = [0.5f32, -1.25];
        assert_eq!(
            rows::<f32>(&tensor_from(&values, [1, 2])),
            vec![values.to_vec()]
        );
        for shape in [[0, 5], [3, 0], [0, 0]] {
            let t = tensor_from::<f32>(&[], shape);
            assert_eq!(t.size(), shape.to_vec());
        }
        let wrong = std::panic::catch_unwind(|| tensor_from(&[1i64, 2, 3], [2, 2]));
        assert!(wrong.is_err());
        let negative = std::panic::catch_unwind(|| tensor_from::<i64>(&[], [-1, 2]));
        assert!(negative.is_err());
    }

    #[test]
    fn pads_every_key_with_its_own_value() {
        let batch = collate(&[cell(&[3, 5, 6]), cell(&[3])], Some(&[3, 1]), true).unwrap();
        assert_eq!((batch.batch_size(), batch.seq_len()), (2, 3));
        assert_eq!(
            rows::<i64>(batch.input_ids()),
            vec![vec![3, 5, 6], vec![3, 0, 0]]
        );
        assert_eq!(
            rows::<i64>(batch.attention_mask()),
            vec![vec![1, 1, 1], vec![1, 0, 0]]
        );
        assert_eq!(
            rows::<f32>(batch.values().unwrap()),
            vec![vec![0.3, 0.5, 0.6], vec![0.3, 0.0, 0.0]]
        );
        assert_eq!(
            rows::<i64>(batch.labels().unwrap()),
            vec![vec![-100, 5, -100], vec![-100, -100, -100]]
        );
        assert_eq!(
            rows::<bool>(batch.masked_positions().unwrap()),
            vec![vec![false, true, false], vec![false, false, false]]
        );
        assert_eq!(
            rows::<i64>(batch.bin_ids().unwrap()),
            vec![vec![0, 2, 0], vec![0, 0, 0]]
        );
        assert_eq!(
            Vec::<i64>::try_from(batch.task_labels().unwrap()).unwrap(),
            vec![3, 1]
        );
        assert_eq!(batch.masked_positions().unwrap().kind(), Kind::Bool);
    }

    #[test]
    fn empty_cells_become_one_pad_column_and_mixed_keys_are_refused() {
        let empty = TokenizedCell::default();
        let batch = collate(&[empty.clone(), empty.clone()], None, false).unwrap();
        assert_eq!((batch.batch_size(), batch.seq_len()), (2, 1));
        assert!(batch.labels().is_none() && batch.bin_ids().is_none());
        assert!(batch.task_labels().is_none());
        let err = collate(&[cell(&[3]), empty], None, false).unwrap_err();
        assert!(err.to_string().contains("same keys"), "{err}");
        assert!(collate(&[cell(&[3])], Some(&[1, 2]), false).is_err());
        assert!(collate(&[], None, false).is_err());
    }
}
