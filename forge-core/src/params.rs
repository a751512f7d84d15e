//! Parameter traversal: names, counts and a per-submodule breakdown for any
//! module, with PyTorch state-dict names (`encoder.layers.0.linear1.weight`).
//!
//! Every component implements [`Parameters`]; `#[derive(ForgeModel)]`
//! implements it for a model by visiting each field under the field's name,
//! so counting is free for every model. Plain values (numbers, flags, config
//! enums) implement it as "no parameters", so a derive can visit every field
//! without knowing which ones hold weights.

use std::fmt;

use tch::{Tensor, nn};

/// A module that owns parameters.
pub trait Parameters {
    /// Calls `f(name, tensor)` for every parameter, each name prefixed with
    /// `prefix` (`""` at the top level).
    fn visit_parameters(&self, prefix: &str, f: &mut dyn FnMut(&str, &Tensor));
}

/// Joins a prefix and a name with a dot (no dot when the prefix is empty).
pub fn join(prefix: &str, name: &str) -> String {
    if prefix.is_empty() {
        name.to_string()
    } else if name.is_empty() {
        prefix.to_string()
    } else {
        format!("{prefix}.{name}")
    }
}

/// Number of scalars in the module's parameters; with `trainable_only`, only
/// those that require a gradient (PyTorch's `count_parameters`).
pub fn count_parameters<P: Parameters + ?Sized>(module: &P, trainable_only: bool) -> i64 {
    let mut total = 0;
    module.visit_parameters("", &mut |_, t| {
        if !trainable_only || t.requires_grad() {
            total += t.numel() as i64;
        }
    });
    total
}

/// Every parameter with its full name, in visiting order (shallow clones:
/// they share storage with the module).
pub fn named_parameters<P: Parameters + ?Sized>(module: &P) -> Vec<(String, Tensor)> {
    let mut out = Vec::new();
    module.visit_parameters("", &mut |name, t| {
        out.push((name.to_string(), t.shallow_clone()))
    });
    out
}

/// Parameter counts grouped by top-level submodule (`embedding`, `encoder`,
/// `head`, ...), printable as a table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParameterTable {
    /// (submodule, total, trainable), in visiting order.
    pub rows: Vec<(String, i64, i64)>,
}

impl ParameterTable {
    /// Builds the table for `module`.
    pub fn of<P: Parameters + ?Sized>(module: &P) -> Self {
        let mut rows: Vec<(String, i64, i64)> = Vec::new();
        module.visit_parameters("", &mut |name, t| {
            let top = name.split('.').next().unwrap_or(name).to_string();
            let n = t.numel() as i64;
            let trainable = if t.requires_grad() { n } else { 0 };
            match rows.iter_mut().find(|r| r.0 == top) {
                Some(row) => {
                    row.1 += n;
                    row.2 += trainable;
                }
                None => rows.push((top, n, trainable)),
            }
        });
        ParameterTable { rows }
    }

    /// Sum over all rows: (total, trainable).
    pub fn totals(&self) -> (i64, i64) {
        self.rows
            .iter()
            .fold((0, 0), |acc, r| (acc.0 + r.1, acc.1 + r.2))
    }
}

impl fmt::Display for ParameterTable {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let width = self
            .rows
            .iter()
            .map(|r| r.0.len())
            .chain([9])
            .max()
            .unwrap_or(9);
        writeln!(
            f,
            "{:<width$}  {:>12}  {:>12}",
            "submodule", "parameters", "trainable"
        )?;
        for (name, total, trainable) in &self.rows {
            writeln!(f, "{name:<width$}  {total:>12}  {trainable:>12}")?;
        }
        let (total, trainable) = self.totals();
        write!(f, "{:<width$}  {total:>12}  {trainable:>12}", "total")
    }
}

impl Parameters for Tensor {
    fn visit_parameters(&self, prefix: &str, f: &mut dyn FnMut(&str, &Tensor)) {
        f(prefix, self)
    }
}

impl Parameters for nn::Linear {
    fn visit_parameters(&self, prefix: &str, f: &mut dyn FnMut(&str, &Tensor)) {
        f(&join(prefix, "weight"), &self.ws);
        if let Some(bs) = &self.bs {
            f(&join(prefix, "bias"), bs);
        }
    }
}

