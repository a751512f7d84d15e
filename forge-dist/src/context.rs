//! A process's place in a distributed job: its [`LaunchEnv`] and, when the
//! job has more than one process, the joined Gloo [`ProcessGroup`].
//!
//! [`DistributedContext::from_env`] reads the launcher's variables (see
//! [`crate::launch`]) and does the TCPStore rendezvous at
//! `MASTER_ADDR:MASTER_PORT`, bounded by the given timeout (which then also
//! bounds every collective). One process needs no group: collectives are
//! identities and [`DistributedContext::group`] is `None`.
//!
//! Gloo binds to a local interface: `GLOO_SOCKET_IFNAME` when set; else,
//! when the master address is a loopback one (`127.x`, `localhost`, `::1`,
//! so every rank runs on this machine), the loopback address; else the
//! host's own name, as libtorch does.
//!
//! What this module is not: it does not start processes (torchrun, srun or
//! a test harness do) and does not train.

use std::time::Duration;

use tch::Tensor;

use crate::engine::{DistError, GroupOptions, Interface, ProcessGroup};
use crate::launch::LaunchEnv;

/// PyTorch's default process-group timeout.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30 * 60);

/// This process's rank and world, with the process group when there are
/// several processes.
#[derive(Debug)]
pub struct DistributedContext {
    env: LaunchEnv,
    group: Option<ProcessGroup>,
}

impl DistributedContext {
    /// Reads the launcher's variables and joins the group (all ranks must
    /// call this within `timeout`).
    pub fn from_env(timeout: Duration) -> Result<DistributedContext, DistError> {
        let env = LaunchEnv::detect()?;
        let interface = Interface::from_env()?;
        DistributedContext::init(env, interface, timeout)
    }

    /// Joins the group `env` describes, Gloo binding to `interface`
    /// ([`Interface::Default`] picks loopback for a loopback master, see
    /// the module docs).
    pub fn init(
        env: LaunchEnv,
        interface: Interface,
        timeout: Duration,
    ) -> Result<DistributedContext, DistError> {
        if !env.is_distributed() {
            return Ok(DistributedContext { env, group: None });
        }
        let interface = match interface {
            Interface::Default if is_loopback(&env.master_addr) => {
                Interface::Host("127.0.0.1".into())
            }
            other => other,
        };
        let group = ProcessGroup::join(&GroupOptions {
            master_addr: env.master_addr.clone(),
            master_port: env.master_port,
            rank: env.rank,
            world_size: env.world_size,
            timeout,
            interface,
        })?;
        Ok(DistributedContext {
            env,
            group: Some(group),
        })
    }

    /// What the launcher said.
    pub fn env(&self) -> &LaunchEnv {
        &self.env
    }

    pub fn rank(&self) -> usize {
        self.env.rank
    }

    pub fn world_size(&self) -> usize {
        self.env.world_size
    }

    pub fn local_rank(&self) -> usize {
        self.env.local_rank
    }

    /// Rank 0: the process that writes logs and checkpoints.
    pub fn is_main(&self) -> bool {
        self.env.rank == 0
    }

    /// The process group; `None` for one process.
    pub fn group(&self) -> Option<&ProcessGroup> {
        self.group.as_ref()
    }

    /// Averages `tensors` over the ranks (nothing to do for one process).
    pub fn allreduce_mean_(&self, tensors: &mut [Tensor]) -> Result<(), DistError> {
        match &self.group {
            Some(g) => g.allreduce_mean_(tensors),
            None => Ok(()),
        }
    }

    /// Copies rank 0's `tensors` to every rank.
    pub fn broadcast_from_main_(&self, tensors: &mut [Tensor]) -> Result<(), DistError> {
        match &self.group {
            Some(g) => g.broadcast_(tensors, 0),
            None => Ok(()),
        }
    }

    /// Waits for every rank.
    pub fn barrier(&self) -> Result<(), DistError> {
        match &self.group {
            Some(g) => g.barrier(),
            None => Ok(()),
        }
    }
}

