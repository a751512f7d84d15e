//! Layer constructors that apply scModelForge's `init_weights`:
//! Linear xavier-uniform with zero bias, Embedding N(0, 0.02) with the
//! padding row zeroed, LayerNorm weight 1 and bias 0 (eps 1e-12).

use tch::nn::{self, Init};

/// LayerNorm epsilon used by every scModelForge component.
pub const LAYER_NORM_EPS: f64 = 1e-12;

/// Standard deviation of embedding init.
pub const EMBEDDING_STD: f64 = 0.02;

/// Xavier (Glorot) uniform init for a weight with the given fans.
pub fn xavier_uniform(fan_in: i64, fan_out: i64) -> Init {
    let bound = (6.0 / (fan_in + fan_out) as f64).sqrt();
    Init::Uniform {
        lo: -bound,
        up: bound,
    }
}

/// `Linear(in_dim, out_dim)` with xavier-uniform weight and zero bias.
pub fn linear(path: nn::Path, in_dim: i64, out_dim: i64) -> nn::Linear {
    nn::linear(
        path,
        in_dim,
        out_dim,
        nn::LinearConfig {
            ws_init: xavier_uniform(in_dim, out_dim),
            bs_init: Some(Init::Const(0.0)),
            bias: true,
        },
    )
}

/// `LayerNorm(dim, eps=1e-12)` with weight 1 and bias 0.
pub fn layer_norm(path: nn::Path, dim: i64) -> nn::LayerNorm {
    nn::layer_norm(
        path,
        vec![dim],
        nn::LayerNormConfig {
            eps: LAYER_NORM_EPS,
            ..Default::default()
        },
    )
}

/// `Embedding(num, dim)` drawn from N(0, 0.02); with `padding_idx`, that row
/// is zeroed and receives no gradient.
pub fn embedding(path: nn::Path, num: i64, dim: i64, padding_idx: Option<i64>) -> nn::Embedding {
    let emb = nn::embedding(
        path,
        num,
        dim,
        nn::EmbeddingConfig {
            ws_init: Init::Randn {
                mean: 0.0,
                stdev: EMBEDDING_STD,
            },
            padding_idx: padding_idx.unwrap_or(-1),
            ..Default::default()
        },
    );
    if let Some(idx) = padding_idx {
        tch::no_grad(|| {
            let _ = emb.ws.get(idx).zero_();
        });
    }
    emb
}
