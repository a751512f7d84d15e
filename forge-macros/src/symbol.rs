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

/// Keys accepted on the struct.
pub const CONTAINER_KEYS: &[&str] = &[NAME];
/// Keys accepted on a field.
pub const FIELD_KEYS: &[&str] = &[CONFIG, DEFAULT, BUILD, SKIP];