fn is_loopback(addr: &str) -> bool {
    addr.eq_ignore_ascii_case("localhost")
        || addr
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::launch::Launcher;
    use std::net::TcpListener;
    use std::process::{Command, Stdio};
    use std::time::Instant;
    use tch::{Device, Kind};

    const WORKER: &str = "FORGE_DIST_CONTEXT_WORKER";

    #[test]
    fn loopback_addresses() {
        for a in ["127.0.0.1", "127.1.2.3", "localhost", "LOCALHOST", "::1"] {
            assert!(is_loopback(a), "{a}");
        }
        for a in ["10.0.0.1", "node007", "0.0.0.0"] {
            assert!(!is_loopback(a), "{a}");
        }
    }

    #[test]
    fn one_process_needs_no_group() {
        let env = LaunchEnv::from_lookup(|_| None).unwrap();
        let ctx =
            DistributedContext::init(env, Interface::Default, Duration::from_secs(1)).unwrap();
        assert!(ctx.group().is_none());
        assert!(ctx.is_main());
        assert_eq!((ctx.rank(), ctx.world_size(), ctx.local_rank()), (0, 1, 0));
        let mut t = vec![Tensor::from_slice(&[2.0f32, 4.0])];
        ctx.allreduce_mean_(&mut t).unwrap();
        ctx.broadcast_from_main_(&mut t).unwrap();
        ctx.barrier().unwrap();
        assert_eq!(Vec::<f32>::try_from(&t[0]).unwrap(), vec![2.0, 4.0]);
    }

    #[test]
    fn a_missing_master_ends_the_join_within_the_timeout() {
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let env = LaunchEnv::from_lookup(|k| {
            match k {
                "RANK" => Some("1"),
                "WORLD_SIZE" => Some("2"),
                "MASTER_ADDR" => Some("127.0.0.1"),
                _ => None,
            }
            .map(String::from)
            .or_else(|| (k == "MASTER_PORT").then(|| port.to_string()))
        })
        .unwrap();
        let start = Instant::now();
        let e = DistributedContext::init(env, Interface::Default, Duration::from_millis(1500))
            .unwrap_err()
            .to_string();
        assert!(
            e.starts_with("rank 1 of 2: joining the process group at 127.0.0.1:"),
            "{e}"
        );
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "{:?}",
            start.elapsed()
        );
    }

    /// One rank, started by [`two_processes_launched_as_torchrun_does`]
    /// with torchrun's variables.
    #[test]
    #[ignore = "a worker started by two_processes_launched_as_torchrun_does"]
    fn worker() {
        assert!(std::env::var(WORKER).is_ok(), "run by the launching test");
        let ctx = DistributedContext::from_env(Duration::from_secs(20)).unwrap();
        assert_eq!(ctx.env().launcher, Launcher::Torchrun);
        assert!(ctx.group().is_some());
        let r = ctx.rank() as f32;
        let mut t = vec![Tensor::from_slice(&[r, 10.0 * r])];
        ctx.allreduce_mean_(&mut t).unwrap();
        assert_eq!(Vec::<f32>::try_from(&t[0]).unwrap(), vec![0.5, 5.0]);
        let mut b = vec![Tensor::full([2], r as i64 + 7, (Kind::Int64, Device::Cpu))];
        ctx.broadcast_from_main_(&mut b).unwrap();
        assert_eq!(Vec::<i64>::try_from(&b[0]).unwrap(), vec![7, 7]);
        ctx.barrier().unwrap();
        println!(
            "context ok: rank {} of {}, local rank {}, main {}",
            ctx.rank(),
            ctx.world_size(),
            ctx.local_rank(),
            ctx.is_main()
        );
    }

    #[test]
    fn two_processes_launched_as_torchrun_does() {
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let exe = std::env::current_exe().unwrap();
        let mut children: Vec<_> = (0..2)
            .map(|rank| {
                let mut cmd = Command::new(&exe);
                cmd.args([
                    "--exact",
                    "context::tests::worker",
                    "--ignored",
                    "--nocapture",
                    "--test-threads=1",
                ]);
                for v in ["SLURM_NTASKS", "GLOO_SOCKET_IFNAME"] {
                    cmd.env_remove(v);
                }
                cmd.env(WORKER, "1")
                    .env("TORCHELASTIC_RUN_ID", "forge-test")
                    .env("RANK", rank.to_string())
                    .env("LOCAL_RANK", rank.to_string())
                    .env("WORLD_SIZE", "2")
                    .env("LOCAL_WORLD_SIZE", "2")
                    .env("MASTER_ADDR", "127.0.0.1")
                    .env("MASTER_PORT", port.to_string())
                    .stdout(Stdio::piped())
                    .stderr(Stdio::piped())
                    .spawn()
                    .map(Some)
                    .unwrap()
            })
            .collect();
        let start = Instant::now();
        let mut outputs = vec![None, None];
        while outputs.iter().any(Option::is_none) {
            if start.elapsed() > Duration::from_secs(90) {
                for c in children.iter_mut().flatten() {
                    let _ = c.kill();
                }
                panic!("ranks still running after 90 s");
            }
            for (i, slot) in children.iter_mut().enumerate() {
                if let Some(c) = slot
                    && c.try_wait().unwrap().is_some()
                {
                    outputs[i] = Some(slot.take().unwrap().wait_with_output().unwrap());
                }
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        for (rank, o) in outputs.into_iter().map(Option::unwrap).enumerate() {
            let text = format!(
                "{}{}",
                String::from_utf8_lossy(&o.stdout),
                String::from_utf8_lossy(&o.stderr)
            );
            assert!(o.status.success(), "rank {rank}: {text}");
            let want = format!(
                "context ok: rank {rank} of 2, local rank {rank}, main {}",
                rank == 0
            );
            assert!(text.contains(&want), "{text}");
        }
    }
}
