//! LoRA adapters for any model, through its named parameters only.
//!
//! Every backbone parameter named `...<target>.weight` (for `target` in
//! `finetune.lora.target_modules`, default `out_proj`, `linear1`,
//! `linear2`) that is 2-D `(out, in)` gets a low-rank update: trainable
//! `A (rank, in)` (kaiming-uniform, as PEFT) and `B (out, rank)` (zeros),
//! scaled by `alpha / rank`, over a frozen copy `W0` of the weight.
//!
//! The model is not rewritten: before each forward pass
//! [`Lora::merge`] writes `W0 + scale·B·A` into the model's own weight
//! tensor in place (the model holds a handle to the same storage). The
//! weight keeps `requires_grad`, so backward gives `dL/dW`; as `W` is
//! linear in `A` and `B`, [`Lora::backward`] turns it into the exact
//! `dL/dA = scale·Bᵀ·dL/dW` and `dL/dB = scale·dL/dW·Aᵀ` and clears the
//! weight's gradient. The optimizer holds only `A`, `B`, the head and the
//! biases `lora.bias` names.
//!
//! This is exact LoRA except for `lora.dropout`: PEFT drops the input of
//! the low-rank branch only, which cannot be expressed on a merged weight,
//! so it is not applied. The merged weights are what gets saved: the
//! fine-tuned backbone loads as a plain model of the same architecture.

use tch::{Kind, Tensor};

use forge_core::config::{LoraBias, LoraConfig};
use forge_core::error::Result;
use forge_core::params::{Parameters, named_parameters};
use forge_data::DataError;

/// One adapted weight.
#[derive(Debug)]
struct Adapter {
    /// The model parameter's name (`encoder.layers.0.linear1.weight`).
    name: String,
    /// The model's weight tensor (shared storage).
    weight: Tensor,
    /// The pretrained weight, frozen.
    base: Tensor,
    /// `(rank, in)`, trainable.
    a: Tensor,
    /// `(out, rank)`, trainable.
    b: Tensor,
}

/// The LoRA adapters of a backbone.
#[derive(Debug)]
pub struct Lora {
    adapters: Vec<Adapter>,
    /// Biases trained with the adapters (`lora.bias`), by name.
    biases: Vec<(String, Tensor)>,
    scale: f64,
    rank: i64,
}

impl Lora {
    /// Adapters on every matching weight of `model`. Fails when nothing
    /// matches (listing the 2-D weights the model has) or `rank` is not
    /// positive.
    pub fn attach<P: Parameters + ?Sized>(model: &P, cfg: &LoraConfig) -> Result<Lora> {
        if cfg.rank < 1 {
            return Err(DataError::setting(
                "finetune.lora.rank",
                format!("must be at least 1, found {}", cfg.rank),
            )
            .into());
        }
        let targets = cfg.target_modules_or_default();
        let is_target = |name: &str| {
            name.strip_suffix(".weight").is_some_and(|module| {
                targets
                    .iter()
                    .any(|t| module == t || module.ends_with(&format!(".{t}")))
            })
        };
        let module_of = |name: &str| name.rsplit_once('.').map_or("", |(m, _)| m).to_string();
        let params = named_parameters(model);
        let mut adapters = Vec::new();
        for (name, weight) in &params {
            if !is_target(name) || weight.dim() != 2 {
                continue;
            }
            let size = weight.size();
            let (out, inp) = (size[0], size[1]);
            let opts = (Kind::Float, weight.device());
            // PEFT: kaiming_uniform_(A, a=sqrt(5)) -> U(-1/sqrt(in), 1/sqrt(in)).
            let bound = 1.0 / (inp as f64).sqrt();
            let a = (Tensor::rand([cfg.rank, inp], opts) * (2.0 * bound) - bound)
                .set_requires_grad(true);
            let b = Tensor::zeros([out, cfg.rank], opts).set_requires_grad(true);
            adapters.push(Adapter {
                name: name.clone(),
                base: weight.detach().copy(),
                weight: weight.shallow_clone(),
                a,
                b,
            });
        }
        if adapters.is_empty() {
            let candidates: Vec<String> = params
                .iter()
                .filter(|(n, t)| t.dim() == 2 && n.ends_with(".weight"))
                .map(|(n, _)| module_of(n))
                .collect();
            return Err(DataError::setting(
                "finetune.lora.target_modules",
                format!(
                    "[{}] matches no 2-D weight of the model; its 2-D weights belong to: {}",
                    targets.join(", "),
                    candidates.join(", ")
                ),
            )
            .into());
        }
        let adapted: Vec<String> = adapters.iter().map(|a| module_of(&a.name)).collect();
        let biases = params
            .iter()
            .filter(|(name, _)| name.ends_with("bias"))
            .filter(|(name, _)| match cfg.bias {
                LoraBias::None => false,
                LoraBias::All => true,
                LoraBias::LoraOnly => adapted.iter().any(|m| *name == format!("{m}.bias")),
            })
            .map(|(n, t)| (n.clone(), t.shallow_clone()))
            .collect();
        Ok(Lora {
            adapters,
            biases,
            scale: cfg.alpha / cfg.rank as f64,
            rank: cfg.rank,
        })
    }

