//! Data parallel training over the ranks of a distributed launch, on
//! forge-dist's c10d process group: the [`Strategy`] the loop
//! ([`super::fit`]) runs with when `forge train` or `forge finetune` is
//! started by torchrun, Slurm or forge's own launcher.
//!
//! Each rank holds the whole model and trains on its shard of the cells
//! ([`DataParallel::shard`], PyTorch's DistributedSampler), so one
//! optimizer step sees `world_size x batch_size` cells. Before the first
//! batch rank 0's parameters are broadcast; at the end of each
//! accumulation window the gradients are averaged over the ranks in flat
//! buckets (one Gloo allreduce per bucket), then every rank takes the same
//! step. Averaging the per-rank mean losses' gradients equals the
//! gradient of the mean over all cells when every rank's loss averages
//! over as many terms, as with equal batches of a per-cell loss.
//!
//! Collectives run on CPU tensors (Gloo); gradients of a model on a GPU
//! are copied to the CPU for the reduction and back.
//!
//! Errors of the process group (a rank that died or hung, a timeout) come
//! back as [`ForgeError::Distributed`], naming the ranks to blame.

use std::sync::{Arc, Mutex, PoisonError};

use tch::{Device, Kind, Tensor};

use super::fit::Strategy;
use super::optim::{Optimizer, Rule};
use super::step::optimizer_step;
use forge_core::error::{ForgeError, Result};
use forge_core::precision::LossScaler;
use forge_data::Shard;
use forge_dist::{DistError, DistributedContext};

/// Data parallel over the ranks of a [`DistributedContext`]: DDP (every
/// rank keeps the whole optimizer state) or, with
/// [`DataParallel::with_sharded_optimizer`], ZeRO-2.
///
/// ZeRO-2 (`fsdp.sharding_strategy: SHARD_GRAD_OP`): the gradients of all
/// the stepping parameters, flattened in order and padded to a multiple
/// of the world size, are reduce-scattered (summed, then divided by the
/// world size), so rank `r` holds the averaged gradient of the `r`-th
/// slice; the global gradient norm is summed from the slices and clipping
/// scales each slice; each rank steps its slice of the flat parameters with
/// its slice of the optimizer state, by the very rule of
/// [`Optimizer::step`] (element-wise, so a slice steps exactly as the whole
/// would); an all-gather of the slices gives every rank the new
/// parameters. Before a checkpoint the state slices are all-gathered back
/// into the optimizers, so checkpoints have the single-process format and
/// resume in one process or on any number of ranks.
#[derive(Debug)]
pub struct DataParallel {
    ctx: Arc<DistributedContext>,
    /// ZeRO-2's optimizer state slice; `None` for DDP.
    zero: Option<Mutex<ZeroShard>>,
}

/// One rank's slice of a ZeRO-2 optimizer.
#[derive(Debug, Default)]
struct ZeroShard {
    /// The flat layout the slice was cut from: each stepping parameter's
    /// name, shape and element count, in order.
    layout: Vec<(String, Vec<i64>, i64)>,
    /// The pieces of parameters in this rank's slice, in flat order.
    segments: Vec<Segment>,
    /// The optimizers got their full state back for a checkpoint: drop it
    /// at the next step.
    gathered: bool,
}

/// The part of one parameter that falls into this rank's slice.
#[derive(Debug)]
struct Segment {
    /// Index of the optimizer (in the step's list) holding it.
    optimizer: usize,
    /// Whether it decays.
    decay: bool,
    /// Offset of the piece within this rank's slice.
    at: i64,
    /// Elements in the piece.
    len: i64,
    exp_avg: Option<Tensor>,
    exp_avg_sq: Option<Tensor>,
}

fn dist(e: DistError) -> ForgeError {
    ForgeError::Distributed(e.to_string())
}

fn to_cpu(t: &Tensor) -> Tensor {
    t.detach().to_device(Device::Cpu).to_kind(Kind::Float)
}

