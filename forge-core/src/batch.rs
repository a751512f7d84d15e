//! The batch a model receives: padded token ids plus the optional keys of
//! scModelForge's collator, validated once when the batch is built.
//!
//! Every tensor is padded to the longest cell in the batch (`S`). A [`Batch`]
//! can only be obtained through [`BatchBuilder::build`], which checks shapes
//! and dtypes, so model code can index without re-checking.

use tch::{Device, Kind, Tensor};

use crate::error::{ForgeError, Result};

/// Special token ids shared by every tokenizer and model.
pub mod special {
    /// Padding.
    pub const PAD: i64 = 0;
    /// Gene not in the vocabulary.
    pub const UNK: i64 = 1;
    /// Masked position (pretraining).
    pub const MASK: i64 = 2;
    /// Cell token prepended to every sequence.
    pub const CLS: i64 = 3;
    /// First id given to a real gene.
    pub const FIRST_GENE_ID: i64 = 4;
    /// Label value that cross-entropy ignores.
    pub const IGNORE_INDEX: i64 = -100;
}

/// A validated, padded batch of cells.
///
/// | key | shape, dtype | present |
/// |---|---|---|
/// | `input_ids` | (B,S) int64 | always |
/// | `attention_mask` | (B,S) 1 real / 0 pad, any integer, bool or float dtype | always |
/// | `values` | (B,S) float | optional |
/// | `labels` | (B,S) int64, -100 = ignore | pretraining |
/// | `masked_positions` | (B,S) bool | pretraining |
/// | `bin_ids` | (B,S) int64 | binned tokenizer |
/// | `task_labels` | (B) int64 | fine-tuning |
#[derive(Debug)]
pub struct Batch {
    input_ids: Tensor,
    attention_mask: Tensor,
    values: Option<Tensor>,
    labels: Option<Tensor>,
    masked_positions: Option<Tensor>,
    bin_ids: Option<Tensor>,
    task_labels: Option<Tensor>,
}

/// Builds a [`Batch`]; [`BatchBuilder::build`] validates every key.
#[derive(Debug)]
pub struct BatchBuilder {
    batch: Batch,
}

impl Batch {
    /// Starts a batch from the two keys every batch has.
    pub fn builder(input_ids: Tensor, attention_mask: Tensor) -> BatchBuilder {
        BatchBuilder {
            batch: Batch {
                input_ids,
                attention_mask,
                values: None,
                labels: None,
                masked_positions: None,
                bin_ids: None,
                task_labels: None,
            },
        }
    }

    /// Token ids, (B,S) int64.
    pub fn input_ids(&self) -> &Tensor {
        &self.input_ids
    }
    /// 1 for real tokens, 0 for padding, (B,S) int64.
    pub fn attention_mask(&self) -> &Tensor {
        &self.attention_mask
    }
    /// Expression values, (B,S) float.
    pub fn values(&self) -> Option<&Tensor> {
        self.values.as_ref()
    }
    /// Target ids at masked positions, -100 elsewhere, (B,S) int64.
    pub fn labels(&self) -> Option<&Tensor> {
        self.labels.as_ref()
    }
    /// Which positions were masked, (B,S) bool.
    pub fn masked_positions(&self) -> Option<&Tensor> {
        self.masked_positions.as_ref()
    }
    /// Expression bins, (B,S) int64.
    pub fn bin_ids(&self) -> Option<&Tensor> {
        self.bin_ids.as_ref()
    }
    /// One label per cell for fine-tuning, (B) int64.
    pub fn task_labels(&self) -> Option<&Tensor> {
        self.task_labels.as_ref()
    }

    /// Number of cells.
    pub fn batch_size(&self) -> i64 {
        self.input_ids.size()[0]
    }
    /// Padded sequence length.
    pub fn seq_len(&self) -> i64 {
        self.input_ids.size()[1]
    }
    /// Device of the batch tensors.
    pub fn device(&self) -> Device {
        self.input_ids.device()
    }