    /// Names of the adapted weights.
    pub fn adapted(&self) -> Vec<&str> {
        self.adapters.iter().map(|a| a.name.as_str()).collect()
    }

    /// The scaling `alpha / rank`.
    pub fn scale(&self) -> f64 {
        self.scale
    }

    /// The rank.
    pub fn rank(&self) -> i64 {
        self.rank
    }

    /// Trainable adapter tensors (`<weight>.lora_A`, `<weight>.lora_B`) and
    /// the biases `lora.bias` selects, for the optimizer.
    pub fn trainable(&self) -> Vec<(String, Tensor)> {
        let mut out = Vec::new();
        for a in &self.adapters {
            out.push((format!("{}.lora_A", a.name), a.a.shallow_clone()));
            out.push((format!("{}.lora_B", a.name), a.b.shallow_clone()));
        }
        out.extend(
            self.biases
                .iter()
                .map(|(n, t)| (n.clone(), t.shallow_clone())),
        );
        out
    }

    /// Everything a checkpoint needs to continue training the adapters:
    /// `<weight>.lora_A`, `<weight>.lora_B` and the frozen pretrained
    /// weight under them, `<weight>.lora_base`.
    pub fn state(&self) -> Vec<(String, Tensor)> {
        let mut out = Vec::new();
        for a in &self.adapters {
            out.push((format!("{}.lora_A", a.name), a.a.detach()));
            out.push((format!("{}.lora_B", a.name), a.b.detach()));
            out.push((format!("{}.lora_base", a.name), a.base.shallow_clone()));
        }
        out
    }

    /// Restores a state written by [`Lora::state`]; every tensor must be
    /// there, with its shape, and nothing else.
    pub fn load_state(&self, state: &[(String, Tensor)]) -> std::result::Result<(), String> {
        let expected = 3 * self.adapters.len();
        if state.len() != expected {
            return Err(format!(
                "holds {} tensors; adapters on {} weights need {expected}",
                state.len(),
                self.adapters.len()
            ));
        }
        for a in &self.adapters {
            for (suffix, target) in [("lora_A", &a.a), ("lora_B", &a.b), ("lora_base", &a.base)] {
                let name = format!("{}.{suffix}", a.name);
                let (_, t) = state
                    .iter()
                    .find(|(n, _)| *n == name)
                    .ok_or_else(|| format!("missing `{name}`"))?;
                if t.size() != target.size() {
                    return Err(format!(
                        "`{name}` has shape {:?}, the adapter has {:?}",
                        t.size(),
                        target.size()
                    ));
                }
                tch::no_grad(|| {
                    target
                        .shallow_clone()
                        .copy_(&t.to_device(target.device()).to_kind(target.kind()))
                });
            }
        }
        Ok(())
    }

    /// Scalars in the adapters.
    pub fn num_parameters(&self) -> i64 {
        self.adapters
            .iter()
            .map(|a| (a.a.numel() + a.b.numel()) as i64)
            .sum()
    }

    /// Sets which backbone tensors need gradients: every backbone
    /// parameter off, except (when `on`) the adapted weights, whose
    /// gradient feeds [`Lora::backward`], and the trained biases.
    pub fn set_trainable<P: Parameters + ?Sized>(&self, model: &P, on: bool) {
        for (_, t) in named_parameters(model) {
            let _ = t.set_requires_grad(false);
        }
        for a in &self.adapters {
            let _ = a.weight.set_requires_grad(on);
        }
        for (_, t) in &self.biases {
            let _ = t.set_requires_grad(on);
        }
    }

    /// Writes `W0 + scale·B·A` into every adapted weight (no gradient).
    pub fn merge(&self) {
        tch::no_grad(|| {
            for a in &self.adapters {
                let delta = a.b.mm(&a.a) * self.scale;
                let merged = (&a.base + delta).to_kind(a.weight.kind());
                let mut w = a.weight.shallow_clone();
                w.copy_(&merged);
            }
        });
    }

    /// After `loss.backward()`: adds `dL/dA` and `dL/dB` (from each
    /// weight's gradient, by the chain rule) to the adapters' gradients and
    /// clears the weights' gradients. Adapters whose weight got no gradient
    /// are left alone.
    pub fn backward(&self) {
        let mut total: Option<Tensor> = None;
        for a in &self.adapters {
            let mut g = a.weight.grad();
            if !g.defined() {
                continue;
            }
            let gw = g.detach().to_kind(Kind::Float).copy();
            let _ = g.zero_();
            // sum(scale·B·A ⊙ G) has gradients scale·G·Aᵀ (B) and scale·Bᵀ·G (A).
            let term = (a.b.mm(&a.a) * self.scale * gw).sum(Kind::Float);
            total = Some(match total {
                Some(t) => t + term,
                None => term,
            });
        }
        if let Some(t) = total {
            t.backward();
        }
    }
}

