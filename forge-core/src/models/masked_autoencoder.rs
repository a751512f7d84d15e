//! `masked_autoencoder`: an scFoundation/MAE-like model that reconstructs
//! the expression values of masked genes.
//!
//! ```text
//! embedding (B,S,H) ─► keep unmasked real tokens, left-packed (B,K,H)
//!   ─► encoder (width H) ─► enc_to_dec (H->D) ─► back to their positions
//!   every other position: mask_token ─► + decoder_position_embedding
//!   ─► decoder (width D, padding mask) ─► expression_head ─► values (B,S) = logits
//! loss = MSE(predicted, values) at masked positions
//! embeddings = pool of a full, unmasked encoder pass (default mean)
//! ```
//!
//! Masked positions come from `masked_positions`, else `labels != -100`.
//! With no masked position the model runs the full encoder and returns
//! embeddings only. `loss` and `encode` compute on packed tokens
//! ([`Packing`]), skipping padding; `forward` is the plain padded pass.
//! Decoder width D = `decoder_dim` (default H/2), depth
//! `decoder_layers`, heads `decoder_heads` (default `num_heads`), FFN 4D.
//! Parameter names: `embedding.*`, `encoder.layers.*`, `enc_to_dec.*`,
//! `mask_token`, `decoder_position_embedding.weight`, `decoder.layers.*`,
//! `expression_head.*`.

use tch::{Kind, Reduction, Tensor, nn};

use super::loss::labelled;
use crate::components::init::{self, EMBEDDING_STD};
use crate::components::packed::Packing;
use crate::components::{
    ExpressionPredictionHead, GeneExpressionEmbedding, TransformerEncoder, pool,
};
use crate::config::options::{ModelOptions, OptionChecks};
use crate::config::{ModelConfig, Pooling};
use crate::{Architecture, Batch, ForgeModel, ModelOutput};

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

    fn full_hidden(&self, batch: &Batch, train: bool) -> Tensor {
        let x = self
            .embedding
            .forward(batch.input_ids(), batch.values(), train);
        self.encoder
            .forward(&x, batch.attention_mask(), false, train)
    }

    /// Predicted values (B,S) from an MAE pass that encodes only visible
    /// tokens.
    fn reconstruct(&self, batch: &Batch, masked: &Tensor, train: bool) -> Tensor {
        let x = self
            .embedding
            .forward(batch.input_ids(), batch.values(), train);
        let (b, s, h) = x.size3().expect("embedding output is (B, S, H)");
        let visible = batch
            .attention_mask()
            .ne(0)
            .logical_and(&masked.logical_not());
        // Left-pack each cell's visible tokens, keeping their order: a stable
        // sort puts visible positions (key 0) before the rest (key 1).
        let order = visible
            .logical_not()
            .to_kind(Kind::Int64)
            .sort_stable(true, 1, false)
            .1;
        let counts = visible.sum_dim_intlist(1, false, Kind::Int64);
        let k = counts.max().int64_value(&[]).max(1);
        let index = order.narrow(1, 0, k);
        let packed_mask = Tensor::arange(k, (Kind::Int64, x.device()))
            .unsqueeze(0)
            .lt_tensor(&counts.unsqueeze(1));
        let packed = x.gather(1, &index.unsqueeze(-1).expand([b, k, h], false), false);
        let encoded = self.encoder.forward(&packed, &packed_mask, false, train);
        let projected = encoded.apply(&self.enc_to_dec);
        let d = projected.size()[2];
        // Every position starts as the mask token; visible tokens go back to
        // where they came from (packing slots past a cell's count carry the
        // mask token, so they write it again).
        let mask_token = self.mask_token.to_kind(projected.kind());
        let projected = projected.where_self(&packed_mask.unsqueeze(-1), &mask_token);
        let decoder_in = mask_token.expand([b, s, d], false).scatter(
            1,
            &index.unsqueeze(-1).expand([b, k, d], false),
            &projected,
        );
        let decoder_in = self.add_decoder_positions(decoder_in);
        let decoded = self
            .decoder
            .forward(&decoder_in, batch.attention_mask(), false, train);
        self.expression_head.forward(&decoded)
    }

    /// [`Self::reconstruct`] on packed tokens: predicted values of the real
    /// tokens, packed by `real` (N). Same values at every real position.
    fn reconstruct_packed(
        &self,
        batch: &Batch,
        masked: &Tensor,
        real: &Packing,
        train: bool,
    ) -> Tensor {
        let x = self
            .embedding
            .forward(batch.input_ids(), batch.values(), train);
        let (b, s, _) = x.size3().expect("embedding output is (B, S, H)");
        let visible = Packing::new(
            &batch
                .attention_mask()
                .ne(0)
                .logical_and(&masked.logical_not()),
        );
        let encoded = self
            .encoder
            .forward_packed(&visible.pack(&x), &visible, false, train);
        let projected = encoded.apply(&self.enc_to_dec);
        let d = projected.size()[1];
        // Every position holds the mask token, except the visible ones.
        let mask_tokens = self
            .mask_token
            .to_kind(projected.kind())
            .expand([b, s, d], false);
        let decoder_in = visible.scatter_onto(&mask_tokens, &projected);
        let decoder_in = self.add_decoder_positions(decoder_in);
        let decoded = self
            .decoder
            .forward_packed(&real.pack(&decoder_in), real, false, train);
        self.expression_head.forward(&decoded)
    }

    /// `decoder_in` (B,S,D) plus the decoder's position embeddings.
    fn add_decoder_positions(&self, decoder_in: Tensor) -> Tensor {
        let s = decoder_in.size()[1];
        let positions = Tensor::arange(s, (Kind::Int64, decoder_in.device()));
        decoder_in
            + positions
                .apply(&self.decoder_position_embedding)
                .unsqueeze(0)
    }

    fn masked_mse(predicted: &Tensor, values: &Tensor, masked: &Tensor) -> Tensor {
        predicted.masked_select(masked).mse_loss(
            &values.to_kind(predicted.kind()).masked_select(masked),
            Reduction::Mean,
        )
    }

    /// The loss on packed tokens, with dropout when `train` (`loss` and
    /// `eval_loss`).
    fn packed_loss(&self, batch: &Batch, train: bool) -> Option<Tensor> {
        let masked = Self::masked(batch).filter(|m| m.any().int64_value(&[]) != 0)?;
        let values = batch.values()?;
        let real = Packing::new(batch.attention_mask());
        let predicted = self.reconstruct_packed(batch, &masked, &real, train);
        let at = real.pack(&masked);
        Some(
            predicted.masked_select(&at).mse_loss(
                &real
                    .pack(values)
                    .to_kind(predicted.kind())
                    .masked_select(&at),
                Reduction::Mean,
            ),
        )
    }
}

