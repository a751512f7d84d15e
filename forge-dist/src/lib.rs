//! Distributed training engine for forge, on libtorch's own c10d.
//!
//! - [`engine`]: a TCPStore rendezvous and a Gloo process group
//!   ([`ProcessGroup`]) with allreduce, broadcast, barrier, reduce-scatter and
//!   all-gather, every one bounded by the group's timeout and reporting
//!   failures as errors (never a hang, never an abort).
//! - [`launch`]: the launcher environment (torchrun, Slurm, `env://` or
//!   one process): rank, world size, local rank and the master's address.
//! - [`context`]: [`DistributedContext`], the process group joined from the
//!   launcher environment (none for one process).
//! - [`gpus`]: the NVIDIA GPUs the driver reports, by model.
//! - [`backends`]: which process-group backends this build has, for
//!   `forge doctor`.

pub mod context;
pub mod engine;
pub mod gpus;
pub mod launch;

pub use context::DistributedContext;
pub use engine::{DistError, GroupOptions, Interface, ProcessGroup};
pub use launch::{LaunchEnv, LaunchError, Launcher};

/// One process-group backend and whether this build can use it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Backend {
    /// `gloo` or `nccl`.
    pub name: &'static str,
    /// Whether forge can create process groups of this backend.
    pub available: bool,
    /// Why (for `forge doctor`).
    pub detail: String,
}

/// The process-group backends of this build: Gloo (CPU, always compiled
/// in) and NCCL (CUDA; not built, with the reason found at build time).
pub fn backends() -> Vec<Backend> {
    vec![
        Backend {
            name: "gloo",
            available: true,
            detail: "built (CPU tensors; TCP transport)".into(),
        },
        Backend {
            name: "nccl",
            available: false,
            detail: env!("FORGE_DIST_NCCL").into(),
        },
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gloo_is_available_and_nccl_says_why_not() {
        let b = backends();
        assert_eq!(b[0].name, "gloo");
        assert!(b[0].available);
        assert_eq!(b[1].name, "nccl");
        assert!(!b[1].available);
        assert!(b[1].detail.starts_with("not built: "), "{}", b[1].detail);
    }
}
