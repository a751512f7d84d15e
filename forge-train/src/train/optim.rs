//! Optimizers over a model's named parameters: AdamW (scModelForge's
//! default, with no weight decay on biases and LayerNorm weights), Adam and
//! SGD, plus global gradient-norm clipping.
//!
//! forge keeps its own optimizer rather than tch's so that its state (the
//! moment estimates and step count) can be written into a checkpoint and
//! restored exactly by `resume_from`.

use tch::{Kind, Tensor};

use forge_core::config::{OptimizerConfig, OptimizerName};

/// Adam's beta1, beta2 and epsilon (PyTorch defaults).
const BETAS: (f64, f64) = (0.9, 0.999);
const EPS: f64 = 1e-8;

/// Whether a parameter gets weight decay: not biases, not LayerNorm weights
/// (`layer_norm.*`, `norm1.*`, `norm2.*`, `norm.*`), not 1-D tensors.
pub fn decays(name: &str, param: &Tensor) -> bool {
    let is_norm = name.split('.').any(|part| {
        part == "layer_norm"
            || part
                .strip_prefix("norm")
                .is_some_and(|digits| digits.chars().all(|c| c.is_ascii_digit()))
    });
    !(name.ends_with("bias") || is_norm || param.dim() < 2)
}

/// The update of one parameter (or a slice of one: the rule is
/// element-wise, which lets a sharded optimizer step a slice with exactly
/// the arithmetic of [`Optimizer::step`]).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Rule {
    pub kind: OptimizerName,
    pub weight_decay: f64,
    /// Whether this parameter decays ([`decays`]).
    pub decay: bool,
    pub lr: f64,
    /// The update's number (1 for the first).
    pub step: i64,
}

impl Rule {
    /// Updates `p` in place from `grad`, creating the moments at the first
    /// Adam update. Call without gradient tracking.
    pub fn apply(
        &self,
        p: &mut Tensor,
        grad: Tensor,
        exp_avg: &mut Option<Tensor>,
        exp_avg_sq: &mut Option<Tensor>,
    ) {
        let (b1, b2) = BETAS;
        let (kind, wd, lr) = (self.kind, self.weight_decay, self.lr);
        let t = self.step as f64;
        match kind {
            OptimizerName::Sgd => {
                if wd > 0.0 && self.decay {
                    let _ = p.g_add_(&(&*p * (-lr * wd)));
                }
                let _ = p.g_add_(&(grad * (-lr)));
            }
            OptimizerName::Adam | OptimizerName::Adamw => {
                let grad = if kind == OptimizerName::Adam && wd > 0.0 && self.decay {
                    grad + &*p * wd
                } else {
                    grad
                };
                if kind == OptimizerName::Adamw && wd > 0.0 && self.decay {
                    let _ = p.g_mul_scalar_(1.0 - lr * wd);
                }
                let m = exp_avg.get_or_insert_with(|| p.zeros_like());
                let v = exp_avg_sq.get_or_insert_with(|| p.zeros_like());
                let _ = m.g_mul_scalar_(b1).g_add_(&(&grad * (1.0 - b1)));
                let _ = v.g_mul_scalar_(b2).g_add_(&(grad.square() * (1.0 - b2)));
                let bias1 = 1.0 - b1.powf(t);
                let bias2 = 1.0 - b2.powf(t);
                let denom = (&*v / bias2).sqrt() + EPS;
                let _ = p.g_add_(&(&*m / denom * (-lr / bias1)));
            }
        }
    }
}

/// One parameter under optimization.
#[derive(Debug)]
struct Slot {
    name: String,
    param: Tensor,
    decay: bool,
    exp_avg: Option<Tensor>,
    exp_avg_sq: Option<Tensor>,
}

/// An optimizer over named parameters.
#[derive(Debug)]
pub struct Optimizer {
    kind: OptimizerName,
    weight_decay: f64,
    slots: Vec<Slot>,
    step: i64,
}

impl Optimizer {
    /// Optimizes the trainable (`requires_grad`) tensors among `params`.
    pub fn new(config: &OptimizerConfig, params: Vec<(String, Tensor)>) -> Self {
        let slots = params
            .into_iter()
            .filter(|(_, p)| p.requires_grad())
            .map(|(name, param)| Slot {
                decay: decays(&name, &param),
                name,
                param,
                exp_avg: None,
                exp_avg_sq: None,
            })
            .collect();
        Optimizer {
            kind: config.name,
            weight_decay: config.weight_decay,
            slots,
            step: 0,
        }
    }

    /// Number of updates taken.
    pub fn steps_taken(&self) -> i64 {
        self.step
    }

    /// Sets every gradient to zero.
    pub fn zero_grad(&mut self) {
        for slot in &mut self.slots {
            let mut g = slot.param.grad();
            if g.defined() {
                let _ = g.zero_();
            }
        }
    }

    /// Scales gradients so their global L2 norm is at most `max_norm`
    /// (PyTorch's `clip_grad_norm_`); returns the norm before clipping.
    /// `max_norm <= 0` only measures.
    pub fn clip_grad_norm(&mut self, max_norm: f64) -> f64 {
        clip_grads(self.grads(), max_norm)
    }

