//! `GeneExpressionEmbedding`: turns token ids (and expression values) into
//! hidden vectors.
//!
//! The sum of a gene Embedding(V,H, padding row 0), a learned position
//! Embedding(S_max,H) and, optionally, Linear(1,H) of the scalar value;
//! then LayerNorm (eps 1e-12) and dropout. PyTorch names: `gene_embedding.weight`,
//! `position_embedding.weight`, `expression_proj.{weight,bias}`,
//! `layer_norm.{weight,bias}`.

use std::rc::Rc;

use tch::{Kind, Tensor, nn};

use super::init;
use super::packed::Packing;
use super::tokens::Tokens;
use crate::batch::Batch;
use crate::batch::special::PAD;
use crate::params::{Parameters, join};

/// Gene + position (+ value) embedding.
#[derive(Debug)]
pub struct GeneExpressionEmbedding {
    /// Gene token embedding, (V,H); row 0 (PAD) is zero.
    pub gene_embedding: nn::Embedding,
    /// Learned position embedding, (max_seq_len,H).
    pub position_embedding: nn::Embedding,
    /// Projection of the scalar expression value, when values are used.
    pub expression_proj: Option<nn::Linear>,
    /// Final LayerNorm.
    pub layer_norm: nn::LayerNorm,
    /// Dropout probability applied after the LayerNorm in training.
    pub dropout: f64,
    max_seq_len: i64,
}

impl GeneExpressionEmbedding {
    /// Creates the embedding under `path` with scModelForge's init.
    pub fn new(
        path: nn::Path,
        vocab_size: i64,
        hidden_dim: i64,
        max_seq_len: i64,
        dropout: f64,
        use_expression_values: bool,
    ) -> Self {
        GeneExpressionEmbedding {
            gene_embedding: init::embedding(
                &path / "gene_embedding",
                vocab_size,
                hidden_dim,
                Some(PAD),
            ),
            position_embedding: init::embedding(
                &path / "position_embedding",
                max_seq_len,
                hidden_dim,
                None,
            ),
            expression_proj: use_expression_values
                .then(|| init::linear(&path / "expression_proj", 1, hidden_dim)),
            layer_norm: init::layer_norm(&path / "layer_norm", hidden_dim),
            dropout,
            max_seq_len,
        }
    }

    /// Embeds the real tokens of `batch` (attention mask 1) into packed
    /// [`Tokens`]: their ids, positions and values are gathered first, so
    /// nothing is computed for padding.
    ///
    /// # Panics
    /// When S exceeds `max_seq_len` (batches built by forge's tokenizers
    /// never do; the message says how to fix a hand-built one).
    pub fn forward(&self, batch: &Batch, train: bool) -> Tokens {
        self.forward_at(batch, Rc::new(Packing::new(batch.attention_mask())), train)
    }

    /// [`Self::forward`] for the tokens `packing` holds (a subset of the
    /// batch's positions, e.g. the visible tokens of a masked autoencoder).
    pub fn forward_at(&self, batch: &Batch, packing: Rc<Packing>, train: bool) -> Tokens {
        self.check_len(batch.input_ids());
        let values = batch.values().map(|v| packing.pack(v));
        let rows = self.embed(
            &packing.pack(batch.input_ids()),
            &packing.positions(),
            values.as_ref(),
            train,
        );
        Tokens::new(rows, packing)
    }

    /// The padded reference: embeds `input_ids` (B,S) and, when this
    /// embedding uses them, `values` (B,S) into (B,S,H), padding included.
    /// Same values as [`Self::forward`] at every real token.
    ///
    /// # Panics
    /// As [`Self::forward`].
    pub fn forward_padded(
        &self,
        input_ids: &Tensor,
        values: Option<&Tensor>,
        train: bool,
    ) -> Tensor {
        self.check_len(input_ids);
        let positions = Tensor::arange(input_ids.size()[1], (Kind::Int64, input_ids.device()))
            .unsqueeze(0)
            .expand_as(input_ids);
        self.embed(input_ids, &positions, values, train)
    }

    fn check_len(&self, input_ids: &Tensor) {
        let seq_len = input_ids.size()[1];
        assert!(
            seq_len <= self.max_seq_len,
            "sequence length {seq_len} exceeds model.max_seq_len {}; \
             lower tokenizer.max_genes or raise model.max_seq_len",
            self.max_seq_len
        );
    }

    /// Token ids, their positions and values (same shape) -> hidden
    /// vectors (that shape, H).
    fn embed(
        &self,
        ids: &Tensor,
        positions: &Tensor,
        values: Option<&Tensor>,
        train: bool,
    ) -> Tensor {
        let mut hidden =
            ids.apply(&self.gene_embedding) + positions.apply(&self.position_embedding);
        if let (Some(proj), Some(values)) = (&self.expression_proj, values) {
            let values = values.to_kind(hidden.kind()).unsqueeze(-1);
            hidden += values.apply(proj);
        }
        hidden.apply(&self.layer_norm).dropout(self.dropout, train)
    }
}

impl Parameters for GeneExpressionEmbedding {
    fn visit_parameters(&self, prefix: &str, f: &mut dyn FnMut(&str, &Tensor)) {
        self.gene_embedding
            .visit_parameters(&join(prefix, "gene_embedding"), f);
        self.position_embedding
            .visit_parameters(&join(prefix, "position_embedding"), f);
        self.expression_proj
            .visit_parameters(&join(prefix, "expression_proj"), f);
        self.layer_norm
            .visit_parameters(&join(prefix, "layer_norm"), f);
    }
}
