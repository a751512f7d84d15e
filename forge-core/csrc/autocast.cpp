// Autocast control that tch does not expose: choosing the reduced dtype
// (bfloat16 for `precision: bf16-mixed`, float16 for `16-mixed`) and
// switching autocast on and off, on the CPU or on CUDA. Called from
// forge-core/src/precision.rs, which pairs every enter with an exit.
#include <ATen/autocast_mode.h>

namespace {

at::DeviceType device_of(int cuda) { return cuda ? at::kCUDA : at::kCPU; }

// 0 = float16, 1 = bfloat16, 2 = any other dtype (float32 when autocast
// was never configured on that device).
int code_of(at::ScalarType t) {
  if (t == at::kHalf) return 0;
  if (t == at::kBFloat16) return 1;
  return 2;
}

at::ScalarType dtype_of(int code, at::ScalarType other) {
  if (code == 0) return at::kHalf;
  if (code == 1) return at::kBFloat16;
  return other;
}

}  // namespace

extern "C" {

// Enables autocast on the CPU (cuda = 0) or on CUDA (cuda = 1) with the
// given reduced dtype (0 = float16, 1 = bfloat16). Returns the previous
// state as enabled * 4 + dtype code, for `forge_autocast_exit`; -1 when
// libtorch threw.
int forge_autocast_enter(int cuda, int bf16) {
  try {
    at::DeviceType device = device_of(cuda);
    int previous = (at::autocast::is_autocast_enabled(device) ? 4 : 0) +
                   code_of(at::autocast::get_autocast_dtype(device));
    at::autocast::set_autocast_dtype(device, bf16 ? at::kBFloat16 : at::kHalf);
    at::autocast::set_autocast_enabled(device, true);
    at::autocast::increment_nesting();
    return previous;
  } catch (...) {
    return -1;
  }
}

// Undoes one `forge_autocast_enter` on the same device: restores the state
// it returned and, when this was the outermost autocast region, drops the
// cache of weights cast to the reduced dtype. Returns 0, or -1 when libtorch
// threw.
int forge_autocast_exit(int cuda, int previous) {
  try {
    at::DeviceType device = device_of(cuda);
    if (at::autocast::decrement_nesting() == 0) {
      at::autocast::clear_cache();
    }
    at::ScalarType current = at::autocast::get_autocast_dtype(device);
    at::autocast::set_autocast_dtype(device, dtype_of(previous & 3, current));
    at::autocast::set_autocast_enabled(device, (previous & 4) != 0);
    return 0;
  } catch (...) {
    return -1;
  }
}

// Whether autocast is enabled on the device, and its dtype code (for tests):
// enabled * 4 + dtype code.
int forge_autocast_state(int cuda) {
  at::DeviceType device = device_of(cuda);
  return (at::autocast::is_autocast_enabled(device) ? 4 : 0) +
         code_of(at::autocast::get_autocast_dtype(device));
}
}
