//! BERT's building blocks in Hugging Face's layout (`modeling_bert.py`):
//! the post-norm encoder of published models such as Geneformer, with
//! Hugging Face's parameter names, so a `BertForMaskedLM` checkpoint maps
//! one to one.
//!
//! ```text
//! embeddings:  LN(word[id] + position[pos] + token_type[0]), dropout
//! each layer:  a = LN(x + dropout(dense(attention(x))))           (attention.*)
//!              x = LN(a + dropout(out(act(intermediate(a)))))      (intermediate.*, output.*)
//! MLM head:    decoder(LN(act(dense(h)))) + bias, decoder = word embeddings (tied)
//! ```
//!
//! Names (`N` the layer): `embeddings.{word_embeddings, position_embeddings,
//! token_type_embeddings}.weight`, `embeddings.LayerNorm.*`;
//! `layer.N.attention.self.{query,key,value}.*`,
//! `layer.N.attention.output.{dense,LayerNorm}.*`,
//! `layer.N.intermediate.dense.*`, `layer.N.output.{dense,LayerNorm}.*`;
//! `predictions.transform.{dense,LayerNorm}.*`, `predictions.bias`.
//!
//! Why not [`super::TransformerEncoder`]: that is PyTorch's pre-norm
//! `nn.TransformerEncoderLayer` (norm before each block, a packed
//! `in_proj_weight`, names `linear1`/`norm1`), scModelForge's layout. BERT
//! normalises after each residual sum and keeps separate query, key and
//! value projections. Both run on packed [`Tokens`] and share the packed
//! attention kernel ([`Packing::attend`]), so padding costs nothing here
//! either.
//!
//! Initialisation is Hugging Face's `_init_weights`: Linear and Embedding
//! weights from N(0, `initializer_range`), biases 0, LayerNorm 1 and 0.

use tch::Tensor;
use tch::nn::{self, Init};

use super::packed::Packing;
use super::tokens::Tokens;
use crate::batch::Batch;
use crate::config::Activation;
use crate::params::{Parameters, join};

/// The sizes and settings of a BERT stack (Hugging Face's `BertConfig`
/// keys in brackets).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct BertSettings {
    /// Vocabulary size (`vocab_size`).
    pub vocab_size: i64,
    /// Width H (`hidden_size`).
    pub hidden: i64,
    /// Encoder layers (`num_hidden_layers`).
    pub layers: i64,
    /// Attention heads (`num_attention_heads`); divides `hidden`.
    pub heads: i64,
    /// Feed-forward width (`intermediate_size`).
    pub intermediate: i64,
    /// Positions (`max_position_embeddings`).
    pub max_positions: i64,
    /// Token types (`type_vocab_size`); only type 0 is used.
    pub type_vocab_size: i64,
    /// Feed-forward and MLM-head activation (`hidden_act`).
    pub activation: Activation,
    /// LayerNorm epsilon (`layer_norm_eps`).
    pub layer_norm_eps: f64,
    /// Dropout after embeddings and each block (`hidden_dropout_prob`).
    pub hidden_dropout: f64,
    /// Dropout on attention weights (`attention_probs_dropout_prob`).
    pub attention_dropout: f64,
    /// Standard deviation of the weight init (`initializer_range`).
    pub initializer_range: f64,
}

fn linear(path: nn::Path, in_dim: i64, out_dim: i64, std: f64) -> nn::Linear {
    nn::linear(
        path,
        in_dim,
        out_dim,
        nn::LinearConfig {
            ws_init: Init::Randn {
                mean: 0.0,
                stdev: std,
            },
            bs_init: Some(Init::Const(0.0)),
            bias: true,
        },
    )
}

fn layer_norm(path: nn::Path, dim: i64, eps: f64) -> nn::LayerNorm {
    nn::layer_norm(
        path,
        vec![dim],
        nn::LayerNormConfig {
            eps,
            ..Default::default()
        },
    )
}

fn embedding(path: nn::Path, num: i64, dim: i64, std: f64) -> nn::Embedding {
    nn::embedding(
        path,
        num,
        dim,
        nn::EmbeddingConfig {
            ws_init: Init::Randn {
                mean: 0.0,
                stdev: std,
            },
            ..Default::default()
        },
    )
}

