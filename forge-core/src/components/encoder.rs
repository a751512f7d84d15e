//! The pre-norm transformer encoder, equivalent to PyTorch's
//! `nn.TransformerEncoderLayer(batch_first=True, norm_first=True,
//! layer_norm_eps=1e-12)` stacked in `nn.TransformerEncoder` with no final
//! norm:
//!
//! ```text
//! x = x + dropout(self_attn(norm1(x)))
//! x = x + dropout(linear2(dropout(act(linear1(norm2(x))))))
//! ```
//!
//! Attention runs through libtorch's fused scaled-dot-product attention,
//! except in bfloat16 on the CPU (bf16-mixed), where [`attend`] computes it
//! with two batched matmuls around a softmax so that the bf16 matrix units
//! do the work (libtorch's fused CPU kernel gains nothing from bfloat16).
//! Names per layer: `self_attn.in_proj_weight` (3H,H), `self_attn.in_proj_bias`
//! (3H), `self_attn.out_proj.*`, `linear1.*`, `linear2.*`, `norm1.*`, `norm2.*`.

use tch::{Device, Kind, Tensor, nn};

use super::init;
use super::mask::attention_bias;
use super::tokens::Tokens;
use crate::config::Activation;
use crate::params::{Parameters, join};

/// Multi-head self-attention with a packed input projection, as
/// `nn.MultiheadAttention`.
#[derive(Debug)]
pub struct MultiheadSelfAttention {
    /// Packed q,k,v projection weight, (3H,H), xavier-uniform.
    pub in_proj_weight: Tensor,
    /// Packed q,k,v projection bias, (3H), zero.
    pub in_proj_bias: Tensor,
    /// Output projection.
    pub out_proj: nn::Linear,
    /// Number of heads.
    pub num_heads: i64,
    /// Dropout on attention weights in training.
    pub dropout: f64,
}

impl MultiheadSelfAttention {
    /// Creates the attention block; `hidden_dim` must be divisible by
    /// `num_heads` (checked by config validation).
    pub fn new(path: nn::Path, hidden_dim: i64, num_heads: i64, dropout: f64) -> Self {
        MultiheadSelfAttention {
            in_proj_weight: path.var(
                "in_proj_weight",
                &[3 * hidden_dim, hidden_dim],
                init::xavier_uniform(hidden_dim, 3 * hidden_dim),
            ),
            in_proj_bias: path.var("in_proj_bias", &[3 * hidden_dim], nn::Init::Const(0.0)),
            out_proj: init::linear(&path / "out_proj", hidden_dim, hidden_dim),
            num_heads,
            dropout,
        }
    }

    /// (B,S,H) -> (B,S,H). `bias` is an additive attention bias broadcastable
    /// to (B,heads,S,S) (see [`attention_bias`]).
    pub fn forward(&self, x: &Tensor, bias: Option<&Tensor>, train: bool) -> Tensor {
        let (b, s, h) = x.size3().expect("attention input is (B, S, H)");
        let head_dim = h / self.num_heads;
        let qkv = x
            .linear(&self.in_proj_weight, Some(&self.in_proj_bias))
            .view([b, s, 3, self.num_heads, head_dim])
            .permute([2, 0, 3, 1, 4]);
        let (q, k, v) = (qkv.get(0), qkv.get(1), qkv.get(2));
        let p = if train { self.dropout } else { 0.0 };
        attend(&q, &k, &v, bias, p)
            .transpose(1, 2)
            .reshape([b, s, h])
            .apply(&self.out_proj)
    }
}

/// Largest score matrix (cells × heads × len × len entries) of one
/// attention call that [`attend`] materialises for bfloat16 on the CPU:
/// 1 GiB of bfloat16. Larger calls use the fused kernel, which never holds
/// the scores.
pub const MATMUL_ATTENTION_MAX_SCORES: i64 = 1 << 29;

