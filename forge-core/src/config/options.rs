//! Options a model declares for itself.
//!
//! The `model:` section of a config has the keys every model shares
//! ([`ModelConfig`]'s fields) and, next to them, the keys of one model:
//! `masked_autoencoder`'s `decoder_dim`, or the options `forge-gen new NAME
//! --option ...` writes. A model declares those in its own file, as a typed
//! struct with defaults and docs:
//!
//! ```ignore
//! forge_core::model_options! {
//!     /// Options of `my_model` (keys of the YAML section `model`).
//!     pub struct MyModelOptions {
//!         /// Scale of the output.
//!         output_scale: f64 = 1.0,
//!     }
//! }
//!
//! // Its own checks (`check` may be left out: no checks).
//! impl forge_core::config::options::ModelOptions for MyModelOptions {
//!     fn check(&self, model: &ModelConfig, c: &mut OptionChecks<'_>) {
//!         if self.output_scale <= 0.0 {
//!             c.fail("output_scale", format!("must be > 0, got {}", self.output_scale));
//!         }
//!     }
//! }
//!
//! #[derive(ForgeModel)]
//! #[forge(name = "my_model", options = MyModelOptions)]
//! pub struct MyModel {
//!     #[forge(option)]
//!     output_scale: f64,
//!     // ...
//! }
//! ```
//!
//! The derive registers the options with the model, so a config whose
//! `model.architecture` is `my_model` reads them when it loads: an unknown
//! key is refused naming it, with a did-you-mean among the shared keys and
//! the model's options, a key of the wrong type is refused, and the model's
//! checks run with every other check of the config. A key that is an option
//! of another registered model is not refused (scModelForge's `ModelConfig`
//! has `masked_autoencoder`'s decoder keys for every architecture, and its
//! YAML files write them): the config's warnings name it when it is set to
//! anything but that model's default. Nothing in forge-core changes when a
//! model with options is added or removed.

use serde_json::{Map, Value};

use super::error::ConfigErrors;
use super::schema::ModelConfig;
use super::value::{ConfigValue, join_path};

/// Declares a model's options: a config section (see the `config_section!`
/// docs in forge-core's `config/section.rs`: doc comment, type and default
/// of each key, written once) that a model names in
/// `#[forge(options = ...)]`. Implement [`ModelOptions`] for it, with the
/// model's own checks or none.
#[macro_export]
macro_rules! model_options {
    (
        $(#[$meta:meta])*
        $vis:vis struct $name:ident {
            $($body:tt)*
        }
    ) => {
        $crate::__config_section! {
            $(#[$meta])*
            $vis struct $name {
                $($body)*
            }
        }

        impl $crate::config::options::DeclaredOptions for $name {
            const KEYS: &'static [&'static str] = $name::FIELDS;
        }
    };
}

/// The keys a [`model_options!`](crate::model_options) struct declares;
/// written by the macro.
pub trait DeclaredOptions {
    /// The option keys, in declaration order.
    const KEYS: &'static [&'static str];
}

/// A model's options: declared with [`model_options!`](crate::model_options),
/// checked by [`ModelOptions::check`].
pub trait ModelOptions:
    DeclaredOptions + ConfigValue + Default + Clone + std::fmt::Debug + Send + Sync + 'static
{
    /// The model's own checks of its options (the shared keys are checked
    /// before). Record every problem with [`OptionChecks::fail`].
    fn check(&self, model: &ModelConfig, checks: &mut OptionChecks<'_>) {
        let _ = (model, checks);
    }

    /// The model's warnings about its section: a shared key (or an option)
    /// whose value it accepts but cannot use, said in one line each with
    /// [`OptionChecks::warn`] rather than passed without a word. Runs when
    /// the config loads, after the checks passed.
    fn warnings(&self, model: &ModelConfig, warnings: &mut OptionChecks<'_>) {
        let _ = (model, warnings);
    }
}

/// Where [`ModelOptions::check`] records problems: under `model.KEY`.
pub struct OptionChecks<'a> {
    section: &'a str,
    errors: &'a mut ConfigErrors,
}

impl OptionChecks<'_> {
    /// Records that `key` (an option or a shared key of the model section)
    /// breaks a rule; `message` says the rule and the value found.
    pub fn fail(&mut self, key: &str, message: impl Into<String>) {
        self.errors
            .push(join_path(self.section, key), message.into());
    }

    /// Records a warning about `key` (in [`ModelOptions::warnings`]).
    pub fn warn(&mut self, key: &str, message: impl Into<String>) {
        self.fail(key, message);
    }
}

/// The options of a model that declares none.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct NoOptions;

impl DeclaredOptions for NoOptions {
    const KEYS: &'static [&'static str] = &[];
}

impl ConfigValue for NoOptions {
    fn from_value(_: &Value, _: &str, _: &mut ConfigErrors) -> Option<Self> {
        Some(NoOptions)
    }

    fn to_value(&self) -> Value {
        Value::Object(Map::new())
    }
}

impl ModelOptions for NoOptions {}

/// What the registry keeps about a model's options.
#[derive(Clone, Copy, Debug)]
pub struct OptionsInfo {
    /// The option keys, in declaration order.
    pub keys: &'static [&'static str],
    /// Reads and checks the options from a model section (problems under
    /// `section`); the options with defaults filled in, as JSON.
    pub resolve: fn(&ModelConfig, &str, &mut ConfigErrors) -> Option<Map<String, Value>>,
    /// The defaults, as JSON.
    pub defaults: fn() -> Map<String, Value>,
    /// Adds the model's warnings about a model section (under `section`).
    pub warnings: fn(&ModelConfig, &str, &mut ConfigErrors),
}

