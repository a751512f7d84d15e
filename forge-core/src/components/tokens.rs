//! [`Tokens`]: the real tokens of a batch as packed rows (N,H), the layout
//! every shared component runs in.
//!
//! A model built from the components never sees padding: the embedding
//! gathers the real ids first ([`GeneExpressionEmbedding::forward`]), the
//! encoder attends per cell over the packed rows
//! ([`TransformerEncoder::forward`]), per-token layers apply to the rows
//! ([`Tokens::map`]), a head runs only where the [`Pass`] needs it
//! ([`Tokens::head`]: at labelled rows for a loss, at every real token for
//! inspection, nowhere for embeddings), and pooling reads the rows
//! ([`Tokens::pool`]). The model author writes one forward pass and gets
//! this for free.
//!
//! [`GeneExpressionEmbedding::forward`]: super::GeneExpressionEmbedding::forward
//! [`TransformerEncoder::forward`]: super::TransformerEncoder::forward

use std::rc::Rc;

use tch::Tensor;

use super::packed::Packing;
use super::pooling::pool;
use crate::config::Pooling;
use crate::model::{ModelOutput, Pass};

/// Hidden vectors of the real tokens of a batch: `rows` (N,...) in the
/// order of `packing`.
#[derive(Debug)]
pub struct Tokens {
    /// One row per real token, (N,...).
    pub rows: Tensor,
    packing: Rc<Packing>,
}

/// What [`Tokens::head`] computed.
#[derive(Debug, Default)]
pub struct HeadOutputs {
    /// The head's output at the selected rows (M,...), in packed order,
    /// when the pass wants a loss and rows were selected.
    pub labelled: Option<Tensor>,
    /// The head's output at every position (B,S,...), zero at padding,
    /// when the pass wants everything.
    pub logits: Option<Tensor>,
}

impl Tokens {
    /// `rows` (N,...) laid out by `packing`.
    pub fn new(rows: Tensor, packing: Rc<Packing>) -> Self {
        assert_eq!(
            rows.size()[0],
            packing.tokens(),
            "rows do not match the packing"
        );
        Tokens { rows, packing }
    }

    /// The layout of the rows.
    pub fn packing(&self) -> &Rc<Packing> {
        &self.packing
    }

    /// A per-token layer applied to every row, same layout.
    pub fn map(&self, f: impl FnOnce(&Tensor) -> Tensor) -> Tokens {
        Tokens::new(f(&self.rows), self.packing.clone())
    }

    /// A batch tensor (B,S,...) in this layout (N,...): e.g. the labels of
    /// the rows.
    pub fn pack(&self, x: &Tensor) -> Tensor {
        self.packing.pack(x)
    }

    /// The rows back at their positions, (B,S,...), zero at padding.
    pub fn padded(&self) -> Tensor {
        self.packing.unpack(&self.rows)
    }

    /// (B,S) bool positions -> (N) bool, which rows they are.
    pub fn at(&self, positions: &Tensor) -> Tensor {
        self.packing.pack(positions)
    }

    /// The rows where `at` (N bool) is true, (M,...).
    pub fn rows_at(&self, at: &Tensor) -> Tensor {
        select(&self.rows, at)
    }

    /// Values of a batch tensor `x` (B,S,...) at the rows where `at` is
    /// true, (M,...), in the order of [`Tokens::rows_at`]: e.g. the
    /// targets of the labelled rows.
    pub fn select(&self, x: &Tensor, at: &Tensor) -> Tensor {
        select(&self.pack(x), at)
    }

    /// Cell embeddings (B,H): `strategy` over the rows (cls: position 0,
    /// zero when it is padding; mean: over the real tokens, zero for a
    /// cell without any).
    pub fn pool(&self, strategy: Pooling) -> Tensor {
        pool(strategy, &self.padded(), self.packing.real())
    }

    /// Runs `head` where `pass` needs it: at the rows `at` (N bool) for a
    /// loss, at every row for [`Pass::everything`] (then also returned
    /// unpacked as `logits`), nowhere for embeddings.
    pub fn head(
        &self,
        pass: Pass,
        at: Option<&Tensor>,
        head: impl Fn(&Tensor) -> Tensor,
    ) -> HeadOutputs {
        if pass.wants_everything() {
            let all = head(&self.rows);
            return HeadOutputs {
                labelled: at.map(|at| select(&all, at)),
                logits: Some(self.packing.unpack(&all)),
            };
        }
        HeadOutputs {
            labelled: at
                .filter(|_| pass.wants_loss())
                .map(|at| head(&self.rows_at(at))),
            logits: None,
        }
    }

    /// [`Tokens::head`] and a loss: `targets` is `(positions, values)`,
    /// both (B,S): where there is a target (bool) and what it is. The loss
    /// is `loss(head output, target)` over the rows at those positions,
    /// computed when the pass wants it; `logits` as [`Tokens::head`].
    pub fn head_loss(
        &self,
        pass: Pass,
        targets: Option<(&Tensor, &Tensor)>,
        head: impl Fn(&Tensor) -> Tensor,
        loss: impl FnOnce(&Tensor, &Tensor) -> Tensor,
    ) -> (Option<Tensor>, Option<Tensor>) {
        let at = targets.map(|(positions, _)| self.at(positions));
        let out = self.head(pass, at.as_ref(), head);
        let loss = out
            .labelled
            .zip(targets.zip(at))
            .map(|(predicted, ((_, values), at))| loss(&predicted, &self.select(values, &at)));
        (loss, out.logits)
    }

    /// The [`ModelOutput`] of a pass whose last hidden states are these
    /// tokens: `loss` and `logits` as given, embeddings pooled with
    /// `pooling` when the pass wants them, hidden states (unpacked) when it
    /// wants everything.
    pub fn output(
        &self,
        pass: Pass,
        pooling: Pooling,
        loss: Option<Tensor>,
        logits: Option<Tensor>,
    ) -> ModelOutput {
        ModelOutput {
            loss,
            logits,
            embeddings: pass.wants_embeddings().then(|| self.pool(pooling)),
            hidden_states: pass.wants_everything().then(|| self.padded()),
        }
    }

    /// These rows placed into `wider`, a packing of the same batch that
    /// holds every position of this one: positions only `wider` has get
    /// `fill` (broadcast to a row). The masked autoencoder's decoder input:
    /// its visible tokens among all real tokens, mask tokens elsewhere.
    pub fn onto(&self, wider: &Rc<Packing>, fill: &Tensor) -> Tokens {
        let mut size = self.rows.size();
        size[0] = wider.tokens();
        let base = fill
            .to_kind(self.rows.kind())
            .expand(size.as_slice(), false);
        let rows = base.index_copy(0, &self.packing.rows_in(wider), &self.rows);
        Tokens::new(rows, wider.clone())
    }
}

/// Rows of `x` (N,...) where `at` (N bool) is true.
fn select(x: &Tensor, at: &Tensor) -> Tensor {
    x.index(&[Some(at.shallow_clone())])
}
