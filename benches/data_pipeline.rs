//! Benchmark (not a test) of forge's data pipeline: cells per second from an
//! `.h5ad` file to padded, masked batches (rank_value, 2048 max genes,
//! batch 64, streaming with a 10,000-cell shuffle buffer), per run and per
//! loader thread, against a Python
//! anndata + numpy implementation of the same steps
//! (`scripts/bench_data_python.py`), in one run; then peak memory (VmHWM)
//! of streaming files 4x and 16x larger than the shuffle buffer, each in a
//! fresh process, to show memory does not grow with the file.
//!
//! ```text
//! cargo bench --bench data_pipeline                 # 100k cells × 10k genes
//! cargo bench --bench data_pipeline -- --cells 20000 --genes 5000 --python-cells 5000
//! ```
//!
//! Synthetic files are generated once under `target/bench-data/`. The
//! Python side needs `.venv` (scripts/setup.sh); without it only forge is
//! measured. It reads `--python-cells` cells (default 20,000) and drains
//! its buffer, so it emits as many cells as it reads, as forge does.
//!
//! Each side is measured `--rounds` times (default 3), the rounds
//! interleaved (forge 1 thread, forge N threads, Python, then again), and
//! the table gives each side's median rate and the range: on a shared or
//! throttled machine speed drifts from minute to minute, and interleaving
//! lets the drift hit both sides alike.
//!
//! With `FORGE_BENCH_DIGEST=1` each forge run prints a digest of every
//! batch (stderr): equal digests before and after a change to the pipeline
//! show the batches did not change.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use forge_core::config::MaskingConfig;
use forge_data::synthetic::write_synthetic;
use forge_data::{
    Corpus, CorpusOptions, DataPipeline, GeneMatchOptions, LoaderOptions, Masking,
    StreamingOptions, Tokenizer,
};

struct Args {
    cells: usize,
    genes: usize,
    python_cells: usize,
    workers: usize,
    buffer: usize,
    rounds: usize,
    mem_child: Option<PathBuf>,
}

fn parse() -> Args {
    let mut a = Args {
        cells: 100_000,
        genes: 10_000,
        python_cells: 20_000,
        workers: std::thread::available_parallelism().map_or(2, |n| n.get()),
        buffer: 10_000,
        rounds: 3,
        mem_child: None,
    };
    let argv: Vec<String> = std::env::args().skip(1).collect();
    let mut i = 0;
    while i < argv.len() {
        let val = argv.get(i + 1).cloned().unwrap_or_default();
        match argv[i].as_str() {
            "--cells" => a.cells = val.parse().expect("--cells N"),
            "--genes" => a.genes = val.parse().expect("--genes N"),
            "--python-cells" => a.python_cells = val.parse().expect("--python-cells N"),
            "--workers" => a.workers = val.parse().expect("--workers N"),
            "--buffer" => a.buffer = val.parse().expect("--buffer N"),
            "--rounds" => a.rounds = val.parse::<usize>().expect("--rounds N").max(1),
            "--mem-child" => a.mem_child = Some(PathBuf::from(val)),
            // cargo bench passes --bench; ignore anything else.
            _ => {
                i += 1;
                continue;
            }
        }
        i += 2;
    }
    a
}

fn bench_dir() -> PathBuf {
    let d = Path::new(env!("CARGO_MANIFEST_DIR")).join("target/bench-data");
    std::fs::create_dir_all(&d).expect("create target/bench-data");
    d
}

fn synthetic(cells: usize, genes: usize) -> PathBuf {
    let p = bench_dir().join(format!("synth_{cells}x{genes}.h5ad"));
    if !p.exists() {
        let t = Instant::now();
        write_synthetic(&p, cells, genes, 10, 7).expect("write synthetic data");
        eprintln!(
            "generated {} in {:.1}s ({:.0} MB)",
            p.display(),
            t.elapsed().as_secs_f64(),
            std::fs::metadata(&p).map_or(0, |m| m.len()) as f64 / 1e6
        );
    }
    p
}