impl OptionsInfo {
    /// The entry for options `O`.
    pub const fn of<O: ModelOptions>() -> Self {
        OptionsInfo {
            keys: O::KEYS,
            resolve: resolve::<O>,
            defaults: defaults::<O>,
            warnings: warnings::<O>,
        }
    }
}

fn as_map(v: Value) -> Map<String, Value> {
    match v {
        Value::Object(map) => map,
        _ => Map::new(),
    }
}

fn warnings<O: ModelOptions>(model: &ModelConfig, section: &str, warnings: &mut ConfigErrors) {
    let mut scratch = ConfigErrors::new("model config");
    if let Some(options) = read_into::<O>(model, section, &mut scratch)
        && scratch.is_empty()
    {
        options.warnings(
            model,
            &mut OptionChecks {
                section,
                errors: warnings,
            },
        );
    }
}

fn defaults<O: ModelOptions>() -> Map<String, Value> {
    as_map(O::default().to_value())
}

/// Reads options `O` from the extra keys of `model` (keys that are not
/// options of `O` are left to [`check_options`]) and runs their checks.
fn read_into<O: ModelOptions>(
    model: &ModelConfig,
    section: &str,
    errors: &mut ConfigErrors,
) -> Option<O> {
    let own: Map<String, Value> = model
        .options
        .iter()
        .filter(|(k, _)| O::KEYS.contains(&k.as_str()))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    let before = errors.len();
    let options = O::from_value(&Value::Object(own), section, errors)?;
    if errors.len() == before {
        options.check(
            model,
            &mut OptionChecks {
                section,
                errors: &mut *errors,
            },
        );
    }
    Some(options)
}

fn resolve<O: ModelOptions>(
    model: &ModelConfig,
    section: &str,
    errors: &mut ConfigErrors,
) -> Option<Map<String, Value>> {
    read_into::<O>(model, section, errors).map(|o| as_map(o.to_value()))
}

/// Options `O` of `model`, read and checked: what a model's `from_config`
/// builds from (the derive calls it).
pub fn read<O: ModelOptions>(model: &ModelConfig) -> Result<O, ConfigErrors> {
    let mut errors = ConfigErrors::new("model config");
    let options = read_into::<O>(model, "model", &mut errors);
    match options {
        Some(o) if errors.is_empty() => Ok(o),
        _ => Err(errors),
    }
}

/// The shared model keys, then the options of every registered model.
pub fn model_keys() -> Vec<&'static str> {
    let mut keys = ModelConfig::FIELDS.to_vec();
    crate::registry::with_options(|_, info| {
        for key in info.keys {
            if !keys.contains(key) {
                keys.push(key);
            }
        }
        None::<()>
    });
    keys
}

/// The registered model, other than `architecture`, that declares `key`.
pub fn owner_of(key: &str, architecture: &str) -> Option<&'static str> {
    crate::registry::with_options(|name, info| {
        (name != architecture && info.keys.contains(&key)).then_some(name)
    })
}

/// Checks the extra keys of a model section against the options of its
/// architecture, when that architecture is registered (an unregistered one
/// is refused by the registry when the model is built): unknown keys are
/// refused with a did-you-mean among the shared keys and the options, and
/// the options are read and checked.
pub(crate) fn check_options(model: &ModelConfig, section: &str, errors: &mut ConfigErrors) {
    let Some(info) = crate::registry::options_of(&model.architecture) else {
        return;
    };
    let accepted: Vec<&'static str> = ModelConfig::FIELDS
        .iter()
        .chain(info.keys)
        .copied()
        .collect();
    for key in model.options.keys() {
        if info.keys.contains(&key.as_str()) || owner_of(key, &model.architecture).is_some() {
            continue;
        }
        super::section::unknown_key(errors, section, key, &accepted);
    }
    (info.resolve)(model, section, errors);
}

/// Warnings for options of another model set to anything but that model's
/// default: the chosen architecture does not read them.
pub(crate) fn option_warnings(model: &ModelConfig, section: &str, warnings: &mut ConfigErrors) {
    for (key, value) in &model.options {
        let Some(owner) = owner_of(key, &model.architecture) else {
            continue;
        };
        let default = crate::registry::options_of(owner)
            .and_then(|info| (info.defaults)().get(key).cloned())
            .unwrap_or(Value::Null);
        if *value != default {
            warnings.push(
                join_path(section, key),
                format!(
                    "set ({value}) but not used: it is an option of {owner}, and \
                     model.architecture is {}",
                    model.architecture
                ),
            );
        }
    }
    if let Some(info) = crate::registry::options_of(&model.architecture) {
        (info.warnings)(model, section, warnings);
    }
}

/// The model section as JSON with the options of its architecture filled
/// in with their defaults (keys as written when the architecture is not
/// registered or its options do not read).
pub(crate) fn resolved_json(model: &ModelConfig) -> Value {
    let mut json = model.to_value();
    if let Some(info) = crate::registry::options_of(&model.architecture) {
        let mut scratch = ConfigErrors::new("model config");
        if let (Some(resolved), Value::Object(map)) =
            ((info.resolve)(model, "model", &mut scratch), &mut json)
        {
            for (key, value) in resolved {
                map.insert(key, value);
            }
        }
    }
    json
}