#[cfg(test)]
mod tests {
    use tch::nn::{self, Module, VarStore};
    use tch::{Device, Kind, Tensor};

    use super::*;
    use forge_core::components::init;
    use forge_core::params::join;

    /// A lone projection named like an encoder's feed-forward layer.
    struct One {
        linear1: nn::Linear,
    }

    impl Parameters for One {
        fn visit_parameters(&self, prefix: &str, f: &mut dyn FnMut(&str, &Tensor)) {
            self.linear1.visit_parameters(&join(prefix, "linear1"), f);
        }
    }

    fn max_diff(a: &Tensor, b: &Tensor) -> f64 {
        (a - b).abs().max().double_value(&[])
    }

    /// dL/dA and dL/dB from the merged weight equal autograd's on an
    /// explicit LoRA branch y = x·W0ᵀ + b + scale·x·Aᵀ·Bᵀ.
    #[test]
    fn lora_gradients_match_an_explicit_branch() {
        tch::manual_seed(3);
        let vs = VarStore::new(Device::Cpu);
        let one = One {
            linear1: init::linear(vs.root() / "linear1", 6, 5),
        };
        let cfg = LoraConfig {
            enabled: true,
            rank: 2,
            alpha: 3.0,
            ..LoraConfig::default()
        };
        let lora = Lora::attach(&one, &cfg).unwrap();
        assert_eq!(lora.adapted(), ["linear1.weight"]);
        assert!((lora.scale() - 1.5).abs() < 1e-12);
        let ad = &lora.adapters[0];
        assert_eq!((ad.a.size(), ad.b.size()), (vec![2, 6], vec![5, 2]));
        assert_eq!(
            ad.b.abs().sum(Kind::Float).double_value(&[]),
            0.0,
            "B starts at zero"
        );
        // Give B values so both gradients are non-trivial.
        tch::no_grad(|| {
            ad.b.shallow_clone()
                .copy_(&Tensor::randn([5, 2], (Kind::Float, Device::Cpu)));
        });
        lora.set_trainable(&one, true);
        let x = Tensor::randn([4, 6], (Kind::Float, Device::Cpu));
        let r = Tensor::randn([4, 5], (Kind::Float, Device::Cpu));

        lora.merge();
        let y = one.linear1.forward(&x);
        (&y * &r).sum(Kind::Float).backward();
        lora.backward();
        let (ga, gb) = (ad.a.grad(), ad.b.grad());
        assert!(
            !one.linear1.ws.grad().defined()
                || one
                    .linear1
                    .ws
                    .grad()
                    .abs()
                    .sum(Kind::Float)
                    .double_value(&[])
                    == 0.0,
            "the weight's own gradient is cleared"
        );

        let a2 = ad.a.detach().copy().set_requires_grad(true);
        let b2 = ad.b.detach().copy().set_requires_grad(true);
        let bias = one.linear1.bs.as_ref().unwrap().detach();
        let y2 = x.matmul(&ad.base.tr()) + &bias + x.matmul(&a2.tr()).matmul(&b2.tr()) * 1.5;
        assert!(
            max_diff(&y.detach(), &y2.detach()) < 1e-5,
            "merged forward = explicit branch"
        );
        (&y2 * &r).sum(Kind::Float).backward();
        assert!(max_diff(&ga, &a2.grad()) < 1e-5, "dA {ga} vs {}", a2.grad());
        assert!(max_diff(&gb, &b2.grad()) < 1e-5, "dB {gb} vs {}", b2.grad());
        assert!(ga.abs().sum(Kind::Float).double_value(&[]) > 0.0);
    }

    #[test]
    fn targets_biases_and_errors() {
        let vs = VarStore::new(Device::Cpu);
        let one = One {
            linear1: init::linear(vs.root() / "linear1", 3, 3),
        };
        let pick = |bias| {
            let cfg = LoraConfig {
                bias,
                ..LoraConfig::default()
            };
            Lora::attach(&one, &cfg)
                .unwrap()
                .trainable()
                .into_iter()
                .map(|(n, _)| n)
                .collect::<Vec<_>>()
        };
        assert_eq!(
            pick(LoraBias::None),
            ["linear1.weight.lora_A", "linear1.weight.lora_B"]
        );
        assert_eq!(pick(LoraBias::LoraOnly).last().unwrap(), "linear1.bias");
        assert_eq!(pick(LoraBias::All).len(), 3);
        let cfg = LoraConfig {
            target_modules: Some(vec!["query".into()]),
            ..LoraConfig::default()
        };
        let err = Lora::attach(&one, &cfg).unwrap_err().to_string();
        assert!(
            err.contains("finetune.lora.target_modules") && err.contains("linear1"),
            "{err}"
        );
        let cfg = LoraConfig {
            rank: 0,
            ..LoraConfig::default()
        };
        assert!(
            Lora::attach(&one, &cfg)
                .unwrap_err()
                .to_string()
                .contains("rank")
        );
    }
}
