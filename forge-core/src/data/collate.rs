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
//! once; [`Batch`]'s builder validates shapes and dtypes.

use tch::Tensor;

use crate::batch::{Batch, special};

use super::DataError;
use super::tokenize::TokenizedCell;

/// One cell ready for collation.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct CellTokens {
    /// Input ids (after masking, when masked).
    pub ids: Vec<i64>,
    /// Values.
    pub values: Vec<f32>,
    /// Bin ids, when the tokenizer bins.
    pub bin_ids: Option<Vec<i64>>,
    /// Labels (-100 where not masked), when masked.
    pub labels: Option<Vec<i64>>,
    /// Masked positions, when masked.
    pub masked: Option<Vec<bool>>,
    /// The cell's task label (fine-tuning).
    pub task_label: Option<i64>,
}

impl CellTokens {
    /// Number of tokens.
    pub fn len(&self) -> usize {
        self.ids.len()
    }

    /// Whether the cell has no token.
    pub fn is_empty(&self) -> bool {
        self.ids.is_empty()
    }
}

/// Pads `cells` into a [`Batch`] on the CPU. Optional keys are included
/// when the first cell has them; a cell lacking a key another has is an
/// error.
pub fn collate(cells: &[CellTokens]) -> Result<Batch, DataError> {
    let Some(first) = cells.first() else {
        return Err(DataError::Loader("cannot collate an empty batch".into()));
    };
    let b = cells.len();
    let s = cells.iter().map(CellTokens::len).max().unwrap_or(0).max(1);
    let has_bins = first.bin_ids.is_some();
    let has_labels = first.labels.is_some();
    let has_task = first.task_label.is_some();
    for (i, c) in cells.iter().enumerate() {
        if c.bin_ids.is_some() != has_bins
            || c.labels.is_some() != has_labels
            || c.masked.is_some() != has_labels
            || c.task_label.is_some() != has_task
            || c.values.len() != c.ids.len()
            || c.labels.as_ref().is_some_and(|l| l.len() != c.ids.len())
            || c.masked.as_ref().is_some_and(|m| m.len() != c.ids.len())
            || c.bin_ids.as_ref().is_some_and(|b| b.len() != c.ids.len())
        {
            return Err(DataError::Loader(format!(
                "cell {i} of the batch does not carry the same keys as cell 0, or its keys \
                 differ in length"
            )));
        }
    }

    let shape = [b as i64, s as i64];
    let ids = padded(shape, special::PAD, |i| &cells[i].ids[..]);
    let mask = tensor_rows(shape, |i, dst: &mut [i64]| {
        let n = cells[i].len().min(dst.len());
        dst[..n].fill(1);
        dst[n..].fill(0);
    });
    let values = padded(shape, 0f32, |i| &cells[i].values[..]);
    let mut builder = Batch::builder(ids, mask).values(values);
    if has_labels {
        let labels = padded(shape, special::IGNORE_INDEX, |i| {
            cells[i].labels.as_deref().unwrap_or(&[])
        });
        let masked = padded(shape, false, |i| cells[i].masked.as_deref().unwrap_or(&[]));
        builder = builder.labels(labels).masked_positions(masked);
    }
    if has_bins {
        let bins = padded(shape, 0i64, |i| cells[i].bin_ids.as_deref().unwrap_or(&[]));
        builder = builder.bin_ids(bins);
    }
    if has_task {
        let t: Vec<i64> = cells.iter().map(|c| c.task_label.unwrap_or(-100)).collect();
        builder = builder.task_labels(Tensor::from_slice(&t));
    }
    builder
        .build()
        .map_err(|e| DataError::Loader(format!("collated batch is invalid: {e}")))
}

/// What [`collate_rows`] calls to mask row `i` in place: its `input_ids`
/// row (holding the cell's unmasked ids), then its `labels` and
/// `masked_positions` rows, all as long as the cell, to write.
pub(crate) type MaskRow<'a> = dyn FnMut(usize, &mut [i64], &mut [i64], &mut [bool]) + 'a;

