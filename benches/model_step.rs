//! `cargo bench --bench model_step`: a training step and `encode` of
//! `transformer_encoder`, forge against PyTorch eager, same weights, same
//! batch, same thread count.
//!
//! Model: hidden 256, 4 layers, 8 heads, vocabulary 20,000 genes, max 512
//! tokens. Batch: 16 cells whose lengths vary uniformly between 128 and 512
//! tokens (as real cells do), 15% of each cell's genes masked for the loss.
//! Dropout is 0 on both sides so that the first step's loss can be compared
//! exactly; precision is float32 on both sides.
//!
//! forge's training step is `Architecture::loss` (what the pretraining
//! pipeline calls), `backward` and libtorch's AdamW; PyTorch's is
//! scModelForge's `model(**batch)["loss"]`, `backward` and
//! `torch.optim.AdamW`. `encode` runs without gradients in eval mode on
//! both sides. The PyTorch side is `scripts/bench_model_torch.py`, run as a
//! subprocess with the venv's python after forge has written the weights
//! and the batch to safetensors files.
//!
//! Prints the median of a few repetitions (after one warm-up) as cells/s
//! for both and the ratio, plus how far the first loss and the embeddings
//! are apart. Not a test: it fails only if PyTorch cannot be run or the
//! two sides disagree.
//!
//! Environment: `FORGE_BENCH_THREADS` (default: all cores),
//! `FORGE_BENCH_ITERS` (default 3), `FORGE_BENCH_SKIP_TORCH=1` (forge only),
//! `FORGE_VENV` (set by `.cargo/config.toml`).

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use forge_core::config::{ModelConfig, Pooling};
use forge_core::tch::nn::{self, OptimizerConfig, VarStore};
use forge_core::tch::{self, Device, Kind, Tensor};
use forge_core::{Batch, ForgeModel};

const VOCAB: i64 = 20_000;
const HIDDEN: i64 = 256;
const LAYERS: i64 = 4;
const HEADS: i64 = 8;
const CELLS: i64 = 16;
const MIN_LEN: i64 = 128;
const MAX_LEN: i64 = 512;
const MASK_RATIO: f64 = 0.15;
const LR: f64 = 1e-4;
/// Largest acceptable |forge - PyTorch| for the loss and the embeddings
/// (float32, different but equivalent kernels and summation orders).
const AGREEMENT: f64 = 1e-4;