/// Scaled dot-product attention of `q`, `k`, `v` (cells, heads, len,
/// head_dim) with an additive `bias` broadcastable to (cells, heads, len,
/// len) and dropout `p` on the attention weights (0 outside training).
///
/// float32 (and CUDA) run libtorch's fused kernel. bfloat16 on the CPU
/// computes `softmax(q kᵀ / √d + bias) v` with two batched bf16 matmuls,
/// which run on the CPU's bf16 matrix units, where the fused CPU kernel
/// runs no faster than in float32. The softmax accumulates in float32 and
/// rounds the weights to bfloat16 for the second matmul, as the fused
/// kernel does; above [`MATMUL_ATTENTION_MAX_SCORES`] the fused kernel is
/// used (it never materialises the scores).
pub fn attend(q: &Tensor, k: &Tensor, v: &Tensor, bias: Option<&Tensor>, p: f64) -> Tensor {
    attend_within(q, k, v, bias, p, MATMUL_ATTENTION_MAX_SCORES)
}

/// [`attend`] with another score limit (tests).
pub(crate) fn attend_within(
    q: &Tensor,
    k: &Tensor,
    v: &Tensor,
    bias: Option<&Tensor>,
    p: f64,
    max_scores: i64,
) -> Tensor {
    let (cells, heads, len, head_dim) = q.size4().expect("attention q is (B, heads, S, d)");
    let matmuls = q.device() == Device::Cpu
        && q.kind() == Kind::BFloat16
        && cells * heads * len * len <= max_scores;
    if !matmuls {
        return Tensor::scaled_dot_product_attention(q, k, v, bias, p, false, None, false);
    }
    let batch = cells * heads;
    let q = (q * (head_dim as f64).powf(-0.5)).reshape([batch, len, head_dim]);
    let k = k.reshape([batch, len, head_dim]);
    let v = v.reshape([batch, len, head_dim]);
    let mut scores = q.bmm(&k.transpose(1, 2)).view([cells, heads, len, len]);
    if let Some(bias) = bias {
        // In place: bmm keeps its inputs for the backward pass, not its
        // output.
        scores += bias.to_kind(Kind::BFloat16);
    }
    scores
        .softmax(-1, Kind::BFloat16)
        .dropout(p, p > 0.0)
        .view([batch, len, len])
        .bmm(&v)
        .view([cells, heads, len, head_dim])
}

impl Parameters for MultiheadSelfAttention {
    fn visit_parameters(&self, prefix: &str, f: &mut dyn FnMut(&str, &Tensor)) {
        f(&join(prefix, "in_proj_weight"), &self.in_proj_weight);
        f(&join(prefix, "in_proj_bias"), &self.in_proj_bias);
        self.out_proj.visit_parameters(&join(prefix, "out_proj"), f);
    }
}

/// One pre-norm encoder layer.
#[derive(Debug)]
pub struct TransformerEncoderLayer {
    /// Self-attention.
    pub self_attn: MultiheadSelfAttention,
    /// FFN input projection, Linear(H,F).
    pub linear1: nn::Linear,
    /// FFN output projection, Linear(F,H).
    pub linear2: nn::Linear,
    /// LayerNorm before attention.
    pub norm1: nn::LayerNorm,
    /// LayerNorm before the FFN.
    pub norm2: nn::LayerNorm,
    /// FFN activation.
    pub activation: Activation,
    /// Residual and FFN dropout.
    pub dropout: f64,
}

impl TransformerEncoderLayer {
    /// Creates a layer with FFN width `ffn_dim`.
    pub fn new(
        path: nn::Path,
        hidden_dim: i64,
        num_heads: i64,
        ffn_dim: i64,
        dropout: f64,
        activation: Activation,
    ) -> Self {
        TransformerEncoderLayer {
            self_attn: MultiheadSelfAttention::new(
                &path / "self_attn",
                hidden_dim,
                num_heads,
                dropout,
            ),
            linear1: init::linear(&path / "linear1", hidden_dim, ffn_dim),
            linear2: init::linear(&path / "linear2", ffn_dim, hidden_dim),
            norm1: init::layer_norm(&path / "norm1", hidden_dim),
            norm2: init::layer_norm(&path / "norm2", hidden_dim),
            activation,
            dropout,
        }
    }

