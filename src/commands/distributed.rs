//! How `forge train` and `forge finetune` spread over processes.
//!
//! - Under a launcher (torchrun, Slurm, `RANK`/`WORLD_SIZE` variables)
//!   with more than one rank: this process joins the c10d process group
//!   and trains as its rank ([`Role::Rank`], data parallel; ZeRO-2 with
//!   `fsdp.sharding_strategy: SHARD_GRAD_OP` and `num_gpus` above 1).
//! - Alone, with `training.num_gpus: N` above 1: this process starts N
//!   copies of itself as ranks 0..N on this machine (as Lightning does),
//!   waits for them, and when one fails stops the others and exits
//!   non-zero naming the rank ([`launch`]). One rank per GPU; with fewer
//!   GPUs than N the run is refused unless `--accelerator cpu` asks for N
//!   CPU processes (testing, CPU clusters).
//! - Otherwise: one process, as before.
//!
//! `FORGE_DIST_TIMEOUT` (seconds, default 1800 as PyTorch's) bounds the
//! rendezvous and every collective: a rank that died or hangs ends the
//! others within it, with an error naming the rank.

use std::process::{Child, Command, ExitCode, ExitStatus};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, bail};
use forge_core::ForgeConfig;
use forge_core::tch::{self, Device};
use forge_dist::{DistributedContext, LaunchEnv};
use forge_train::train::DataParallel;

/// The environment variable bounding the rendezvous and each collective.
pub const TIMEOUT_VAR: &str = "FORGE_DIST_TIMEOUT";

/// Where to train (`--accelerator`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum Accelerator {
    /// A GPU when there is one (one per rank), else the CPU.
    #[default]
    Auto,
    /// The CPU, also for `num_gpus: N` above 1 (N CPU processes).
    Cpu,
}

/// This process's part in a run.
#[derive(Debug)]
pub enum Role {
    /// One process.
    Single,
    /// Start this many local ranks and wait for them.
    Launch(usize),
    /// A rank of a data parallel run.
    Rank(Arc<DataParallel>),
}

impl Role {
    /// Whether this process writes logs, checkpoints and outputs.
    pub fn is_main(&self) -> bool {
        match self {
            Role::Rank(p) => p.is_main(),
            _ => true,
        }
    }

    /// The strategy of a rank.
    pub fn parallel(&self) -> Option<Arc<DataParallel>> {
        match self {
            Role::Rank(p) => Some(Arc::clone(p)),
            _ => None,
        }
    }
}

/// The bound of [`TIMEOUT_VAR`].
pub fn timeout() -> anyhow::Result<Duration> {
    match std::env::var(TIMEOUT_VAR) {
        Ok(v) => v
            .trim()
            .parse::<f64>()
            .ok()
            .filter(|s| s.is_finite() && *s > 0.0)
            .map(Duration::from_secs_f64)
            .with_context(|| format!("{TIMEOUT_VAR}={v:?}: give a number of seconds above 0")),
        Err(_) => Ok(forge_dist::context::DEFAULT_TIMEOUT),
    }
}

/// Decides this process's role from the launcher's variables and `cfg`.
pub fn role(cfg: &ForgeConfig, accelerator: Accelerator) -> anyhow::Result<Role> {
    let env = LaunchEnv::detect()?;
    for w in &env.warnings {
        eprintln!("{w}");
    }
    let num_gpus = cfg.training.num_gpus.unwrap_or(0).max(0) as usize;
    if env.is_distributed() {
        if num_gpus > 1 && num_gpus != env.world_size {
            eprintln!(
                "warning: training.num_gpus is {num_gpus}, but the launcher started {} ranks: \
                 training on those {} ranks",
                env.world_size, env.world_size
            );
        }
        let ctx = DistributedContext::from_env(timeout()?)?;
        let mut parallel = DataParallel::new(Arc::new(ctx));
        let zero = num_gpus > 1
            && cfg
                .training
                .fsdp
                .as_ref()
                .is_some_and(|f| f.sharding_strategy.eq_ignore_ascii_case("SHARD_GRAD_OP"));
        if zero {
            parallel = parallel.with_sharded_optimizer();
        }
        if parallel.is_main() {
            eprintln!(
                "distributed: {}; data parallel{}",
                env.summary(),
                if zero {
                    " with sharded optimizer state (ZeRO-2)"
                } else {
                    " (DDP)"
                }
            );
        }
        return Ok(Role::Rank(Arc::new(parallel)));
    }
    if num_gpus <= 1 {
        return Ok(Role::Single);
    }
    let gpus = tch::Cuda::device_count().max(0) as usize;
    if accelerator == Accelerator::Cpu {
        eprintln!(
            "distributed: starting {num_gpus} CPU processes on this machine (--accelerator cpu, \
             Gloo)"
        );
    } else if gpus >= num_gpus {
        eprintln!("distributed: starting {num_gpus} processes on this machine, one per GPU");
    } else {
        let names: Vec<String> = forge_dist::gpus::nvidia_gpus()
            .iter()
            .map(|g| g.model.clone())
            .collect();
        bail!(
            "training.num_gpus is {num_gpus}, but this machine has {gpus} CUDA GPU(s){}: set \
             num_gpus to at most {gpus}, or pass --accelerator cpu to train in {num_gpus} CPU \
             processes instead",
            if names.is_empty() {
                String::new()
            } else {
                format!(" ({})", names.join(", "))
            }
        );
    }
    Ok(Role::Launch(num_gpus))
}

