//! Numeric precision of a forward pass (`training.precision`), as PyTorch
//! Lightning runs it.
//!
//! - `bf16-mixed` runs the forward pass under libtorch's autocast with
//!   bfloat16 as the reduced type, on the CPU as on CUDA (Lightning uses
//!   `torch.autocast("cpu", dtype=torch.bfloat16)` on the CPU): matmuls,
//!   linear layers and attention (forge's packed attention and masked head
//!   included, since they run through the same libtorch operators) compute
//!   in bfloat16; the residual stream, LayerNorm, the softmax inside
//!   attention (fp32 accumulation), the loss and every reduction stay in
//!   float32; weights, gradients and the optimizer state stay float32.
//! - `16-mixed` is the same with float16, plus dynamic loss scaling
//!   ([`LossScaler`], as `torch.amp.GradScaler`): float16's narrow range
//!   underflows small gradients and overflows large ones without it.
//! - `32-true` is plain float32. `64-true` runs as float32 (a note says so).
//!   `bf16-true` and `16-true` (every weight in the reduced type) are
//!   refused for training by [`check`], naming the mixed variant instead.
//!
//! Whether the reduced type is fast on a CPU depends on its matrix units
//! ([`CpuMatrixUnits`]): bfloat16 needs AMX-BF16 or AVX512-BF16, float16
//! AMX-FP16 or AVX512-FP16. Without them the results are the same and the
//! speed is not; [`check`] says so.

use tch::{Device, Kind, Tensor};

use crate::config::{ConfigErrors, Precision};
use crate::error::{ForgeError, Result};

unsafe extern "C" {
    fn forge_autocast_enter(cuda: i32, bf16: i32) -> i32;
    fn forge_autocast_exit(cuda: i32, previous: i32) -> i32;
    fn forge_autocast_state(cuda: i32) -> i32;
}

/// The reduced type autocast computes matmuls in, for `precision` on
/// `device`; `None` when the pass runs in plain float32 (no autocast).
pub fn autocast_kind(precision: Precision, device: Device) -> Option<Kind> {
    if !matches!(device, Device::Cpu | Device::Cuda(_)) {
        return None;
    }
    match precision {
        Precision::Bf16Mixed => Some(Kind::BFloat16),
        Precision::Fp16Mixed => Some(Kind::Half),
        _ => None,
    }
}

/// Autocast switched on for one device until dropped (also when the
/// closure it guards panics).
struct AutocastGuard {
    cuda: i32,
    previous: i32,
}

impl AutocastGuard {
    fn enter(device: Device, kind: Kind) -> Self {
        let cuda = i32::from(device.is_cuda());
        let bf16 = i32::from(kind == Kind::BFloat16);
        // SAFETY: a plain call into libtorch's thread-local autocast state;
        // the guard's Drop undoes it.
        let previous = unsafe { forge_autocast_enter(cuda, bf16) };
        assert!(previous >= 0, "libtorch refused to switch autocast on");
        AutocastGuard { cuda, previous }
    }
}

impl Drop for AutocastGuard {
    fn drop(&mut self) {
        // SAFETY: undoes exactly the `forge_autocast_enter` of `enter`.
        let rc = unsafe { forge_autocast_exit(self.cuda, self.previous) };
        debug_assert_eq!(rc, 0, "libtorch refused to restore autocast");
    }
}

/// Whether autocast is on for `device` in this thread, and its reduced type.
pub fn autocast_state(device: Device) -> (bool, Kind) {
    // SAFETY: reads libtorch's thread-local autocast state.
    let state = unsafe { forge_autocast_state(i32::from(device.is_cuda())) };
    let kind = match state & 3 {
        0 => Kind::Half,
        1 => Kind::BFloat16,
        _ => Kind::Float,
    };
    (state & 4 != 0, kind)
}

/// Runs `f` under the autocast that `precision` asks for on `device` (see
/// the module documentation); the previous autocast state is restored
/// afterwards. Only the forward pass belongs inside: `backward` runs
/// outside, as in PyTorch.
pub fn with_precision<T>(precision: Precision, device: Device, f: impl FnOnce() -> T) -> T {
    match autocast_kind(precision, device) {
        Some(kind) => {
            let _guard = AutocastGuard::enter(device, kind);
            f()
        }
        None => f(),
    }
}

/// Whether `precision` is applied as asked on `device` (else it runs in
/// float32).
pub fn is_supported(precision: Precision, device: Device) -> bool {
    matches!(precision, Precision::Fp32True) || autocast_kind(precision, device).is_some()
}

