//! A Gloo process group on libtorch's c10d, reached through the C++ shim in
//! `csrc/c10d.cpp`.
//!
//! [`ProcessGroup::join`] does the rendezvous: rank 0 hosts a `TCPStore` at
//! the master address and port, every rank connects to it, and the Gloo
//! process group binds to a local [`Interface`] (Gloo binds to a local
//! address, not to the master's) and connects every pair of ranks.
//!
//! Collectives work on CPU tensors. Gloo's allreduce wants tensors of one
//! shape, so [`ProcessGroup::allreduce_mean_`] and [`ProcessGroup::broadcast_`]
//! flatten any list of tensors into buckets (one dtype each, at most
//! [`BUCKET_BYTES`]), run one collective per bucket and copy the result back.
//! [`ProcessGroup::reduce_scatter_sum`] and [`ProcessGroup::all_gather`] take
//! one flat tensor, as ZeRO-style sharding needs.
//!
//! Every collective waits at most the group's timeout. When one fails, the
//! error says which rank is to blame when that can be found: each rank bumps
//! a heartbeat counter in the store every [`HEARTBEAT`]; after a failure the
//! survivor reads the counters twice, [`STALE_AFTER`] apart, and names the
//! ranks whose counter did not move (a rank that died or is frozen). When
//! the store itself is gone, rank 0 (which hosts it) is named.

use std::ffi::{CStr, CString, c_char, c_int, c_longlong, c_void};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::Duration;

use tch::{Device, Kind, Tensor};

/// Largest bucket [`ProcessGroup::allreduce_mean_`] and
/// [`ProcessGroup::broadcast_`] build (PyTorch DDP's default bucket size).
pub const BUCKET_BYTES: usize = 25 * 1024 * 1024;
/// How often each rank bumps its heartbeat counter in the store.
pub const HEARTBEAT: Duration = Duration::from_millis(200);
/// A rank whose heartbeat did not move for this long after a failed
/// collective is named as the cause.
pub const STALE_AFTER: Duration = Duration::from_millis(1500);

mod ffi {
    use super::{c_char, c_int, c_longlong, c_void};
    unsafe extern "C" {
        pub fn forge_c10d_gloo_new(
            master_addr: *const c_char,
            port: c_int,
            rank: c_int,
            world_size: c_int,
            timeout_ms: c_longlong,
            iface: *const c_char,
            mode: c_int,
            err: *mut *mut c_char,
        ) -> *mut c_void;
        pub fn forge_c10d_free(group: *mut c_void);
        pub fn forge_c10d_free_string(s: *mut c_char);
        pub fn forge_c10d_allreduce_sum(group: *mut c_void, t: *const c_void) -> *mut c_char;
        pub fn forge_c10d_broadcast(
            group: *mut c_void,
            t: *const c_void,
            root: c_int,
        ) -> *mut c_char;
        pub fn forge_c10d_barrier(group: *mut c_void) -> *mut c_char;
        pub fn forge_c10d_reduce_scatter_sum(
            group: *mut c_void,
            output: *const c_void,
            input: *const c_void,
        ) -> *mut c_char;
        pub fn forge_c10d_all_gather(
            group: *mut c_void,
            output: *const c_void,
            input: *const c_void,
        ) -> *mut c_char;
        pub fn forge_c10d_store_add(
            group: *mut c_void,
            key: *const c_char,
            delta: c_longlong,
            out: *mut c_longlong,
        ) -> *mut c_char;
    }
}

/// Takes ownership of an error string from the shim (null = success).
fn take_error(err: *mut c_char) -> Option<String> {
    if err.is_null() {
        return None;
    }
    // SAFETY: a non-null error is a NUL-terminated string the shim
    // malloc'd for us; we copy it and hand it back to the shim's free.
    let msg = unsafe { CStr::from_ptr(err) }
        .to_string_lossy()
        .into_owned();
    unsafe { ffi::forge_c10d_free_string(err) };
    Some(msg)
}

