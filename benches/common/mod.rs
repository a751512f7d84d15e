//! What the model benches share: `model_step`'s model size and batch (the
//! `ddp_scaling` bench runs the same step), and the load average they print.

use forge_core::Batch;
use forge_core::tch::{self, Device, Kind, Tensor};

pub const VOCAB: i64 = 20_000;
pub const HIDDEN: i64 = 256;
pub const LAYERS: i64 = 4;
pub const HEADS: i64 = 8;
pub const CELLS: i64 = 16;
pub const MIN_LEN: i64 = 128;
pub const MAX_LEN: i64 = 512;
pub const MASK_RATIO: f64 = 0.15;
pub const LR: f64 = 1e-4;

/// 16 cells with lengths spread evenly over 128..=512 tokens (CLS first),
/// in shuffled order, padded to the longest; `MASK_RATIO` of each cell's
/// genes carry a label, 80% of those replaced by the MASK token.
pub fn make_batch(seed: i64) -> Batch {
    tch::manual_seed(seed);
    let opts = (Kind::Int64, Device::Cpu);
    let spread: Vec<i64> = (0..CELLS)
        .map(|i| MIN_LEN + (i * (MAX_LEN - MIN_LEN) + (CELLS - 1) / 2) / (CELLS - 1))
        .collect();
    let lengths = Tensor::from_slice(&spread).index_select(0, &Tensor::randperm(CELLS, opts));
    let longest = lengths.max().int64_value(&[]);
    let positions = Tensor::arange(longest, opts).unsqueeze(0);
    let real = positions.lt_tensor(&lengths.unsqueeze(1));
    let genes = positions.gt(0).logical_and(&real);
    let mask = real.to_kind(Kind::Int64);
    let ids = Tensor::randint_low(4, VOCAB, [CELLS, longest], opts)
        .where_self(&positions.gt(0), &Tensor::from(3i64))
        * &mask;
    let uniform = || Tensor::rand([CELLS, longest], (Kind::Float, Device::Cpu));
    let values = uniform() * genes.to_kind(Kind::Float);
    let chosen = uniform().lt(MASK_RATIO).logical_and(&genes);
    let labels = ids.where_self(&chosen, &Tensor::from(-100i64));
    let to_mask = chosen.logical_and(&uniform().lt(0.8));
    let ids = ids.where_self(&to_mask.logical_not(), &Tensor::from(2i64));
    Batch::builder(ids, mask)
        .values(values)
        .labels(labels)
        .build()
        .expect("valid batch")
}

/// The machine's load average (1, 5, 15 minutes), or `unknown`.
pub fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|_| "unknown".into())
}
