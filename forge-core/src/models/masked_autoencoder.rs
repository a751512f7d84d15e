//! `masked_autoencoder`: an scFoundation/MAE-like model that reconstructs
//! the expression values of masked genes.
//!
//! ```text
//! embedding of the visible (unmasked) real tokens
//!   ─► encoder (width H) ─► enc_to_dec (H->D) ─► back among all real tokens
//!   every other real token: mask_token ─► + decoder_position_embedding
//!   ─► decoder (width D) ─► expression_head ─► values (B,S) = logits
//! loss = MSE(predicted, values) at masked positions
//! embeddings = pool of a full, unmasked encoder pass (default mean)
//! ```
//!
//! Masked positions come from `masked_positions`, else `labels != -100`.
//! With no masked position the model runs the full encoder and returns
//! embeddings only. Every pass runs on packed tokens
//! ([`Tokens`]), never on padding: the encoder on the visible tokens, the
//! decoder on the real ones.
//! Decoder width D = `decoder_dim` (default H/2), depth
//! `decoder_layers`, heads `decoder_heads` (default `num_heads`), FFN 4D.
//! Parameter names: `embedding.*`, `encoder.layers.*`, `enc_to_dec.*`,
//! `mask_token`, `decoder_position_embedding.weight`, `decoder.layers.*`,
//! `expression_head.*`.

use std::rc::Rc;

use tch::{Reduction, Tensor, nn};

use super::loss::labelled;
use crate::components::init::{self, EMBEDDING_STD};
use crate::components::packed::Packing;
use crate::components::{
    ExpressionPredictionHead, GeneExpressionEmbedding, Tokens, TransformerEncoder,
};
use crate::config::options::{ModelOptions, OptionChecks};
use crate::config::{ModelConfig, Pooling};
use crate::{Architecture, Batch, ForgeModel, ModelOutput, Pass};

crate::model_options! {
    /// Options of `masked_autoencoder` (keys of the YAML section `model`,
    /// as in scModelForge's `ModelConfig`).
    pub struct MaskedAutoencoderOptions {
        /// Decoder width; `null` means `hidden_dim / 2`.
        decoder_dim: Option<i64> = None,
        /// Decoder layers.
        decoder_layers: i64 = 4,
        /// Decoder attention heads; `null` means `num_heads`.
        decoder_heads: Option<i64> = None,
    }
}

impl MaskedAutoencoderOptions {
    /// The decoder width: `decoder_dim`, or `hidden_dim / 2` when unset.
    pub fn dim(&self, model: &ModelConfig) -> i64 {
        self.decoder_dim.unwrap_or(model.hidden_dim / 2)
    }

    /// The decoder heads: `decoder_heads`, or `num_heads` when unset.
    pub fn heads(&self, model: &ModelConfig) -> i64 {
        self.decoder_heads.unwrap_or(model.num_heads)
    }
}

impl ModelOptions for MaskedAutoencoderOptions {
    /// The decoder keys, with their defaults resolved; a problem is
    /// reported under the key a person would edit.
    fn check(&self, m: &ModelConfig, c: &mut OptionChecks<'_>) {
        let dim = self.dim(m);
        let heads = self.heads(m);
        let (dim_key, dim_text) = match self.decoder_dim {
            Some(d) => ("decoder_dim", format!("{d}")),
            None => ("hidden_dim", format!("{dim}, i.e. hidden_dim / 2")),
        };
        let (heads_key, heads_text) = match self.decoder_heads {
            Some(h) => ("decoder_heads", format!("{h}")),
            None => ("num_heads", format!("{heads}, i.e. num_heads")),
        };
        if dim < 1 {
            c.fail(
                dim_key,
                format!("the decoder width must be at least 1, got {dim_text}"),
            );
        }
        if heads < 1 {
            c.fail(
                heads_key,
                format!("the decoder heads must be at least 1, got {heads_text}"),
            );
        }
        if self.decoder_layers < 1 {
            c.fail(
                "decoder_layers",
                format!("must be at least 1, got {}", self.decoder_layers),
            );
        }
        if dim >= 1 && heads >= 1 && dim % heads != 0 {
            c.fail(
                "decoder_heads",
                format!(
                    "the decoder heads ({heads_text}) must divide the decoder width \
                     ({dim_text}) evenly; set decoder_dim or decoder_heads"
                ),
            );
        }
    }
}