    /// (B,S,H) -> (B,S,H).
    pub fn forward(&self, x: &Tensor, bias: Option<&Tensor>, train: bool) -> Tensor {
        self.forward_with(x, train, |normed| {
            self.self_attn.forward(normed, bias, train)
        })
    }

    /// The layer with the self-attention step supplied by `attend`, which
    /// maps `norm1(x)` to the attention output of the same shape. This is
    /// how other token layouts (e.g. the packed layout of
    /// [`super::packed`]) reuse the layer: every other step is per token.
    pub fn forward_with(
        &self,
        x: &Tensor,
        train: bool,
        attend: impl FnOnce(&Tensor) -> Tensor,
    ) -> Tensor {
        let attended = attend(&x.apply(&self.norm1));
        let x = x + attended.dropout(self.dropout, train);
        let ffn = x.apply(&self.norm2).apply(&self.linear1);
        let ffn = match self.activation {
            Activation::Gelu => ffn.gelu("none"),
            Activation::Relu => ffn.relu(),
        };
        let ffn = ffn
            .dropout(self.dropout, train)
            .apply(&self.linear2)
            .dropout(self.dropout, train);
        x + ffn
    }
}

impl Parameters for TransformerEncoderLayer {
    fn visit_parameters(&self, prefix: &str, f: &mut dyn FnMut(&str, &Tensor)) {
        self.self_attn
            .visit_parameters(&join(prefix, "self_attn"), f);
        self.linear1.visit_parameters(&join(prefix, "linear1"), f);
        self.linear2.visit_parameters(&join(prefix, "linear2"), f);
        self.norm1.visit_parameters(&join(prefix, "norm1"), f);
        self.norm2.visit_parameters(&join(prefix, "norm2"), f);
    }
}

/// A stack of encoder layers (`layers.{i}.*`), no final norm.
#[derive(Debug)]
pub struct TransformerEncoder {
    /// The layers, applied in order.
    pub layers: Vec<TransformerEncoderLayer>,
}

impl TransformerEncoder {
    /// Creates `num_layers` identical-shaped layers under `path / "layers"`.
    pub fn new(
        path: nn::Path,
        num_layers: i64,
        hidden_dim: i64,
        num_heads: i64,
        ffn_dim: i64,
        dropout: f64,
        activation: Activation,
    ) -> Self {
        let layers_path = &path / "layers";
        let layers = (0..num_layers)
            .map(|i| {
                TransformerEncoderLayer::new(
                    &layers_path / i,
                    hidden_dim,
                    num_heads,
                    ffn_dim,
                    dropout,
                    activation,
                )
            })
            .collect();
        TransformerEncoder { layers }
    }

    /// Runs every layer over the real tokens `x`: attention per cell over
    /// the packed rows (see [`super::packed`]), every other step per row.
    /// With `causal`, a token attends only to the tokens before it in its
    /// cell.
    pub fn forward(&self, x: &Tokens, causal: bool, train: bool) -> Tokens {
        x.map(|rows| self.forward_packed(rows, x.packing(), causal, train))
    }

    /// The padded reference: every layer over `x` (B,S,H); padding keys
    /// (mask 0) are never attended to and, with `causal`, neither are later
    /// positions. Same values as [`Self::forward`] at every real token.
    pub fn forward_padded(
        &self,
        x: &Tensor,
        attention_mask: &Tensor,
        causal: bool,
        train: bool,
    ) -> Tensor {
        let bias = attention_bias(attention_mask, causal, x.kind());
        self.forward_with_bias(x, Some(&bias), train)
    }

    /// Runs every layer with a precomputed additive attention bias.
    pub fn forward_with_bias(&self, x: &Tensor, bias: Option<&Tensor>, train: bool) -> Tensor {
        let mut x = x.shallow_clone();
        for layer in &self.layers {
            x = layer.forward(&x, bias, train);
        }
        x
    }
}

impl Parameters for TransformerEncoder {
    fn visit_parameters(&self, prefix: &str, f: &mut dyn FnMut(&str, &Tensor)) {
        self.layers.visit_parameters(&join(prefix, "layers"), f);
    }
}