/// What a CPU offers for reduced-precision matmuls, from the flags of
/// `/proc/cpuinfo` (x86-64 Linux).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct CpuMatrixUnits {
    /// Intel AMX tiles with bfloat16 (`amx_bf16`).
    pub amx_bf16: bool,
    /// AVX-512 bfloat16 dot products (`avx512_bf16`).
    pub avx512_bf16: bool,
    /// Intel AMX tiles with float16 (`amx_fp16`).
    pub amx_fp16: bool,
    /// AVX-512 float16 arithmetic (`avx512_fp16`).
    pub avx512_fp16: bool,
}

impl CpuMatrixUnits {
    /// The units of this machine's CPU; `None` where forge cannot tell
    /// (not x86-64 Linux, or `/proc/cpuinfo` unreadable).
    pub fn detect() -> Option<Self> {
        #[cfg(all(target_os = "linux", target_arch = "x86_64"))]
        {
            std::fs::read_to_string("/proc/cpuinfo")
                .ok()
                .map(|text| Self::from_cpuinfo(&text))
        }
        #[cfg(not(all(target_os = "linux", target_arch = "x86_64")))]
        {
            None
        }
    }

    /// Reads the first `flags` line of a `/proc/cpuinfo` text.
    pub fn from_cpuinfo(text: &str) -> Self {
        let flags: Vec<&str> = text
            .lines()
            .find_map(|line| {
                let (key, value) = line.split_once(':')?;
                (key.trim() == "flags").then_some(value)
            })
            .map(|v| v.split_whitespace().collect())
            .unwrap_or_default();
        let has = |f: &str| flags.contains(&f);
        CpuMatrixUnits {
            amx_bf16: has("amx_bf16"),
            avx512_bf16: has("avx512_bf16"),
            amx_fp16: has("amx_fp16"),
            avx512_fp16: has("avx512_fp16"),
        }
    }

    /// Whether bfloat16 matmuls run on dedicated units.
    pub fn bf16(&self) -> bool {
        self.amx_bf16 || self.avx512_bf16
    }

    /// Whether float16 matmuls run on dedicated units.
    pub fn fp16(&self) -> bool {
        self.amx_fp16 || self.avx512_fp16
    }

    /// The bfloat16 units by name (`AMX-BF16, AVX512-BF16`), or `none`.
    pub fn bf16_names(&self) -> String {
        names(&[
            (self.amx_bf16, "AMX-BF16"),
            (self.avx512_bf16, "AVX512-BF16"),
        ])
    }

    /// The float16 units by name, or `none`.
    pub fn fp16_names(&self) -> String {
        names(&[
            (self.amx_fp16, "AMX-FP16"),
            (self.avx512_fp16, "AVX512-FP16"),
        ])
    }
}

impl CpuMatrixUnits {
    /// One line for `forge doctor`: what `bf16-mixed` gains on a CPU with
    /// `units` (`None`: forge cannot tell).
    pub fn bf16_summary(units: Option<Self>) -> String {
        match units {
            Some(u) if u.bf16() => format!(
                "yes: {} (bf16-mixed runs its matmuls there, several times the fp32 rate)",
                u.bf16_names()
            ),
            Some(_) => "no bfloat16 matrix units (AMX-BF16, AVX512-BF16): bf16-mixed runs \
                        correctly but gains nothing over 32-true"
                .into(),
            None => "unknown (forge reads the CPU flags on x86-64 Linux only): bf16-mixed \
                     runs correctly; whether it is faster than 32-true depends on the CPU"
                .into(),
        }
    }
}

fn names(units: &[(bool, &str)]) -> String {
    let have: Vec<&str> = units.iter().filter(|(h, _)| *h).map(|(_, n)| *n).collect();
    if have.is_empty() {
        "none".into()
    } else {
        have.join(", ")
    }
}

