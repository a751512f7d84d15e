//! Data parallel training in real processes: this test binary re-runs
//! itself as the ranks ([`rank`], an ignored test), with torchrun's
//! variables, over Gloo on the loopback interface.
//!
//! The comparison is made honest by construction: 2 ranks x batch `B`
//! against 1 process x batch `2B`, no shuffling, so PyTorch's
//! DistributedSampler gives rank `r` the cells `r, r + 2, ...` and batch
//! `k` of the two ranks together holds exactly the cells of the single
//! process's batch `k`. Every cell has the same number of labelled
//! positions, so the mean of the two ranks' mean losses is the single
//! process's mean loss, and the averaged gradients are its gradients.
//! Dropout is 0. Rank 1 starts from other weights than rank 0: the
//! broadcast before training has to fix that.

use std::io::{BufRead, BufReader};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tch::nn::VarStore;
use tch::{Device, Kind, Tensor};

use super::*;
use crate::train::checkpoints::{read_weights, write_tensors};
use crate::train::{BatchSource, TrainCheckpoints, TrainOptions, train};
use forge_core::Batch;
use forge_core::ForgeModel;
use forge_core::config::{ModelConfig, Precision, SchedulerConfig, SchedulerName, TrainingConfig};
use forge_core::models::TransformerEncoderModel;
use forge_core::params::named_parameters;
use forge_core::state_dict::state_dict;

const DIR: &str = "FORGE_DDP_TEST_DIR";
const MAX_STEPS: &str = "FORGE_DDP_TEST_MAX_STEPS";
const ACCUMULATION: &str = "FORGE_DDP_TEST_ACCUMULATION";
const ZERO: &str = "FORGE_DDP_TEST_ZERO";
const ENDLESS: &str = "FORGE_DDP_TEST_ENDLESS";

/// Cells per rank and batch.
const B: usize = 4;
/// Training cells: 3 batches of `2B`.
const CELLS: usize = 24;
/// Validation cells (split evenly over 2 ranks, no padding).
const VAL_CELLS: usize = 6;
const LEN: i64 = 8;

/// Batches of fixed cells: cell `c` has 8 genes, 4 of them masked.
struct Cells {
    batches: Vec<Vec<usize>>,
    /// Offset of the cell numbers (validation cells differ from training
    /// ones).
    offset: usize,
}

impl Cells {
    /// The cells `0..n` in batches of `batch`, or this rank's share when
    /// `shard` is given (DistributedSampler order, no shuffling).
    fn new(n: usize, batch: usize, shard: Option<Shard>, offset: usize) -> Cells {
        let order = match shard {
            Some(s) => s.sampler(false, 0).unwrap().indices(n, 0),
            None => (0..n).collect(),
        };
        Cells {
            batches: order.chunks(batch).map(<[usize]>::to_vec).collect(),
            offset,
        }
    }
}

fn cell_batch(cells: &[usize]) -> forge_core::Result<Batch> {
    let (mut ids, mut labels, mut values) = (Vec::new(), Vec::new(), Vec::new());
    for &c in cells {
        for pos in 0..LEN as usize {
            let id = 4 + ((c * 7 + pos * 3) % 12) as i64;
            let masked = (pos + c).is_multiple_of(2);
            ids.push(if masked { 2 } else { id });
            labels.push(if masked { id } else { -100 });
            values.push(0.5 + 0.25 * ((c + pos) % 5) as f32);
        }
    }
    let n = cells.len() as i64;
    Batch::builder(
        Tensor::from_slice(&ids).view([n, LEN]),
        Tensor::ones([n, LEN], (Kind::Int64, Device::Cpu)),
    )
    .values(Tensor::from_slice(&values).view([n, LEN]))
    .labels(Tensor::from_slice(&labels).view([n, LEN]))
    .build()
}

