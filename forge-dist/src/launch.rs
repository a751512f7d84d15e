//! Launcher environments: who started this process, and so its rank, world
//! size, local rank and where rank 0 listens.
//!
//! Read as Lightning's cluster environments read them, in Lightning's order:
//!
//! 1. **torchrun / torchelastic** (`TORCHELASTIC_RUN_ID` is set, as
//!    `torch.distributed.is_torchelastic_launched` tests): `RANK`,
//!    `WORLD_SIZE`, `LOCAL_RANK`, `LOCAL_WORLD_SIZE` (optional), `GROUP_RANK`
//!    (node rank, default 0), `MASTER_ADDR` (default `127.0.0.1`, with a
//!    warning), `MASTER_PORT` (default 12910, with a warning). It comes first
//!    because torchrun may itself run inside a Slurm allocation.
//! 2. **Slurm**, when `srun` started the process (`SLURM_NTASKS` is set and
//!    `SLURM_JOB_NAME` is neither `bash` nor `interactive`, which Lightning
//!    takes for an interactive allocation): `SLURM_PROCID`, `SLURM_NTASKS`,
//!    `SLURM_LOCALID`, `SLURM_NODEID` (default 0), `SLURM_NTASKS_PER_NODE`
//!    (local world size when it is one number). The master is the first host
//!    of `SLURM_NODELIST` (else `SLURM_JOB_NODELIST`, else `127.0.0.1`),
//!    bracket ranges included (`node[007-009,12]` gives `node007`). The port
//!    is `MASTER_PORT` when set, else 15000 + the last four digits of
//!    `SLURM_JOB_ID`, else 12910, as Lightning derives it. A `MASTER_ADDR`
//!    that differs from the first host is ignored with a warning (Lightning
//!    overwrites it silently).
//! 3. **`env://`** (PyTorch's plain convention, e.g. a hand-written launch):
//!    `RANK` and `WORLD_SIZE` set without torchelastic; `LOCAL_RANK`
//!    defaults to `RANK`, and `MASTER_ADDR`/`MASTER_PORT` are required when
//!    the world has more than one process, as `init_process_group("env://")`
//!    requires them.
//! 4. Otherwise **one process**: rank 0 of 1.
//!
//! Inconsistent values are errors naming the variable and its value
//! (`RANK="3" is not below WORLD_SIZE="2"`), never a silent fallback.
//!
//! Differences from Lightning, on purpose: Lightning's regular expression
//! takes `rack1` as the first host of `rack[1-2]-node[01-04]` (it swallows
//! everything between the first `[` and the last `]`); forge expands each
//! bracket group, giving `rack1-node01` as Slurm does. Lightning refuses
//! `SLURM_NTASKS > 1` without `SLURM_NTASKS_PER_NODE` because its own
//! `devices` setting must match; forge reads the local rank from
//! `SLURM_LOCALID` and needs no such check.
//!
//! What this module is not: it reads variables only; joining the group is
//! [`crate::engine`]'s job.

use std::fmt;

/// Port when neither `MASTER_PORT` nor `SLURM_JOB_ID` gives one (Lightning's).
pub const DEFAULT_PORT: u16 = 12910;

/// Which launcher started this process.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Launcher {
    /// Not launched for distributed training: one process.
    Single,
    /// `torchrun` (torchelastic).
    Torchrun,
    /// `srun` under Slurm.
    Slurm,
    /// `RANK`/`WORLD_SIZE` set by hand (PyTorch's `env://`).
    Env,
}

impl fmt::Display for Launcher {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Launcher::Single => "single process",
            Launcher::Torchrun => "torchrun",
            Launcher::Slurm => "slurm",
            Launcher::Env => "env (RANK/WORLD_SIZE)",
        })
    }
}

/// A launcher variable that is missing, malformed or inconsistent.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct LaunchError {
    /// The variable to blame.
    pub var: String,
    /// The whole message, naming the variable and its value.
    pub message: String,
}

impl LaunchError {
    fn new(var: &str, message: String) -> Self {
        LaunchError {
            var: var.to_string(),
            message,
        }
    }
}

