//! `cargo bench --bench ddp_scaling`: data parallel scaling of a training
//! step on the CPU, 2 processes x 1 thread against 1 process x 1 thread.
//!
//! Model and batch are `model_step`'s: `transformer_encoder`, hidden 256,
//! 4 layers, 8 heads, vocabulary 20,000 genes; 16 cells per process and
//! step whose lengths vary between 128 and 512 tokens, 15% masked. A step
//! is the loss, backward and forge's AdamW through the training loop's
//! [`Strategy::optimizer_step`]: one process runs [`SingleProcess`]; each
//! of the two ranks (this binary re-run with torchrun's variables, Gloo
//! over loopback) runs [`DataParallel`], which averages the gradients over
//! the ranks in flat buckets before the step. `FORGE_BENCH_ZERO=1` runs
//! ZeRO-2 instead (reduce-scatter, sharded step, all-gather).
//!
//! Weak scaling (the batch per process is fixed), so the ideal is twice the
//! single process's cells/s; the efficiency printed is
//! `cells/s of the 2 ranks / (2 x cells/s of 1 process)`, target >= 90%.
//! The machine must have 2 free cores for the number to mean anything
//! (the load average is printed).
//!
//! Environment: `FORGE_BENCH_ITERS` (timed steps, default 5).

use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use forge_core::config::{ModelConfig, OptimizerConfig, Precision};
use forge_core::models::TransformerEncoderModel;
use forge_core::params::named_parameters;
use forge_core::precision::LossScaler;
use forge_core::tch::nn::VarStore;
use forge_core::tch::{self, Device};
use forge_core::{Architecture, Batch, ForgeModel};
use forge_dist::DistributedContext;
use forge_train::train::optim::Optimizer;
use forge_train::train::{DataParallel, SingleProcess, Strategy};

mod common;
use common::{CELLS, HEADS, HIDDEN, LAYERS, LR, MAX_LEN, MIN_LEN, VOCAB, load_average, make_batch};

const RANK_VAR: &str = "FORGE_BENCH_DDP_RANK";

fn model(vs: &VarStore) -> TransformerEncoderModel {
    let config = ModelConfig {
        vocab_size: Some(VOCAB),
        hidden_dim: HIDDEN,
        num_layers: LAYERS,
        num_heads: HEADS,
        dropout: 0.0,
        max_seq_len: MAX_LEN,
        ..ModelConfig::default()
    };
    TransformerEncoderModel::from_config(&vs.root(), &config).expect("model")
}

/// Trains `iters` timed steps (after one warm-up) with `strategy`, batch
/// seeds offset by `rank`; returns the seconds of the timed steps.
fn run(strategy: &dyn Strategy, rank: i64, iters: usize, sync: &dyn Fn()) -> f64 {
    tch::manual_seed(0);
    let vs = VarStore::new(Device::Cpu);
    let m = model(&vs);
    let mut opt = Optimizer::new(&OptimizerConfig::default(), named_parameters(&m));
    let mut scaler = LossScaler::new(Precision::Fp32True, Device::Cpu);
    let batches: Vec<Batch> = (0..=iters as i64)
        .map(|i| make_batch(1000 * rank + i))
        .collect();
    let mut start = Instant::now();
    for (i, b) in batches.iter().enumerate() {
        if i == 1 {
            sync();
            start = Instant::now();
        }
        m.loss(b).expect("a loss").backward();
        let mut opts = [(&mut opt, LR)];
        strategy
            .optimizer_step(&mut scaler, &mut opts, 1.0)
            .expect("a step");
    }
    sync();
    start.elapsed().as_secs_f64()
}

fn iters() -> usize {
    std::env::var("FORGE_BENCH_ITERS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(5)
}

/// One rank of the 2-process row: prints its seconds.
fn rank_main() {
    tch::set_num_threads(1);
    let ctx = Arc::new(
        DistributedContext::from_env(Duration::from_secs(120)).expect("joining the group"),
    );
    let mut dp = DataParallel::new(Arc::clone(&ctx));
    if std::env::var("FORGE_BENCH_ZERO").is_ok_and(|v| v == "1") {
        dp = dp.with_sharded_optimizer();
    }
    let secs = run(&dp, ctx.rank() as i64, iters(), &|| {
        ctx.barrier().expect("barrier");
    });
    println!("seconds {secs}");
}

fn main() {
    if std::env::var_os(RANK_VAR).is_some() {
        rank_main();
        return;
    }
    let iters = iters();
    println!(
        "ddp_scaling: transformer_encoder hidden {HIDDEN}, {LAYERS} layers, {HEADS} heads, \
         vocabulary {VOCAB}; {CELLS} cells of {MIN_LEN}-{MAX_LEN} tokens per process and step; \
         {iters} steps after a warm-up; load average {}",
        load_average()
    );
    tch::set_num_threads(1);
    let single = run(&SingleProcess, 0, iters, &|| {});
    let single_rate = (CELLS as usize * iters) as f64 / single;

    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port();
    let exe = std::env::current_exe().expect("own executable");
    let children: Vec<_> = (0..2)
        .map(|rank| {
            Command::new(&exe)
                .env(RANK_VAR, "1")
                .env("RANK", rank.to_string())
                .env("LOCAL_RANK", rank.to_string())
                .env("WORLD_SIZE", "2")
                .env("MASTER_ADDR", "127.0.0.1")
                .env("MASTER_PORT", port.to_string())
                .env("OMP_NUM_THREADS", "1")
                .env_remove("TORCHELASTIC_RUN_ID")
                .env_remove("SLURM_NTASKS")
                .stdout(Stdio::piped())
                .spawn()
                .expect("starting a rank")
        })
        .collect();
    let mut slowest: f64 = 0.0;
    for (rank, c) in children.into_iter().enumerate() {
        let out = c.wait_with_output().expect("a rank's output");
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(out.status.success(), "rank {rank} failed: {text}");
        let secs: f64 = text
            .lines()
            .find_map(|l| l.strip_prefix("seconds "))
            .and_then(|s| s.trim().parse().ok())
            .unwrap_or_else(|| panic!("rank {rank} printed no time: {text}"));
        slowest = slowest.max(secs);
    }
    let dp_rate = (2 * CELLS as usize * iters) as f64 / slowest;
    let efficiency = dp_rate / (2.0 * single_rate);
    let zero = std::env::var("FORGE_BENCH_ZERO").is_ok_and(|v| v == "1");
    println!(
        "{:<34} {:>10.1} cells/s",
        "1 process x 1 thread", single_rate
    );
    println!(
        "{:<34} {:>10.1} cells/s",
        if zero {
            "2 processes x 1 thread (ZeRO-2)"
        } else {
            "2 processes x 1 thread (DDP)"
        },
        dp_rate
    );
    println!(
        "scaling efficiency {:.1}% (target >= 90%){}",
        100.0 * efficiency,
        if efficiency >= 0.9 {
            ""
        } else {
            " -- below target; check the load average: 2 free cores are needed"
        }
    );
    println!("load average after: {}", load_average());
}