/// Errors of the distributed engine.
#[derive(Debug, thiserror::Error)]
pub enum DistError {
    /// A bad argument (rank, world size, tensor shape or device, ...).
    #[error("{0}")]
    Invalid(String),
    /// The rendezvous or the Gloo connection failed.
    #[error(
        "rank {rank} of {world_size}: joining the process group at {addr}:{port} failed: {detail}"
    )]
    Join {
        rank: usize,
        world_size: usize,
        addr: String,
        port: u16,
        detail: String,
    },
    /// A collective failed or timed out.
    #[error("rank {rank} of {world_size}: {op} failed{cause}: {detail}")]
    Collective {
        rank: usize,
        world_size: usize,
        op: &'static str,
        /// ` because ...` naming the rank(s) to blame, or empty.
        cause: String,
        detail: String,
    },
}

/// The local address Gloo binds to (it never binds to the master address).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Interface {
    /// A network interface by name (`eth0`, `lo`), as `GLOO_SOCKET_IFNAME`.
    Name(String),
    /// A hostname or IP address of this machine (`127.0.0.1` in tests).
    Host(String),
    /// This host's own name, or loopback when it does not resolve
    /// (libtorch's default).
    Default,
}

impl Interface {
    /// `GLOO_SOCKET_IFNAME` when set (one interface; a comma-separated list
    /// is refused), else [`Interface::Default`].
    pub fn from_env() -> Result<Self, DistError> {
        match std::env::var("GLOO_SOCKET_IFNAME") {
            Ok(v) if v.contains(',') => Err(DistError::Invalid(format!(
                "GLOO_SOCKET_IFNAME={v:?}: forge binds Gloo to one interface; give one name"
            ))),
            Ok(v) if !v.is_empty() => Ok(Interface::Name(v)),
            _ => Ok(Interface::Default),
        }
    }
}

/// Where and how to join a process group.
#[derive(Debug, Clone)]
pub struct GroupOptions {
    /// Address of rank 0, which hosts the TCPStore.
    pub master_addr: String,
    /// Port of the TCPStore on rank 0.
    pub master_port: u16,
    /// This process's rank, `0..world_size`.
    pub rank: usize,
    /// Number of processes.
    pub world_size: usize,
    /// Bound on the rendezvous and on every collective.
    pub timeout: Duration,
    /// Local address for Gloo.
    pub interface: Interface,
}

/// The shim's group handle. c10d's TCPStore and ProcessGroupGloo lock
/// internally, so the handle may be used from the heartbeat thread and the
/// owning thread at once.
struct Handle(*mut c_void);

// SAFETY: see the type's docs; the pointer is only freed in `Drop`, which
// runs once every `Arc` holder (the heartbeat thread included) is gone.
unsafe impl Send for Handle {}
unsafe impl Sync for Handle {}

impl Drop for Handle {
    fn drop(&mut self) {
        // SAFETY: the pointer came from forge_c10d_gloo_new and is freed once.
        unsafe { ffi::forge_c10d_free(self.0) };
    }
}

impl Handle {
    fn store_add(&self, key: &str, delta: i64) -> Result<i64, String> {
        let key = CString::new(key).map_err(|e| e.to_string())?;
        let mut out: c_longlong = 0;
        // SAFETY: live handle, NUL-terminated key, valid out pointer.
        let err = unsafe { ffi::forge_c10d_store_add(self.0, key.as_ptr(), delta, &mut out) };
        match take_error(err) {
            None => Ok(out),
            Some(e) => Err(e),
        }
    }
}

fn heartbeat_key(rank: usize) -> String {
    format!("forge/heartbeat/{rank}")
}

/// A joined Gloo process group. Dropping it stops the heartbeat and leaves
/// the group.
pub struct ProcessGroup {
    handle: Arc<Handle>,
    rank: usize,
    world_size: usize,
    stop: Arc<AtomicBool>,
    heartbeat: Option<JoinHandle<()>>,
}

impl Drop for ProcessGroup {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(h) = self.heartbeat.take() {
            let _ = h.join();
        }
    }
}

