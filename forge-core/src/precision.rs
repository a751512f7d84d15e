//! Numeric precision of a forward pass (`training.precision`).
//!
//! On CUDA, `bf16-mixed` and `16-mixed` run the closure under libtorch's
//! autocast with bfloat16 or float16 as the reduced type (weights stay
//! float32). On the CPU every precision runs in float32: CPU autocast brings
//! no speed-up to these models and would change results. The `-true`
//! precisions (all weights in a reduced type) are not supported for
//! training; they run as float32 too, and `forge train` says so.

use tch::Device;

use crate::config::Precision;

unsafe extern "C" {
    fn forge_autocast_set(enabled: i32, bf16: i32) -> i32;
}

/// Runs `f` under the autocast that `precision` asks for on `device`.
pub fn with_precision<T>(precision: Precision, device: Device, f: impl FnOnce() -> T) -> T {
    let bf16 = match (precision, device) {
        (Precision::Bf16Mixed, Device::Cuda(_)) => 1,
        (Precision::Fp16Mixed, Device::Cuda(_)) => 0,
        _ => return f(),
    };
    // SAFETY: plain calls into libtorch's autocast state; enabling and
    // disabling are paired around `f`.
    let previous = unsafe { forge_autocast_set(1, bf16) };
    let out = f();
    unsafe { forge_autocast_set(previous, bf16) };
    out
}

/// Whether `precision` is applied as asked on `device` (else it runs in
/// float32).
pub fn is_supported(precision: Precision, device: Device) -> bool {
    matches!(precision, Precision::Fp32True)
        || (device.is_cuda() && matches!(precision, Precision::Bf16Mixed | Precision::Fp16Mixed))
}