impl Parameters for nn::LayerNorm {
    fn visit_parameters(&self, prefix: &str, f: &mut dyn FnMut(&str, &Tensor)) {
        if let Some(ws) = &self.ws {
            f(&join(prefix, "weight"), ws);
        }
        if let Some(bs) = &self.bs {
            f(&join(prefix, "bias"), bs);
        }
    }
}

impl Parameters for nn::Embedding {
    fn visit_parameters(&self, prefix: &str, f: &mut dyn FnMut(&str, &Tensor)) {
        f(&join(prefix, "weight"), &self.ws);
    }
}

impl<T: Parameters> Parameters for Option<T> {
    fn visit_parameters(&self, prefix: &str, f: &mut dyn FnMut(&str, &Tensor)) {
        if let Some(inner) = self {
            inner.visit_parameters(prefix, f);
        }
    }
}

impl<T: Parameters> Parameters for Vec<T> {
    fn visit_parameters(&self, prefix: &str, f: &mut dyn FnMut(&str, &Tensor)) {
        for (i, item) in self.iter().enumerate() {
            item.visit_parameters(&join(prefix, &i.to_string()), f);
        }
    }
}

impl<T: Parameters + ?Sized> Parameters for Box<T> {
    fn visit_parameters(&self, prefix: &str, f: &mut dyn FnMut(&str, &Tensor)) {
        (**self).visit_parameters(prefix, f)
    }
}

/// Plain values hold no parameters.
macro_rules! no_parameters {
    ($($t:ty),* $(,)?) => {$(
        impl Parameters for $t {
            fn visit_parameters(&self, _: &str, _: &mut dyn FnMut(&str, &Tensor)) {}
        }
    )*};
}
no_parameters!(
    bool,
    i32,
    i64,
    u32,
    u64,
    usize,
    f32,
    f64,
    String,
    crate::config::Pooling,
    crate::config::Activation,
);

#[cfg(test)]
mod tests {
    use super::*;
    use tch::{Device, Kind, nn::VarStore};

    #[test]
    fn counts_names_and_groups() {
        let vs = VarStore::new(Device::Cpu);
        let root = vs.root();
        let layers: Vec<nn::Linear> = (0..2)
            .map(|i| nn::linear(&root / "enc" / i, 3, 4, Default::default()))
            .collect();
        let ln = nn::layer_norm(&root / "ln", vec![4], Default::default());
        struct M {
            enc: Vec<nn::Linear>,
            ln: nn::LayerNorm,
            extra: Option<Tensor>,
        }
        impl Parameters for M {
            fn visit_parameters(&self, prefix: &str, f: &mut dyn FnMut(&str, &Tensor)) {
                self.enc.visit_parameters(&join(prefix, "enc"), f);
                self.ln.visit_parameters(&join(prefix, "ln"), f);
                self.extra.visit_parameters(&join(prefix, "extra"), f);
            }
        }
        let m = M {
            enc: layers,
            ln,
            extra: Some(Tensor::zeros([5], (Kind::Float, Device::Cpu))),
        };
        let names: Vec<String> = named_parameters(&m).into_iter().map(|p| p.0).collect();
        assert_eq!(
            names,
            [
                "enc.0.weight",
                "enc.0.bias",
                "enc.1.weight",
                "enc.1.bias",
                "ln.weight",
                "ln.bias",
                "extra"
            ]
        );
        assert_eq!(count_parameters(&m, false), 2 * (12 + 4) + 8 + 5);
        // `extra` does not require grad: it is not trainable.
        assert_eq!(count_parameters(&m, true), 2 * (12 + 4) + 8);
        let table = ParameterTable::of(&m);
        assert_eq!(table.rows[0], ("enc".to_string(), 32, 32));
        assert_eq!(table.totals(), (45, 40));
        assert!(table.to_string().contains("total"));
        // Names in the VarStore match the visited names.
        let mut vs_names: Vec<String> = vs.variables().into_keys().collect();
        vs_names.sort();
        let mut visited: Vec<String> = names.into_iter().filter(|n| n != "extra").collect();
        visited.sort();
        assert_eq!(vs_names, visited);
    }
}