/// One timed run.
#[derive(Debug, Clone, Copy)]
struct Measured {
    cells: usize,
    seconds: f64,
}

impl Measured {
    fn new(cells: usize, seconds: f64) -> Measured {
        Measured { cells, seconds }
    }

    fn rate(&self) -> f64 {
        self.cells as f64 / self.seconds
    }
}

/// The run of median rate (the lower middle one for an even count).
fn median(runs: &[Measured]) -> Measured {
    let mut sorted = runs.to_vec();
    sorted.sort_by(|a, b| a.rate().total_cmp(&b.rate()));
    sorted[(sorted.len() - 1) / 2]
}

/// Streams one epoch of `file`; returns (cells, batches, seconds).
fn run_forge(file: &Path, workers: usize, buffer: usize) -> (usize, usize, f64) {
    let t = Instant::now();
    let corpus = Corpus::open(&[file], &CorpusOptions::default()).expect("open");
    let masking = Masking::from_config(&MaskingConfig::default(), 0).expect("masking");
    let pipe = DataPipeline::new(
        corpus,
        None,
        Tokenizer::rank_value(2048, true),
        Some(masking),
        &GeneMatchOptions::default(),
    )
    .expect("pipeline");
    let loader = pipe
        .all()
        .loader(LoaderOptions {
            batch_size: 64,
            num_workers: workers,
            prefetch: 4,
            seed: 0,
            streaming: Some(StreamingOptions {
                chunk_size: 10_000,
                shuffle_buffer: buffer,
            }),
            ..LoaderOptions::default()
        })
        .expect("loader");
    let (mut cells, mut batches) = (0usize, 0usize);
    let digest = std::env::var_os("FORGE_BENCH_DIGEST").is_some();
    let mut hash = 0xcbf2_9ce4_8422_2325u64;
    for b in loader.epoch(0) {
        let b = b.expect("batch");
        cells += b.batch_size() as usize;
        batches += 1;
        if digest {
            hash = digest_batch(hash, &b);
        }
    }
    if digest {
        eprintln!("digest {hash:016x} ({batches} batches)");
    }
    (cells, batches, t.elapsed().as_secs_f64())
}

/// Folds every element of a batch into `hash` (FORGE_BENCH_DIGEST=1: to check
/// that an optimisation leaves the batches unchanged).
fn digest_batch(mut hash: u64, b: &forge_core::batch::Batch) -> u64 {
    use tch::{Kind, Tensor};
    let mut fold = |t: &Tensor| {
        let flat = t.to_kind(Kind::Double).flatten(0, -1);
        let v = Vec::<f64>::try_from(&flat).expect("tensor to vec");
        hash = (hash ^ t.size().iter().product::<i64>() as u64).wrapping_mul(0x100_0000_01b3);
        for x in v {
            hash = (hash ^ x.to_bits()).wrapping_mul(0x100_0000_01b3);
        }
    };
    fold(b.input_ids());
    fold(b.attention_mask());
    for t in [b.values(), b.labels(), b.masked_positions()]
        .into_iter()
        .flatten()
    {
        fold(t);
    }
    hash
}

fn run_python(file: &Path, cells: usize) -> Option<(usize, f64)> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let python = root.join(".venv/bin/python");
    if !python.exists() {
        eprintln!("no .venv/bin/python: skipping the Python baseline");
        return None;
    }
    let out = Command::new(python)
        .arg(root.join("scripts/bench_data_python.py"))
        .arg(file)
        .args(["--cells", &cells.to_string()])
        .output()
        .ok()?;
    if !out.status.success() {
        eprintln!(
            "bench_data_python.py failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        return None;
    }
    let text = String::from_utf8_lossy(&out.stdout);
    let line = text.lines().last()?;
    Some((
        json_number(line, "cells")? as usize,
        json_number(line, "seconds")?,
    ))
}

/// The number after `"key":` in a flat JSON object line.
fn json_number(line: &str, key: &str) -> Option<f64> {
    let at = line.find(&format!("\"{key}\":"))? + key.len() + 3;
    let rest = line[at..].trim_start();
    let end = rest.find([',', '}']).unwrap_or(rest.len());
    rest[..end].trim().parse().ok()
}

