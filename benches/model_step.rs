//! `cargo bench --bench model_step`: a training step and `encode` of
//! `transformer_encoder`, forge against PyTorch eager, same weights, same
//! batch, same thread count, in float32 and in bf16-mixed.
//!
//! Model: hidden 256, 4 layers, 8 heads, vocabulary 20,000 genes, max 512
//! tokens. Batch: 16 cells whose lengths vary uniformly between 128 and 512
//! tokens (as real cells do), 15% of each cell's genes masked for the loss.
//! Dropout is 0 on both sides so that the first step's loss can be compared
//! exactly.
//!
//! Rows: forge in float32 and in `bf16-mixed` (libtorch's CPU autocast to
//! bfloat16, as `forge train` runs it); PyTorch eager in float32 and under
//! `torch.autocast("cpu", dtype=torch.bfloat16)` (Lightning's bf16-mixed on
//! the CPU); and `torch.compile` under the same autocast where the venv's
//! compiler works (skipped with a note otherwise). Each row trains its own
//! copy of the same initial weights. Two more rows run a freshly generated
//! model, `benches/models/bench_blank.rs` (`forge-gen new bench_blank`: the
//! blank template as it renders today, guarded by a generator test), with
//! the same sizes and batch, against which `transformer_encoder`'s rows are
//! compared: a model made with forge-gen should be within 5% of it (a
//! warning otherwise).
//!
//! forge's training step is `Architecture::loss` (what the pretraining
//! pipeline calls), `backward` and libtorch's AdamW; PyTorch's is
//! scModelForge's `model(**batch)["loss"]`, `backward` and
//! `torch.optim.AdamW`. `encode` runs without gradients in eval mode on
//! both sides. The PyTorch side is `scripts/bench_model_torch.py`, a
//! subprocess of the venv's python that loads the weights and the batch
//! forge wrote and then runs one repetition per request, so that all rows'
//! repetitions interleave and share whatever else the machine does.
//!
//! Prints the median of a few repetitions (after one warm-up) as cells/s
//! per row and how many times faster forge bf16 is, the machine's fp32 and
//! bf16 matmul rates (measured between the repetitions) and forge's useful
//! FLOP/s as a fraction of them, the load average, and how far the first
//! losses and the embeddings are apart. Not a test: it fails only if
//! PyTorch cannot be run, forge and PyTorch disagree in float32, or forge's
//! bf16 is further from its float32 than bfloat16 allows.
//!
//! Environment: `FORGE_BENCH_THREADS` (default: all cores),
//! `FORGE_BENCH_ITERS` (default 3), `FORGE_BENCH_SKIP_TORCH=1` (forge only),
//! `FORGE_BENCH_COMPILE=0` (no `torch.compile` row), `FORGE_VENV` (set by
//! `.cargo/config.toml`).

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};
use std::time::Instant;

use forge_core::config::{ModelConfig, Pooling, Precision};
use forge_core::precision::with_precision;
use forge_core::tch::nn::{self, OptimizerConfig, VarStore};
use forge_core::tch::{self, Device, Kind, Tensor};
use forge_core::{Batch, ForgeModel};

/// The blank template as `forge-gen new bench_blank` generates it (a test
/// of the generator keeps the file equal to what the template renders).
#[path = "models/bench_blank.rs"]
mod bench_blank;
use bench_blank::BenchBlank;

mod common;
use common::{CELLS, HEADS, HIDDEN, LAYERS, LR, MAX_LEN, VOCAB, load_average, make_batch};

/// Largest acceptable slowdown of the freshly generated model against
/// `transformer_encoder` (train step and encode): models made with
/// forge-gen get the same packed speed as the reference models.
const BLANK_SLOWDOWN: f64 = 1.05;

/// Largest acceptable |forge - PyTorch| for the loss and the embeddings
/// (float32, different but equivalent kernels and summation orders).
const AGREEMENT: f64 = 1e-4;
/// Largest acceptable relative difference between forge's bf16-mixed and
/// float32 first loss and embeddings (bfloat16 keeps 8 bits of mantissa).
const BF16_AGREEMENT: f64 = 5e-2;