/// Checks that `precision` can train on `device` and returns the notes to
/// print (one line each, `note: ...` or `warning: ...`). `bf16-true` and
/// `16-true` are refused, naming `training.precision` and what to use
/// instead. `units` describes the CPU (`None`: unknown, no speed note).
pub fn check(
    precision: Precision,
    device: Device,
    units: Option<CpuMatrixUnits>,
) -> Result<Vec<String>> {
    let key = "training.precision";
    let mut notes = Vec::new();
    match precision {
        Precision::Bf16True | Precision::Fp16True => {
            let mixed = if precision == Precision::Bf16True {
                Precision::Bf16Mixed
            } else {
                Precision::Fp16Mixed
            };
            return Err(ForgeError::Config(ConfigErrors::single(
                "training",
                key,
                format!(
                    "{precision} (every weight and optimizer state in a 16-bit type) is not \
                     supported for training; use {mixed} (16-bit matmuls, float32 weights) \
                     or 32-true"
                ),
            )));
        }
        Precision::Fp64True => {
            notes.push(format!("note: {key} {precision} runs as 32-bit float"));
        }
        Precision::Bf16Mixed | Precision::Fp16Mixed if !is_supported(precision, device) => {
            notes.push(format!(
                "note: {key} {precision} runs as 32-bit float on {device:?}"
            ));
        }
        Precision::Bf16Mixed if device == Device::Cpu => match units {
            Some(u) if !u.bf16() => notes.push(format!(
                "note: {key} bf16-mixed: this CPU has no bfloat16 matrix units (AMX-BF16 or \
                 AVX512-BF16); bfloat16 runs correctly but no faster than 32-true"
            )),
            _ => {}
        },
        Precision::Fp16Mixed if device == Device::Cpu => match units {
            Some(u) if !u.fp16() => notes.push(format!(
                "warning: {key} 16-mixed: this CPU has no float16 matrix units (AMX-FP16 or \
                 AVX512-FP16); float16 matmuls run in a slow fallback, slower than 32-true{}",
                if u.bf16() {
                    "; bf16-mixed runs on this CPU's bfloat16 units"
                } else {
                    ""
                }
            )),
            _ => {}
        },
        _ => {}
    }
    Ok(notes)
}

/// Dynamic loss scaling for `16-mixed`, as `torch.amp.GradScaler` with its
/// defaults: the loss is multiplied by the scale before `backward` (so
/// small float16 gradients do not underflow), gradients are divided by it
/// before clipping and the optimizer step, and a step whose gradients hold
/// inf or NaN is skipped and halves the scale; 2,000 good steps in a row
/// double it. For every other precision the scale is 1 and nothing is
/// skipped.
#[derive(Debug, Clone, PartialEq)]
pub struct LossScaler {
    enabled: bool,
    scale: f64,
    good_steps: i64,
}

impl LossScaler {
    /// GradScaler's initial scale, 2^16.
    pub const INIT_SCALE: f64 = 65536.0;
    /// Factor on the scale after `GROWTH_INTERVAL` good steps.
    pub const GROWTH_FACTOR: f64 = 2.0;
    /// Factor on the scale after a step with non-finite gradients.
    pub const BACKOFF_FACTOR: f64 = 0.5;
    /// Good steps in a row before the scale grows.
    pub const GROWTH_INTERVAL: i64 = 2000;

    /// Scaling for `precision` on `device`: on for `16-mixed` where it runs
    /// as float16 autocast, off otherwise.
    pub fn new(precision: Precision, device: Device) -> Self {
        let enabled = autocast_kind(precision, device) == Some(Kind::Half);
        LossScaler {
            enabled,
            scale: if enabled { Self::INIT_SCALE } else { 1.0 },
            good_steps: 0,
        }
    }

    /// Whether gradients are scaled.
    pub fn enabled(&self) -> bool {
        self.enabled
    }

    /// The current scale (1 when disabled).
    pub fn scale(&self) -> f64 {
        self.scale
    }

    /// `loss` times the current scale, to call `backward` on.
    pub fn scale_loss(&self, loss: &Tensor) -> Tensor {
        if self.enabled {
            loss * self.scale
        } else {
            loss.shallow_clone()
        }
    }

