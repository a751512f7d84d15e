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
//! both sides. The PyTorch side is `scripts/bench_model_torch.py`, a
//! subprocess of the venv's python that loads the weights and the batch
//! forge wrote and then runs one repetition per request, so that forge and
//! PyTorch repetitions alternate and share whatever else the machine does.
//!
//! Prints the median of a few repetitions (after one warm-up) as cells/s
//! for both and the ratio, plus how far the first loss and the embeddings
//! are apart. Not a test: it fails only if PyTorch cannot be run or the
//! two sides disagree.
//!
//! Environment: `FORGE_BENCH_THREADS` (default: all cores),
//! `FORGE_BENCH_ITERS` (default 3), `FORGE_BENCH_SKIP_TORCH=1` (forge only),
//! `FORGE_VENV` (set by `.cargo/config.toml`).

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};
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
    .expect("int64 lengths");
    let real: i64 = lengths.iter().sum();
    println!(
        "model_step: transformer_encoder, hidden {HIDDEN}, {LAYERS} layers, {HEADS} heads, \
         vocab {VOCAB}, {} parameters",
        model.num_parameters(true)
    );
    println!(
        "batch: {CELLS} cells, {real} tokens ({:.0}% of the padded {CELLS}x{}), lengths \
         {}..{}; {threads} threads; median of {iters} after a warm-up",
        100.0 * real as f64 / (CELLS * batch.seq_len()) as f64,
        batch.seq_len(),
        lengths.iter().min().expect("cells"),
        lengths.iter().max().expect("cells"),
    );

    let scratch = std::env::temp_dir().join(format!("forge-bench-{}", std::process::id()));
    std::fs::create_dir_all(&scratch).expect("scratch folder");
    let mut torch =
        (!skip_torch).then(|| Torch::start(&*model, &config, &batch, &scratch, threads));

    // encode first: both sides must see the initial weights.
    let unlabelled = batch.without_labels();
    let mut embeddings = None;
    let mut encode = Timings::default();
    for rep in 0..=iters {
        if let Some(t) = torch.as_mut() {
            encode.torch(rep, t.encode());
        }
        let start = Instant::now();
        let e = tch::no_grad(|| model.encode(&unlabelled));
        encode.forge(rep, start.elapsed().as_secs_f64());
        embeddings.get_or_insert(e);
    }

    let mut opt = nn::AdamW::default()
        .build(&vs, LR)
        .expect("AdamW over the model's variables");
    let mut first_loss = None;
    let mut train = Timings::default();
    let mut parts = [0.0f64; 3];
    for rep in 0..=iters {
        if let Some(t) = torch.as_mut() {
            train.torch(rep, t.train());
        }
        let t0 = Instant::now();
        let loss = model.loss(&batch).expect("the batch has labels");
        let value = loss.double_value(&[]);
        let t1 = Instant::now();
        opt.zero_grad();
        loss.backward();
        let t2 = Instant::now();
        opt.step();
        let t3 = Instant::now();
        train.forge(rep, (t3 - t0).as_secs_f64());
        first_loss.get_or_insert(value);
        if rep > 0 {
            for (p, d) in parts.iter_mut().zip([t1 - t0, t2 - t1, t3 - t2]) {
                *p += d.as_secs_f64() / iters as f64;
            }
        }
    }
    let torch_outputs = torch.as_mut().map(|t| t.outputs(&scratch));
    drop(torch);
    let _ = std::fs::remove_dir_all(&scratch);

    let cells = |s: f64| CELLS as f64 / s;
    println!();
    println!(
        "{:<22} {:>12} {:>12} {:>8}",
        "", "forge", "PyTorch", "ratio"
    );
    for (name, t) in [
        ("train step (cells/s)", &train),
        ("encode (cells/s)", &encode),
    ] {
        let forge_s = median(&t.forge);
        if t.torch.is_empty() {
            println!("{name:<22} {:>12.2} {:>12} {:>8}", cells(forge_s), "-", "-");
        } else {
            let torch_s = median(&t.torch);
            println!(
                "{name:<22} {:>12.2} {:>12.2} {:>7.2}x",
                cells(forge_s),
                cells(torch_s),
                torch_s / forge_s
            );
        }
    }
    for (name, t) in [("train", &train), ("encode", &encode)] {
        println!(
            "seconds per batch, {name}: forge {}{}",
            list(&t.forge),
            if t.torch.is_empty() {
                String::new()
            } else {
                format!("; PyTorch {}", list(&t.torch))
            }
        );
    }
    println!(
        "forge train step, mean: loss {:.3} s, backward {:.3} s, AdamW {:.3} s",
        parts[0], parts[1], parts[2]
    );

    if let Some((torch_loss, torch_embeddings)) = torch_outputs {
        let loss = first_loss.expect("one step ran");
        let loss_diff = (loss - torch_loss).abs();
        let emb_diff = (embeddings.expect("one encode ran") - &torch_embeddings)
            .abs()
            .max()
            .double_value(&[]);
        println!(
            "agreement: first loss forge {loss:.6} vs PyTorch {torch_loss:.6} (|diff| \
             {loss_diff:.1e}); embeddings max |diff| {emb_diff:.1e}"
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

/// Seconds per repetition, warm-up (repetition 0) left out.
#[derive(Default)]
struct Timings {
    forge: Vec<f64>,
    torch: Vec<f64>,
}

impl Timings {
    fn forge(&mut self, rep: usize, seconds: f64) {
        if rep > 0 {
            self.forge.push(seconds);
        }
    }
    fn torch(&mut self, rep: usize, seconds: f64) {
        if rep > 0 {
            self.torch.push(seconds);
        }
    }
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

/// 16 cells with lengths spread evenly over 128..=512 tokens (CLS first),
/// in shuffled order, padded to the longest; `MASK_RATIO` of each cell's
/// genes carry a label, 80% of those replaced by the MASK token.
fn make_batch(seed: i64) -> Batch {
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

    fn encode(&mut self) -> f64 {
        Self::seconds(&self.call("encode"))
    }

    fn train(&mut self) -> f64 {
        Self::seconds(&self.call("train"))
    }

    /// The first training loss and the first embeddings.
    fn outputs(&mut self, scratch: &Path) -> (f64, Tensor) {
        let path = scratch.join("torch.safetensors");
        self.call(&format!("save {}", path.display()));
        let mut loss = None;
        let mut embeddings = None;
        for (name, t) in Tensor::read_safetensors(&path).expect("read PyTorch outputs") {
            match name.as_str() {
                "loss" => loss = Some(t.double_value(&[0])),
                "embeddings" => embeddings = Some(t),
                _ => {}
            }
        }
        (
            loss.expect("PyTorch loss"),
            embeddings.expect("PyTorch embeddings"),
        )
    }
}

impl Drop for Torch {
    fn drop(&mut self) {
        let _ = writeln!(self.stdin, "quit");
        let _ = self.stdin.flush();
        let _ = self.child.wait();
    }
}