/// The device of this process: the CPU with `--accelerator cpu`; else a
/// rank's GPU (its local rank) or the first GPU when there is one.
pub fn device(role: &Role, accelerator: Accelerator) -> anyhow::Result<Device> {
    if accelerator == Accelerator::Cpu {
        return Ok(Device::Cpu);
    }
    let gpus = tch::Cuda::device_count().max(0) as usize;
    match role {
        Role::Rank(p) if gpus > 0 => {
            let local = p.context().local_rank();
            if local >= gpus {
                bail!(
                    "rank {} has local rank {local}, but this machine has {gpus} CUDA GPU(s): \
                     start at most {gpus} ranks per machine, or pass --accelerator cpu",
                    p.context().rank()
                );
            }
            Ok(Device::Cuda(local))
        }
        _ => Ok(forge_core::runtime::RuntimeInfo::default_device()),
    }
}

/// Starts `n` copies of this command as ranks 0..n on this machine and
/// waits for them. When a rank fails (not an interruption), the others are
/// killed and the error names it. Returns 0 when every rank succeeded, 130
/// when the run was interrupted (Ctrl-C reaches every rank, which stop
/// together with a checkpoint).
pub fn launch(n: usize) -> anyhow::Result<ExitCode> {
    let exe = std::env::current_exe().context("finding forge's own executable")?;
    let args: Vec<std::ffi::OsString> = std::env::args_os().skip(1).collect();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .context("finding a free port for the rendezvous")?
        .port();
    // Ctrl-C reaches the workers through the terminal; this process keeps
    // waiting for them to stop.
    let _flag = super::train::stop_flag();
    let mut children: Vec<Option<Child>> = Vec::with_capacity(n);
    for rank in 0..n {
        let mut cmd = Command::new(&exe);
        cmd.args(&args);
        for v in ["TORCHELASTIC_RUN_ID", "SLURM_NTASKS", "SLURM_PROCID"] {
            cmd.env_remove(v);
        }
        cmd.env("RANK", rank.to_string())
            .env("LOCAL_RANK", rank.to_string())
            .env("WORLD_SIZE", n.to_string())
            .env("LOCAL_WORLD_SIZE", n.to_string())
            .env("MASTER_ADDR", "127.0.0.1")
            .env("MASTER_PORT", port.to_string());
        if std::env::var_os("OMP_NUM_THREADS").is_none() {
            // As torchrun: one thread per process unless told otherwise.
            cmd.env("OMP_NUM_THREADS", "1");
        }
        match cmd.spawn() {
            Ok(c) => children.push(Some(c)),
            Err(e) => {
                stop_all(&mut children);
                bail!("starting rank {rank} ({}): {e}", exe.display());
            }
        }
    }
    let mut statuses: Vec<Option<ExitStatus>> = vec![None; n];
    loop {
        let mut failed = None;
        for (rank, slot) in children.iter_mut().enumerate() {
            let Some(child) = slot.as_mut() else {
                continue;
            };
            if let Some(status) = child.try_wait().context("waiting for a rank")? {
                *slot = None;
                statuses[rank] = Some(status);
                if !status.success() && status.code() != Some(130) {
                    failed = Some((rank, status));
                    break;
                }
            }
        }
        if let Some((rank, status)) = failed {
            let running = children.iter().filter(|c| c.is_some()).count();
            stop_all(&mut children);
            bail!(
                "rank {rank} of {n} failed ({status}); stopped the {running} other rank(s) \
                 still running"
            );
        }
        if statuses.iter().all(Option::is_some) {
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let interrupted = statuses.iter().flatten().any(|s| s.code() == Some(130));
    Ok(if interrupted {
        ExitCode::from(130)
    } else {
        ExitCode::SUCCESS
    })
}

fn stop_all(children: &mut [Option<Child>]) {
    for c in children.iter_mut().flatten() {
        let _ = c.kill();
        let _ = c.wait();
    }
}
