//! The pieces of a training step that the shared loop ([`super::fit`])
//! is built from, and so pretraining and fine-tuning share:
//!
//! - when an accumulation window ends ([`window_ends`]): every
//!   `gradient_accumulation` batches, and at the last batch of an epoch
//!   whatever the window holds (as Lightning does: a partial window is
//!   stepped, not carried into the next epoch);
//! - one optimizer step over the accumulated gradients of one or more
//!   optimizers ([`optimizer_step`]): unscale (16-mixed), clip jointly,
//!   step each at its learning rate, zero the gradients;
//! - the error for a loss that is not a number ([`non_finite_loss`]);
//! - the progress bar ([`progress_bar`]).

use super::optim::{Optimizer, clip_grad_norm_joint};
use forge_core::precision::LossScaler;

/// Whether an optimizer step is due after `batches_done` batches of an
/// epoch, with `accumulation` batches per step, when `last_in_epoch` says
/// the batch just consumed was the epoch's last.
pub(crate) fn window_ends(batches_done: usize, accumulation: usize, last_in_epoch: bool) -> bool {
    batches_done.is_multiple_of(accumulation.max(1)) || last_in_epoch
}

/// One optimizer step over the gradients accumulated in `optimizers`, each
/// paired with the learning rate of this step. The gradients of all of
/// them are clipped together to `clip` (global norm). Under 16-mixed a step
/// whose gradients overflowed is skipped (the scale backs off), as
/// GradScaler does. Gradients are zeroed either way. Returns the global
/// gradient norm before clipping, or `None` when the step was skipped.
pub(crate) fn optimizer_step(
    scaler: &mut LossScaler,
    optimizers: &mut [(&mut Optimizer, f64)],
    clip: f64,
) -> Option<f64> {
    let grads: Vec<_> = optimizers.iter().flat_map(|(o, _)| o.grads()).collect();
    let finite = scaler.unscale_and_update(&grads);
    let norm = finite.then(|| {
        let mut all: Vec<&mut Optimizer> = optimizers.iter_mut().map(|(o, _)| &mut **o).collect();
        clip_grad_norm_joint(&mut all, clip)
    });
    for (optimizer, lr) in optimizers.iter_mut() {
        if finite {
            optimizer.step(*lr);
        }
        optimizer.zero_grad();
    }
    norm
}

/// The progress bar of a training loop: `len` batches per epoch, or a
/// spinner when the count is unknown.
pub(crate) fn progress_bar(len: Option<usize>) -> indicatif::ProgressBar {
    let pb = match len {
        Some(n) => indicatif::ProgressBar::new(n as u64),
        None => indicatif::ProgressBar::new_spinner(),
    };
    pb.set_style(
        indicatif::ProgressStyle::with_template(
            "{msg} [{bar:30}] {pos}/{len} batches, {elapsed_precise} elapsed, eta {eta}",
        )
        .expect("valid template")
        .progress_chars("=> "),
    );
    pb
}

/// The error for a non-finite loss on `batch`: when the batch has labels
/// and none is a labelled position, a mean over nothing; else a loss that
/// diverged.
pub(crate) fn non_finite_loss(
    batch: &forge_core::Batch,
    value: f64,
    step: i64,
    epoch: usize,
) -> forge_core::error::ForgeError {
    let labelled = batch.labels().map(|l| {
        l.ne(forge_core::batch::special::IGNORE_INDEX)
            .sum(tch::Kind::Int64)
            .int64_value(&[])
    });
    if labelled == Some(0) {
        forge_core::error::ForgeError::NoLabelledPosition { step, epoch }
    } else {
        forge_core::error::ForgeError::NonFiniteLoss { value, step, epoch }
    }
}