impl std::fmt::Debug for ProcessGroup {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "ProcessGroup(gloo, rank {} of {})",
            self.rank, self.world_size
        )
    }
}

impl ProcessGroup {
    /// Joins the group described by `opts` (blocks until every rank has
    /// joined, or the timeout).
    pub fn join(opts: &GroupOptions) -> Result<Self, DistError> {
        if opts.world_size == 0 {
            return Err(DistError::Invalid("world size must be at least 1".into()));
        }
        if opts.rank >= opts.world_size {
            return Err(DistError::Invalid(format!(
                "rank {} is not below the world size {}",
                opts.rank, opts.world_size
            )));
        }
        let world = c_int::try_from(opts.world_size).map_err(|_| {
            DistError::Invalid(format!("world size {} is too large", opts.world_size))
        })?;
        let timeout_ms = c_longlong::try_from(opts.timeout.as_millis())
            .ok()
            .filter(|&t| t > 0)
            .ok_or_else(|| {
                DistError::Invalid(format!("timeout {:?} must be at least 1 ms", opts.timeout))
            })?;
        let nul = |what: &str, v: &str| {
            CString::new(v)
                .map_err(|_| DistError::Invalid(format!("{what} {v:?} contains a NUL byte")))
        };
        let addr = nul("master address", &opts.master_addr)?;
        let (iface, mode) = match &opts.interface {
            Interface::Name(n) => (nul("interface", n)?, 0),
            Interface::Host(h) => (nul("host", h)?, 1),
            Interface::Default => (CString::default(), 2),
        };
        let mut err: *mut c_char = std::ptr::null_mut();
        // SAFETY: NUL-terminated strings that outlive the call, valid err
        // pointer; the shim returns an owned handle or null with an error.
        let raw = unsafe {
            ffi::forge_c10d_gloo_new(
                addr.as_ptr(),
                c_int::from(opts.master_port),
                opts.rank as c_int,
                world,
                timeout_ms,
                iface.as_ptr(),
                mode,
                &mut err,
            )
        };
        if let Some(detail) = take_error(err) {
            return Err(DistError::Join {
                rank: opts.rank,
                world_size: opts.world_size,
                addr: opts.master_addr.clone(),
                port: opts.master_port,
                detail,
            });
        }
        let handle = Arc::new(Handle(raw));
        let stop = Arc::new(AtomicBool::new(false));
        let beat = {
            let handle = Arc::clone(&handle);
            let stop = Arc::clone(&stop);
            let key = heartbeat_key(opts.rank);
            std::thread::Builder::new()
                .name("forge-dist-heartbeat".into())
                .spawn(move || {
                    while !stop.load(Ordering::Relaxed) {
                        // A failure here means the store is gone; the next
                        // collective reports it.
                        let _ = handle.store_add(&key, 1);
                        std::thread::sleep(HEARTBEAT);
                    }
                })
                .map_err(|e| {
                    DistError::Invalid(format!("cannot start the heartbeat thread: {e}"))
                })?
        };
        Ok(ProcessGroup {
            handle,
            rank: opts.rank,
            world_size: opts.world_size,
            stop,
            heartbeat: Some(beat),
        })
    }

    /// This process's rank.
    pub fn rank(&self) -> usize {
        self.rank
    }

    /// Number of processes in the group.
    pub fn world_size(&self) -> usize {
        self.world_size
    }

    /// Turns a shim error into [`DistError::Collective`], naming the ranks
    /// whose heartbeat stopped (see the module docs).
    fn check(&self, op: &'static str, err: *mut c_char) -> Result<(), DistError> {
        let Some(detail) = take_error(err) else {
            return Ok(());
        };
        Err(DistError::Collective {
            rank: self.rank,
            world_size: self.world_size,
            op,
            cause: self.blame(),
            detail,
        })
    }