fn activate(x: Tensor, activation: Activation) -> Tensor {
    match activation {
        // Hugging Face's "gelu" is the exact (erf) GELU.
        Activation::Gelu => x.gelu("none"),
        Activation::Relu => x.relu(),
    }
}

/// `BertEmbeddings` with absolute positions and token type 0.
#[derive(Debug)]
pub struct BertEmbeddings {
    /// Token embedding (V,H).
    pub word_embeddings: nn::Embedding,
    /// Absolute position embedding (max_positions,H).
    pub position_embeddings: nn::Embedding,
    /// Token type embedding (type_vocab_size,H); row 0 is added to every
    /// token.
    pub token_type_embeddings: nn::Embedding,
    /// LayerNorm after the sum (Hugging Face's `LayerNorm`).
    pub layer_norm: nn::LayerNorm,
    /// Dropout after the LayerNorm, in training.
    pub dropout: f64,
    max_positions: i64,
}

impl BertEmbeddings {
    /// Creates the embeddings under `path`.
    pub fn new(path: nn::Path, s: &BertSettings) -> Self {
        let std = s.initializer_range;
        BertEmbeddings {
            word_embeddings: embedding(&path / "word_embeddings", s.vocab_size, s.hidden, std),
            position_embeddings: embedding(
                &path / "position_embeddings",
                s.max_positions,
                s.hidden,
                std,
            ),
            token_type_embeddings: embedding(
                &path / "token_type_embeddings",
                s.type_vocab_size,
                s.hidden,
                std,
            ),
            layer_norm: layer_norm(&path / "LayerNorm", s.hidden, s.layer_norm_eps),
            dropout: s.hidden_dropout,
            max_positions: s.max_positions,
        }
    }

    /// The real tokens of `batch` (attention mask 1), embedded as packed
    /// [`Tokens`]; `batch.values` is not used (BERT has no value input).
    ///
    /// # Panics
    /// When the batch is longer than `max_position_embeddings` (the message
    /// says what to change).
    pub fn forward(&self, batch: &Batch, train: bool) -> Tokens {
        let seq_len = batch.input_ids().size()[1];
        assert!(
            seq_len <= self.max_positions,
            "sequence length {seq_len} exceeds the model's {} positions \
             (max_position_embeddings / model.max_seq_len); lower tokenizer.max_genes",
            self.max_positions
        );
        let packing = std::rc::Rc::new(Packing::new(batch.attention_mask()));
        let rows = self.embed(
            &packing.pack(batch.input_ids()),
            &packing.positions(),
            train,
        );
        Tokens::new(rows, packing)
    }

    /// Ids and their positions (same shape) -> hidden vectors (that shape, H).
    pub fn embed(&self, ids: &Tensor, positions: &Tensor, train: bool) -> Tensor {
        let token_type = self.token_type_embeddings.ws.get(0);
        (ids.apply(&self.word_embeddings) + positions.apply(&self.position_embeddings) + token_type)
            .apply(&self.layer_norm)
            .dropout(self.dropout, train)
    }
}

impl Parameters for BertEmbeddings {
    fn visit_parameters(&self, prefix: &str, f: &mut dyn FnMut(&str, &Tensor)) {
        self.word_embeddings
            .visit_parameters(&join(prefix, "word_embeddings"), f);
        self.position_embeddings
            .visit_parameters(&join(prefix, "position_embeddings"), f);
        self.token_type_embeddings
            .visit_parameters(&join(prefix, "token_type_embeddings"), f);
        self.layer_norm
            .visit_parameters(&join(prefix, "LayerNorm"), f);
    }
}

/// One post-norm BERT layer (`BertLayer`).
#[derive(Debug)]
pub struct BertLayer {
    /// `attention.self.query`.
    pub query: nn::Linear,
    /// `attention.self.key`.
    pub key: nn::Linear,
    /// `attention.self.value`.
    pub value: nn::Linear,
    /// `attention.output.dense`.
    pub attention_dense: nn::Linear,
    /// `attention.output.LayerNorm`.
    pub attention_norm: nn::LayerNorm,
    /// `intermediate.dense`, Linear(H,I).
    pub intermediate: nn::Linear,
    /// `output.dense`, Linear(I,H).
    pub output_dense: nn::Linear,
    /// `output.LayerNorm`.
    pub output_norm: nn::LayerNorm,
    /// Heads.
    pub heads: i64,
    /// Feed-forward activation.
    pub activation: Activation,
    /// Dropout after each block, in training.
    pub hidden_dropout: f64,
    /// Dropout on attention weights, in training.
    pub attention_dropout: f64,
}