    /// The defined gradients of the parameters under optimization.
    pub fn grads(&self) -> Vec<Tensor> {
        self.slots
            .iter()
            .map(|s| s.param.grad())
            .filter(Tensor::defined)
            .collect()
    }

    /// Which update rule and weight decay this optimizer applies.
    pub(crate) fn rule(&self) -> (OptimizerName, f64) {
        (self.kind, self.weight_decay)
    }

    /// The parameters with a defined gradient, in order: name, parameter,
    /// gradient and whether it decays (a sharded optimizer steps them).
    pub(crate) fn with_grads(&self) -> Vec<(String, Tensor, Tensor, bool)> {
        self.slots
            .iter()
            .filter_map(|s| {
                let g = s.param.grad();
                g.defined()
                    .then(|| (s.name.clone(), s.param.shallow_clone(), g, s.decay))
            })
            .collect()
    }

    /// Takes the moment estimates of parameter `name` out of this
    /// optimizer, when it has any (a sharded optimizer keeps its slice).
    pub(crate) fn take_moments(&mut self, name: &str) -> Option<(Tensor, Tensor)> {
        let s = self.slots.iter_mut().find(|s| s.name == name)?;
        match (s.exp_avg.take(), s.exp_avg_sq.take()) {
            (Some(m), Some(v)) => Some((m, v)),
            _ => None,
        }
    }

    /// Whether this optimizer holds parameter `name`.
    pub(crate) fn holds(&self, name: &str) -> bool {
        self.slots.iter().any(|s| s.name == name)
    }

    /// Replaces the moment estimates of parameter `name` (shaped as it).
    pub(crate) fn set_moments(&mut self, name: &str, m: Tensor, v: Tensor) {
        if let Some(s) = self.slots.iter_mut().find(|s| s.name == name) {
            let shape = s.param.size();
            s.exp_avg = Some(m.view(shape.as_slice()));
            s.exp_avg_sq = Some(v.view(shape.as_slice()));
        }
    }

    /// Counts one update taken elsewhere (a sharded step) and returns the
    /// new count.
    pub(crate) fn count_step(&mut self) -> i64 {
        self.step += 1;
        self.step
    }

    /// One update at learning rate `lr`.
    pub fn step(&mut self, lr: f64) {
        self.step += 1;
        let t = self.step;
        let (kind, wd) = (self.kind, self.weight_decay);
        tch::no_grad(|| {
            for slot in &mut self.slots {
                let grad = slot.param.grad();
                if !grad.defined() {
                    continue;
                }
                let rule = Rule {
                    kind,
                    weight_decay: wd,
                    decay: slot.decay,
                    lr,
                    step: t,
                };
                rule.apply(
                    &mut slot.param,
                    grad,
                    &mut slot.exp_avg,
                    &mut slot.exp_avg_sq,
                );
            }
        });
    }

    /// The optimizer state as named tensors (`exp_avg.<param>`,
    /// `exp_avg_sq.<param>`, `step`), for checkpoints.
    pub fn state(&self) -> Vec<(String, Tensor)> {
        let mut out = vec![("step".to_string(), Tensor::from(self.step))];
        for s in &self.slots {
            if let (Some(m), Some(v)) = (&s.exp_avg, &s.exp_avg_sq) {
                out.push((format!("exp_avg.{}", s.name), m.to_device(tch::Device::Cpu)));
                out.push((
                    format!("exp_avg_sq.{}", s.name),
                    v.to_device(tch::Device::Cpu),
                ));
            }
        }
        out
    }

    /// Restores a state written by [`Optimizer::state`]; moment tensors for
    /// parameters this optimizer does not have are an error.
    pub fn load_state(&mut self, state: &[(String, Tensor)]) -> Result<(), String> {
        for (name, t) in state {
            if name == "step" {
                self.step = t.int64_value(&[]);
                continue;
            }
            let (which, param) = name
                .split_once('.')
                .ok_or_else(|| format!("unexpected optimizer state entry `{name}`"))?;
            let slot = self
                .slots
                .iter_mut()
                .find(|s| s.name == param)
                .ok_or_else(|| format!("optimizer state for unknown parameter `{param}`"))?;
            let t = t.to_device(slot.param.device()).to_kind(slot.param.kind());
            if t.size() != slot.param.size() {
                return Err(format!(
                    "optimizer state `{name}` has shape {:?}, parameter has {:?}",
                    t.size(),
                    slot.param.size()
                ));
            }
            match which {
                "exp_avg" => slot.exp_avg = Some(t),
                "exp_avg_sq" => slot.exp_avg_sq = Some(t),
                _ => return Err(format!("unexpected optimizer state entry `{name}`")),
            }
        }
        Ok(())
    }
}