/// How one row of the table computes.
#[derive(Clone, Copy, PartialEq)]
enum Side {
    Forge,
    Torch,
    /// forge running the freshly generated model (`bench_blank`).
    Blank,
}

/// One row: who computes, in which mode (`fp32`, `bf16`, `compile-bf16`).
struct Row {
    side: Side,
    mode: &'static str,
    encode: Vec<f64>,
    train: Vec<f64>,
}

impl Row {
    fn new(side: Side, mode: &'static str) -> Self {
        Row {
            side,
            mode,
            encode: Vec::new(),
            train: Vec::new(),
        }
    }

    /// Which of forge's models (and optimizers) the row runs: 0/1
    /// `transformer_encoder` fp32/bf16, 2/3 the generated model.
    fn slot(&self) -> usize {
        usize::from(self.side == Side::Blank) * 2 + usize::from(self.mode == "bf16")
    }

    fn name(&self) -> String {
        let who = match self.side {
            Side::Forge => "forge",
            Side::Blank => "forge-gen blank",
            Side::Torch if self.mode.starts_with("compile") => "PyTorch compile",
            Side::Torch => "PyTorch eager",
        };
        let precision = if self.mode.ends_with("bf16") {
            "bf16-mixed"
        } else {
            "fp32"
        };
        format!("{who} {precision}")
    }
}

