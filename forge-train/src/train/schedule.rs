//! Learning-rate schedules, evaluated per optimizer step
//! (`training.scheduler`): cosine with linear warm-up, cosine, linear
//! warm-up then linear decay, or constant when the scheduler is `null`.

use std::f64::consts::PI;

use forge_core::config::{SchedulerConfig, SchedulerName};

/// Learning rate at optimizer step `step` (0-based) for base rate `lr`.
pub fn learning_rate(lr: f64, scheduler: Option<&SchedulerConfig>, step: i64) -> f64 {
    let Some(s) = scheduler else {
        return lr;
    };
    let step = step as f64;
    let warmup = s.warmup_steps.max(0) as f64;
    let total = (s.total_steps.max(1) as f64).max(warmup + 1.0);
    let warm = |step: f64| {
        if warmup > 0.0 {
            lr * (step + 1.0).min(warmup) / warmup
        } else {
            lr
        }
    };
    match s.name {
        SchedulerName::CosineWarmup => {
            if step < warmup {
                warm(step)
            } else {
                let progress = ((step - warmup) / (total - warmup)).clamp(0.0, 1.0);
                lr * 0.5 * (1.0 + (PI * progress).cos())
            }
        }
        SchedulerName::Cosine => {
            let progress = (step / total).clamp(0.0, 1.0);
            lr * 0.5 * (1.0 + (PI * progress).cos())
        }
        SchedulerName::Linear => {
            if step < warmup {
                warm(step)
            } else {
                lr * (1.0 - ((step - warmup) / (total - warmup)).clamp(0.0, 1.0))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sched(name: SchedulerName) -> SchedulerConfig {
        SchedulerConfig {
            name,
            warmup_steps: 10,
            total_steps: 110,
        }
    }

    #[test]
    fn warmup_then_decay() {
        let s = sched(SchedulerName::CosineWarmup);
        assert!((learning_rate(1.0, Some(&s), 0) - 0.1).abs() < 1e-12);
        assert!((learning_rate(1.0, Some(&s), 9) - 1.0).abs() < 1e-12);
        assert!((learning_rate(1.0, Some(&s), 60) - 0.5).abs() < 1e-12);
        assert!(learning_rate(1.0, Some(&s), 110).abs() < 1e-12);
        assert!(
            learning_rate(1.0, Some(&s), 500).abs() < 1e-12,
            "stays at 0 past the end"
        );
        let l = sched(SchedulerName::Linear);
        assert!((learning_rate(1.0, Some(&l), 60) - 0.5).abs() < 1e-12);
        let c = sched(SchedulerName::Cosine);
        assert!((learning_rate(1.0, Some(&c), 0) - 1.0).abs() < 1e-12);
        assert_eq!(learning_rate(0.3, None, 1000), 0.3);
    }
}