    fn blame(&self) -> String {
        let others: Vec<usize> = (0..self.world_size).filter(|&r| r != self.rank).collect();
        let read = |h: &Handle| -> Result<Vec<i64>, String> {
            others
                .iter()
                .map(|&r| h.store_add(&heartbeat_key(r), 0))
                .collect()
        };
        let Ok(before) = read(&self.handle) else {
            return " because rank 0, which hosts the store, is unreachable".into();
        };
        std::thread::sleep(STALE_AFTER);
        let Ok(after) = read(&self.handle) else {
            return " because rank 0, which hosts the store, is unreachable".into();
        };
        let stale: Vec<String> = others
            .iter()
            .zip(before.iter().zip(&after))
            .filter(|(_, (b, a))| a == b)
            .map(|(r, _)| r.to_string())
            .collect();
        match stale.len() {
            0 => String::new(),
            1 => format!(
                " because rank {} stopped (no heartbeat for {STALE_AFTER:?})",
                stale[0]
            ),
            _ => format!(
                " because ranks {} stopped (no heartbeat for {STALE_AFTER:?})",
                stale.join(", ")
            ),
        }
    }

    fn check_cpu(op: &str, t: &Tensor) -> Result<(), DistError> {
        if t.device() != Device::Cpu {
            return Err(DistError::Invalid(format!(
                "{op}: the Gloo process group takes CPU tensors, got one on {:?}",
                t.device()
            )));
        }
        Ok(())
    }

    fn check_flat(op: &str, t: &Tensor) -> Result<(), DistError> {
        Self::check_cpu(op, t)?;
        if t.dim() != 1 {
            return Err(DistError::Invalid(format!(
                "{op}: takes a flat (1-D) tensor, got shape {:?}",
                t.size()
            )));
        }
        Ok(())
    }

    /// Sums a flat CPU tensor over all ranks, in place.
    pub fn allreduce_sum_(&self, t: &mut Tensor) -> Result<(), DistError> {
        Self::check_flat("allreduce", t)?;
        let flat = t.contiguous();
        // SAFETY: live handle; `flat` is a valid tensor for the call.
        let err = unsafe { ffi::forge_c10d_allreduce_sum(self.handle.0, flat.as_ptr().cast()) };
        self.check("allreduce", err)?;
        if flat.data_ptr() != t.data_ptr() {
            tch::no_grad(|| t.copy_(&flat));
        }
        Ok(())
    }

    /// Replaces every tensor by its mean over all ranks (gradient averaging),
    /// through flat buckets.
    pub fn allreduce_mean_(&self, tensors: &mut [Tensor]) -> Result<(), DistError> {
        let world = self.world_size as f64;
        self.bucketed("allreduce", tensors, |flat| {
            // SAFETY: live handle; `flat` is a valid tensor for the call.
            let err = unsafe { ffi::forge_c10d_allreduce_sum(self.handle.0, flat.as_ptr().cast()) };
            self.check("allreduce", err)?;
            if flat.is_floating_point() {
                let _ = flat.g_div_scalar_(world);
            } else {
                let _ = flat.floor_divide_scalar_(self.world_size as i64);
            }
            Ok(())
        })
    }

    /// Copies every tensor of rank `root` to the other ranks, in place,
    /// through flat buckets.
    pub fn broadcast_(&self, tensors: &mut [Tensor], root: usize) -> Result<(), DistError> {
        if root >= self.world_size {
            return Err(DistError::Invalid(format!(
                "broadcast: root rank {root} is not below the world size {}",
                self.world_size
            )));
        }
        self.bucketed("broadcast", tensors, |flat| {
            // SAFETY: live handle; `flat` is a valid tensor for the call.
            let err = unsafe {
                ffi::forge_c10d_broadcast(self.handle.0, flat.as_ptr().cast(), root as c_int)
            };
            self.check("broadcast", err)
        })
    }