fn main() {
    let threads = env_usize("FORGE_BENCH_THREADS").unwrap_or_else(|| {
        std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(1)
    });
    let iters = env_usize("FORGE_BENCH_ITERS").unwrap_or(3).max(1);
    let skip_torch = std::env::var("FORGE_BENCH_SKIP_TORCH").is_ok_and(|v| v == "1");
    let skip_compile = std::env::var("FORGE_BENCH_COMPILE").is_ok_and(|v| v == "0");
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
    // The bf16-mixed run trains its own copy of the same initial weights.
    let mut vs_bf16 = VarStore::new(Device::Cpu);
    let model_bf16 = forge_core::registry::build(&vs_bf16.root(), &config).expect("model builds");
    vs_bf16.copy(&vs).expect("same variables");
    // The generated model: same sizes, its own weights.
    let blank_vs = VarStore::new(Device::Cpu);
    let blank = BenchBlank::from_config(&blank_vs.root(), &config).expect("blank model builds");
    let blank_vs_bf16 = VarStore::new(Device::Cpu);
    let blank_bf16 =
        BenchBlank::from_config(&blank_vs_bf16.root(), &config).expect("blank model builds");
    let batch = make_batch(1);
    let lengths: Vec<i64> = Vec::try_from(batch.attention_mask().sum_dim_intlist(
        1,
        false,
        Kind::Int64,
    ))
    .expect("int64 lengths");
    let real: i64 = lengths.iter().sum();
    let masked = batch
        .labels()
        .expect("labels")
        .ne(-100)
        .sum(Kind::Int64)
        .int64_value(&[]);
    println!(
        "model_step: transformer_encoder, hidden {HIDDEN}, {LAYERS} layers, {HEADS} heads, \
         vocab {VOCAB}, {} parameters",
        model.num_parameters(true)
    );
    println!(
        "batch: {CELLS} cells, {real} tokens ({:.0}% of the padded {CELLS}x{}), lengths \
         {}..{}, {masked} masked; {threads} threads; median of {iters} after a warm-up",
        100.0 * real as f64 / (CELLS * batch.seq_len()) as f64,
        batch.seq_len(),
        lengths.iter().min().expect("cells"),
        lengths.iter().max().expect("cells"),
    );
    match forge_core::precision::CpuMatrixUnits::detect() {
        Some(u) => println!(
            "CPU bf16 matrix units: {}; fp16: {}",
            u.bf16_names(),
            u.fp16_names()
        ),
        None => println!("CPU matrix units: unknown on this platform"),
    }
    println!("load average at start: {}", load_average());

    let scratch = std::env::temp_dir().join(format!("forge-bench-{}", std::process::id()));
    std::fs::create_dir_all(&scratch).expect("scratch folder");
    let mut torch =
        (!skip_torch).then(|| Torch::start(&*model, &config, &batch, &scratch, threads));

    let mut rows = vec![Row::new(Side::Forge, "fp32"), Row::new(Side::Forge, "bf16")];
    rows.push(Row::new(Side::Blank, "fp32"));
    rows.push(Row::new(Side::Blank, "bf16"));
    if let Some(t) = torch.as_mut() {
        rows.push(Row::new(Side::Torch, "fp32"));
        rows.push(Row::new(Side::Torch, "bf16"));
        if skip_compile {
            println!("torch.compile: skipped (FORGE_BENCH_COMPILE=0)");
        } else {
            let reply = t.call("check-compile");
            if reply == "ok" {
                rows.push(Row::new(Side::Torch, "compile-bf16"));
            } else {
                println!("torch.compile: skipped, the venv's compiler does not work here: {reply}");
            }
        }
    }

    // encode first: every row must see the initial weights.
    let unlabelled = batch.without_labels();
    // forge's models by slot (see `Row::slot`): the reference model and
    // the generated one, each in fp32 and bf16-mixed.
    let forge_models: [(&dyn ForgeModel, Precision, usize); 4] = [
        (&*model, Precision::Fp32True, 0),
        (&*model_bf16, Precision::Bf16Mixed, 1),
        (&blank, Precision::Fp32True, 2),
        (&blank_bf16, Precision::Bf16Mixed, 3),
    ];
    let mut embeddings: [Option<Tensor>; 4] = [None, None, None, None];
    let mut rates: [Vec<f64>; 2] = [Vec::new(), Vec::new()];
    for rep in 0..=iters {
        for (kind, rate) in [Kind::Float, Kind::BFloat16]
            .into_iter()
            .zip(rates.iter_mut())
        {
            let r = matmul_rate(kind);
            if rep > 0 {
                rate.push(r);
            }
        }
        for row in rows.iter_mut() {
            let seconds = match row.side {
                Side::Torch => Torch::seconds(
                    &torch
                        .as_mut()
                        .expect("torch rows need torch")
                        .call(&format!("encode {}", row.mode)),
                ),
                Side::Forge | Side::Blank => {
                    let (m, precision, slot) = forge_models[row.slot()];
                    let start = Instant::now();
                    let e = tch::no_grad(|| {
                        with_precision(precision, Device::Cpu, || m.encode(&unlabelled))
                    });
                    let seconds = start.elapsed().as_secs_f64();
                    embeddings[slot].get_or_insert(e.to_kind(Kind::Float));
                    seconds
                }
            };
            if rep > 0 {
                row.encode.push(seconds);
            }
        }
    }

    let mut opts: Vec<nn::Optimizer> = [&vs, &vs_bf16, &blank_vs, &blank_vs_bf16]
        .into_iter()
        .map(|vs| {
            nn::AdamW::default()
                .build(vs, LR)
                .expect("AdamW over the model's variables")
        })
        .collect();
    let mut first_loss: [Option<f64>; 4] = [None; 4];
    let mut parts = [[0.0f64; 3]; 4];
    for rep in 0..=iters {
        for row in rows.iter_mut() {
            let seconds = match row.side {
                Side::Torch => Torch::seconds(
                    &torch
                        .as_mut()
                        .expect("torch rows need torch")
                        .call(&format!("train {}", row.mode)),
                ),
                Side::Forge | Side::Blank => {
                    let (m, precision, slot) = forge_models[row.slot()];
                    let o = &mut opts[slot];
                    let t0 = Instant::now();
                    let loss = with_precision(precision, Device::Cpu, || m.loss(&batch))
                        .expect("the batch has labels");
                    let value = loss.double_value(&[]);
                    let t1 = Instant::now();
                    o.zero_grad();
                    loss.backward();
                    let t2 = Instant::now();
                    o.step();
                    let t3 = Instant::now();
                    first_loss[slot].get_or_insert(value);
                    if rep > 0 {
                        for (p, d) in parts[slot].iter_mut().zip([t1 - t0, t2 - t1, t3 - t2]) {
                            *p += d.as_secs_f64() / iters as f64;
                        }
                    }
                    (t3 - t0).as_secs_f64()
                }
            };
            if rep > 0 {
                row.train.push(seconds);
            }
        }
    }
    let torch_outputs = torch.as_mut().map(|t| t.outputs(&scratch));
    drop(torch);
    let _ = std::fs::remove_dir_all(&scratch);
    println!("load average at end: {}", load_average());

    let cells = |s: f64| CELLS as f64 / s;
    let forge_bf16 = (median(&rows[1].train), median(&rows[1].encode));
    println!();
    println!(
        "{:<28} {:>11} {:>11}   {:>22}",
        "cells/s", "train step", "encode", "forge bf16 is (train, encode)"
    );
    for row in &rows {
        let (train_s, encode_s) = (median(&row.train), median(&row.encode));
        println!(
            "{:<28} {:>11.2} {:>11.2}   {:>10.2}x {:>10.2}x",
            row.name(),
            cells(train_s),
            cells(encode_s),
            train_s / forge_bf16.0,
            encode_s / forge_bf16.1,
        );
    }
    if let Some(best) = rows
        .iter()
        .filter(|r| r.side == Side::Torch)
        .map(|r| (median(&r.train), median(&r.encode)))
        .reduce(|a, b| (a.0.min(b.0), a.1.min(b.1)))
    {
        println!(
            "forge bf16 against the best PyTorch row: train {:.2}x, encode {:.2}x",
            best.0 / forge_bf16.0,
            best.1 / forge_bf16.1
        );
    }
    let mut blank_slow = Vec::new();
    for (te, generated) in rows[..2]
        .iter()
        .zip(rows.iter().filter(|r| r.side == Side::Blank))
    {
        let train = median(&generated.train) / median(&te.train);
        let encode = median(&generated.encode) / median(&te.encode);
        println!(
            "freshly generated model (forge-gen new bench_blank) against transformer_encoder, \
             {}: train step {train:.3}x the time, encode {encode:.3}x (limit {BLANK_SLOWDOWN:.2}x)",
            generated.mode
        );
        if train > BLANK_SLOWDOWN || encode > BLANK_SLOWDOWN {
            blank_slow.push(generated.name());
        }
    }
    for row in &rows {
        println!(
            "seconds per batch, {}: train {}; encode {}",
            row.name(),
            list(&row.train),
            list(&row.encode)
        );
    }
    for (slot, name) in ["fp32", "bf16-mixed"].iter().enumerate() {
        println!(
            "forge {name} train step, mean: loss {:.3} s, backward {:.3} s, AdamW {:.3} s",
            parts[slot][0], parts[slot][1], parts[slot][2]
        );
    }

    // Useful work: what the model needs, not what a padded run computes.
    let flops = useful_flops(&lengths, masked);
    let (rate32, rate16) = (median(&rates[0]), median(&rates[1]));
    println!(
        "matmul 2048x2048x2048 on {threads} threads: fp32 {:.0} GFLOP/s, bf16 {:.0} GFLOP/s \
         ({:.1}x); runs: fp32 {}, bf16 {}",
        rate32 / 1e9,
        rate16 / 1e9,
        rate16 / rate32,
        list_g(&rates[0]),
        list_g(&rates[1])
    );
    for (slot, (name, rate)) in [("fp32", rate32), ("bf16-mixed", rate16)]
        .into_iter()
        .enumerate()
    {
        let row = &rows[slot];
        let train = flops.0 / median(&row.train);
        let encode = flops.1 / median(&row.encode);
        println!(
            "forge {name}: useful {:.0} GFLOP/s in the train step ({:.0}% of the {} matmul \
             rate), {:.0} GFLOP/s in encode ({:.0}%); {:.1} GFLOP per train step, {:.1} per \
             encode",
            train / 1e9,
            100.0 * train / rate,
            if slot == 0 { "fp32" } else { "bf16" },
            encode / 1e9,
            100.0 * encode / rate,
            flops.0 / 1e9,
            flops.1 / 1e9,
        );
    }

    let (loss32, loss16) = (
        first_loss[0].expect("one fp32 step ran"),
        first_loss[1].expect("one bf16 step ran"),
    );
    let [Some(emb32), Some(emb16), ..] = embeddings else {
        panic!("both encodes ran")
    };
    let relative = |a: &Tensor, b: &Tensor| {
        (a - b).abs().max().double_value(&[]) / b.abs().max().double_value(&[]).max(1e-12)
    };
    println!(
        "bf16-mixed against fp32 (forge): first loss {loss16:.6} vs {loss32:.6} (|diff| {:.1e}); \
         embeddings max |diff| / max |fp32| {:.1e}",
        (loss16 - loss32).abs(),
        relative(&emb16, &emb32)
    );
    let mut failed = false;
    if (loss16 - loss32).abs() > BF16_AGREEMENT * loss32.abs()
        || relative(&emb16, &emb32) > BF16_AGREEMENT
    {
        eprintln!(
            "forge bf16-mixed and fp32 disagree by more than bf16 allows ({BF16_AGREEMENT:e})"
        );
        failed = true;
    }
    if let Some(outputs) = torch_outputs {
        let torch_loss = outputs.loss("fp32");
        let loss_diff = (loss32 - torch_loss).abs();
        let emb_diff = (&emb32 - outputs.embeddings("fp32"))
            .abs()
            .max()
            .double_value(&[]);
        println!(
            "agreement fp32: first loss forge {loss32:.6} vs PyTorch {torch_loss:.6} (|diff| \
             {loss_diff:.1e}); embeddings max |diff| {emb_diff:.1e}"
        );
        if loss_diff > AGREEMENT || emb_diff > AGREEMENT {
            eprintln!("forge and PyTorch disagree by more than {AGREEMENT:e}");
            failed = true;
        }
        let torch_loss16 = outputs.loss("bf16");
        println!(
            "agreement bf16-mixed: first loss forge {loss16:.6} vs PyTorch autocast \
             {torch_loss16:.6} (|diff| {:.1e}); embeddings max |diff| / max |fp32| {:.1e}",
            (loss16 - torch_loss16).abs(),
            relative(&emb16, outputs.embeddings("bf16"))
        );
    }
    if !blank_slow.is_empty() {
        // A timing on a shared machine: reported, not failed on.
        eprintln!(
            "warning: the freshly generated model is more than {:.0}% slower than \
             transformer_encoder ({}); compare on an idle machine",
            100.0 * (BLANK_SLOWDOWN - 1.0),
            blank_slow.join(", ")
        );
    }
    if failed {
        std::process::exit(1);
    }
}