impl BertLayer {
    /// Creates a layer under `path` (`layer.N`).
    pub fn new(path: nn::Path, s: &BertSettings) -> Self {
        let std = s.initializer_range;
        let h = s.hidden;
        let attention = &path / "attention";
        let this = &attention / "self";
        let out = &attention / "output";
        BertLayer {
            query: linear(&this / "query", h, h, std),
            key: linear(&this / "key", h, h, std),
            value: linear(&this / "value", h, h, std),
            attention_dense: linear(&out / "dense", h, h, std),
            attention_norm: layer_norm(&out / "LayerNorm", h, s.layer_norm_eps),
            intermediate: linear(&path / "intermediate" / "dense", h, s.intermediate, std),
            output_dense: linear(&path / "output" / "dense", s.intermediate, h, std),
            output_norm: layer_norm(&path / "output" / "LayerNorm", h, s.layer_norm_eps),
            heads: s.heads,
            activation: s.activation,
            hidden_dropout: s.hidden_dropout,
            attention_dropout: s.attention_dropout,
        }
    }

    /// The layer on rows `x` (N,H) with the self-attention supplied by
    /// `attend`, which maps the concatenated query, key and value
    /// projections (N,3H) to the per-head outputs (N,H).
    pub fn forward_with(
        &self,
        x: &Tensor,
        train: bool,
        attend: impl FnOnce(&Tensor, f64) -> Tensor,
    ) -> Tensor {
        let qkv = Tensor::cat(
            &[
                x.apply(&self.query),
                x.apply(&self.key),
                x.apply(&self.value),
            ],
            -1,
        );
        let p = if train { self.attention_dropout } else { 0.0 };
        let attended = attend(&qkv, p)
            .apply(&self.attention_dense)
            .dropout(self.hidden_dropout, train);
        let a = (attended + x).apply(&self.attention_norm);
        let ffn = activate(a.apply(&self.intermediate), self.activation)
            .apply(&self.output_dense)
            .dropout(self.hidden_dropout, train);
        (ffn + a).apply(&self.output_norm)
    }

    /// The padded reference: the layer on (B,S,H) with an additive
    /// attention bias broadcastable to (B,heads,S,S).
    pub fn forward_padded(&self, x: &Tensor, bias: Option<&Tensor>, train: bool) -> Tensor {
        let (b, s, h) = x.size3().expect("BERT layer input is (B, S, H)");
        let heads = self.heads;
        let flat = x.reshape([b * s, h]);
        let out = self.forward_with(&flat, train, |qkv, p| {
            let qkv = qkv
                .view([b, s, 3, heads, h / heads])
                .permute([2, 0, 3, 1, 4]);
            Tensor::scaled_dot_product_attention(
                &qkv.get(0),
                &qkv.get(1),
                &qkv.get(2),
                bias,
                p,
                false,
                None,
                false,
            )
            .transpose(1, 2)
            .reshape([b * s, h])
        });
        out.reshape([b, s, h])
    }
}

impl Parameters for BertLayer {
    fn visit_parameters(&self, prefix: &str, f: &mut dyn FnMut(&str, &Tensor)) {
        let this = join(prefix, "attention.self");
        self.query.visit_parameters(&join(&this, "query"), f);
        self.key.visit_parameters(&join(&this, "key"), f);
        self.value.visit_parameters(&join(&this, "value"), f);
        let out = join(prefix, "attention.output");
        self.attention_dense
            .visit_parameters(&join(&out, "dense"), f);
        self.attention_norm
            .visit_parameters(&join(&out, "LayerNorm"), f);
        self.intermediate
            .visit_parameters(&join(prefix, "intermediate.dense"), f);
        self.output_dense
            .visit_parameters(&join(prefix, "output.dense"), f);
        self.output_norm
            .visit_parameters(&join(prefix, "output.LayerNorm"), f);
    }
}

/// `BertEncoder`: the layers (`layer.N`), no final norm.
#[derive(Debug)]
pub struct BertEncoder {
    /// The layers, applied in order.
    pub layers: Vec<BertLayer>,
}