impl DataParallel {
    /// DDP over `ctx`'s ranks (one rank: a no-op strategy).
    pub fn new(ctx: Arc<DistributedContext>) -> DataParallel {
        DataParallel { ctx, zero: None }
    }

    /// ZeRO-2 instead of DDP: the optimizer state is sharded over the
    /// ranks (see the type's docs).
    pub fn with_sharded_optimizer(mut self) -> DataParallel {
        self.zero = Some(Mutex::new(ZeroShard::default()));
        self
    }

    /// Whether the optimizer state is sharded (ZeRO-2).
    pub fn shards_optimizer(&self) -> bool {
        self.zero.is_some()
    }

    /// The context.
    pub fn context(&self) -> &DistributedContext {
        &self.ctx
    }

    /// Rank 0.
    pub fn is_main(&self) -> bool {
        self.ctx.is_main()
    }

    /// This rank's share of a training set (DistributedSampler: padded so
    /// every rank gets as many cells).
    pub fn shard(&self) -> Shard {
        Shard {
            rank: self.ctx.rank(),
            world_size: self.ctx.world_size(),
            drop_last: false,
        }
    }

    fn group(&self) -> Result<&forge_dist::ProcessGroup> {
        self.ctx.group().ok_or_else(|| {
            ForgeError::Distributed("ZeRO-2 needs a process group of several ranks".into())
        })
    }

    /// Runs `op` on CPU views of `tensors` and copies the results back to
    /// those that live elsewhere (a GPU).
    fn on_cpu(
        &self,
        tensors: &[Tensor],
        op: impl FnOnce(&mut [Tensor]) -> std::result::Result<(), DistError>,
    ) -> Result<()> {
        let mut cpu: Vec<Tensor> = tensors
            .iter()
            .map(|t| {
                if t.device() == Device::Cpu {
                    t.shallow_clone()
                } else {
                    t.detach().to_device(Device::Cpu)
                }
            })
            .collect();
        op(&mut cpu).map_err(dist)?;
        for (t, c) in tensors.iter().zip(&cpu) {
            if t.device() != Device::Cpu {
                let mut t = t.shallow_clone();
                tch::no_grad(|| t.copy_(c));
            }
        }
        Ok(())
    }

    /// Elements per rank's slice of `total` flat elements.
    fn slice_len(&self, total: i64) -> i64 {
        let w = self.ctx.world_size() as i64;
        (total + w - 1) / w
    }

    /// Cuts this rank's slice of `layout` (entries: optimizer index, name,
    /// decay, element count) into segments, taking their moments out of
    /// the optimizers when they have some (a resumed run).
    fn cut(
        &self,
        entries: &[(usize, String, bool, i64)],
        optimizers: &mut [(&mut Optimizer, f64)],
    ) -> Vec<Segment> {
        let total: i64 = entries.iter().map(|e| e.3).sum();
        let n = self.slice_len(total);
        let (lo, hi) = (self.ctx.rank() as i64 * n, (self.ctx.rank() as i64 + 1) * n);
        let mut segments = Vec::new();
        let mut offset = 0i64;
        for (opt, name, decay, numel) in entries {
            let (start, end) = (offset.max(lo), (offset + numel).min(hi));
            let moments = optimizers[*opt].0.take_moments(name);
            if start < end {
                let piece = |t: &Tensor| {
                    to_cpu(t)
                        .reshape([-1])
                        .narrow(0, start - offset, end - start)
                        .copy()
                };
                segments.push(Segment {
                    optimizer: *opt,
                    decay: *decay,
                    at: start - lo,
                    len: end - start,
                    exp_avg: moments.as_ref().map(|(m, _)| piece(m)),
                    exp_avg_sq: moments.as_ref().map(|(_, v)| piece(v)),
                });
            }
            offset += numel;
        }
        segments
    }