/// Useful FLOPs of (a train step, an encode) on this batch: the linear
/// layers over every real token, attention over each cell's own length,
/// and the head at the masked positions only; a train step is 3x its
/// forward pass (forward, and backward's two matmuls per forward matmul).
fn useful_flops(lengths: &[i64], masked: i64) -> (f64, f64) {
    let (h, f, v) = (HIDDEN as f64, 4.0 * HIDDEN as f64, VOCAB as f64);
    let tokens: f64 = lengths.iter().map(|&l| l as f64).sum();
    let per_token_layer = 2.0 * (4.0 * h * h + 2.0 * h * f);
    let attention: f64 = lengths.iter().map(|&l| 4.0 * (l * l) as f64 * h).sum();
    let encoder = LAYERS as f64 * (tokens * per_token_layer + attention);
    let head = masked as f64 * 2.0 * (h * h + h * v);
    (3.0 * (encoder + head), encoder)
}

/// FLOP/s of a 2048-cube matmul in `kind` (one warm-up, best of two).
fn matmul_rate(kind: Kind) -> f64 {
    let n = 2048;
    let a = Tensor::randn([n, n], (kind, Device::Cpu));
    let b = Tensor::randn([n, n], (kind, Device::Cpu));
    let _ = a.matmul(&b);
    let best = (0..2)
        .map(|_| {
            let start = Instant::now();
            let _ = a.matmul(&b);
            start.elapsed().as_secs_f64()
        })
        .fold(f64::INFINITY, f64::min);
    2.0 * (n as f64).powi(3) / best
}