impl BertEncoder {
    /// Creates `s.layers` layers under `path / "layer"`.
    pub fn new(path: nn::Path, s: &BertSettings) -> Self {
        let layer = &path / "layer";
        BertEncoder {
            layers: (0..s.layers)
                .map(|i| BertLayer::new(&layer / i, s))
                .collect(),
        }
    }

    /// Layers `layers` (a range of indices) over the real tokens `x`; the
    /// result is Hugging Face's `hidden_states[layers.end]` when `x` is
    /// `hidden_states[layers.start]`. Attention runs per cell over the
    /// packed rows.
    pub fn forward_layers(
        &self,
        x: &Tokens,
        layers: std::ops::Range<usize>,
        train: bool,
    ) -> Tokens {
        if layers.is_empty() {
            return x.map(|rows| rows.shallow_clone());
        }
        let packing = x.packing();
        let biases = packing.attention_biases(false, x.rows.kind());
        x.map(|rows| {
            let mut rows = rows.shallow_clone();
            for layer in &self.layers[layers] {
                rows = layer.forward_with(&rows, train, |qkv, p| {
                    packing.attend(qkv, &biases, layer.heads, p)
                });
            }
            rows
        })
    }

    /// Every layer over the real tokens `x`.
    pub fn forward(&self, x: &Tokens, train: bool) -> Tokens {
        self.forward_layers(x, 0..self.layers.len(), train)
    }

    /// The padded reference: every layer over (B,S,H); padding keys (mask
    /// 0) are never attended to. Same values as [`Self::forward`] at real
    /// tokens.
    pub fn forward_padded(&self, x: &Tensor, attention_mask: &Tensor, train: bool) -> Tensor {
        let bias = super::mask::attention_bias(attention_mask, false, x.kind());
        let mut x = x.shallow_clone();
        for layer in &self.layers {
            x = layer.forward_padded(&x, Some(&bias), train);
        }
        x
    }
}

impl Parameters for BertEncoder {
    fn visit_parameters(&self, prefix: &str, f: &mut dyn FnMut(&str, &Tensor)) {
        self.layers.visit_parameters(&join(prefix, "layer"), f);
    }
}

/// `BertLMPredictionHead`: transform (dense, activation, LayerNorm), then
/// a decoder tied to the word embeddings, plus its own bias.
#[derive(Debug)]
pub struct BertLmPredictionHead {
    /// `transform.dense`, Linear(H,H).
    pub dense: nn::Linear,
    /// `transform.LayerNorm`.
    pub layer_norm: nn::LayerNorm,
    /// `bias` (V): the decoder's bias (Hugging Face ties
    /// `decoder.bias` to it).
    pub bias: Tensor,
    /// The transform's activation (`hidden_act`).
    pub activation: Activation,
}

impl BertLmPredictionHead {
    /// Creates the head under `path` (`predictions`).
    pub fn new(path: nn::Path, s: &BertSettings) -> Self {
        let transform = &path / "transform";
        BertLmPredictionHead {
            dense: linear(
                &transform / "dense",
                s.hidden,
                s.hidden,
                s.initializer_range,
            ),
            layer_norm: layer_norm(&transform / "LayerNorm", s.hidden, s.layer_norm_eps),
            bias: path.var("bias", &[s.vocab_size], Init::Const(0.0)),
            activation: s.activation,
        }
    }

    /// (..., H) -> (..., V) scores, decoding with `word_embeddings` (V,H),
    /// the tied decoder weight.
    pub fn forward(&self, hidden: &Tensor, word_embeddings: &Tensor) -> Tensor {
        let h = activate(hidden.apply(&self.dense), self.activation).apply(&self.layer_norm);
        h.linear(word_embeddings, Some(&self.bias))
    }
}

impl Parameters for BertLmPredictionHead {
    fn visit_parameters(&self, prefix: &str, f: &mut dyn FnMut(&str, &Tensor)) {
        self.dense
            .visit_parameters(&join(prefix, "transform.dense"), f);
        self.layer_norm
            .visit_parameters(&join(prefix, "transform.LayerNorm"), f);
        f(&join(prefix, "bias"), &self.bias);
    }
}