    /// ZeRO-2's step (see the type's docs).
    fn sharded_step(
        &self,
        shard: &mut ZeroShard,
        scaler: &LossScaler,
        optimizers: &mut [(&mut Optimizer, f64)],
        clip: f64,
    ) -> Result<Option<f64>> {
        if scaler.enabled() {
            return Err(ForgeError::Distributed(
                "training.precision 16-mixed (loss scaling) is not supported with                  fsdp.sharding_strategy SHARD_GRAD_OP; use bf16-mixed or 32, or NO_SHARD"
                    .into(),
            ));
        }
        let group = self.group()?;
        let world = self.ctx.world_size() as i64;
        let mut params = Vec::new();
        let mut grads = Vec::new();
        let mut entries = Vec::new();
        for (i, (o, _)) in optimizers.iter().enumerate() {
            for (name, p, g, decay) in o.with_grads() {
                entries.push((i, name, decay, p.numel() as i64));
                params.push(p);
                grads.push(g);
            }
        }
        let layout: Vec<(String, Vec<i64>, i64)> = entries
            .iter()
            .zip(&params)
            .map(|((_, name, _, n), p)| (name.clone(), p.size(), *n))
            .collect();
        if shard.layout != layout {
            // A new set of stepping parameters (the first step, a backbone
            // unfrozen): the old slice's state goes back first.
            if !shard.layout.is_empty() {
                let mut opts: Vec<&mut Optimizer> =
                    optimizers.iter_mut().map(|(o, _)| &mut **o).collect();
                self.gather_into(shard, &mut opts)?;
            }
            shard.segments = self.cut(&entries, optimizers);
            shard.layout = layout;
            shard.gathered = false;
        } else if shard.gathered {
            for (o, _) in optimizers.iter_mut() {
                for (name, _, _) in &shard.layout {
                    o.take_moments(name);
                }
            }
            shard.gathered = false;
        }
        let total: i64 = shard.layout.iter().map(|e| e.2).sum();
        let n = self.slice_len(total);
        let pad = |flat: Vec<Tensor>| {
            let mut parts = flat;
            parts.push(Tensor::zeros(
                [n * world - total],
                (Kind::Float, Device::Cpu),
            ));
            Tensor::cat(&parts, 0)
        };
        let flat_grads = pad(grads.iter().map(|g| to_cpu(g).reshape([-1])).collect());
        let mut slice_grad = group.reduce_scatter_sum(&flat_grads).map_err(dist)? / world as f64;
        let sumsq = slice_grad.square().sum(Kind::Float).double_value(&[]);
        let norm = self.sum(&[sumsq])?[0].sqrt();
        if clip > 0.0 && norm > clip {
            let _ = slice_grad.g_mul_scalar_(clip / (norm + 1e-6));
        }
        let flat_params = pad(params.iter().map(|p| to_cpu(p).reshape([-1])).collect());
        let slice = flat_params.narrow(0, self.ctx.rank() as i64 * n, n).copy();
        let steps: Vec<i64> = optimizers.iter_mut().map(|(o, _)| o.count_step()).collect();
        tch::no_grad(|| {
            for seg in &mut shard.segments {
                let (opt, lr) = &optimizers[seg.optimizer];
                let (kind, weight_decay) = opt.rule();
                let rule = Rule {
                    kind,
                    weight_decay,
                    decay: seg.decay,
                    lr: *lr,
                    step: steps[seg.optimizer],
                };
                let mut p = slice.narrow(0, seg.at, seg.len);
                let g = slice_grad.narrow(0, seg.at, seg.len);
                rule.apply(&mut p, g, &mut seg.exp_avg, &mut seg.exp_avg_sq);
            }
        });
        let full = group.all_gather(&slice).map_err(dist)?;
        let mut offset = 0;
        tch::no_grad(|| {
            for p in &params {
                let n = p.numel() as i64;
                let new = full
                    .narrow(0, offset, n)
                    .view(p.size().as_slice())
                    .to_device(p.device())
                    .to_kind(p.kind());
                p.shallow_clone().copy_(&new);
                offset += n;
            }
        });
        for (o, _) in optimizers.iter_mut() {
            o.zero_grad();
        }
        Ok(Some(norm))
    }