/// What the launcher says about this process.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LaunchEnv {
    pub launcher: Launcher,
    /// Global rank, `0..world_size`.
    pub rank: usize,
    /// Number of processes in the job.
    pub world_size: usize,
    /// Rank on this machine (picks the GPU).
    pub local_rank: usize,
    /// Processes on this machine, when the launcher says.
    pub local_world_size: Option<usize>,
    /// Index of this machine.
    pub node_rank: usize,
    /// Where rank 0 hosts the rendezvous store.
    pub master_addr: String,
    pub master_port: u16,
    /// One-line `warning: ...` notes about defaults taken or values ignored.
    pub warnings: Vec<String>,
}

impl LaunchEnv {
    /// The launcher environment of this process.
    pub fn detect() -> Result<LaunchEnv, LaunchError> {
        LaunchEnv::from_lookup(|k| std::env::var(k).ok())
    }

    /// The launcher environment `get` describes (`get(name)` is the
    /// variable's value, `None` when unset); tests pass a map here.
    pub fn from_lookup(get: impl Fn(&str) -> Option<String>) -> Result<LaunchEnv, LaunchError> {
        let vars = Vars(&get);
        if vars.get("TORCHELASTIC_RUN_ID").is_some() {
            torchrun(&vars)
        } else if vars.get("SLURM_NTASKS").is_some()
            && !matches!(
                vars.get("SLURM_JOB_NAME").as_deref(),
                Some("bash" | "interactive")
            )
        {
            slurm(&vars)
        } else if vars.get("RANK").is_some() || vars.get("WORLD_SIZE").is_some() {
            env_style(&vars)
        } else {
            Ok(LaunchEnv {
                launcher: Launcher::Single,
                rank: 0,
                world_size: 1,
                local_rank: 0,
                local_world_size: Some(1),
                node_rank: 0,
                master_addr: "127.0.0.1".into(),
                master_port: DEFAULT_PORT,
                warnings: Vec::new(),
            })
        }
    }

    /// More than one process.
    pub fn is_distributed(&self) -> bool {
        self.world_size > 1
    }

    /// One line for `forge doctor`.
    pub fn summary(&self) -> String {
        if self.launcher == Launcher::Single {
            return "single process (no torchrun, Slurm or RANK/WORLD_SIZE variables)".into();
        }
        let local = match self.local_world_size {
            Some(n) => format!("{} of {n}", self.local_rank),
            None => self.local_rank.to_string(),
        };
        format!(
            "{}: rank {} of {}, local rank {local}, node {}, master {}:{}",
            self.launcher,
            self.rank,
            self.world_size,
            self.node_rank,
            self.master_addr,
            self.master_port
        )
    }
}

/// The variable lookup, with parsing that names the variable on failure.
struct Vars<'a, F: Fn(&str) -> Option<String>>(&'a F);

impl<F: Fn(&str) -> Option<String>> Vars<'_, F> {
    fn get(&self, name: &str) -> Option<String> {
        (self.0)(name)
    }

    /// A non-negative integer, or `None` when unset.
    fn count(&self, name: &str) -> Result<Option<usize>, LaunchError> {
        let Some(v) = self.get(name) else {
            return Ok(None);
        };
        v.trim().parse::<usize>().map(Some).map_err(|_| {
            LaunchError::new(name, format!("{name}={v:?} is not a non-negative integer"))
        })
    }

    fn required(&self, name: &str, launcher: &str) -> Result<usize, LaunchError> {
        self.count(name)?.ok_or_else(|| {
            LaunchError::new(
                name,
                format!("{name} is not set, but {launcher} sets it for every process"),
            )
        })
    }

    fn port(&self, name: &str) -> Result<Option<u16>, LaunchError> {
        let Some(v) = self.get(name) else {
            return Ok(None);
        };
        match v.trim().parse::<u16>() {
            Ok(p) if p > 0 => Ok(Some(p)),
            _ => Err(LaunchError::new(
                name,
                format!("{name}={v:?} is not a TCP port (1 to 65535)"),
            )),
        }
    }

    fn addr(&self, name: &str) -> Result<Option<String>, LaunchError> {
        match self.get(name) {
            Some(v) if v.trim().is_empty() => Err(LaunchError::new(
                name,
                format!("{name} is set but empty; give the host name or address of rank 0"),
            )),
            other => Ok(other.map(|v| v.trim().to_string())),
        }
    }
}