impl Architecture for MaskedAutoencoder {
    fn forward(&self, batch: &Batch, train: bool) -> ModelOutput {
        let hidden = self.full_hidden(batch, train);
        let embeddings = Some(pool(self.pooling, &hidden, batch.attention_mask()));
        let masked = Self::masked(batch).filter(|m| m.any().int64_value(&[]) != 0);
        let Some(masked) = masked else {
            return ModelOutput {
                embeddings,
                hidden_states: Some(hidden),
                ..ModelOutput::default()
            };
        };
        let predicted = self.reconstruct(batch, &masked, train);
        let loss = batch
            .values()
            .map(|values| Self::masked_mse(&predicted, values, &masked));
        ModelOutput {
            loss,
            logits: Some(predicted),
            embeddings,
            hidden_states: Some(hidden),
        }
    }

    /// Reconstructs on packed tokens (no work on padding): the encoder
    /// sees the packed visible tokens, the decoder the packed real tokens.
    fn loss(&self, batch: &Batch) -> Option<Tensor> {
        self.packed_loss(batch, true)
    }

    /// The same path with dropout off (validation).
    fn eval_loss(&self, batch: &Batch) -> Option<Tensor> {
        self.packed_loss(batch, false)
    }

    /// Runs the full encoder on the packed real tokens (no work on padding).
    fn encode(&self, batch: &Batch) -> Tensor {
        let packing = Packing::new(batch.attention_mask());
        let x = self
            .embedding
            .forward(batch.input_ids(), batch.values(), false);
        let hidden = self
            .encoder
            .forward_packed(&packing.pack(&x), &packing, false, false);
        pool(
            self.pooling,
            &packing.unpack(&hidden),
            batch.attention_mask(),
        )
    }
}