fn main() {
    let threads = env_usize("FORGE_BENCH_THREADS").unwrap_or_else(|| {
        std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(1)
    });
    let iters = env_usize("FORGE_BENCH_ITERS").unwrap_or(3).max(1);
    let skip_torch = std::env::var("FORGE_BENCH_SKIP_TORCH").is_ok_and(|v| v == "1");
    tch::set_num_threads(threads as i32);

    let config = ModelConfig {
        architecture: "transformer_encoder".into(),
        vocab_size: Some(VOCAB),
        hidden_dim: HIDDEN,
        num_layers: LAYERS,
        num_heads: HEADS,
        max_seq_len: MAX_LEN,
        dropout: 0.0,
        pooling: Pooling::Cls,
        ..ModelConfig::default()
    };
    tch::manual_seed(0);
    let vs = VarStore::new(Device::Cpu);
    let model = forge_core::registry::build(&vs.root(), &config).expect("model builds");
    let batch = make_batch(1);
    let lengths: Vec<i64> = Vec::try_from(batch.attention_mask().sum_dim_intlist(
        1,
        false,
        Kind::Int64,
    ))
    .unwrap();
    let real: i64 = lengths.iter().sum();
    println!(
        "model_step: transformer_encoder, hidden {HIDDEN}, {LAYERS} layers, {HEADS} heads, \
         vocab {VOCAB}, {} parameters",
        model.num_parameters(true)
    );
    println!(
        "batch: {CELLS} cells, {real} tokens ({:.0}% of the padded {CELLS}x{MAX_LEN}), \
         lengths {}..{}; {threads} threads, median of {iters} after a warm-up",
        100.0 * real as f64 / (CELLS * MAX_LEN) as f64,
        lengths.iter().min().unwrap(),
        lengths.iter().max().unwrap()
    );

    let scratch = std::env::temp_dir().join(format!("forge-bench-{}", std::process::id()));
    std::fs::create_dir_all(&scratch).expect("scratch folder");
    let torch = if skip_torch {
        None
    } else {
        Some(run_torch(
            &*model, &config, &batch, &scratch, threads, iters,
        ))
    };

    // encode first: it must see the initial weights, as PyTorch's did.
    let unlabelled = batch.without_labels();
    let mut embeddings = None;
    let encode_s = time(iters, || {
        let e = tch::no_grad(|| model.encode(&unlabelled));
        embeddings.get_or_insert(e);
    });
    let mut opt = nn::AdamW::default()
        .build(&vs, LR)
        .expect("AdamW over the model's variables");
    let mut first_loss = None;
    let mut parts = [0.0f64; 3];
    let train_s = time(iters, || {
        let t0 = Instant::now();
        let loss = model.loss(&batch).expect("the batch has labels");
        let value = loss.double_value(&[]);
        let t1 = Instant::now();
        opt.zero_grad();
        loss.backward();
        let t2 = Instant::now();
        opt.step();
        let t3 = Instant::now();
        first_loss.get_or_insert(value);
        for (p, d) in parts.iter_mut().zip([t1 - t0, t2 - t1, t3 - t2]) {
            *p += d.as_secs_f64() / (iters + 1) as f64;
        }
    });
    let _ = std::fs::remove_dir_all(&scratch);

    let cells = |s: f64| CELLS as f64 / s;
    println!();
    println!(
        "{:<22} {:>12} {:>12} {:>8}",
        "", "forge", "PyTorch", "ratio"
    );
    for (name, forge_s, torch_s) in [
        (
            "train step (cells/s)",
            train_s,
            torch.as_ref().map(|t| t.train_s),
        ),
        (
            "encode (cells/s)",
            encode_s,
            torch.as_ref().map(|t| t.encode_s),
        ),
    ] {
        match torch_s {
            Some(t) => println!(
                "{name:<22} {:>12.2} {:>12.2} {:>7.2}x",
                cells(forge_s),
                cells(t),
                t / forge_s
            ),
            None => println!("{name:<22} {:>12.2} {:>12} {:>8}", cells(forge_s), "-", "-"),
        }
    }
    println!(
        "seconds per batch: forge train {train_s:.3}, encode {encode_s:.3}{}",
        torch
            .as_ref()
            .map(|t| format!("; PyTorch train {:.3}, encode {:.3}", t.train_s, t.encode_s))
            .unwrap_or_default()
    );

    println!(
        "forge train step, mean over all runs: loss {:.3} s, backward {:.3} s, AdamW {:.3} s",
        parts[0], parts[1], parts[2]
    );

    if let Some(t) = torch {
        let loss = first_loss.expect("one step ran");
        let loss_diff = (loss - t.loss).abs();
        let emb_diff = (embeddings.expect("one encode ran") - &t.embeddings)
            .abs()
            .max()
            .double_value(&[]);
        println!(
            "agreement: first loss forge {loss:.6} vs PyTorch {:.6} (|diff| {loss_diff:.1e}); \
             embeddings max |diff| {emb_diff:.1e}",
            t.loss
        );
        if loss_diff > AGREEMENT || emb_diff > AGREEMENT {
            eprintln!("forge and PyTorch disagree by more than {AGREEMENT:e}");
            std::process::exit(1);
        }
    }
}

fn env_usize(name: &str) -> Option<usize> {
    std::env::var(name).ok().and_then(|v| v.parse().ok())
}

/// Median seconds of `iters` runs of `f`, after one warm-up run.
fn time(iters: usize, mut f: impl FnMut()) -> f64 {
    let mut runs: Vec<f64> = (0..=iters)
        .map(|_| {
            let start = Instant::now();
            f();
            start.elapsed().as_secs_f64()
        })
        .skip(1)
        .collect();
    runs.sort_by(f64::total_cmp);
    median(&runs)
}

fn median(sorted: &[f64]) -> f64 {
    let n = sorted.len();
    if n % 2 == 1 {
        sorted[n / 2]
    } else {
        (sorted[n / 2 - 1] + sorted[n / 2]) / 2.0
    }
}