/// Checks `rank < world` (and `world >= 1`), naming both variables.
fn check_rank(
    rank_var: &str,
    rank: usize,
    world_var: &str,
    world: usize,
) -> Result<(), LaunchError> {
    if world == 0 {
        return Err(LaunchError::new(
            world_var,
            format!("{world_var}=\"0\": a job has at least one process"),
        ));
    }
    if rank >= world {
        return Err(LaunchError::new(
            rank_var,
            format!("{rank_var}=\"{rank}\" is not below {world_var}=\"{world}\""),
        ));
    }
    Ok(())
}

fn torchrun<F: Fn(&str) -> Option<String>>(v: &Vars<'_, F>) -> Result<LaunchEnv, LaunchError> {
    let rank = v.required("RANK", "torchrun")?;
    let world_size = v.required("WORLD_SIZE", "torchrun")?;
    check_rank("RANK", rank, "WORLD_SIZE", world_size)?;
    let local_rank = v.required("LOCAL_RANK", "torchrun")?;
    let local_world_size = v.count("LOCAL_WORLD_SIZE")?;
    if let Some(lws) = local_world_size {
        check_rank("LOCAL_RANK", local_rank, "LOCAL_WORLD_SIZE", lws)?;
        if lws > world_size {
            return Err(LaunchError::new(
                "LOCAL_WORLD_SIZE",
                format!("LOCAL_WORLD_SIZE=\"{lws}\" is above WORLD_SIZE=\"{world_size}\""),
            ));
        }
    }
    let mut warnings = Vec::new();
    let master_addr = v.addr("MASTER_ADDR")?.unwrap_or_else(|| {
        warnings.push("warning: MASTER_ADDR is not set under torchrun; using 127.0.0.1".into());
        "127.0.0.1".into()
    });
    let master_port = v.port("MASTER_PORT")?.unwrap_or_else(|| {
        warnings.push(format!(
            "warning: MASTER_PORT is not set under torchrun; using {DEFAULT_PORT}"
        ));
        DEFAULT_PORT
    });
    Ok(LaunchEnv {
        launcher: Launcher::Torchrun,
        rank,
        world_size,
        local_rank,
        local_world_size,
        node_rank: v.count("GROUP_RANK")?.unwrap_or(0),
        master_addr,
        master_port,
        warnings,
    })
}

fn slurm<F: Fn(&str) -> Option<String>>(v: &Vars<'_, F>) -> Result<LaunchEnv, LaunchError> {
    let world_size = v.required("SLURM_NTASKS", "srun")?;
    let rank = v.required("SLURM_PROCID", "srun")?;
    check_rank("SLURM_PROCID", rank, "SLURM_NTASKS", world_size)?;
    let local_rank = v.required("SLURM_LOCALID", "srun")?;
    // SLURM_NTASKS_PER_NODE may read `2(x3),1` on uneven allocations; only
    // a plain number gives the local world size.
    let local_world_size = v
        .get("SLURM_NTASKS_PER_NODE")
        .and_then(|s| s.trim().parse::<usize>().ok());
    if let Some(lws) = local_world_size {
        check_rank("SLURM_LOCALID", local_rank, "SLURM_NTASKS_PER_NODE", lws)?;
    }
    let (list_var, nodes) = ["SLURM_NODELIST", "SLURM_JOB_NODELIST"]
        .iter()
        .find_map(|&k| v.get(k).map(|n| (k, n)))
        .unwrap_or(("", "127.0.0.1".into()));
    let master_addr = first_host(&nodes)
        .map_err(|why| LaunchError::new(list_var, format!("{list_var}={nodes:?}: {why}")))?;
    let mut warnings = Vec::new();
    if let Some(given) = v.addr("MASTER_ADDR")?
        && given != master_addr
    {
        warnings.push(format!(
            "warning: MASTER_ADDR={given:?} is ignored under Slurm; rank 0 runs on the first host of {list_var}, {master_addr:?}"
        ));
    }
    let master_port = match v.port("MASTER_PORT")? {
        Some(p) => p,
        None => match v.get("SLURM_JOB_ID") {
            Some(id) => port_from_job_id(&id)?,
            None => DEFAULT_PORT,
        },
    };
    Ok(LaunchEnv {
        launcher: Launcher::Slurm,
        rank,
        world_size,
        local_rank,
        local_world_size,
        node_rank: v.count("SLURM_NODEID")?.unwrap_or(0),
        master_addr,
        master_port,
        warnings,
    })
}