#[cfg(test)]
mod tests {
    use tch::nn::VarStore;
    use tch::{Device, Kind, Tensor};

    use super::*;

    fn settings() -> BertSettings {
        BertSettings {
            vocab_size: 30,
            hidden: 16,
            layers: 2,
            heads: 4,
            intermediate: 24,
            max_positions: 12,
            type_vocab_size: 2,
            activation: Activation::Relu,
            layer_norm_eps: 1e-12,
            hidden_dropout: 0.0,
            attention_dropout: 0.0,
            initializer_range: 0.3,
        }
    }

    /// Ragged cells, one of them all padding.
    fn batch() -> Batch {
        let lengths = Tensor::from_slice(&[9i64, 4, 0, 1]);
        let mask = Tensor::arange(9, (Kind::Int64, Device::Cpu))
            .unsqueeze(0)
            .lt_tensor(&lengths.unsqueeze(1))
            .to_kind(Kind::Int64);
        let ids = Tensor::randint_low(2, 30, [4, 9], (Kind::Int64, Device::Cpu)) * &mask;
        Batch::builder(ids, mask).build().unwrap()
    }

    #[test]
    fn packed_layers_equal_the_padded_reference_at_real_tokens() {
        tch::manual_seed(3);
        let vs = VarStore::new(Device::Cpu);
        let s = settings();
        let emb = BertEmbeddings::new(&vs.root() / "embeddings", &s);
        let enc = BertEncoder::new(&vs.root() / "encoder", &s);
        let b = batch();
        let x = emb.forward(&b, false);
        let positions = Tensor::arange(9, (Kind::Int64, Device::Cpu))
            .unsqueeze(0)
            .expand([4, 9], false);
        let x_padded = emb.embed(b.input_ids(), &positions, false);
        let real = b.attention_mask().ne(0).unsqueeze(-1);
        let d = ((x.padded() - &x_padded) * &real)
            .abs()
            .max()
            .double_value(&[]);
        assert!(d < 1e-6, "{d}");
        let packed = enc.forward(&x, false).padded();
        let padded = enc.forward_padded(&x_padded, b.attention_mask(), false);
        let d = ((&packed - &padded) * &real).abs().max().double_value(&[]);
        assert!(d < 1e-5, "{d}");
        // forward_layers composes: 0..1 then 1..2 is 0..2.
        let split = enc.forward_layers(&enc.forward_layers(&x, 0..1, false), 1..2, false);
        assert!(split.rows.equal(&enc.forward(&x, false).rows));
        // Post-norm: every real token's output is normalised (LayerNorm
        // weight 1, bias 0 at init).
        let std = enc
            .forward(&x, false)
            .rows
            .std_dim(-1, false, false)
            .mean(Kind::Float)
            .double_value(&[]);
        assert!((std - 1.0).abs() < 1e-3, "{std}");
    }

    #[test]
    fn the_head_decodes_with_the_word_embeddings_and_trains_them() {
        tch::manual_seed(4);
        let vs = VarStore::new(Device::Cpu);
        let s = settings();
        let emb = BertEmbeddings::new(&vs.root() / "embeddings", &s);
        let head = BertLmPredictionHead::new(&vs.root() / "predictions", &s);
        let h = Tensor::randn([5, 16], (Kind::Float, Device::Cpu));
        let logits = head.forward(&h, &emb.word_embeddings.ws);
        assert_eq!(logits.size(), [5, 30]);
        let transformed = h.apply(&head.dense).relu().apply(&head.layer_norm);
        let want = transformed.matmul(&emb.word_embeddings.ws.tr()) + &head.bias;
        assert!((&logits - want).abs().max().double_value(&[]) < 1e-5);
        logits.sum(Kind::Float).backward();
        assert!(
            emb.word_embeddings
                .ws
                .grad()
                .abs()
                .sum(Kind::Float)
                .double_value(&[])
                > 0.0
        );
        let mut names = Vec::new();
        head.visit_parameters("cls.predictions", &mut |n, _| names.push(n.to_string()));
        assert_eq!(
            names,
            [
                "cls.predictions.transform.dense.weight",
                "cls.predictions.transform.dense.bias",
                "cls.predictions.transform.LayerNorm.weight",
                "cls.predictions.transform.LayerNorm.bias",
                "cls.predictions.bias",
            ]
        );
    }
}