    /// A copy of this batch without `labels` (and `masked_positions`).
    pub fn without_labels(&self) -> Batch {
        Batch {
            input_ids: self.input_ids.shallow_clone(),
            attention_mask: self.attention_mask.shallow_clone(),
            values: self.values.as_ref().map(Tensor::shallow_clone),
            labels: None,
            masked_positions: None,
            bin_ids: self.bin_ids.as_ref().map(Tensor::shallow_clone),
            task_labels: self.task_labels.as_ref().map(Tensor::shallow_clone),
        }
    }

    /// Moves every tensor to `device`.
    pub fn to_device(&self, device: Device) -> Batch {
        let mv = |t: &Tensor| t.to_device(device);
        Batch {
            input_ids: mv(&self.input_ids),
            attention_mask: mv(&self.attention_mask),
            values: self.values.as_ref().map(mv),
            labels: self.labels.as_ref().map(mv),
            masked_positions: self.masked_positions.as_ref().map(mv),
            bin_ids: self.bin_ids.as_ref().map(mv),
            task_labels: self.task_labels.as_ref().map(mv),
        }
    }
}

impl BatchBuilder {
    /// Sets `values`, (B,S) float.
    pub fn values(mut self, values: Tensor) -> Self {
        self.batch.values = Some(values);
        self
    }
    /// Sets `labels`, (B,S) int64 with -100 where no loss is taken.
    pub fn labels(mut self, labels: Tensor) -> Self {
        self.batch.labels = Some(labels);
        self
    }
    /// Sets `masked_positions`, (B,S) bool.
    pub fn masked_positions(mut self, masked: Tensor) -> Self {
        self.batch.masked_positions = Some(masked);
        self
    }
    /// Sets `bin_ids`, (B,S) int64.
    pub fn bin_ids(mut self, bin_ids: Tensor) -> Self {
        self.batch.bin_ids = Some(bin_ids);
        self
    }
    /// Sets `task_labels`, (B) int64.
    pub fn task_labels(mut self, task_labels: Tensor) -> Self {
        self.batch.task_labels = Some(task_labels);
        self
    }