/// Lightning's port for a Slurm job: 15000 + the job id's last four digits,
/// so every process of the job agrees without talking.
pub fn port_from_job_id(id: &str) -> Result<u16, LaunchError> {
    let id = id.trim();
    let mut tail: Vec<char> = id.chars().rev().take(4).collect();
    tail.reverse();
    let tail: String = tail.into_iter().collect();
    match tail.parse::<u16>() {
        Ok(n) if !tail.is_empty() && tail.bytes().all(|b| b.is_ascii_digit()) => Ok(15000 + n),
        _ => Err(LaunchError::new(
            "SLURM_JOB_ID",
            format!(
                "SLURM_JOB_ID={id:?} does not end in digits to derive the port from; set MASTER_PORT"
            ),
        )),
    }
}

fn env_style<F: Fn(&str) -> Option<String>>(v: &Vars<'_, F>) -> Result<LaunchEnv, LaunchError> {
    let need = |name: &str, other: &str| {
        LaunchError::new(
            name,
            format!(
                "{other} is set but {name} is not; a launch through RANK/WORLD_SIZE needs both"
            ),
        )
    };
    let rank = v.count("RANK")?.ok_or_else(|| need("RANK", "WORLD_SIZE"))?;
    let world_size = v
        .count("WORLD_SIZE")?
        .ok_or_else(|| need("WORLD_SIZE", "RANK"))?;
    check_rank("RANK", rank, "WORLD_SIZE", world_size)?;
    let local_rank = v.count("LOCAL_RANK")?.unwrap_or(rank);
    let local_world_size = v.count("LOCAL_WORLD_SIZE")?;
    if let Some(lws) = local_world_size {
        check_rank("LOCAL_RANK", local_rank, "LOCAL_WORLD_SIZE", lws)?;
    }
    let many = world_size > 1;
    let missing = |name: &str| {
        LaunchError::new(
            name,
            format!(
                "{name} is not set; with WORLD_SIZE=\"{world_size}\" every process needs the address of rank 0 (MASTER_ADDR and MASTER_PORT)"
            ),
        )
    };
    let master_addr = match v.addr("MASTER_ADDR")? {
        Some(a) => a,
        None if many => return Err(missing("MASTER_ADDR")),
        None => "127.0.0.1".into(),
    };
    let master_port = match v.port("MASTER_PORT")? {
        Some(p) => p,
        None if many => return Err(missing("MASTER_PORT")),
        None => DEFAULT_PORT,
    };
    Ok(LaunchEnv {
        launcher: Launcher::Env,
        rank,
        world_size,
        local_rank,
        local_world_size,
        node_rank: v.count("NODE_RANK")?.unwrap_or(0),
        master_addr,
        master_port,
        warnings: Vec::new(),
    })
}

