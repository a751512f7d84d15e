//! `autoregressive_transformer`: an scGPT-like model with causal attention
//! and two heads.
//!
//! ```text
//! input_ids, values ─► embedding ─► encoder (causal + padding mask) ─► hidden
//!                                      ├─► gene_head ─► gene logits (B,S,V)   = logits
//!                                      ├─► expression_head ─► bin logits (B,S,n_bins)
//!                                      └─► pool ─► embeddings
//! loss = gene_loss_weight * CE(gene logits, labels)
//!      + expression_loss_weight * CE(bin logits, bin_ids where labels != -100)   (when bin_ids given)
//! ```
//!
//! Targets sit at the same position as the input (no next-token shift).
//! `encode` runs the encoder without the causal mask. Every pass runs on the
//! real tokens only ([`Tokens`](crate::components::Tokens)), the heads at
//! labelled positions when only the loss is wanted. Parameter names:
//! `embedding.*`, `encoder.layers.*`, `gene_head.*`, `expression_head.*`.

use super::loss::{cross_entropy, labelled};
use crate::components::{
    BinPredictionHead, GeneExpressionEmbedding, MaskedGenePredictionHead, TransformerEncoder,
};
use crate::config::Pooling;
use crate::{Architecture, Batch, ForgeModel, ModelOutput, Pass};

/// Causal transformer predicting genes and expression bins.
#[derive(Debug, ForgeModel)]
#[forge(name = "autoregressive_transformer")]
pub struct AutoregressiveTransformer {
    /// Gene + position (+ value) embedding.
    pub embedding: GeneExpressionEmbedding,
    /// Pre-norm encoder stack, run with a causal mask in `forward`.
    pub encoder: TransformerEncoder,
    /// Predicts the gene at each position (over the vocabulary).
    pub gene_head: MaskedGenePredictionHead,
    /// Predicts the expression bin at each position.
    #[forge(build = BinPredictionHead::new(path, config.hidden_dim, config.n_bins))]
    pub expression_head: BinPredictionHead,
    /// How cell embeddings are pooled.
    #[forge(config)]
    pub pooling: Pooling,
    /// Weight of the gene loss.
    #[forge(config)]
    pub gene_loss_weight: f64,
    /// Weight of the bin loss.
    #[forge(config)]
    pub expression_loss_weight: f64,
}

impl Architecture for AutoregressiveTransformer {
    /// Causal, except for embeddings alone (`encode`), which are
    /// bidirectional.
    fn run(&self, batch: &Batch, pass: Pass) -> ModelOutput {
        let causal = pass.wants_loss();
        let x = self.embedding.forward(batch, pass.train);
        let hidden = self.encoder.forward(&x, causal, pass.train);
        let at = batch.labels().map(labelled);
        let targets = at.as_ref().zip(batch.labels());
        let (gene, logits) = hidden.head_loss(
            pass,
            targets,
            |rows| self.gene_head.forward(rows),
            cross_entropy,
        );
        // The bin head is only needed for the loss: at labelled rows.
        let bins = match (at.as_ref().zip(batch.bin_ids()), pass.wants_loss()) {
            (Some(bin_targets), true) => {
                hidden
                    .head_loss(
                        Pass::loss(pass.train),
                        Some(bin_targets),
                        |rows| self.expression_head.forward(rows),
                        cross_entropy,
                    )
                    .0
            }
            _ => None,
        };
        let loss = gene.map(|gene| {
            let gene = gene * self.gene_loss_weight;
            match bins {
                Some(bins) => gene + bins * self.expression_loss_weight,
                None => gene,
            }
        });
        hidden.output(pass, self.pooling, loss, logits)
    }
}
