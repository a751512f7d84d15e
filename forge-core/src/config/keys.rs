//! What forge does with each config key: honoured, refused or warned about,
//! as `docs/config-keys.md` lists it. The test of this module holds the
//! page, forge's schema and scModelForge's key list
//! (`tests/fixtures/config/scmodelforge_keys.txt`) to each other, and sets
//! every refused or warned key to a value that must be refused or warned
//! about.

use serde_json::Value;

use super::schema::{FinetuneConfig, ForgeConfig, FsdpConfig};
use super::value::{ConfigValue, join_path};

/// What forge does with a key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyStatus {
    /// Means what it means in scModelForge.
    Honoured,
    /// Any value other than the default is refused with an error naming
    /// the key, the value and what forge offers instead.
    Refused,
    /// Some values are honoured, others refused (e.g. `strategy: deepspeed`).
    PartlyRefused,
    /// A value other than the default gives a one-line `warning:` (the key
    /// is not used, and going on is harmless).
    Warned,
}

impl KeyStatus {
    /// The word used in `docs/config-keys.md`.
    pub fn as_str(self) -> &'static str {
        match self {
            KeyStatus::Honoured => "honoured",
            KeyStatus::Refused => "refused",
            KeyStatus::PartlyRefused => "partly refused",
            KeyStatus::Warned => "warned",
        }
    }

    /// The status written `text` in the page.
    pub fn from_name(text: &str) -> Option<KeyStatus> {
        [
            KeyStatus::Honoured,
            KeyStatus::Refused,
            KeyStatus::PartlyRefused,
            KeyStatus::Warned,
        ]
        .into_iter()
        .find(|s| s.as_str() == text)
    }
}

/// A key that is not simply honoured, with a YAML value that triggers its
/// refusal or warning.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SpecialKey {
    /// Dotted path; a path ending in `.*` covers every key below it.
    pub key: &'static str,
    /// Its status.
    pub status: KeyStatus,
    /// A YAML value for the key that forge refuses (or warns about).
    pub sample: &'static str,
}

const fn special(key: &'static str, status: KeyStatus, sample: &'static str) -> SpecialKey {
    SpecialKey {
        key,
        status,
        sample,
    }
}

/// Every key that is not simply honoured. Keys not covered here are
/// honoured.
pub const SPECIAL_KEYS: &[SpecialKey] = &[
    special("data.source", KeyStatus::PartlyRefused, "cellxgene_census"),
    special(
        "data.paths",
        KeyStatus::PartlyRefused,
        "[s3://bucket/cells.h5ad]",
    ),
    special("data.num_workers", KeyStatus::Warned, "7"),
    special("data.census.organism", KeyStatus::Refused, "Mus musculus"),
    special(
        "data.census.census_version",
        KeyStatus::Refused,
        "'2023-12-15'",
    ),
    special(
        "data.census.obs_value_filter",
        KeyStatus::Refused,
        "tissue == 'lung'",
    ),
    special(
        "data.census.var_value_filter",
        KeyStatus::Refused,
        "feature_id == 'x'",
    ),
    special(
        "data.census.filters",
        KeyStatus::Refused,
        "{tissue: [lung]}",
    ),
    special("data.census.obs_columns", KeyStatus::Refused, "[cell_type]"),
    special("data.multi_species.*", KeyStatus::Warned, ""),
    special("data.perturbation.*", KeyStatus::Warned, ""),
    special("data.shards.*", KeyStatus::Warned, ""),
    special(
        "data.cloud.storage_options",
        KeyStatus::Refused,
        "{anon: true}",
    ),
    special("data.cloud.cache_dir", KeyStatus::Refused, "/tmp/cache"),
    special("training.strategy", KeyStatus::PartlyRefused, "deepspeed"),
    special("training.logger", KeyStatus::PartlyRefused, "mlflow"),
    special(
        "training.resume_from",
        KeyStatus::PartlyRefused,
        "last.ckpt",
    ),
    special("training.fsdp.*", KeyStatus::Warned, ""),
    special(
        "finetune.checkpoint_path",
        KeyStatus::PartlyRefused,
        "model.ckpt",
    ),
    special("zoo.*", KeyStatus::Warned, ""),
];