/// Scales `grads` so their global L2 norm is at most `max_norm`; returns the
/// norm before clipping (`max_norm <= 0` only measures).
fn clip_grads(grads: Vec<Tensor>, max_norm: f64) -> f64 {
    if grads.is_empty() {
        return 0.0;
    }
    let total = Tensor::stack(
        &grads
            .iter()
            .map(|g| g.to_kind(Kind::Float).square().sum(Kind::Float))
            .collect::<Vec<_>>(),
        0,
    )
    .sum(Kind::Float)
    .sqrt()
    .double_value(&[]);
    if max_norm > 0.0 && total > max_norm {
        let scale = max_norm / (total + 1e-6);
        for mut g in grads {
            let _ = g.g_mul_scalar_(scale);
        }
    }
    total
}

/// Global gradient-norm clipping over several optimizers at once (as one
/// `clip_grad_norm_` over all their parameters, e.g. a fine-tuning head and
/// backbone trained at different learning rates); returns the norm before
/// clipping.
pub fn clip_grad_norm_joint(optimizers: &mut [&mut Optimizer], max_norm: f64) -> f64 {
    clip_grads(
        optimizers.iter().flat_map(|o| o.grads()).collect(),
        max_norm,
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use tch::Device;

    fn param(values: &[f32]) -> Tensor {
        Tensor::from_slice(values).set_requires_grad(true)
    }

    #[test]
    fn decay_skips_biases_and_norms() {
        let w = Tensor::zeros([2, 2], (Kind::Float, Device::Cpu));
        let b = Tensor::zeros([2], (Kind::Float, Device::Cpu));
        assert!(decays("encoder.layers.0.linear1.weight", &w));
        assert!(!decays("encoder.layers.0.linear1.bias", &b));
        assert!(!decays("encoder.layers.0.norm1.weight", &b));
        assert!(!decays("embedding.layer_norm.weight", &b));
        assert!(decays("embedding.gene_embedding.weight", &w));
    }

    /// Matches torch.optim.AdamW(lr=0.1, weight_decay=0.01) on f(p) = sum(p^2)
    /// for two steps, computed by hand.
    #[test]
    fn adamw_matches_the_reference_update() {
        // A 2-D leaf, so weight decay applies.
        let p = Tensor::from_slice(&[1.0f32, -2.0])
            .view([1, 2])
            .set_requires_grad(true);
        let config = OptimizerConfig {
            lr: 0.1,
            weight_decay: 0.01,
            ..OptimizerConfig::default()
        };
        let mut opt = Optimizer::new(&config, vec![("w".into(), p.shallow_clone())]);
        for _ in 0..2 {
            opt.zero_grad();
            p.square().sum(Kind::Float).backward();
            opt.step(0.1);
        }
        // Step 1: p *= 0.999; m_hat/sqrt(v_hat) = sign(g) -> p -= 0.1*sign.
        // Step 2: same sign, Adam ratio ~1 again.
        let got: Vec<f32> = Vec::try_from(p.detach().view([-1])).unwrap();
        let mut want = [1.0f64, -2.0];
        let mut m = [0.0f64; 2];
        let mut v = [0.0f64; 2];
        for t in 1..=2 {
            for i in 0..2 {
                let g = 2.0 * want[i];
                want[i] *= 1.0 - 0.1 * 0.01;
                m[i] = 0.9 * m[i] + 0.1 * g;
                v[i] = 0.999 * v[i] + 0.001 * g * g;
                let mh = m[i] / (1.0 - 0.9f64.powi(t));
                let vh = v[i] / (1.0 - 0.999f64.powi(t));
                want[i] -= 0.1 * mh / (vh.sqrt() + 1e-8);
            }
        }
        for i in 0..2 {
            assert!(
                (got[i] as f64 - want[i]).abs() < 1e-5,
                "{got:?} vs {want:?}"
            );
        }
        assert_eq!(opt.steps_taken(), 2);
    }

    #[test]
    fn clipping_scales_to_the_max_norm() {
        let p = param(&[3.0, 4.0]);
        let mut opt = Optimizer::new(
            &OptimizerConfig::default(),
            vec![("w".into(), p.shallow_clone())],
        );
        (&p * &p).sum(Kind::Float).backward(); // grad (6, 8), norm 10
        let norm = opt.clip_grad_norm(1.0);
        assert!((norm - 10.0).abs() < 1e-5);
        let g: Vec<f32> = Vec::try_from(p.grad()).unwrap();
        assert!(
            (g[0] - 0.6).abs() < 1e-4 && (g[1] - 0.8).abs() < 1e-4,
            "{g:?}"
        );
    }

    #[test]
    fn state_round_trips() {
        let p = param(&[1.0, 2.0]);
        let mut opt = Optimizer::new(
            &OptimizerConfig::default(),
            vec![("w".into(), p.shallow_clone())],
        );
        p.square().sum(Kind::Float).backward();
        opt.step(0.01);
        let state = opt.state();
        let q = param(&[1.0, 2.0]);
        let mut fresh = Optimizer::new(&OptimizerConfig::default(), vec![("w".into(), q)]);
        fresh.load_state(&state).unwrap();
        assert_eq!(fresh.steps_taken(), 1);
        assert_eq!(fresh.state().len(), state.len());
        let bad = vec![(
            "exp_avg.nope".to_string(),
            Tensor::zeros([2], (Kind::Float, Device::Cpu)),
        )];
        assert!(fresh.load_state(&bad).unwrap_err().contains("nope"));
    }
}