    /// All-gathers the state slices of `shard` into the optimizers holding
    /// its parameters (by name).
    fn gather_into(&self, shard: &mut ZeroShard, optimizers: &mut [&mut Optimizer]) -> Result<()> {
        let group = self.group()?;
        let total: i64 = shard.layout.iter().map(|e| e.2).sum();
        let n = self.slice_len(total);
        let slice = |which: fn(&Segment) -> Option<&Tensor>| {
            let mut parts: Vec<Tensor> = shard
                .segments
                .iter()
                .map(|s| match which(s) {
                    Some(t) => t.shallow_clone(),
                    None => Tensor::zeros([s.len], (Kind::Float, Device::Cpu)),
                })
                .collect();
            let used: i64 = shard.segments.iter().map(|s| s.len).sum();
            parts.push(Tensor::zeros([n - used], (Kind::Float, Device::Cpu)));
            Tensor::cat(&parts, 0)
        };
        let m = group
            .all_gather(&slice(|s| s.exp_avg.as_ref()))
            .map_err(dist)?;
        let v = group
            .all_gather(&slice(|s| s.exp_avg_sq.as_ref()))
            .map_err(dist)?;
        let mut offset = 0;
        for (name, shape, numel) in &shard.layout {
            if let Some(o) = optimizers
                .iter_mut()
                .find(|o| o.holds(name) && o.steps_taken() > 0)
            {
                let part = |t: &Tensor| t.narrow(0, offset, *numel).view(shape.as_slice()).copy();
                o.set_moments(name, part(&m), part(&v));
            }
            offset += numel;
        }
        shard.gathered = true;
        Ok(())
    }
}

impl Strategy for DataParallel {
    fn reduce_gradients(&self, grads: &[Tensor]) -> Result<()> {
        if self.ctx.world_size() == 1 {
            return Ok(());
        }
        self.on_cpu(grads, |g| self.ctx.allreduce_mean_(g))
    }

    fn saves_checkpoints(&self) -> bool {
        self.ctx.is_main()
    }

    fn world_size(&self) -> usize {
        self.ctx.world_size()
    }

    fn broadcast_parameters(&self, params: &[Tensor]) -> Result<()> {
        if self.ctx.world_size() == 1 {
            return Ok(());
        }
        self.on_cpu(params, |p| self.ctx.broadcast_from_main_(p))
    }

    fn sum(&self, values: &[f64]) -> Result<Vec<f64>> {
        let Some(group) = self.ctx.group() else {
            return Ok(values.to_vec());
        };
        let mut t = Tensor::from_slice(values).to_kind(Kind::Double);
        group.allreduce_sum_(&mut t).map_err(dist)?;
        Vec::<f64>::try_from(&t).map_err(ForgeError::from)
    }

    fn optimizer_step(
        &self,
        scaler: &mut LossScaler,
        optimizers: &mut [(&mut Optimizer, f64)],
        clip: f64,
    ) -> Result<Option<f64>> {
        match (&self.zero, self.ctx.world_size()) {
            (Some(shard), 2..) => self.sharded_step(
                &mut shard.lock().unwrap_or_else(PoisonError::into_inner),
                scaler,
                optimizers,
                clip,
            ),
            _ => {
                let grads: Vec<Tensor> = optimizers.iter().flat_map(|(o, _)| o.grads()).collect();
                self.reduce_gradients(&grads)?;
                Ok(optimizer_step(scaler, optimizers, clip))
            }
        }
    }

    fn gather_optimizer_state(&self, optimizers: &mut [&mut Optimizer]) -> Result<()> {
        match &self.zero {
            Some(shard) if self.ctx.world_size() > 1 => {
                let mut shard = shard.lock().unwrap_or_else(PoisonError::into_inner);
                if shard.layout.is_empty() {
                    return Ok(());
                }
                self.gather_into(&mut shard, optimizers)
            }
            _ => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests;