/// One cell's tokens as [`collate_rows`] reads them.
pub(crate) trait RowTokens {
    /// Number of tokens.
    fn len(&self) -> usize;
    /// Whether the cell's keys agree in length.
    fn consistent(&self) -> bool;
    /// Writes the token ids and values into slices of [`RowTokens::len`].
    fn write(&self, ids: &mut [i64], values: &mut [f32]);
    /// Bin ids, when the tokenizer gives them.
    fn bins(&self) -> Option<&[i64]>;
    /// Asks the CPU to start loading what [`RowTokens::write`] will read
    /// (a hint, called one cell ahead; nothing by default).
    fn prefetch(&self) {}
}

impl<T: RowTokens> RowTokens for Box<T> {
    fn len(&self) -> usize {
        (**self).len()
    }

    fn consistent(&self) -> bool {
        (**self).consistent()
    }

    fn write(&self, ids: &mut [i64], values: &mut [f32]) {
        (**self).write(ids, values);
    }

    fn bins(&self) -> Option<&[i64]> {
        (**self).bins()
    }

    fn prefetch(&self) {
        (**self).prefetch();
    }
}

impl RowTokens for TokenizedCell {
    fn len(&self) -> usize {
        self.ids.len()
    }

    fn consistent(&self) -> bool {
        self.values.len() == self.ids.len()
            && self
                .bin_ids
                .as_ref()
                .is_none_or(|b| b.len() == self.ids.len())
    }

    fn write(&self, ids: &mut [i64], values: &mut [f32]) {
        ids.copy_from_slice(&self.ids);
        values.copy_from_slice(&self.values);
    }

    fn bins(&self) -> Option<&[i64]> {
        self.bin_ids.as_deref()
    }
}

/// The loader's collation: writes each cell straight into the batch's
/// tensors (no per-cell copy in between), masking each row in place with
/// `mask` when given. Gives the batch [`collate`] gives for the same cells
/// once masked; every cell must have bins when the first has.
pub(crate) fn collate_rows<R: RowTokens>(
    cells: &[R],
    task_labels: Option<&[i64]>,
    mask: Option<&mut MaskRow<'_>>,
) -> Result<Batch, DataError> {
    if cells.is_empty() {
        return Err(DataError::Loader("cannot collate an empty batch".into()));
    }
    let b = cells.len();
    let s = cells.iter().map(R::len).max().unwrap_or(0).max(1);
    let has_bins = cells[0].bins().is_some();
    if cells
        .iter()
        .any(|c| !c.consistent() || c.bins().is_some() != has_bins)
        || task_labels.is_some_and(|t| t.len() != b)
    {
        return Err(DataError::Loader(
            "the cells of a batch do not carry the same keys, or their keys differ in length"
                .into(),
        ));
    }
    let shape = [b as i64, s as i64];
    let (ids_t, ids) = empty_rows::<i64>(shape);
    let (attn_t, attn) = empty_rows::<i64>(shape);
    let (values_t, values) = empty_rows::<f32>(shape);
    let mut masked_keys = mask.map(|mask| {
        let (labels_t, labels) = empty_rows::<i64>(shape);
        let (masked_t, masked) = empty_rows::<bool>(shape);
        (mask, labels_t, labels, masked_t, masked)
    });
    // One pass, row by row: a row is masked while it is still in cache.
    for (i, c) in cells.iter().enumerate() {
        if let Some(next) = cells.get(i + 1) {
            next.prefetch();
        }
        let (n, at) = (c.len(), i * s);
        c.write(&mut ids[at..at + n], &mut values[at..at + n]);
        ids[at + n..at + s].fill(special::PAD);
        values[at + n..at + s].fill(0.0);
        attn[at..at + n].fill(1);
        attn[at + n..at + s].fill(0);
        if let Some((mask, _, labels, _, masked)) = &mut masked_keys {
            mask(
                i,
                &mut ids[at..at + n],
                &mut labels[at..at + n],
                &mut masked[at..at + n],
            );
            labels[at + n..at + s].fill(special::IGNORE_INDEX);
            masked[at + n..at + s].fill(false);
        }
    }
    let masked_keys = masked_keys.map(|(_, labels_t, _, masked_t, _)| (labels_t, masked_t));
    let mut builder = Batch::builder(ids_t, attn_t).values(values_t);
    if let Some((labels_t, masked_t)) = masked_keys {
        builder = builder.labels(labels_t).masked_positions(masked_t);
    }
    if has_bins {
        let bins = padded(shape, 0i64, |i| cells[i].bins().unwrap_or(&[]));
        builder = builder.bin_ids(bins);
    }
    if let Some(t) = task_labels {
        builder = builder.task_labels(Tensor::from_slice(t));
    }
    builder
        .build()
        .map_err(|e| DataError::Loader(format!("collated batch is invalid: {e}")))
}