fn env_usize(name: &str) -> Option<usize> {
    std::env::var(name).ok().and_then(|v| v.parse().ok())
}

fn median(values: &[f64]) -> f64 {
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    let n = sorted.len();
    if n % 2 == 1 {
        sorted[n / 2]
    } else {
        (sorted[n / 2 - 1] + sorted[n / 2]) / 2.0
    }
}

fn list(values: &[f64]) -> String {
    let parts: Vec<String> = values.iter().map(|v| format!("{v:.3}")).collect();
    parts.join(", ")
}

fn list_g(values: &[f64]) -> String {
    let parts: Vec<String> = values.iter().map(|v| format!("{:.0}", v / 1e9)).collect();
    parts.join(", ")
}

/// The PyTorch side, a python process driven one repetition at a time.
struct Torch {
    child: Child,
    stdin: ChildStdin,
    stdout: BufReader<ChildStdout>,
}

impl Torch {
    /// Writes the weights, batch and config, starts the script and waits
    /// until it has loaded them.
    fn start(
        model: &dyn ForgeModel,
        config: &ModelConfig,
        batch: &Batch,
        scratch: &Path,
        threads: usize,
    ) -> Torch {
        let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
        let weights = scratch.join("weights.safetensors");
        let batch_path = scratch.join("batch.safetensors");
        let config_path = scratch.join("config.json");
        Tensor::write_safetensors(&forge_core::state_dict::state_dict(model), &weights)
            .expect("write weights");
        let tensors = [
            ("input_ids", batch.input_ids().shallow_clone()),
            ("attention_mask", batch.attention_mask().shallow_clone()),
            ("values", batch.values().expect("values").shallow_clone()),
            ("labels", batch.labels().expect("labels").shallow_clone()),
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
        println!("PyTorch side: {} {}", python.display(), script.display());
        let mut child = Command::new(&python)
            .arg(&script)
            .arg("--config")
            .arg(&config_path)
            .arg("--weights")
            .arg(&weights)
            .arg("--batch")
            .arg(&batch_path)
            .args(["--threads", &threads.to_string()])
            .args(["--lr", &LR.to_string()])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("{}: {e} (run scripts/setup.sh)", python.display()));
        let stdin = child.stdin.take().expect("piped stdin");
        let stdout = BufReader::new(child.stdout.take().expect("piped stdout"));
        let mut torch = Torch {
            child,
            stdin,
            stdout,
        };
        let ready = torch.read_line();
        assert_eq!(ready, "ready", "the PyTorch side did not start");
        torch
    }