fn vm_hwm_kb() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        })
        .unwrap_or(0)
}

fn main() {
    let args = parse();
    if let Some(file) = &args.mem_child {
        let (cells, _, secs) = run_forge(file, args.workers, args.buffer);
        println!("{cells} {secs} {}", vm_hwm_kb());
        return;
    }
    let file = synthetic(args.cells, args.genes);
    let size = std::fs::metadata(&file).map_or(0, |m| m.len());
    println!(
        "data: {} ({} cells × {} genes, {:.0} MB, ~10% nonzero)",
        file.display(),
        args.cells,
        args.genes,
        size as f64 / 1e6
    );
    println!(
        "steps: read (streaming, 10k-cell blocks, 10k shuffle buffer) -> normalise + log1p -> \
         rank_value (2048) -> mask (15%) -> pad to batch of 64 tensors"
    );
    // Warm the page cache so both sides read from memory.
    let _ = std::fs::read(&file);
    let (mut one, mut many, mut python) = (Vec::new(), Vec::new(), Vec::new());
    let mut batches = 0;
    for _ in 0..args.rounds {
        let (c, _, s) = run_forge(&file, 1, args.buffer);
        one.push(Measured::new(c, s));
        let (c, b, s) = run_forge(&file, args.workers, args.buffer);
        many.push(Measured::new(c, s));
        batches = b;
        if let Some((c, s)) = run_python(&file, args.python_cells) {
            python.push(Measured::new(c, s));
        }
    }
    println!();
    println!(
        "| implementation | cells | seconds (median) | cells/s (median) | cells/s per thread | cells/s (range, {} rounds) | vs Python |",
        args.rounds
    );
    println!("|---|---:|---:|---:|---:|---:|---:|");
    let py_rate = (!python.is_empty()).then(|| median(&python).rate());
    let row = |name: &str, threads: usize, runs: &[Measured]| {
        let m = median(runs);
        let lo = runs
            .iter()
            .map(Measured::rate)
            .fold(f64::INFINITY, f64::min);
        let hi = runs.iter().map(Measured::rate).fold(0.0, f64::max);
        let ratio = py_rate.map_or("-".to_string(), |p| format!("{:.1}x", m.rate() / p));
        println!(
            "| {name} | {} | {:.2} | {:.0} | {:.0} | {lo:.0}-{hi:.0} | {ratio} |",
            m.cells,
            m.seconds,
            m.rate(),
            m.rate() / threads as f64
        );
    };
    if !python.is_empty() {
        row("Python anndata + numpy (1 process)", 1, &python);
    }
    row("forge, 1 worker thread", 1, &one);
    row(
        &format!("forge, {} worker threads", args.workers),
        args.workers,
        &many,
    );
    println!("({batches} batches per epoch)");

    // Memory: fresh processes streaming files 4x and 16x the buffer.
    let buffer = 5_000;
    let exe = std::env::current_exe().expect("current exe");
    println!();
    println!("peak memory (VmHWM) streaming with a {buffer}-cell shuffle buffer:");
    println!("| file | cells | file size | VmHWM |");
    println!("|---|---:|---:|---:|");
    for factor in [4usize, 16] {
        let cells = buffer * factor;
        let f = synthetic(cells, args.genes);
        let out = Command::new(&exe)
            .args(["--mem-child", &f.to_string_lossy()])
            .args(["--buffer", &buffer.to_string()])
            .args(["--workers", &args.workers.to_string()])
            .output()
            .expect("run memory child");
        let text = String::from_utf8_lossy(&out.stdout);
        let kb: u64 = text
            .split_whitespace()
            .nth(2)
            .and_then(|v| v.parse().ok())
            .unwrap_or(0);
        println!(
            "| {factor}x buffer | {cells} | {:.0} MB | {:.0} MB |",
            std::fs::metadata(&f).map_or(0, |m| m.len()) as f64 / 1e6,
            kb as f64 / 1024.0
        );
    }
}