impl BatchSource for Cells {
    fn batches(&self, _epoch: usize) -> Box<dyn Iterator<Item = forge_core::Result<Batch>> + '_> {
        Box::new(self.batches.iter().map(|b| {
            let cells: Vec<usize> = b.iter().map(|c| c + self.offset).collect();
            cell_batch(&cells)
        }))
    }
    fn num_batches(&self) -> Option<usize> {
        Some(self.batches.len())
    }
}

fn model(vs: &VarStore) -> TransformerEncoderModel {
    let config = ModelConfig {
        vocab_size: Some(16),
        hidden_dim: 16,
        num_layers: 1,
        num_heads: 2,
        dropout: 0.0,
        max_seq_len: LEN,
        ..ModelConfig::default()
    };
    TransformerEncoderModel::from_config(&vs.root(), &config).unwrap()
}

fn training(accumulation: i64) -> TrainingConfig {
    let mut t = TrainingConfig {
        max_epochs: 1,
        batch_size: B as i64,
        precision: Precision::Fp32True,
        log_every_n_steps: 1,
        gradient_clip: 1.0,
        gradient_accumulation: accumulation,
        save_top_k: -1,
        scheduler: Some(SchedulerConfig {
            name: SchedulerName::CosineWarmup,
            warmup_steps: 1,
            total_steps: 10,
        }),
        ..TrainingConfig::default()
    };
    t.optimizer.lr = 2e-2;
    t.optimizer.weight_decay = 0.01;
    t
}

fn env_usize(name: &str) -> Option<usize> {
    std::env::var(name).ok().and_then(|v| v.parse().ok())
}

/// One rank of a test job (started by [`launch`]).
#[test]
#[ignore = "a rank started by the data parallel tests"]
fn rank() {
    let dir = PathBuf::from(std::env::var(DIR).expect("run by the launching tests"));
    let ctx = Arc::new(DistributedContext::from_env(Duration::from_secs(20)).unwrap());
    let parallel = DataParallel::new(Arc::clone(&ctx));
    let strategy = if std::env::var(ZERO).is_ok() {
        DataParallel::new(Arc::clone(&ctx)).with_sharded_optimizer()
    } else {
        DataParallel::new(Arc::clone(&ctx))
    };
    // Different weights on each rank: the broadcast must make them rank 0's.
    tch::manual_seed(ctx.rank() as i64);
    let vs = VarStore::new(Device::Cpu);
    let m = model(&vs);
    if ctx.is_main() {
        write_tensors(&dir.join("init.safetensors"), &state_dict(&m)).unwrap();
    }
    let accumulation = env_usize(ACCUMULATION).unwrap_or(1) as i64;
    let mut cfg = training(accumulation);
    let cells = if std::env::var(ENDLESS).is_ok() {
        cfg.max_epochs = 1000;
        CELLS * 1000
    } else {
        CELLS
    };
    let data = Cells::new(cells, B, Some(parallel.shard()), 0);
    let val = Cells::new(VAL_CELLS, B, Some(parallel.shard()), CELLS);
    let result = train(
        &m,
        &data,
        Some(&val),
        TrainOptions {
            training: &cfg,
            device: Device::Cpu,
            checkpoints: Some(TrainCheckpoints::new(dir.join("ckpt"), cfg.save_top_k)),
            log_dir: dir.join("logs"),
            resume_from: None,
            progress_bar: false,
            max_steps: env_usize(MAX_STEPS).map(|s| s as i64),
            max_duration: None,
            stop: None,
            assessment: None,
            strategy: Some(&strategy),
        },
    );
    match result {
        Err(e) => {
            eprintln!("rank {} failed: {e}", ctx.rank());
            std::process::exit(3);
        }
        Ok(s) if ctx.is_main() => {
            write_tensors(&dir.join("final.safetensors"), &state_dict(&m)).unwrap();
            let losses: Vec<f64> = s
                .metrics
                .iter()
                .filter(|r| r.split == "train")
                .map(|r| r.loss)
                .collect();
            let json = serde_json::json!({"train": losses, "val": s.val_losses, "steps": s.steps});
            std::fs::write(dir.join("summary.json"), json.to_string()).unwrap();
        }
        Ok(_) => {}
    }
    println!("rank {} of {} done", ctx.rank(), ctx.world_size());
}

fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("forge-ddp-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// Starts 2 ranks of [`rank`] writing into `dir`, with `vars`.
fn launch(dir: &Path, vars: &[(&str, &str)]) -> Vec<Child> {
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let exe = std::env::current_exe().unwrap();
    (0..2)
        .map(|rank| {
            let mut cmd = Command::new(&exe);
            cmd.args([
                "--exact",
                "train::parallel::tests::rank",
                "--ignored",
                "--nocapture",
                "--test-threads=1",
            ]);
            for v in [
                "SLURM_NTASKS",
                "GLOO_SOCKET_IFNAME",
                ZERO,
                ENDLESS,
                MAX_STEPS,
            ] {
                cmd.env_remove(v);
            }
            cmd.env(DIR, dir)
                .env("TORCHELASTIC_RUN_ID", "forge-ddp-test")
                .env("RANK", rank.to_string())
                .env("LOCAL_RANK", rank.to_string())
                .env("WORLD_SIZE", "2")
                .env("LOCAL_WORLD_SIZE", "2")
                .env("MASTER_ADDR", "127.0.0.1")
                .env("MASTER_PORT", port.to_string())
                .env("OMP_NUM_THREADS", "1")
                .envs(vars.iter().copied())
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect()
}

/// Waits for every child, killing all of them after `limit`.
fn wait_all(children: Vec<Child>, limit: Duration) -> Vec<Output> {
    let start = Instant::now();
    let mut slots: Vec<Option<Child>> = children.into_iter().map(Some).collect();
    let mut outputs: Vec<Option<Output>> = slots.iter().map(|_| None).collect();
    while outputs.iter().any(Option::is_none) {
        if start.elapsed() > limit {
            for c in slots.iter_mut().flatten() {
                let _ = c.kill();
            }
            panic!("ranks still running after {limit:?}");
        }
        for (i, slot) in slots.iter_mut().enumerate() {
            if let Some(c) = slot
                && c.try_wait().unwrap().is_some()
            {
                outputs[i] = Some(slot.take().unwrap().wait_with_output().unwrap());
            }
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    outputs.into_iter().map(Option::unwrap).collect()
}

fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

/// Runs 2 ranks to the end and checks both succeeded.
fn run_ranks(dir: &Path, vars: &[(&str, &str)]) {
    for (r, o) in wait_all(launch(dir, vars), Duration::from_secs(90))
        .iter()
        .enumerate()
    {
        assert!(o.status.success(), "rank {r}: {}", text(o));
        assert!(
            text(o).contains(&format!("rank {r} of 2 done")),
            "{}",
            text(o)
        );
    }
}

fn params<P: forge_core::params::Parameters + ?Sized>(m: &P) -> Vec<(String, Tensor)> {
    named_parameters(m)
        .into_iter()
        .map(|(n, t)| (n, t.detach().copy()))
        .collect()
}

/// Largest element-wise difference of two parameter lists, leaving out
/// the key part of each attention's `in_proj_bias` (see [`key_bias`]).
fn max_diff(a: &[(String, Tensor)], b: &[(String, Tensor)]) -> f64 {
    assert_eq!(a.len(), b.len());
    a.iter()
        .zip(b)
        .map(|((na, x), (nb, y))| {
            assert_eq!(na, nb);
            let d = (x - y).abs();
            let d = if na.ends_with("in_proj_bias") {
                d.index_fill(0, &key_bias(x.size()[0]), 0.0)
            } else {
                d
            };
            d.max().double_value(&[])
        })
        .fold(0.0, f64::max)
}

/// The key elements `H..2H` of an `in_proj_bias` of `3H` elements. Adding
/// a constant to every key adds the same number to all of one query's
/// attention logits, which softmax ignores: the gradient of the key bias
/// is 0 in exact arithmetic, and what float arithmetic leaves there
/// (~1e-9) is rounding noise that differs with the order of the sums.
/// Adam divides by the root of the gradient's own square, turning that
/// noise into steps of about the learning rate in arbitrary directions;
/// they change no output (the recorded validation losses, computed with
/// the final weights, are compared too), so they are left out here.
fn key_bias(len: i64) -> Tensor {
    let h = len / 3;
    Tensor::arange_start(h, 2 * h, (Kind::Int64, Device::Cpu))
}

/// The single process reference: `2B` cells a batch from `init`,
/// resuming from `resume` when given.
struct Reference {
    weights: Vec<(String, Tensor)>,
    train: Vec<f64>,
    val: Vec<f64>,
    steps: i64,
}

fn reference(dir: &Path, accumulation: i64, resume: Option<PathBuf>) -> Reference {
    let vs = VarStore::new(Device::Cpu);
    let m = model(&vs);
    read_weights(dir, "init.safetensors", &m).unwrap();
    let cfg = training(accumulation);
    let out = dir.join(format!("single-{}", resume.is_some()));
    let s = train(
        &m,
        &Cells::new(CELLS, 2 * B, None, 0),
        Some(&Cells::new(VAL_CELLS, 2 * B, None, CELLS)),
        TrainOptions {
            training: &cfg,
            device: Device::Cpu,
            checkpoints: None,
            log_dir: out.join("logs"),
            resume_from: resume,
            progress_bar: false,
            max_steps: None,
            max_duration: None,
            stop: None,
            assessment: None,
            strategy: None,
        },
    )
    .unwrap();
    Reference {
        weights: params(&m),
        train: s
            .metrics
            .iter()
            .filter(|r| r.split == "train")
            .map(|r| r.loss)
            .collect(),
        val: s.val_losses,
        steps: s.steps,
    }
}

fn load(dir: &Path, file: &str) -> Vec<(String, Tensor)> {
    let vs = VarStore::new(Device::Cpu);
    let m = model(&vs);
    read_weights(dir, file, &m).unwrap();
    params(&m)
}

fn summary(dir: &Path) -> serde_json::Value {
    serde_json::from_str(&std::fs::read_to_string(dir.join("summary.json")).unwrap()).unwrap()
}

fn floats(v: &serde_json::Value) -> Vec<f64> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_f64().unwrap())
        .collect()
}

fn close(a: &[f64], b: &[f64], what: &str) {
    assert_eq!(a.len(), b.len(), "{what}: {a:?} vs {b:?}");
    for (x, y) in a.iter().zip(b) {
        assert!((x - y).abs() < 1e-5, "{what}: {a:?} vs {b:?}");
    }
}

/// 2 ranks x B against 1 process x 2B: same weights after 3 AdamW steps
/// (and with gradient accumulation 2: 2 steps), same recorded losses.
fn equivalence(name: &str, zero: bool) {
    for accumulation in [1usize, 2] {
        let dir = scratch(&format!("{name}-{accumulation}"));
        let acc = accumulation.to_string();
        let mut vars = vec![(ACCUMULATION, acc.as_str())];
        if zero {
            vars.push((ZERO, "1"));
        }
        run_ranks(&dir, &vars);
        let got = load(&dir, "final.safetensors");
        let init = load(&dir, "init.safetensors");
        let want = reference(&dir, accumulation as i64, None);
        assert_eq!(want.steps, [3, 2][accumulation - 1]);
        let diff = max_diff(&got, &want.weights);
        println!(
            "{name}: accumulation {accumulation}: max |2 ranks - 1 process| = {diff:.3e} \
             (moved {:.3e} from the start)",
            max_diff(&init, &want.weights)
        );
        let s = summary(&dir);
        assert!(
            diff < 1e-5,
            "{diff}: losses {} vs {:?} / {:?}",
            s,
            want.train,
            want.val
        );
        assert!(
            max_diff(&init, &want.weights) > 1e-3,
            "training moved nothing"
        );
        assert_eq!(s["steps"].as_i64(), Some(want.steps));
        close(&floats(&s["train"]), &want.train, "train losses");
        close(&floats(&s["val"]), &want.val, "validation losses");
        let _ = std::fs::remove_dir_all(&dir);
    }
}

#[test]
fn two_ranks_train_as_one_process_with_twice_the_batch() {
    equivalence("ddp", false);
}

#[test]
fn zero2_trains_as_one_process_with_twice_the_batch() {
    equivalence("zero2", true);
}

/// A 2-rank run stopped at step 2 resumes in 1 process (batch 2B) and
/// ends where an uninterrupted single process ends.
#[test]
fn a_two_rank_checkpoint_resumes_in_one_process() {
    for zero in [false, true] {
        let dir = scratch(&format!("resume-{zero}"));
        let mut vars = vec![(MAX_STEPS, "2")];
        if zero {
            vars.push((ZERO, "1"));
        }
        run_ranks(&dir, &vars);
        assert_eq!(summary(&dir)["steps"].as_i64(), Some(2));
        let last = dir.join("ckpt").join("last");
        let state: serde_json::Value = serde_json::from_str(
            &std::fs::read_to_string(last.join("trainer_state.json")).unwrap(),
        )
        .unwrap();
        assert_eq!(state["batch_in_epoch"].as_u64(), Some(2), "{state}");
        let resumed = reference(&dir, 1, Some(last));
        let straight = reference(&dir, 1, None);
        assert_eq!((resumed.steps, straight.steps), (3, 3));
        let diff = max_diff(&resumed.weights, &straight.weights);
        println!("resume (zero {zero}): max |resumed - uninterrupted| = {diff:.3e}");
        assert!(diff < 1e-5, "{diff}");
        let _ = std::fs::remove_dir_all(&dir);
    }
}

/// Killing rank 1 mid-run ends rank 0 with an error naming rank 1, well
/// within the group's timeout, and no checkpoint is written.
#[test]
fn a_killed_rank_ends_the_other_with_an_error_naming_it() {
    let dir = scratch("fault");
    let mut children = launch(&dir, &[(ENDLESS, "1")]);
    let stderr = children[0].stderr.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    let reader = std::thread::spawn(move || {
        let mut lines = Vec::new();
        for line in BufReader::new(stderr).lines().map_while(|l| l.ok()) {
            if line.contains(" step 3 train") {
                let _ = tx.send(());
            }
            lines.push(line);
        }
        lines
    });
    if rx.recv_timeout(Duration::from_secs(60)).is_err() {
        for c in &mut children {
            let _ = c.kill();
        }
        panic!("rank 0 never logged step 3: {:?}", reader.join());
    }
    children[1].kill().unwrap();
    let killed_at = Instant::now();
    let mut rank0 = children.remove(0);
    let status = loop {
        if let Some(s) = rank0.try_wait().unwrap() {
            break s;
        }
        if killed_at.elapsed() > Duration::from_secs(30) {
            let _ = rank0.kill();
            panic!("rank 0 still running 30 s after rank 1 was killed");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let _ = children[0].wait();
    let lines = reader.join().unwrap().join("\n");
    println!(
        "rank 0 ended {:?} after rank 1 was killed",
        killed_at.elapsed()
    );
    assert_eq!(status.code(), Some(3), "{lines}");
    assert!(
        lines.contains("rank 0 failed: distributed training: rank 0 of 2:"),
        "{lines}"
    );
    assert!(lines.contains("rank 1"), "{lines}");
    assert!(!dir.join("ckpt").exists(), "a checkpoint was written");
    let _ = std::fs::remove_dir_all(&dir);
}