/// The first host of a Slurm node list: hosts separated by commas (or
/// spaces) outside brackets, each bracket group a list of numbers and
/// ranges whose first entry is kept as written (zero padding included):
/// `node[007-009,12],gpu3` gives `node007`, `rack[1-2]-n[01-04]` gives
/// `rack1-n01`.
pub fn first_host(nodelist: &str) -> Result<String, String> {
    let list = nodelist.trim();
    if list.is_empty() {
        return Err("the node list is empty".into());
    }
    let mut host = String::new();
    let mut chars = list.chars();
    while let Some(c) = chars.next() {
        match c {
            ',' | ' ' => break,
            '[' => {
                let mut group = String::new();
                loop {
                    match chars.next() {
                        Some(']') => break,
                        Some('[') => return Err("nested `[` in a bracket range".into()),
                        Some(c) => group.push(c),
                        None => return Err("a `[` is never closed".into()),
                    }
                }
                let first = group.split(',').next().unwrap_or_default();
                let start = first.split('-').next().unwrap_or_default().trim();
                if start.is_empty() || !start.bytes().all(|b| b.is_ascii_digit()) {
                    return Err(format!(
                        "the bracket range [{group}] does not start with a number"
                    ));
                }
                host.push_str(start);
            }
            ']' => return Err("a `]` has no matching `[`".into()),
            c => host.push(c),
        }
    }
    if host.is_empty() {
        return Err("the first host name is empty".into());
    }
    Ok(host)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn env(pairs: &[(&str, &str)]) -> Result<LaunchEnv, LaunchError> {
        let map: HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        LaunchEnv::from_lookup(|k| map.get(k).cloned())
    }

    fn err(pairs: &[(&str, &str)]) -> String {
        env(pairs).unwrap_err().to_string()
    }

    const TORCHRUN: &[(&str, &str)] = &[
        ("TORCHELASTIC_RUN_ID", "abc"),
        ("RANK", "3"),
        ("WORLD_SIZE", "8"),
        ("LOCAL_RANK", "1"),
        ("LOCAL_WORLD_SIZE", "2"),
        ("GROUP_RANK", "1"),
        ("MASTER_ADDR", "10.0.0.5"),
        ("MASTER_PORT", "29500"),
    ];

    #[test]
    fn nothing_set_is_one_process() {
        let e = env(&[("PATH", "/bin")]).unwrap();
        assert_eq!(e.launcher, Launcher::Single);
        assert_eq!((e.rank, e.world_size, e.local_rank), (0, 1, 0));
        assert!(!e.is_distributed());
        assert!(e.warnings.is_empty());
        assert!(e.summary().starts_with("single process"), "{}", e.summary());
    }

    #[test]
    fn torchrun_variables_are_read() {
        let e = env(TORCHRUN).unwrap();
        assert_eq!(
            e,
            LaunchEnv {
                launcher: Launcher::Torchrun,
                rank: 3,
                world_size: 8,
                local_rank: 1,
                local_world_size: Some(2),
                node_rank: 1,
                master_addr: "10.0.0.5".into(),
                master_port: 29500,
                warnings: vec![],
            }
        );
        assert!(e.is_distributed());
        assert_eq!(
            e.summary(),
            "torchrun: rank 3 of 8, local rank 1 of 2, node 1, master 10.0.0.5:29500"
        );
    }

    #[test]
    fn torchrun_without_master_takes_lightning_defaults_with_warnings() {
        let pairs: Vec<_> = TORCHRUN
            .iter()
            .copied()
            .filter(|(k, _)| !k.starts_with("MASTER_"))
            .collect();
        let e = env(&pairs).unwrap();
        assert_eq!(
            (e.master_addr.as_str(), e.master_port),
            ("127.0.0.1", 12910)
        );
        assert_eq!(e.warnings.len(), 2);
        assert!(e.warnings.iter().all(|w| w.starts_with("warning: MASTER_")));
    }

    #[test]
    fn torchrun_inside_slurm_is_torchrun() {
        let mut pairs = TORCHRUN.to_vec();
        pairs.extend([("SLURM_NTASKS", "2"), ("SLURM_PROCID", "0")]);
        assert_eq!(env(&pairs).unwrap().launcher, Launcher::Torchrun);
    }

    #[test]
    fn inconsistent_torchrun_values_name_the_variable() {
        let with = |k: &str, v: &'static str| {
            let mut p: Vec<(&str, &str)> =
                TORCHRUN.iter().copied().filter(|(n, _)| *n != k).collect();
            if !v.is_empty() {
                p.push((k, v));
            }
            p.into_iter()
                .map(|(a, b)| (a.to_string(), b.to_string()))
                .collect::<Vec<_>>()
        };
        let run = |p: Vec<(String, String)>| {
            let refs: Vec<(&str, &str)> = p.iter().map(|(a, b)| (a.as_str(), b.as_str())).collect();
            err(&refs)
        };
        assert_eq!(
            run(with("RANK", "8")),
            "RANK=\"8\" is not below WORLD_SIZE=\"8\""
        );
        assert_eq!(
            run(with("RANK", "two")),
            "RANK=\"two\" is not a non-negative integer"
        );
        assert_eq!(
            run(with("RANK", "-1")),
            "RANK=\"-1\" is not a non-negative integer"
        );
        assert_eq!(
            run(with("WORLD_SIZE", "0")),
            "WORLD_SIZE=\"0\": a job has at least one process"
        );
        assert_eq!(
            run(with("LOCAL_RANK", "2")),
            "LOCAL_RANK=\"2\" is not below LOCAL_WORLD_SIZE=\"2\""
        );
        assert_eq!(
            run(with("LOCAL_RANK", "")),
            "LOCAL_RANK is not set, but torchrun sets it for every process"
        );
        assert_eq!(
            run(with("LOCAL_WORLD_SIZE", "9")),
            "LOCAL_WORLD_SIZE=\"9\" is above WORLD_SIZE=\"8\""
        );
        assert_eq!(
            run(with("MASTER_PORT", "70000")),
            "MASTER_PORT=\"70000\" is not a TCP port (1 to 65535)"
        );
        assert_eq!(
            run(with("MASTER_PORT", "0")),
            "MASTER_PORT=\"0\" is not a TCP port (1 to 65535)"
        );
        assert!(run(with("MASTER_ADDR", " ")).starts_with("MASTER_ADDR is set but empty"));
        let e = env(&[("TORCHELASTIC_RUN_ID", "x"), ("RANK", "x")]).unwrap_err();
        assert_eq!(e.var, "RANK");
    }

    const SLURM: &[(&str, &str)] = &[
        ("SLURM_NTASKS", "8"),
        ("SLURM_PROCID", "5"),
        ("SLURM_LOCALID", "1"),
        ("SLURM_NODEID", "2"),
        ("SLURM_NTASKS_PER_NODE", "2"),
        ("SLURM_NODELIST", "gpu[007-009,12],login1"),
        ("SLURM_JOB_ID", "4812345"),
        ("SLURM_JOB_NAME", "train"),
    ];

    #[test]
    fn slurm_variables_are_read_with_the_first_host_and_the_job_port() {
        let e = env(SLURM).unwrap();
        assert_eq!(
            e,
            LaunchEnv {
                launcher: Launcher::Slurm,
                rank: 5,
                world_size: 8,
                local_rank: 1,
                local_world_size: Some(2),
                node_rank: 2,
                master_addr: "gpu007".into(),
                master_port: 15000 + 2345,
                warnings: vec![],
            }
        );
        // MASTER_PORT wins over the job id; SLURM_JOB_NODELIST is read when
        // SLURM_NODELIST is not; uneven tasks per node give no local size.
        let mut p: Vec<(&str, &str)> = SLURM
            .iter()
            .copied()
            .filter(|(k, _)| !matches!(*k, "SLURM_NODELIST" | "SLURM_NTASKS_PER_NODE"))
            .collect();
        p.extend([
            ("MASTER_PORT", "23456"),
            ("SLURM_JOB_NODELIST", "cn-a[3-4]"),
            ("SLURM_NTASKS_PER_NODE", "2(x3),1"),
        ]);
        let e = env(&p).unwrap();
        assert_eq!((e.master_addr.as_str(), e.master_port), ("cn-a3", 23456));
        assert_eq!(e.local_world_size, None);
        // No job id, no node list: Lightning's defaults.
        let p: Vec<(&str, &str)> = SLURM
            .iter()
            .copied()
            .filter(|(k, _)| !matches!(*k, "SLURM_NODELIST" | "SLURM_JOB_ID"))
            .collect();
        let e = env(&p).unwrap();
        assert_eq!(
            (e.master_addr.as_str(), e.master_port),
            ("127.0.0.1", 12910)
        );
        // A short job id is used whole.
        let mut p = SLURM.to_vec();
        p.retain(|(k, _)| *k != "SLURM_JOB_ID");
        p.push(("SLURM_JOB_ID", "42"));
        assert_eq!(env(&p).unwrap().master_port, 15042);
    }

    #[test]
    fn a_different_master_addr_under_slurm_is_ignored_with_a_warning() {
        let mut p = SLURM.to_vec();
        p.push(("MASTER_ADDR", "gpu007"));
        assert!(env(&p).unwrap().warnings.is_empty());
        let mut p = SLURM.to_vec();
        p.push(("MASTER_ADDR", "elsewhere"));
        let e = env(&p).unwrap();
        assert_eq!(e.master_addr, "gpu007");
        assert_eq!(e.warnings.len(), 1);
        assert!(
            e.warnings[0].starts_with("warning: MASTER_ADDR=\"elsewhere\" is ignored under Slurm"),
            "{}",
            e.warnings[0]
        );
    }

    #[test]
    fn an_interactive_slurm_allocation_is_not_a_launch() {
        for name in ["bash", "interactive"] {
            let mut p: Vec<(&str, &str)> = SLURM
                .iter()
                .copied()
                .filter(|(k, _)| *k != "SLURM_JOB_NAME")
                .collect();
            p.push(("SLURM_JOB_NAME", name));
            assert_eq!(env(&p).unwrap().launcher, Launcher::Single, "{name}");
        }
    }

    #[test]
    fn inconsistent_slurm_values_name_the_variable() {
        let replace = |k: &'static str, v: &'static str| {
            let mut p: Vec<(&str, &str)> = SLURM.iter().copied().filter(|(n, _)| *n != k).collect();
            if !v.is_empty() {
                p.push((k, v));
            }
            err(&p)
        };
        assert_eq!(
            replace("SLURM_PROCID", "8"),
            "SLURM_PROCID=\"8\" is not below SLURM_NTASKS=\"8\""
        );
        assert_eq!(
            replace("SLURM_LOCALID", "2"),
            "SLURM_LOCALID=\"2\" is not below SLURM_NTASKS_PER_NODE=\"2\""
        );
        assert_eq!(
            replace("SLURM_LOCALID", ""),
            "SLURM_LOCALID is not set, but srun sets it for every process"
        );
        assert_eq!(
            replace("SLURM_NTASKS", "many"),
            "SLURM_NTASKS=\"many\" is not a non-negative integer"
        );
        assert_eq!(
            replace("SLURM_JOB_ID", "12ab"),
            "SLURM_JOB_ID=\"12ab\" does not end in digits to derive the port from; set MASTER_PORT"
        );
        assert_eq!(
            replace("SLURM_NODELIST", "gpu[1-4"),
            "SLURM_NODELIST=\"gpu[1-4\": a `[` is never closed"
        );
    }

    #[test]
    fn env_style_needs_both_and_the_master_when_many() {
        let e = env(&[("RANK", "0"), ("WORLD_SIZE", "1")]).unwrap();
        assert_eq!(e.launcher, Launcher::Env);
        assert!(!e.is_distributed());
        let e = env(&[
            ("RANK", "1"),
            ("WORLD_SIZE", "2"),
            ("MASTER_ADDR", "127.0.0.1"),
            ("MASTER_PORT", "29400"),
        ])
        .unwrap();
        assert_eq!((e.rank, e.local_rank, e.master_port), (1, 1, 29400));
        assert_eq!(
            err(&[("RANK", "1")]),
            "RANK is set but WORLD_SIZE is not; a launch through RANK/WORLD_SIZE needs both"
        );
        assert_eq!(
            err(&[("WORLD_SIZE", "2")]),
            "WORLD_SIZE is set but RANK is not; a launch through RANK/WORLD_SIZE needs both"
        );
        let e = err(&[("RANK", "0"), ("WORLD_SIZE", "2"), ("MASTER_PORT", "1234")]);
        assert!(
            e.starts_with("MASTER_ADDR is not set; with WORLD_SIZE=\"2\""),
            "{e}"
        );
        let e = err(&[("RANK", "0"), ("WORLD_SIZE", "2"), ("MASTER_ADDR", "h")]);
        assert!(e.starts_with("MASTER_PORT is not set"), "{e}");
        assert_eq!(
            err(&[("RANK", "2"), ("WORLD_SIZE", "2")]),
            "RANK=\"2\" is not below WORLD_SIZE=\"2\""
        );
    }

    #[test]
    fn first_hosts_of_slurm_node_lists() {
        for (list, first) in [
            ("node1", "node1"),
            ("node1,node2", "node1"),
            ("host0 host1", "host0"),
            ("node[001-004,7]", "node001"),
            ("node[7,1-4]", "node7"),
            ("node[5]", "node5"),
            ("node[09-12]-ib,other", "node09-ib"),
            ("rack[1-2]-n[01-04]", "rack1-n01"),
            ("a[3-4],b[1-2]", "a3"),
            ("10.1.2.3", "10.1.2.3"),
        ] {
            assert_eq!(first_host(list).as_deref(), Ok(first), "{list}");
        }
        for (list, why) in [
            ("", "the node list is empty"),
            ("node[1-2", "a `[` is never closed"),
            ("node]1", "a `]` has no matching `[`"),
            (
                "node[a-b]",
                "the bracket range [a-b] does not start with a number",
            ),
            ("node[[1]]", "nested `[` in a bracket range"),
            (",node1", "the first host name is empty"),
        ] {
            assert_eq!(first_host(list), Err(why.to_string()), "{list}");
        }
    }

    #[test]
    fn job_id_ports() {
        assert_eq!(port_from_job_id("123456789"), Ok(15000 + 6789));
        assert_eq!(port_from_job_id("0009"), Ok(15009));
        assert!(port_from_job_id("").is_err());
        assert!(port_from_job_id("12_3").is_err());
        assert!(port_from_job_id("12é4").is_err());
    }
}
