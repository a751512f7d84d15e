//! `geneformer`: Geneformer (Theodoris et al. 2023), a post-norm BERT
//! masked-language model over rank-ordered gene tokens, in Hugging Face's
//! `BertForMaskedLM` layout so published checkpoints load as they are.
//!
//! Added with `forge-gen new geneformer --pooling mean --option
//! emb_layer:i64=-1 --option 'cls_token_id:Option<i64>' --option
//! 'eos_token_id:Option<i64>'` and then edited (see
//! `docs/geneformer-tutorial.md`).
//!
//! ```text
//! input_ids ─► bert.embeddings: LN(word + position + token_type[0])
//!           ─► bert.encoder: post-norm layers 0..L ─► hidden (B,S,H)
//!                 ├─► cls.predictions: LN(act(dense(h))) · word_embeddingsᵀ + bias ─► logits (B,S,V)
//!                 └─► cell embedding from hidden_states[L + emb_layer]
//! loss = cross-entropy over V at labelled positions (labels != -100)
//! ```
//!
//! Parameter names are Hugging Face's (`bert.embeddings.*`,
//! `bert.encoder.layer.N.*`, `cls.predictions.*`); the decoder is tied to
//! `bert.embeddings.word_embeddings.weight` and `cls.predictions.bias`, so
//! it has no parameters of its own (Hugging Face's `save_pretrained` leaves
//! `cls.predictions.decoder.*` out of `model.safetensors` too).
//! [`crate::checkpoint::hf`] reads and writes such folders.
//!
//! There is no expression-value input: Geneformer encodes expression in
//! the rank order of the tokens, so `batch.values` plays no part, and a
//! config with `model.use_expression_values: true` (scModelForge's
//! default) gets a warning.
//!
//! Cell embeddings follow Geneformer's `EmbExtractor` (`get_embs`):
//! - the layer: `hidden_states[num_layers + emb_layer]` (Hugging Face's
//!   `output_hidden_states` list, the embedding output first), so the
//!   default `emb_layer: -1` is the output of the second-to-last layer and
//!   `0` the last one;
//! - `pooling: mean` is Geneformer's `emb_mode="cell"`: the mean over the
//!   non-padding tokens, leaving out the tokens whose id is `cls_token_id`
//!   or `eos_token_id` (Geneformer drops the first position when its
//!   dictionary has `<cls>` and the last real one when it also has
//!   `<eos>`: the same tokens, since its tokenizer puts them there); a cell
//!   with no other token gets zeros (Geneformer would divide by zero);
//! - `pooling: cls` is its `emb_mode="cls"`: that layer at position 0.
//!
//! An embedding pass runs only the layers it needs.

use std::ops::Range;

use forge_core::components::{
    BertEmbeddings, BertEncoder, BertLmPredictionHead, BertSettings, Tokens,
};
use forge_core::config::options::{ModelOptions, OptionChecks};
use forge_core::models::loss::{cross_entropy, labelled};
use forge_core::prelude::*;

forge_core::model_options! {
    /// Options of `geneformer`: keys of the config's `model:` section next to
    /// the shared ones. The Hugging Face `BertConfig` key each one matches
    /// is in brackets.
    pub struct GeneformerOptions {
        /// Which hidden state gives cell embeddings, counted from the last
        /// (Geneformer's `emb_layer`): `-1` (default) the second-to-last
        /// layer's output, `0` the last layer's; from `-num_layers` (the
        /// embedding output) to 0.
        emb_layer: i64 = -1,
        /// Id of `<cls>`, left out of mean-pooled cell embeddings
        /// (`cls_token_id`; V2 dictionaries have it, V1 do not).
        cls_token_id: Option<i64> = None,
        /// Id of `<eos>`, left out of mean-pooled cell embeddings
        /// (`eos_token_id`).
        eos_token_id: Option<i64> = None,
        /// LayerNorm epsilon (`layer_norm_eps`).
        layer_norm_eps: f64 = 1e-12,
        /// Token types (`type_vocab_size`); only type 0 is used.
        type_vocab_size: i64 = 2,
        /// Standard deviation of the initial weights (`initializer_range`).
        initializer_range: f64 = 0.02,
        /// Dropout on attention weights (`attention_probs_dropout_prob`);
        /// `null` means `dropout` (`hidden_dropout_prob`).
        attention_dropout: Option<f64> = None,
    }
}

