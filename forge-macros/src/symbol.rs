//! Every attribute name the derive understands, in one table.

/// The attribute namespace: `#[forge(...)]`.
pub const FORGE: &str = "forge";

/// Container: `#[forge(name = "my_model")]`, the registry name.
pub const NAME: &str = "name";

/// Field: `#[forge(config)]` or `#[forge(config = key)]`: copy a value
/// from `ModelConfig`.
pub const CONFIG: &str = "config";
/// Field, with `config`: `#[forge(config = key, default = expr)]` for an
/// optional config value (`Option<T>`), used when it is unset.
pub const DEFAULT: &str = "default";
/// Field: `#[forge(build = expr)]`: how to build the field.
pub const BUILD: &str = "build";
/// Field: `#[forge(skip)]`: `Default::default()`, holds no parameters.
pub const SKIP: &str = "skip";

/// Container: `#[forge(options = MyModelOptions)]`, the model's own
/// options (declared with `forge_core::model_options!`).
pub const OPTIONS: &str = "options";
/// Field: `#[forge(option)]` or `#[forge(option = key)]`: copy a value
/// from the model's own options.
pub const OPTION: &str = "option";

/// Keys accepted on the struct.
pub const CONTAINER_KEYS: &[&str] = &[NAME, OPTIONS];
/// Keys accepted on a field.
pub const FIELD_KEYS: &[&str] = &[CONFIG, OPTION, DEFAULT, BUILD, SKIP];
