//! `docs/config-keys.md` against forge's schema, scModelForge's key list
//! and forge's behaviour.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use super::*;

fn repo(path: &str) -> String {
    let p = Path::new(env!("CARGO_MANIFEST_DIR")).join("..").join(path);
    std::fs::read_to_string(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

/// `key -> (status, note)` from the page's tables.
fn page() -> BTreeMap<String, (String, String)> {
    let mut out = BTreeMap::new();
    for line in repo("docs/config-keys.md").lines() {
        let Some(rest) = line.strip_prefix("| `") else {
            continue;
        };
        let cells: Vec<&str> = rest.split(" | ").collect();
        assert!(cells.len() >= 2, "malformed row: {line}");
        let key = cells[0].trim_end_matches('`').to_string();
        let note = cells
            .get(2)
            .map_or("", |n| n.trim_end_matches(" |").trim_end_matches('|'));
        let previous = out.insert(key.clone(), (cells[1].trim().to_string(), note.to_string()));
        assert!(previous.is_none(), "{key} is listed twice");
    }
    out
}

fn scmodelforge_keys() -> Vec<String> {
    repo("forge-core/tests/fixtures/config/scmodelforge_keys.txt")
        .lines()
        .map(str::to_string)
        .collect()
}

/// forge's schema keys: the shared ones and the options of the models
/// registered here (forge-core's reference models).
fn forge_keys() -> Vec<String> {
    schema_keys()
}

#[test]
fn the_schema_holds_every_scmodelforge_key() {
    let ours: BTreeSet<_> = forge_keys().into_iter().collect();
    let theirs = scmodelforge_keys();
    assert_eq!(theirs.len(), 120);
    let missing: Vec<_> = theirs.iter().filter(|k| !ours.contains(*k)).collect();
    assert!(
        missing.is_empty(),
        "scModelForge keys forge lacks: {missing:?}"
    );
}

#[test]
fn the_page_lists_every_key_with_forges_status() {
    let page = page();
    let ours = forge_keys();
    let theirs: BTreeSet<_> = scmodelforge_keys().into_iter().collect();
    let missing: Vec<_> = ours.iter().filter(|k| !page.contains_key(*k)).collect();
    assert!(
        missing.is_empty(),
        "keys missing from docs/config-keys.md: {missing:?}"
    );
    let unknown: Vec<_> = page.keys().filter(|k| !ours.contains(k)).collect();
    assert!(
        unknown.is_empty(),
        "docs/config-keys.md lists keys forge does not have: {unknown:?}"
    );
    for (key, (status, note)) in &page {
        let parsed = KeyStatus::from_name(status)
            .unwrap_or_else(|| panic!("{key}: unknown status {status:?} in the page"));
        assert_eq!(parsed, key_status(key), "{key}: the page says {status:?}");
        if !theirs.contains(key) {
            assert!(
                note.contains("forge addition"),
                "{key} is not scModelForge's: say so"
            );
        }
        if parsed != KeyStatus::Honoured {
            assert!(!note.is_empty(), "{key}: a {status} key needs a note");
        }
    }
}

#[test]
fn every_special_key_is_in_the_schema() {
    let ours = forge_keys();
    for s in SPECIAL_KEYS {
        let covered = ours.iter().any(|k| special_key(k).is_some_and(|x| x == s));
        assert!(covered, "{} matches no schema key", s.key);
    }
    for (k, _) in WILDCARD_SAMPLES {
        assert!(ours.iter().any(|o| o == k), "{k}");
    }
}

/// YAML setting `key` (dotted) to `value`.
fn yaml_for(key: &str, value: &str) -> String {
    let parts: Vec<&str> = key.split('.').collect();
    let mut text = String::new();
    for (depth, part) in parts.iter().enumerate() {
        text.push_str(&"  ".repeat(depth));
        text.push_str(part);
        if depth + 1 == parts.len() {
            text.push_str(&format!(": {value}\n"));
        } else {
            text.push_str(":\n");
        }
    }
    text
}

/// Whether a problem at `found` concerns `key` (the key or a section
/// holding it).
fn about(found: &str, key: &str) -> bool {
    let found = found.split('[').next().unwrap_or(found);
    key == found || key.starts_with(&format!("{found}."))
}

/// Each refused or warned key, set to its sample value, is refused or
/// warned about, naming the key or its section; and nothing passes
/// silently.
#[test]
fn every_refused_or_warned_key_is_refused_or_warned() {
    for key in forge_keys() {
        let status = key_status(&key);
        if status == KeyStatus::Honoured {
            continue;
        }
        let value = sample_value(&key).unwrap_or_else(|| panic!("{key}: no sample value"));
        let text = yaml_for(&key, value);
        let result = ForgeConfig::from_yaml_str_with_warnings(&text, "keys.yaml");
        match status {
            KeyStatus::Refused | KeyStatus::PartlyRefused => {
                let errors = result
                    .err()
                    .unwrap_or_else(|| panic!("{key}: {value} was accepted"));
                assert!(
                    errors.iter().any(|e| about(&e.path, &key)),
                    "{key}: refused, but not under its name: {errors}"
                );
            }
            KeyStatus::Warned => {
                let (_, warnings) =
                    result.unwrap_or_else(|e| panic!("{key}: a warned key was refused: {e}"));
                assert!(
                    warnings.iter().any(|w| about(&w.path, &key)),
                    "{key}: {value} gave no warning: {warnings:?}"
                );
                for line in warnings.warning_lines() {
                    assert!(line.starts_with("warning: keys.yaml: ") && !line.contains('\n'));
                }
            }
            KeyStatus::Honoured => unreachable!(),
        }
    }
}

#[test]
fn defaults_and_the_shipped_configs_give_no_warning() {
    let (_, warnings) = ForgeConfig::from_yaml_str_with_warnings("", "empty.yaml").unwrap();
    assert!(warnings.is_empty(), "{warnings:?}");
    // A config written back with every key stays quiet.
    let full = ForgeConfig::default().to_yaml_string();
    let (_, warnings) = ForgeConfig::from_yaml_str_with_warnings(&full, "full.yaml").unwrap();
    assert!(warnings.is_empty(), "{warnings:?}");
    for name in [
        "transformer_encoder_pbmc",
        "autoregressive_transformer_pbmc",
        "masked_autoencoder_pbmc",
        "finetune_pbmc",
    ] {
        let path = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../configs")
            .join(format!("{name}.yaml"));
        let (_, warnings) = ForgeConfig::load_with_warnings(&path).unwrap();
        assert!(
            warnings.is_empty(),
            "{name}: {:?}",
            warnings.warning_lines()
        );
    }
}

#[test]
fn statuses_round_trip_and_wildcards_match_below_only() {
    for s in [
        KeyStatus::Honoured,
        KeyStatus::Refused,
        KeyStatus::PartlyRefused,
        KeyStatus::Warned,
    ] {
        assert_eq!(KeyStatus::from_name(s.as_str()), Some(s));
    }
    assert_eq!(KeyStatus::from_name("ignored"), None);
    assert_eq!(key_status("zoo.timeout"), KeyStatus::Warned);
    assert_eq!(key_status("zoo"), KeyStatus::Honoured);
    assert_eq!(key_status("zoology.x"), KeyStatus::Honoured);
    assert_eq!(key_status("model.hidden_dim"), KeyStatus::Honoured);
    assert_eq!(sample_value("model.hidden_dim"), None);
    assert_eq!(yaml_for("a.b.c", "1"), "a:\n  b:\n    c: 1\n");
    assert!(about("data.census", "data.census.organism"));
    assert!(about("data.paths[0]", "data.paths"));
    assert!(!about("data.cloud", "data.census.organism"));
}