/// Samples for the keys of the `.*` entries, whose values differ from the
/// defaults.
pub const WILDCARD_SAMPLES: &[(&str, &str)] = &[
    ("data.multi_species.enabled", "true"),
    ("data.multi_species.organisms", "[human]"),
    ("data.multi_species.canonical_organism", "mouse"),
    ("data.multi_species.include_one2many", "true"),
    ("data.multi_species.ortholog_table", "orthologs.tsv"),
    ("data.perturbation.enabled", "true"),
    ("data.perturbation.perturbation_key", "guide"),
    ("data.perturbation.control_label", "ctrl"),
    ("data.perturbation.dose_key", "dose"),
    ("data.perturbation.dose_unit", "uM"),
    ("data.shards.enabled", "true"),
    ("data.shards.shard_dir", "shards"),
    ("data.shards.shard_size", "1000"),
    ("training.fsdp.sharding_strategy", "NO_SHARD"),
    ("training.fsdp.cpu_offload", "true"),
    ("training.fsdp.activation_checkpointing", "true"),
    ("training.fsdp.min_num_params", "10"),
    ("zoo.env_dir", "/tmp/envs"),
    ("zoo.python_version", "'3.11'"),
    ("zoo.timeout", "60"),
];

/// The status of `key` (a dotted path of the schema).
pub fn key_status(key: &str) -> KeyStatus {
    special_key(key).map_or(KeyStatus::Honoured, |s| s.status)
}

/// The [`SPECIAL_KEYS`] entry covering `key`.
pub fn special_key(key: &str) -> Option<&'static SpecialKey> {
    SPECIAL_KEYS
        .iter()
        .find(|s| match s.key.strip_suffix(".*") {
            Some(prefix) => key.strip_prefix(prefix).is_some_and(|r| r.starts_with('.')),
            None => s.key == key,
        })
}

/// A YAML value for `key` that forge refuses or warns about (`None` for
/// honoured keys).
pub fn sample_value(key: &str) -> Option<&'static str> {
    let s = special_key(key)?;
    if s.key.ends_with(".*") {
        WILDCARD_SAMPLES
            .iter()
            .find(|(k, _)| *k == key)
            .map(|(_, v)| *v)
    } else {
        Some(s.sample)
    }
}

/// Every key of forge's schema, as dotted paths in schema order: sections
/// that are `null` by default (`finetune`, `training.fsdp`) are expanded
/// with their defaults; mappings with free-form keys (`census.filters`,
/// `cloud.storage_options`) and lists are keys themselves. The options of
/// the registered models (`model.decoder_dim` of `masked_autoencoder`)
/// follow the shared model keys, by model name.
pub fn schema_keys() -> Vec<String> {
    let mut root = ForgeConfig::default().to_value();
    root["finetune"] = FinetuneConfig::default().to_value();
    root["training"]["fsdp"] = FsdpConfig::default().to_value();
    if let Some(model) = root["model"].as_object_mut() {
        crate::registry::with_options(|_, info| {
            for key in info.keys {
                model
                    .entry(key.to_string())
                    .or_insert_with(|| (info.defaults)()[*key].clone());
            }
            None::<()>
        });
    }
    let mut out = Vec::new();
    flatten(&root, "", &mut out);
    out
}

/// Paths below `path` whose default is a free-form mapping, not a section.
const FREE_FORM: &[&str] = &["data.census.filters", "data.cloud.storage_options"];

fn flatten(v: &Value, path: &str, out: &mut Vec<String>) {
    match v {
        Value::Object(map) if !FREE_FORM.contains(&path) => {
            for (k, x) in map {
                flatten(x, &join_path(path, k), out);
            }
        }
        _ => out.push(path.to_string()),
    }
}

#[cfg(test)]
mod tests;
