//! Copying named tensors (a PyTorch state dict, e.g. read from safetensors)
//! into a module's parameters, all or nothing.
//!
//! Names are PyTorch's (`encoder.layers.0.linear1.weight`), which forge
//! modules use as their parameter names. Every problem — missing, unexpected
//! and mis-shaped tensors — is collected and reported together before a
//! single value is copied, so a failed load never leaves a half-loaded model.

use std::collections::BTreeMap;
use std::fmt;

use tch::Tensor;

use crate::params::{Parameters, named_parameters};

/// Why a state dict does not fit a module.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StateDictMismatch {
    /// Parameters of the module with no tensor in the state dict.
    pub missing: Vec<String>,
    /// Tensors in the state dict that the module has no parameter for.
    pub unexpected: Vec<String>,
    /// (name, expected shape, shape found).
    pub mis_shaped: Vec<(String, Vec<i64>, Vec<i64>)>,
}

impl StateDictMismatch {
    fn is_empty(&self) -> bool {
        self.missing.is_empty() && self.unexpected.is_empty() && self.mis_shaped.is_empty()
    }
}

impl fmt::Display for StateDictMismatch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "the weights do not fit the model:")?;
        if !self.missing.is_empty() {
            write!(f, "\n  missing: {}", self.missing.join(", "))?;
        }
        if !self.unexpected.is_empty() {
            write!(f, "\n  unexpected: {}", self.unexpected.join(", "))?;
        }
        for (name, want, got) in &self.mis_shaped {
            write!(
                f,
                "\n  {name}: model has shape {want:?}, weights have {got:?}"
            )?;
        }
        Ok(())
    }
}

impl std::error::Error for StateDictMismatch {}

/// Copies `tensors` into `module`'s parameters. Names must match exactly
/// (every parameter present, nothing extra, same shapes); values are cast to
/// each parameter's dtype and device. Nothing is copied when anything does
/// not match.
pub fn load_state_dict<P: Parameters + ?Sized>(
    module: &P,
    tensors: &[(String, Tensor)],
) -> Result<(), StateDictMismatch> {
    let params: BTreeMap<String, Tensor> = named_parameters(module).into_iter().collect();
    let given: BTreeMap<&str, &Tensor> = tensors.iter().map(|(n, t)| (n.as_str(), t)).collect();
    let mut mismatch = StateDictMismatch::default();
    for (name, param) in &params {
        match given.get(name.as_str()) {
            None => mismatch.missing.push(name.clone()),
            Some(t) if t.size() != param.size() => {
                mismatch
                    .mis_shaped
                    .push((name.clone(), param.size(), t.size()))
            }
            Some(_) => {}
        }
    }
    mismatch.unexpected = given
        .keys()
        .filter(|n| !params.contains_key(**n))
        .map(|n| n.to_string())
        .collect();
    if !mismatch.is_empty() {
        return Err(mismatch);
    }
    tch::no_grad(|| {
        for (name, param) in &params {
            let src = given[name.as_str()];
            let mut dst = param.shallow_clone();
            dst.copy_(&src.to_kind(param.kind()).to_device(param.device()));
        }
    });
    Ok(())
}

/// Every parameter as (name, tensor), detached and contiguous on the CPU: a
/// state dict ready to be written to safetensors.
pub fn state_dict<P: Parameters + ?Sized>(module: &P) -> Vec<(String, Tensor)> {
    named_parameters(module)
        .into_iter()
        .map(|(n, t)| (n, t.detach().to_device(tch::Device::Cpu).contiguous()))
        .collect()
}