/// A new, uninitialised contiguous CPU tensor of `shape` and its elements.
fn empty_rows<'a, T: tch::kind::Element>(shape: [i64; 2]) -> (Tensor, &'a mut [T]) {
    let len = (shape[0] * shape[1]) as usize;
    let t = Tensor::empty(shape, (T::KIND, tch::Device::Cpu));
    // SAFETY: `t` was just allocated as a contiguous CPU tensor of `len`
    // elements of type T (its kind is T::KIND). Its storage lives on the
    // heap, unmoved while the tensor handle moves, and every caller writes
    // each element before the tensor is read, holding the slice no longer
    // than it holds the tensor.
    let out = unsafe { std::slice::from_raw_parts_mut(t.data_ptr() as *mut T, len) };
    (t, out)
}

/// A (B, S) tensor filled by `fill(row, slice)` for each row, written
/// straight into the tensor's memory (one pass, no intermediate vector).
fn tensor_rows<T: tch::kind::Element + Copy>(
    shape: [i64; 2],
    mut fill: impl FnMut(usize, &mut [T]),
) -> Tensor {
    let (b, s) = (shape[0] as usize, shape[1] as usize);
    let t = Tensor::empty(shape, (T::KIND, tch::Device::Cpu));
    // SAFETY: `t` was just allocated as a contiguous CPU tensor of b * s
    // elements of type T (its kind is T::KIND) and nothing else refers to
    // it; `fill` writes every element of each row before anything reads it.
    let out = unsafe { std::slice::from_raw_parts_mut(t.data_ptr() as *mut T, b * s) };
    for (i, dst) in out.chunks_exact_mut(s.max(1)).enumerate().take(b) {
        fill(i, dst);
    }
    t
}

/// Row `i` holds `row(i)` then `pad`.
fn padded<'a, T: tch::kind::Element + Copy + 'a>(
    shape: [i64; 2],
    pad: T,
    row: impl Fn(usize) -> &'a [T],
) -> Tensor {
    tensor_rows(shape, |i, dst: &mut [T]| {
        let src = row(i);
        let n = src.len().min(dst.len());
        dst[..n].copy_from_slice(&src[..n]);
        dst[n..].fill(pad);
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use tch::Kind;

    fn cell(ids: &[i64], masked: bool) -> CellTokens {
        CellTokens {
            ids: ids.to_vec(),
            values: ids.iter().map(|&i| i as f32 / 10.0).collect(),
            bin_ids: Some(ids.iter().map(|&i| i % 3).collect()),
            labels: masked.then(|| ids.iter().map(|&i| if i == 5 { 5 } else { -100 }).collect()),
            masked: masked.then(|| ids.iter().map(|&i| i == 5).collect()),
            task_label: Some(ids.len() as i64),
        }
    }

    fn rows<T: tch::kind::Element + Copy>(t: &Tensor) -> Vec<Vec<T>> {
        (0..t.size()[0])
            .map(|i| Vec::<T>::try_from(&t.get(i).contiguous()).unwrap())
            .collect()
    }

    #[test]
    fn pads_every_key_with_its_own_value() {
        let batch = collate(&[cell(&[3, 5, 6], true), cell(&[3], true)]).unwrap();
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
        let batch = collate(&[CellTokens::default(), CellTokens::default()]).unwrap();
        assert_eq!((batch.batch_size(), batch.seq_len()), (2, 1));
        assert!(batch.labels().is_none() && batch.bin_ids().is_none());
        let err = collate(&[cell(&[3], true), cell(&[3], false)]).unwrap_err();
        assert!(err.to_string().contains("cell 1"), "{err}");
        assert!(collate(&[]).is_err());
    }
}