    /// Divides `grads` by the scale in place and updates the scale; returns
    /// whether the optimizer may step (false: some gradient held inf or NaN,
    /// the step must be skipped and the gradients zeroed).
    pub fn unscale_and_update(&mut self, grads: &[Tensor]) -> bool {
        if !self.enabled {
            return true;
        }
        let inv = 1.0 / self.scale;
        let mut finite = true;
        tch::no_grad(|| {
            for g in grads {
                let mut g = g.shallow_clone();
                let _ = g.g_mul_scalar_(inv);
                finite &= g.isfinite().all().int64_value(&[]) != 0;
            }
        });
        if finite {
            self.good_steps += 1;
            if self.good_steps >= Self::GROWTH_INTERVAL {
                self.scale *= Self::GROWTH_FACTOR;
                self.good_steps = 0;
            }
        } else {
            self.scale *= Self::BACKOFF_FACTOR;
            self.good_steps = 0;
        }
        finite
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn autocast_is_on_inside_and_restored_after_even_when_nested() {
        assert!(!autocast_state(Device::Cpu).0);
        let x = Tensor::randn([4, 8], (Kind::Float, Device::Cpu));
        let w = Tensor::randn([3, 8], (Kind::Float, Device::Cpu));
        let y = with_precision(Precision::Bf16Mixed, Device::Cpu, || {
            assert_eq!(autocast_state(Device::Cpu), (true, Kind::BFloat16));
            let inner = with_precision(Precision::Fp16Mixed, Device::Cpu, || {
                assert_eq!(autocast_state(Device::Cpu), (true, Kind::Half));
                x.linear::<Tensor>(&w, None)
            });
            assert_eq!(inner.kind(), Kind::Half);
            assert_eq!(autocast_state(Device::Cpu), (true, Kind::BFloat16));
            x.linear::<Tensor>(&w, None)
        });
        assert_eq!(y.kind(), Kind::BFloat16);
        assert!(!autocast_state(Device::Cpu).0);
        let plain = with_precision(Precision::Fp32True, Device::Cpu, || {
            x.linear::<Tensor>(&w, None)
        });
        assert_eq!(plain.kind(), Kind::Float);
        // A panic inside leaves autocast off.
        let caught = std::panic::catch_unwind(|| {
            with_precision(Precision::Bf16Mixed, Device::Cpu, || panic!("inside"))
        });
        assert!(caught.is_err());
        assert!(!autocast_state(Device::Cpu).0);
    }

    #[test]
    fn cpuinfo_flags_are_read_from_the_first_flags_line() {
        let text = "processor\t: 0\nflags\t\t: fpu avx512f avx512_bf16 amx_tile\n\
                    processor\t: 1\nflags\t\t: fpu amx_bf16\n";
        let u = CpuMatrixUnits::from_cpuinfo(text);
        assert!(u.avx512_bf16 && !u.amx_bf16 && !u.fp16());
        assert!(u.bf16());
        assert_eq!(u.bf16_names(), "AVX512-BF16");
        assert_eq!(u.fp16_names(), "none");
        let none = CpuMatrixUnits::from_cpuinfo("vendor_id: x\n");
        assert_eq!(none, CpuMatrixUnits::default());
        let all = CpuMatrixUnits::from_cpuinfo("flags: amx_bf16 avx512_bf16 amx_fp16 avx512_fp16");
        assert_eq!(all.bf16_names(), "AMX-BF16, AVX512-BF16");
        assert_eq!(all.fp16_names(), "AMX-FP16, AVX512-FP16");
        let summary = CpuMatrixUnits::bf16_summary;
        assert!(summary(Some(all)).starts_with("yes: AMX-BF16, AVX512-BF16"));
        assert!(summary(Some(none)).contains("gains nothing"));
        assert!(summary(None).starts_with("unknown"));
    }

    #[test]
    fn check_refuses_true_16_bit_and_says_what_a_cpu_gains() {
        let cpu = Device::Cpu;
        for p in [Precision::Bf16True, Precision::Fp16True] {
            let err = check(p, cpu, None).unwrap_err().to_string();
            assert!(err.contains("training.precision"), "{err}");
            assert!(err.contains(p.as_str()) && err.contains("-mixed"), "{err}");
        }
        let bf16_units = CpuMatrixUnits {
            avx512_bf16: true,
            ..Default::default()
        };
        let bare = CpuMatrixUnits::default();
        assert!(
            check(Precision::Bf16Mixed, cpu, Some(bf16_units))
                .unwrap()
                .is_empty()
        );
        assert!(check(Precision::Bf16Mixed, cpu, None).unwrap().is_empty());
        let notes = check(Precision::Bf16Mixed, cpu, Some(bare)).unwrap();
        assert!(
            notes[0].starts_with("note:") && notes[0].contains("no faster"),
            "{notes:?}"
        );
        let notes = check(Precision::Fp16Mixed, cpu, Some(bf16_units)).unwrap();
        assert!(
            notes[0].starts_with("warning:") && notes[0].contains("bf16-mixed"),
            "{notes:?}"
        );
        let notes = check(Precision::Fp16Mixed, cpu, Some(bare)).unwrap();
        assert!(!notes[0].contains("bf16-mixed runs"), "{notes:?}");
        assert!(
            check(Precision::Fp32True, cpu, Some(bare))
                .unwrap()
                .is_empty()
        );
        let notes = check(Precision::Fp64True, cpu, None).unwrap();
        assert!(notes[0].contains("32-bit float"), "{notes:?}");
    }

    #[test]
    fn loss_scaler_skips_non_finite_steps_backs_off_and_grows() {
        let off = LossScaler::new(Precision::Bf16Mixed, Device::Cpu);
        assert!(!off.enabled());
        assert_eq!(off.scale(), 1.0);
        let mut s = LossScaler::new(Precision::Fp16Mixed, Device::Cpu);
        assert!(s.enabled());
        assert_eq!(s.scale(), LossScaler::INIT_SCALE);
        let loss = Tensor::from(2.0f32);
        assert_eq!(
            s.scale_loss(&loss).double_value(&[]),
            2.0 * LossScaler::INIT_SCALE
        );

        let g = Tensor::from_slice(&[65536.0f32, -131072.0]);
        assert!(s.unscale_and_update(&[g.shallow_clone()]));
        assert_eq!(
            Vec::<f32>::try_from(&g).unwrap(),
            [1.0, -2.0],
            "unscaled in place"
        );

        let bad = Tensor::from_slice(&[1.0f32, f32::INFINITY]);
        assert!(!s.unscale_and_update(&[g.shallow_clone(), bad]));
        assert_eq!(s.scale(), LossScaler::INIT_SCALE / 2.0);
        let nan = Tensor::from_slice(&[f32::NAN]);
        assert!(!s.unscale_and_update(&[nan]));
        assert_eq!(s.scale(), LossScaler::INIT_SCALE / 4.0);

        for _ in 0..LossScaler::GROWTH_INTERVAL - 1 {
            assert!(s.unscale_and_update(&[]));
        }
        assert_eq!(s.scale(), LossScaler::INIT_SCALE / 4.0);
        assert!(s.unscale_and_update(&[]));
        assert_eq!(
            s.scale(),
            LossScaler::INIT_SCALE / 2.0,
            "grown after 2000 good steps"
        );
    }

    /// A batch of 6 cells of 6..40 tokens (CLS first), values in (0,1),
    /// about 15% of the genes labelled.
    fn batch() -> crate::Batch {
        tch::manual_seed(11);
        let opts = (Kind::Int64, Device::Cpu);
        let lengths = Tensor::from_slice(&[40i64, 6, 23, 31, 12, 40]);
        let positions = Tensor::arange(40, opts).unsqueeze(0);
        let real = positions.lt_tensor(&lengths.unsqueeze(1));
        let genes = positions.gt(0).logical_and(&real);
        let ids = Tensor::randint_low(4, 200, [6, 40], opts)
            .where_self(&positions.gt(0), &Tensor::from(3i64))
            * real.to_kind(Kind::Int64);
        let uniform = || Tensor::rand([6, 40], (Kind::Float, Device::Cpu));
        let chosen = uniform().lt(0.15).logical_and(&genes);
        crate::Batch::builder(
            ids.where_self(&chosen.logical_not(), &Tensor::from(2i64)),
            real.to_kind(Kind::Int64),
        )
        .values(uniform() * genes.to_kind(Kind::Float))
        .labels(ids.where_self(&chosen, &Tensor::from(-100i64)))
        .build()
        .unwrap()
    }

    #[test]
    fn bf16_mixed_first_loss_and_embeddings_agree_with_fp32() {
        let batch = batch();
        let unlabelled = batch.without_labels();
        for arch in [
            "transformer_encoder",
            "autoregressive_transformer",
            "masked_autoencoder",
        ] {
            tch::manual_seed(3);
            let vs = tch::nn::VarStore::new(Device::Cpu);
            let config = crate::config::ModelConfig {
                architecture: arch.into(),
                vocab_size: Some(200),
                hidden_dim: 64,
                num_layers: 2,
                num_heads: 4,
                max_seq_len: 48,
                dropout: 0.0,
                ..Default::default()
            };
            let model = crate::registry::build(&vs.root(), &config).unwrap();
            let loss = |p| {
                with_precision(p, Device::Cpu, || model.loss(&batch))
                    .unwrap()
                    .double_value(&[])
            };
            let (l32, l16) = (loss(Precision::Fp32True), loss(Precision::Bf16Mixed));
            // bfloat16 keeps 8 bits of mantissa: about 0.4% per rounding.
            let rel = (l16 - l32).abs() / l32.abs();
            assert!(rel < 2e-2, "{arch}: loss bf16 {l16} vs fp32 {l32}");
            assert!(l16 != l32, "{arch}: bf16 ran in float32");
            let encode =
                |p| tch::no_grad(|| with_precision(p, Device::Cpu, || model.encode(&unlabelled)));
            let (e32, e16) = (encode(Precision::Fp32True), encode(Precision::Bf16Mixed));
            assert_eq!(e16.kind(), Kind::Float, "{arch}: pooled in float32");
            let scale = e32.abs().max().double_value(&[]);
            let diff = (&e16 - &e32).abs().max().double_value(&[]) / scale;
            assert!(
                diff < 3e-2,
                "{arch}: embeddings differ by {diff} of {scale}"
            );
            assert!(diff > 0.0, "{arch}: bf16 ran in float32");
        }
    }
}