/// Masked autoencoder over expression values.
#[derive(Debug, ForgeModel)]
#[forge(name = "masked_autoencoder", options = MaskedAutoencoderOptions)]
pub struct MaskedAutoencoder {
    /// Gene + position (+ value) embedding, width H.
    pub embedding: GeneExpressionEmbedding,
    /// Encoder over visible tokens, width H.
    pub encoder: TransformerEncoder,
    /// Projects encoder outputs to the decoder width.
    #[forge(build = init::linear(path, config.hidden_dim, options.dim(config)))]
    pub enc_to_dec: nn::Linear,
    /// Learned stand-in for masked tokens, (1,1,D), N(0, 0.02).
    #[forge(build = root.var(
        "mask_token",
        &[1, 1, options.dim(config)],
        nn::Init::Randn { mean: 0.0, stdev: EMBEDDING_STD },
    ))]
    pub mask_token: Tensor,
    /// Decoder position embedding, (max_seq_len, D).
    #[forge(build = init::embedding(path, config.max_seq_len, options.dim(config), None))]
    pub decoder_position_embedding: nn::Embedding,
    /// Decoder stack, width D.
    #[forge(build = TransformerEncoder::new(
        path,
        options.decoder_layers,
        options.dim(config),
        options.heads(config),
        4 * options.dim(config),
        config.dropout,
        config.activation,
    ))]
    pub decoder: TransformerEncoder,
    /// Predicts one value per position.
    #[forge(build = ExpressionPredictionHead::new(path, options.dim(config)))]
    pub expression_head: ExpressionPredictionHead,
    /// How cell embeddings are pooled (default mean in scModelForge).
    #[forge(config)]
    pub pooling: Pooling,
}

impl MaskedAutoencoder {
    /// Masked real positions (B,S) bool.
    fn masked(batch: &Batch) -> Option<Tensor> {
        let masked = match (batch.masked_positions(), batch.labels()) {
            (Some(m), _) => m.shallow_clone(),
            (None, Some(labels)) => labelled(labels),
            (None, None) => return None,
        };
        Some(masked.logical_and(&batch.attention_mask().ne(0)))
    }

    /// Predicted values of the real tokens: the encoder sees the visible
    /// real tokens (`masked` false), the decoder every real token, with the
    /// mask token where the encoder saw none.
    fn reconstruct(&self, batch: &Batch, masked: &Tensor, train: bool) -> Tokens {
        let real = Rc::new(Packing::new(batch.attention_mask()));
        let visible = Rc::new(Packing::new(
            &batch
                .attention_mask()
                .ne(0)
                .logical_and(&masked.logical_not()),
        ));
        let x = self.embedding.forward_at(batch, visible, train);
        let encoded = self
            .encoder
            .forward(&x, false, train)
            .map(|rows| rows.apply(&self.enc_to_dec));
        let decoder_in = encoded
            .onto(&real, &self.mask_token.view([-1]))
            .map(|rows| rows + real.positions().apply(&self.decoder_position_embedding));
        self.decoder.forward(&decoder_in, false, train)
    }
}

impl Architecture for MaskedAutoencoder {
    /// Embeddings from a full encoder pass over the real tokens (when
    /// wanted); the loss and `logits` (predicted values) from the
    /// reconstruction, when some position is masked.
    fn run(&self, batch: &Batch, pass: Pass) -> ModelOutput {
        let full = pass.wants_embeddings().then(|| {
            let x = self.embedding.forward(batch, pass.train);
            self.encoder.forward(&x, false, pass.train)
        });
        let masked =
            Self::masked(batch).filter(|m| pass.wants_loss() && m.any().int64_value(&[]) != 0);
        let (loss, logits) = match masked {
            Some(masked) => {
                let decoded = self.reconstruct(batch, &masked, pass.train);
                decoded.head_loss(
                    pass,
                    batch.values().map(|values| (&masked, values)),
                    |rows| self.expression_head.forward(rows),
                    |predicted, values| {
                        predicted.mse_loss(&values.to_kind(predicted.kind()), Reduction::Mean)
                    },
                )
            }
            None => (None, None),
        };
        match full {
            Some(hidden) => hidden.output(pass, self.pooling, loss, logits),
            None => ModelOutput {
                loss,
                logits,
                ..ModelOutput::default()
            },
        }
    }
}
