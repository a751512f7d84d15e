// Autocast control that tch does not expose: choosing the reduced dtype
// (bfloat16 for `precision: bf16-mixed`) and switching autocast on and off
// for CUDA. Called from forge-core/src/precision.rs.
#include <ATen/autocast_mode.h>

extern "C" {

// Enables (1) or disables (0) CUDA autocast with the given dtype
// (0 = float16, 1 = bfloat16); returns the previous enabled state.
int forge_autocast_set(int enabled, int bf16) {
  bool previous = at::autocast::is_autocast_enabled(at::kCUDA);
  at::autocast::set_autocast_dtype(at::kCUDA, bf16 ? at::kBFloat16 : at::kHalf);
  at::autocast::set_autocast_enabled(at::kCUDA, enabled != 0);
  if (enabled) {
    at::autocast::increment_nesting();
  } else if (at::autocast::decrement_nesting() == 0) {
    at::autocast::clear_cache();
  }
  return previous ? 1 : 0;
}
}
