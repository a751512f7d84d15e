//! The model registry: registry name -> constructor.
//!
//! Models register at link time through [`inventory`]:
//! `#[derive(ForgeModel)]` emits a [`ModelRegistration`] for its type, from
//! any crate, so plugin crates add models without touching forge-core. A
//! binary sees the registrations of every crate it links; a plugin crate
//! that is otherwise unused must be referenced (`use my_models as _;`).
//!
//! Registrations can also be added at run time with [`register`]. Two types
//! claiming one name is an error that names both, whether the clash comes
//! from link time or run time.

use std::collections::BTreeMap;
use std::sync::{LazyLock, RwLock};

use tch::nn;

use crate::config::ModelConfig;
use crate::config::options::OptionsInfo;
use crate::error::{ForgeError, Result};
use crate::model::ForgeModel;
use crate::suggest::closest;

/// Builds a boxed model from a config.
pub type BuildFn = fn(&nn::Path, &ModelConfig) -> Result<Box<dyn ForgeModel>>;

/// One registry entry.
#[derive(Clone, Copy, Debug)]
pub struct ModelRegistration {
    /// Registry name (snake_case).
    pub name: &'static str,
    /// Rust type path of the model, for error messages.
    pub type_name: &'static str,
    /// Constructor.
    pub build: BuildFn,
    /// The model's own options (`#[forge(options = ...)]`), read from the
    /// `model:` keys that are not shared ones.
    pub options: OptionsInfo,
}

inventory::collect!(ModelRegistration);

/// A [`BuildFn`] for any [`ForgeModel`]: `build_boxed::<MyModel>`.
pub fn build_boxed<M: ForgeModel + 'static>(
    path: &nn::Path,
    config: &ModelConfig,
) -> Result<Box<dyn ForgeModel>> {
    Ok(Box::new(M::from_config(path, config)?))
}

/// A set of registrations, keyed by name.
#[derive(Debug, Default)]
pub struct Registry {
    entries: BTreeMap<&'static str, ModelRegistration>,
    /// Names claimed by more than one type at link time: (first, second).
    clashes: BTreeMap<&'static str, (&'static str, &'static str)>,
}

impl Registry {
    /// An empty registry.
    pub fn new() -> Self {
        Self::default()
    }

    /// Every registration linked into this binary. Clashing names are kept
    /// aside and reported by [`Registry::get`] and [`Registry::check`].
    pub fn from_linked() -> Self {
        let mut registry = Registry::new();
        for reg in inventory::iter::<ModelRegistration> {
            if let Err(ForgeError::DuplicateModel { .. }) = registry.register(*reg) {
                let first = registry.entries[reg.name].type_name;
                registry.clashes.insert(reg.name, (first, reg.type_name));
            }
        }
        registry
    }

    /// Adds a registration; fails, naming both types, when the name is taken
    /// by another type. Registering the same type twice is a no-op.
    pub fn register(&mut self, reg: ModelRegistration) -> Result<()> {
        if let Some(existing) = self.entries.get(reg.name) {
            if existing.type_name == reg.type_name {
                return Ok(());
            }
            return Err(ForgeError::DuplicateModel {
                name: reg.name.to_string(),
                first: existing.type_name.to_string(),
                second: reg.type_name.to_string(),
            });
        }
        self.entries.insert(reg.name, reg);
        Ok(())
    }

    /// The registration for `name`, or an error listing the available names
    /// with a did-you-mean.
    pub fn lookup(&self, name: &str) -> Result<&ModelRegistration> {
        if let Some((first, second)) = self.clashes.get(name) {
            return Err(ForgeError::DuplicateModel {
                name: name.to_string(),
                first: first.to_string(),
                second: second.to_string(),
            });
        }
        self.entries.get(name).ok_or_else(|| {
            let available: Vec<String> = self.list().into_iter().map(String::from).collect();
            ForgeError::UnknownModel {
                name: name.to_string(),
                suggestion: closest(name, self.list()).map(String::from),
                available,
            }
        })
    }

    /// Builds the model registered as `name` under `path`.
    pub fn get(
        &self,
        name: &str,
        path: &nn::Path,
        config: &ModelConfig,
    ) -> Result<Box<dyn ForgeModel>> {
        (self.lookup(name)?.build)(path, config)
    }

    /// Registered names, sorted.
    pub fn list(&self) -> Vec<&'static str> {
        self.entries.keys().copied().collect()
    }

    /// Fails on the first name claimed by two types at link time.
    pub fn check(&self) -> Result<()> {
        match self.clashes.iter().next() {
            Some((name, (first, second))) => Err(ForgeError::DuplicateModel {
                name: name.to_string(),
                first: first.to_string(),
                second: second.to_string(),
            }),
            None => Ok(()),
        }
    }
}

static GLOBAL: LazyLock<RwLock<Registry>> = LazyLock::new(|| RwLock::new(Registry::from_linked()));

fn read_global<T>(f: impl FnOnce(&Registry) -> T) -> T {
    let guard = GLOBAL
        .read()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    f(&guard)
}

/// Adds a registration to the process-wide registry at run time.
pub fn register(reg: ModelRegistration) -> Result<()> {
    let mut guard = GLOBAL
        .write()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    guard.register(reg)
}

/// Builds the model registered as `name` (process-wide registry).
pub fn get(name: &str, path: &nn::Path, config: &ModelConfig) -> Result<Box<dyn ForgeModel>> {
    let build = read_global(|r| r.lookup(name).map(|reg| reg.build))?;
    build(path, config)
}

/// Builds the model named by `config.architecture`.
pub fn build(path: &nn::Path, config: &ModelConfig) -> Result<Box<dyn ForgeModel>> {
    get(&config.architecture, path, config)
}

/// The options of the model registered as `name` (process-wide registry);
/// `None` when no model has that name.
pub fn options_of(name: &str) -> Option<OptionsInfo> {
    read_global(|r| r.entries.get(name).map(|reg| reg.options))
}

/// The first `Some` that `f` returns over the registered models' names and
/// options, in name order (process-wide registry).
pub fn with_options<T>(mut f: impl FnMut(&'static str, &OptionsInfo) -> Option<T>) -> Option<T> {
    read_global(|r| r.entries.values().find_map(|reg| f(reg.name, &reg.options)))
}

/// Registered model names, sorted (process-wide registry).
pub fn list() -> Vec<&'static str> {
    read_global(Registry::list)
}

/// Fails when two linked types claim one name (process-wide registry).
pub fn check() -> Result<()> {
    read_global(Registry::check)
}