    fn read_line(&mut self) -> String {
        let mut line = String::new();
        let n = self.stdout.read_line(&mut line).expect("read from python");
        assert!(n > 0, "the PyTorch side exited early (see its error above)");
        line.trim().to_string()
    }

    fn call(&mut self, command: &str) -> String {
        writeln!(self.stdin, "{command}").expect("write to python");
        self.stdin.flush().expect("flush to python");
        let reply = self.read_line();
        assert!(!reply.starts_with("error"), "PyTorch side: {reply}");
        reply
    }

    fn seconds(reply: &str) -> f64 {
        reply
            .split_whitespace()
            .next()
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(|| panic!("unexpected reply from the PyTorch side: {reply}"))
    }

    /// The first training loss and the first embeddings of every mode run.
    fn outputs(&mut self, scratch: &Path) -> TorchOutputs {
        let path = scratch.join("torch.safetensors");
        self.call(&format!("save {}", path.display()));
        TorchOutputs(Tensor::read_safetensors(&path).expect("read PyTorch outputs"))
    }
}

/// What the PyTorch side kept: `loss.MODE` and `embeddings.MODE`.
struct TorchOutputs(Vec<(String, Tensor)>);

impl TorchOutputs {
    fn get(&self, name: &str) -> &Tensor {
        self.0
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, t)| t)
            .unwrap_or_else(|| panic!("PyTorch kept no `{name}`"))
    }

    fn loss(&self, mode: &str) -> f64 {
        self.get(&format!("loss.{mode}")).double_value(&[0])
    }

    fn embeddings(&self, mode: &str) -> &Tensor {
        self.get(&format!("embeddings.{mode}"))
    }
}

impl Drop for Torch {
    fn drop(&mut self) {
        let _ = writeln!(self.stdin, "quit");
        let _ = self.stdin.flush();
        let _ = self.child.wait();
    }
}