impl GeneformerOptions {
    /// The BERT stack `model` and these options describe.
    pub fn bert(&self, model: &ModelConfig) -> Result<BertSettings> {
        Ok(BertSettings {
            vocab_size: model.require_vocab_size()?,
            hidden: model.hidden_dim,
            layers: model.num_layers,
            heads: model.num_heads,
            intermediate: model.ffn_dim_or_default(),
            max_positions: model.max_seq_len,
            type_vocab_size: self.type_vocab_size,
            activation: model.activation,
            layer_norm_eps: self.layer_norm_eps,
            hidden_dropout: model.dropout,
            attention_dropout: self.attention_dropout.unwrap_or(model.dropout),
            initializer_range: self.initializer_range,
        })
    }
}

impl ModelOptions for GeneformerOptions {
    fn warnings(&self, model: &ModelConfig, w: &mut OptionChecks<'_>) {
        if model.use_expression_values {
            w.warn(
                "use_expression_values",
                "is true (scModelForge's default), but geneformer has no expression-value \
                 input: the order of the tokens carries expression; set it to false",
            );
        }
    }

    fn check(&self, model: &ModelConfig, c: &mut OptionChecks<'_>) {
        if !(-model.num_layers..=0).contains(&self.emb_layer) {
            c.fail(
                "emb_layer",
                format!(
                    "must be from -num_layers ({}) to 0 (-1: the second-to-last layer, \
                     Geneformer's default; 0: the last layer), got {}",
                    -model.num_layers, self.emb_layer
                ),
            );
        }
        if self.layer_norm_eps.is_nan() || self.layer_norm_eps <= 0.0 {
            c.fail(
                "layer_norm_eps",
                format!("must be > 0, got {}", self.layer_norm_eps),
            );
        }
        if self.type_vocab_size < 1 {
            c.fail(
                "type_vocab_size",
                format!("must be at least 1, got {}", self.type_vocab_size),
            );
        }
        if self.initializer_range.is_nan() || self.initializer_range < 0.0 {
            c.fail(
                "initializer_range",
                format!("must be >= 0, got {}", self.initializer_range),
            );
        }
        if let Some(p) = self.attention_dropout
            && !(0.0..1.0).contains(&p)
        {
            c.fail("attention_dropout", format!("must be in [0, 1), got {p}"));
        }
        for (key, id) in [
            ("cls_token_id", self.cls_token_id),
            ("eos_token_id", self.eos_token_id),
        ] {
            if let (Some(id), Some(v)) = (id, model.vocab_size)
                && !(0..v).contains(&id)
            {
                c.fail(
                    key,
                    format!("must be a token id below vocab_size ({v}), got {id}"),
                );
            }
        }
    }
}

/// `bert` of `BertForMaskedLM`: embeddings and encoder (no pooler).
#[derive(Debug)]
pub struct Bert {
    /// `bert.embeddings`.
    pub embeddings: BertEmbeddings,
    /// `bert.encoder`.
    pub encoder: BertEncoder,
}

impl Bert {
    /// Creates `bert.*` under `path`.
    pub fn new(path: nn::Path, s: &BertSettings) -> Self {
        Bert {
            embeddings: BertEmbeddings::new(&path / "embeddings", s),
            encoder: BertEncoder::new(&path / "encoder", s),
        }
    }
}

impl Parameters for Bert {
    fn visit_parameters(&self, prefix: &str, f: &mut dyn FnMut(&str, &Tensor)) {
        let join = forge_core::params::join;
        self.embeddings
            .visit_parameters(&join(prefix, "embeddings"), f);
        self.encoder.visit_parameters(&join(prefix, "encoder"), f);
    }
}