    /// Checks every key's shape and dtype against `input_ids` and returns the
    /// batch. The attention mask is normalised to int64.
    pub fn build(self) -> Result<Batch> {
        let mut b = self.batch;
        let ids = b.input_ids.size();
        if ids.len() != 2 {
            return Err(batch_err(
                "input_ids",
                format!("must have shape (B, S), got {ids:?}"),
            ));
        }
        if ids[0] < 1 || ids[1] < 1 {
            return Err(batch_err(
                "input_ids",
                format!("must hold at least one cell and one token, got shape {ids:?}"),
            ));
        }
        expect_kind("input_ids", &b.input_ids, &[Kind::Int64])?;
        let device = b.input_ids.device();
        expect_shape("attention_mask", &b.attention_mask, &ids)?;
        expect_kind(
            "attention_mask",
            &b.attention_mask,
            &[
                Kind::Int64,
                Kind::Int,
                Kind::Int8,
                Kind::Uint8,
                Kind::Bool,
                Kind::Float,
            ],
        )?;
        b.attention_mask = b.attention_mask.to_kind(Kind::Int64);
        let float_kinds = [Kind::Float, Kind::Double, Kind::BFloat16, Kind::Half];
        let checks: [(&'static str, &Option<Tensor>, &[Kind]); 3] = [
            ("values", &b.values, &float_kinds),
            ("labels", &b.labels, &[Kind::Int64]),
            ("bin_ids", &b.bin_ids, &[Kind::Int64]),
        ];
        for (key, tensor, kinds) in checks {
            if let Some(t) = tensor {
                expect_shape(key, t, &ids)?;
                expect_kind(key, t, kinds)?;
            }
        }
        if let Some(m) = &b.masked_positions {
            expect_shape("masked_positions", m, &ids)?;
            expect_kind("masked_positions", m, &[Kind::Bool])?;
        }
        if let Some(t) = &b.task_labels {
            expect_shape("task_labels", t, &ids[..1])?;
            expect_kind("task_labels", t, &[Kind::Int64, Kind::Float])?;
        }
        for (key, t) in b.tensors() {
            if t.device() != device {
                return Err(batch_err(
                    key,
                    format!(
                        "is on {:?} but input_ids is on {device:?}; move the batch with Batch::to_device",
                        t.device()
                    ),
                ));
            }
        }
        Ok(b)
    }
}

impl Batch {
    fn tensors(&self) -> Vec<(&'static str, &Tensor)> {
        let optional = [
            ("values", &self.values),
            ("labels", &self.labels),
            ("masked_positions", &self.masked_positions),
            ("bin_ids", &self.bin_ids),
            ("task_labels", &self.task_labels),
        ];
        let mut all = vec![
            ("input_ids", &self.input_ids),
            ("attention_mask", &self.attention_mask),
        ];
        all.extend(
            optional
                .into_iter()
                .filter_map(|(k, t)| t.as_ref().map(|t| (k, t))),
        );
        all
    }
}

fn batch_err(key: &'static str, message: String) -> ForgeError {
    ForgeError::Batch { key, message }
}

fn expect_shape(key: &'static str, t: &Tensor, expected: &[i64]) -> Result<()> {
    let got = t.size();
    if got != expected {
        let dims = if expected.len() == 1 { "(B)" } else { "(B, S)" };
        return Err(batch_err(
            key,
            format!("has shape {got:?}, expected {expected:?} {dims} to match input_ids"),
        ));
    }
    Ok(())
}

fn expect_kind(key: &'static str, t: &Tensor, kinds: &[Kind]) -> Result<()> {
    let got = t.kind();
    if !kinds.contains(&got) {
        return Err(batch_err(
            key,
            format!("has dtype {got:?}, expected one of {kinds:?}"),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ids() -> Tensor {
        Tensor::from_slice(&[4i64, 5, 6, 7, 8, 0]).view([2, 3])
    }
    fn mask() -> Tensor {
        Tensor::from_slice(&[1i64, 1, 1, 1, 1, 0]).view([2, 3])
    }

    #[test]
    fn builds_a_valid_batch_with_every_key() {
        let b = Batch::builder(ids(), mask().to_kind(Kind::Bool))
            .values(Tensor::zeros([2, 3], (Kind::Float, Device::Cpu)))
            .labels(Tensor::full([2, 3], -100, (Kind::Int64, Device::Cpu)))
            .masked_positions(Tensor::zeros([2, 3], (Kind::Bool, Device::Cpu)))
            .bin_ids(Tensor::zeros([2, 3], (Kind::Int64, Device::Cpu)))
            .task_labels(Tensor::from_slice(&[0i64, 1]))
            .build()
            .unwrap();
        assert_eq!((b.batch_size(), b.seq_len()), (2, 3));
        assert_eq!(b.attention_mask().kind(), Kind::Int64);
        assert!(b.without_labels().labels().is_none());
    }

    #[test]
    fn wrong_shape_names_the_key_and_the_expected_shape() {
        let err = Batch::builder(ids(), mask())
            .values(Tensor::zeros([2, 4], (Kind::Float, Device::Cpu)))
            .build()
            .unwrap_err()
            .to_string();
        assert!(err.contains("`values`"), "{err}");
        assert!(err.contains("[2, 4]") && err.contains("[2, 3]"), "{err}");
    }

    #[test]
    fn wrong_dtype_and_rank_are_refused() {
        let err = Batch::builder(ids().to_kind(Kind::Float), mask())
            .build()
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("`input_ids`") && err.contains("Float"),
            "{err}"
        );
        let err = Batch::builder(Tensor::from_slice(&[1i64, 2]), mask())
            .build()
            .unwrap_err()
            .to_string();
        assert!(err.contains("(B, S)"), "{err}");
        let err = Batch::builder(ids(), mask())
            .task_labels(Tensor::from_slice(&[0i64, 1, 2]))
            .build()
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("`task_labels`") && err.contains("(B)"),
            "{err}"
        );
    }
}