/// 16 cells of 128..512 tokens (CLS first), padded to the longest;
/// `MASK_RATIO` of each cell's genes carry a label, 80% of those replaced by
/// the MASK token.
fn make_batch(seed: i64) -> Batch {
    tch::manual_seed(seed);
    let opts = (Kind::Int64, Device::Cpu);
    let lengths = Tensor::randint_low(MIN_LEN, MAX_LEN + 1, [CELLS], opts);
    let longest = lengths.max().int64_value(&[]);
    let positions = Tensor::arange(longest, opts).unsqueeze(0);
    let real = positions.lt_tensor(&lengths.unsqueeze(1));
    let genes = positions.gt(0).logical_and(&real);
    let mask = real.to_kind(Kind::Int64);
    let ids = Tensor::randint_low(4, VOCAB, [CELLS, longest], opts)
        .where_self(&positions.gt(0), &Tensor::from(3i64))
        * &mask;
    let values =
        Tensor::rand([CELLS, longest], (Kind::Float, Device::Cpu)) * genes.to_kind(Kind::Float);
    let chosen = Tensor::rand([CELLS, longest], (Kind::Float, Device::Cpu))
        .lt(MASK_RATIO)
        .logical_and(&genes);
    let labels = ids.where_self(&chosen, &Tensor::from(-100i64));
    let to_mask =
        chosen.logical_and(&Tensor::rand([CELLS, longest], (Kind::Float, Device::Cpu)).lt(0.8));
    let ids = ids.where_self(&to_mask.logical_not(), &Tensor::from(2i64));
    Batch::builder(ids, mask)
        .values(values)
        .labels(labels)
        .build()
        .expect("valid batch")
}

struct TorchResult {
    train_s: f64,
    encode_s: f64,
    loss: f64,
    embeddings: Tensor,
}

/// Writes the weights, batch and config for the PyTorch script, runs it and
/// reads its timings and outputs.
fn run_torch(
    model: &dyn ForgeModel,
    config: &ModelConfig,
    batch: &Batch,
    scratch: &Path,
    threads: usize,
    iters: usize,
) -> TorchResult {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let weights = scratch.join("weights.safetensors");
    let batch_path = scratch.join("batch.safetensors");
    let config_path = scratch.join("config.json");
    let out = scratch.join("torch.safetensors");
    Tensor::write_safetensors(&forge_core::state_dict::state_dict(model), &weights)
        .expect("write weights");
    let tensors = [
        ("input_ids", batch.input_ids().shallow_clone()),
        ("attention_mask", batch.attention_mask().shallow_clone()),
        ("values", batch.values().unwrap().shallow_clone()),
        ("labels", batch.labels().unwrap().shallow_clone()),
    ];
    Tensor::write_safetensors(&tensors, &batch_path).expect("write batch");
    std::fs::write(&config_path, config.to_json().to_string()).expect("write config");

    let venv = std::env::var_os("FORGE_VENV")
        .map(PathBuf::from)
        .unwrap_or_else(|| root.join(".venv"));
    let venv = if venv.is_relative() {
        root.join(venv)
    } else {
        venv
    };
    let python = venv.join("bin/python");
    let script = root.join("scripts/bench_model_torch.py");
    println!("running PyTorch: {} {}", python.display(), script.display());
    let output = Command::new(&python)
        .arg(&script)
        .arg("--config")
        .arg(&config_path)
        .arg("--weights")
        .arg(&weights)
        .arg("--batch")
        .arg(&batch_path)
        .args(["--threads", &threads.to_string()])
        .args(["--iters", &iters.to_string()])
        .args(["--lr", &LR.to_string()])
        .arg("--out")
        .arg(&out)
        .output()
        .unwrap_or_else(|e| panic!("{}: {e} (run scripts/setup.sh)", python.display()));
    if !output.status.success() {
        panic!(
            "the PyTorch benchmark failed:\n{}",
            String::from_utf8_lossy(&output.stderr)
        );
    }
    let results: std::collections::HashMap<String, Tensor> = Tensor::read_safetensors(&out)
        .expect("read PyTorch outputs")
        .into_iter()
        .collect();
    let seconds = |key: &str| {
        let mut v = Vec::<f64>::try_from(&results[key]).expect("float64 seconds");
        v.sort_by(f64::total_cmp);
        median(&v)
    };
    TorchResult {
        train_s: seconds("train_s"),
        encode_s: seconds("encode_s"),
        loss: results["loss"].double_value(&[0]),
        embeddings: results["embeddings"].shallow_clone(),
    }
}