/// `cls` of `BertForMaskedLM` (`BertOnlyMLMHead`).
#[derive(Debug)]
pub struct MlmHead {
    /// `cls.predictions`.
    pub predictions: BertLmPredictionHead,
}

impl Parameters for MlmHead {
    fn visit_parameters(&self, prefix: &str, f: &mut dyn FnMut(&str, &Tensor)) {
        self.predictions
            .visit_parameters(&forge_core::params::join(prefix, "predictions"), f);
    }
}

/// Geneformer: a post-norm BERT masked-language model over gene tokens.
#[derive(Debug, ForgeModel)]
#[forge(name = "geneformer", options = GeneformerOptions)]
pub struct Geneformer {
    /// Embeddings and encoder (`bert.*`).
    #[forge(build = Bert::new(path, &options.bert(config)?))]
    pub bert: Bert,
    /// The masked-gene head, decoder tied to the word embeddings (`cls.*`).
    #[forge(build = MlmHead {
        predictions: BertLmPredictionHead::new(&path / "predictions", &options.bert(config)?),
    })]
    pub cls: MlmHead,
    /// How cell embeddings are pooled: `mean` (Geneformer's
    /// `emb_mode="cell"`) or `cls`.
    #[forge(config)]
    pub pooling: Pooling,
    /// `model.emb_layer`: the hidden state cell embeddings come from.
    #[forge(option)]
    pub emb_layer: i64,
    /// `model.cls_token_id`: left out of mean-pooled embeddings.
    #[forge(option)]
    pub cls_token_id: Option<i64>,
    /// `model.eos_token_id`: left out of mean-pooled embeddings.
    #[forge(option)]
    pub eos_token_id: Option<i64>,
}

impl Geneformer {
    /// Index into Hugging Face's `hidden_states` of the embedding layer.
    fn embedding_state(&self) -> usize {
        let layers = self.bert.encoder.layers.len() as i64;
        (layers + self.emb_layer).clamp(0, layers) as usize
    }

    /// Cell embeddings (B,H) from `state` (the hidden state of
    /// [`Self::embedding_state`]), as Geneformer's `get_embs` pools them.
    pub fn cell_embeddings(&self, batch: &Batch, state: &Tokens) -> Tensor {
        match self.pooling {
            Pooling::Cls => state.pool(Pooling::Cls),
            Pooling::Mean => {
                let mut keep = batch.attention_mask().ne(0);
                for id in [self.cls_token_id, self.eos_token_id].into_iter().flatten() {
                    keep = keep.logical_and(&batch.input_ids().ne(id));
                }
                mean_pool(&state.padded(), &keep)
            }
        }
    }

    /// The encoder's layers `layers` over `x`.
    fn layers(&self, x: &Tokens, layers: Range<usize>, train: bool) -> Tokens {
        self.bert.encoder.forward_layers(x, layers, train)
    }
}

impl Architecture for Geneformer {
    /// Embeddings, then the encoder up to the embedding layer (all a pass
    /// for cell embeddings needs), then the remaining layers and the MLM
    /// head where the pass needs them.
    fn run(&self, batch: &Batch, pass: Pass) -> ModelOutput {
        let n = self.bert.encoder.layers.len();
        let at = self.embedding_state();
        let x = self.bert.embeddings.forward(batch, pass.train);
        let state = self.layers(&x, 0..at, pass.train);
        let embeddings = pass
            .wants_embeddings()
            .then(|| self.cell_embeddings(batch, &state));
        if !pass.wants_loss() {
            return ModelOutput {
                embeddings,
                ..ModelOutput::default()
            };
        }
        let hidden = self.layers(&state, at..n, pass.train);
        let labels = batch.labels().map(labelled);
        let targets = labels.as_ref().zip(batch.labels());
        let word = &self.bert.embeddings.word_embeddings.ws;
        let (loss, logits) = hidden.head_loss(
            pass,
            targets,
            |rows| self.cls.predictions.forward(rows, word),
            cross_entropy,
        );
        ModelOutput {
            loss,
            logits,
            embeddings,
            hidden_states: pass.wants_everything().then(|| hidden.padded()),
        }
    }
}