    /// Runs `op` on flat buckets of `tensors` (one dtype per bucket, at
    /// most [`BUCKET_BYTES`] unless one tensor is larger) and copies each
    /// bucket back into its tensors.
    fn bucketed(
        &self,
        op: &str,
        tensors: &mut [Tensor],
        mut run: impl FnMut(&mut Tensor) -> Result<(), DistError>,
    ) -> Result<(), DistError> {
        for t in tensors.iter() {
            Self::check_cpu(op, t)?;
        }
        for bucket in buckets(tensors) {
            let parts: Vec<Tensor> = bucket
                .iter()
                .map(|&i| tensors[i].detach().reshape([-1]))
                .collect();
            let mut flat = Tensor::cat(&parts, 0);
            run(&mut flat)?;
            let mut offset = 0;
            for &i in &bucket {
                let t = &mut tensors[i];
                let n = t.numel() as i64;
                let part = flat.narrow(0, offset, n).view(t.size().as_slice());
                tch::no_grad(|| t.copy_(&part));
                offset += n;
            }
        }
        Ok(())
    }

    /// Reduce-scatter: `input` (flat, `world_size * n` elements, the same
    /// length on every rank) is summed over ranks and this rank gets its
    /// `n`-element slice (slice `rank`).
    pub fn reduce_scatter_sum(&self, input: &Tensor) -> Result<Tensor, DistError> {
        Self::check_flat("reduce_scatter", input)?;
        let numel = input.numel();
        if !numel.is_multiple_of(self.world_size) {
            return Err(DistError::Invalid(format!(
                "reduce_scatter: {numel} elements do not split over {} ranks; pad to a multiple",
                self.world_size
            )));
        }
        let input = input.contiguous();
        let output = Tensor::zeros(
            [(numel / self.world_size) as i64],
            (input.kind(), Device::Cpu),
        );
        // SAFETY: live handle; both tensors are valid for the call.
        let err = unsafe {
            ffi::forge_c10d_reduce_scatter_sum(
                self.handle.0,
                output.as_ptr().cast(),
                input.as_ptr().cast(),
            )
        };
        self.check("reduce_scatter", err)?;
        Ok(output)
    }

    /// All-gather: every rank's flat `input` (same length everywhere),
    /// concatenated in rank order.
    pub fn all_gather(&self, input: &Tensor) -> Result<Tensor, DistError> {
        Self::check_flat("all_gather", input)?;
        let input = input.contiguous();
        let n = input.numel() * self.world_size;
        let output = Tensor::zeros([n as i64], (input.kind(), Device::Cpu));
        // SAFETY: live handle; both tensors are valid for the call.
        let err = unsafe {
            ffi::forge_c10d_all_gather(self.handle.0, output.as_ptr().cast(), input.as_ptr().cast())
        };
        self.check("all_gather", err)?;
        Ok(output)
    }

    /// Waits until every rank reaches the barrier.
    pub fn barrier(&self) -> Result<(), DistError> {
        // SAFETY: live handle.
        let err = unsafe { ffi::forge_c10d_barrier(self.handle.0) };
        self.check("barrier", err)
    }
}

/// Indices of `tensors` grouped into buckets: one dtype per bucket, in first
/// appearance order, cut when adding a tensor would pass [`BUCKET_BYTES`].
fn buckets(tensors: &[Tensor]) -> Vec<Vec<usize>> {
    let mut kinds: Vec<Kind> = Vec::new();
    for t in tensors {
        if !kinds.contains(&t.kind()) {
            kinds.push(t.kind());
        }
    }
    let mut out = Vec::new();
    for kind in kinds {
        let mut cur: Vec<usize> = Vec::new();
        let mut bytes = 0usize;
        for (i, t) in tensors.iter().enumerate().filter(|(_, t)| t.kind() == kind) {
            let b = t.numel() * kind.elt_size_in_bytes();
            if !cur.is_empty() && bytes + b > BUCKET_BYTES {
                out.push(std::mem::take(&mut cur));
                bytes = 0;
            }
            cur.push(i);
            bytes += b;
        }
        if !cur.is_empty() {
            out.push(cur);
        }
    }
    out
}

#[cfg(test)]
mod tests;
