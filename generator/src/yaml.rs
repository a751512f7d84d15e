//! Example configs (YAML): finding a model's config, reading its `model:`
//! keys, and adding `--option` keys to a copied config. Reading goes
//! through saphyr, the YAML parser forge-core loads configs with, so
//! comments, quoting and flow style are understood as forge reads them;
//! the one edit (new keys at the end of the `model:` mapping) is made at
//! the position the parser reports, keeping the rest of the file (comments
//! included) byte for byte.

use anyhow::{Context as _, Result, bail};
use saphyr::{LoadableYamlNode, MarkedYaml, Scalar, YamlData};

use crate::layout::Target;
use crate::tree::Tree;

/// The example config of model `name`: `configs/NAME.yaml`, else the first
/// config (by file name) whose model section names it.
pub fn find_config(
    tree: &dyn Tree,
    target: &Target,
    name: &str,
) -> Result<Option<(String, String)>> {
    let own = target.config_file(name);
    if let Some(text) = tree.read(&own)? {
        return Ok(Some((own, text)));
    }
    for file in tree.list_files(target.configs_dir(), "yaml")? {
        if let Some(text) = tree.read(&file)?
            && config_architecture(&text).as_deref() == Some(name)
        {
            return Ok(Some((file, text)));
        }
    }
    Ok(None)
}

/// `model.architecture` of a YAML config (`None` when the file does not
/// parse or does not set it to a string).
pub fn config_architecture(text: &str) -> Option<String> {
    model_key(text, "architecture")
}

/// The string value of `model.KEY` in a YAML config.
pub fn model_key(text: &str, key: &str) -> Option<String> {
    let docs = MarkedYaml::load_from_str(text).ok()?;
    let value = mapping_get(mapping_get(docs.first()?, "model")?, key)?;
    match &value.data {
        YamlData::Value(Scalar::String(s)) => Some(s.to_string()),
        YamlData::Representation(s, ..) => Some(s.to_string()),
        _ => None,
    }
}

fn mapping_get<'a, 'i>(node: &'a MarkedYaml<'i>, key: &str) -> Option<&'a MarkedYaml<'i>> {
    let YamlData::Mapping(entries) = &node.data else {
        return None;
    };
    entries.iter().find_map(|(k, v)| match &k.data {
        YamlData::Value(Scalar::String(s)) if s == key => Some(v),
        YamlData::Representation(s, ..) if s == key => Some(v),
        _ => None,
    })
}

/// Adds `lines` (indented `key: value` lines) at the end of the top-level
/// `model:` block mapping of a YAML config: after the line of its last
/// entry's value, and after indented comment lines that end the section.
pub fn insert_model_keys(config: &str, lines: &str) -> Result<String> {
    let docs = MarkedYaml::load_from_str(config).map_err(|e| {
        anyhow::anyhow!("not valid YAML at line {}: {}", e.marker().line(), e.info())
    })?;
    let model = docs
        .first()
        .and_then(|d| mapping_get(d, "model"))
        .context("no `model:` section")?;
    let YamlData::Mapping(entries) = &model.data else {
        bail!("`model:` is not a mapping");
    };
    let (key, value) = entries.iter().next_back().context("`model:` is empty")?;
    if value.span.end.line() < key.span.start.line() || is_flow(config, model) {
        bail!("`model:` is not a block mapping (one `key: value` per line)");
    }
    let end = byte_offset(config, last_scalar(value).span.end.index());
    let mut at = config[end..]
        .find('\n')
        .map(|i| end + i + 1)
        .unwrap_or(config.len());
    // Indented comments that close the section stay above the new keys.
    let mut scan = at;
    for line in config[at..].split_inclusive('\n') {
        scan += line.len();
        if line.starts_with(' ') && line.trim_start().starts_with('#') {
            at = scan;
        } else if !line.trim().is_empty() {
            break;
        }
    }
    let sep = if at == config.len() && !config.ends_with('\n') {
        "\n"
    } else {
        ""
    };
    Ok(format!("{}{sep}{lines}{}", &config[..at], &config[at..]))
}

/// The last scalar of a node (itself, or its last entry's, recursively):
/// where the node's text ends. (A collection's own end is where the next
/// token starts, after any comments and blank lines.)
fn last_scalar<'a, 'i>(node: &'a MarkedYaml<'i>) -> &'a MarkedYaml<'i> {
    match &node.data {
        YamlData::Mapping(entries) => entries
            .iter()
            .next_back()
            .map_or(node, |(_, v)| last_scalar(v)),
        YamlData::Sequence(items) => items.last().map_or(node, last_scalar),
        YamlData::Tagged(_, inner) => last_scalar(inner),
        _ => node,
    }
}

/// Whether a mapping is written in flow style (`{a: 1}`).
fn is_flow(text: &str, node: &MarkedYaml<'_>) -> bool {
    let start = byte_offset(text, node.span.start.index());
    text[start..].starts_with('{')
}

/// The byte offset of character `index` (saphyr counts characters).
fn byte_offset(text: &str, index: usize) -> usize {
    text.char_indices()
        .nth(index)
        .map(|(i, _)| i)
        .unwrap_or(text.len())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_model_keys_with_a_parser() {
        let text = "# architecture: commented\nmodel:\n  # architecture: no\n  \
                    architecture: \"my_model\"  # trailing\n  pooling: mean\n\
                    training:\n  architecture: other\n";
        assert_eq!(config_architecture(text).as_deref(), Some("my_model"));
        assert_eq!(model_key(text, "pooling").as_deref(), Some("mean"));
        assert_eq!(
            config_architecture("model: {architecture: flow}\n").as_deref(),
            Some("flow")
        );
        assert_eq!(config_architecture("training:\n  architecture: x\n"), None);
        assert_eq!(config_architecture("model: [\n"), None);
    }

    #[test]
    fn inserts_at_the_end_of_the_model_mapping() {
        let text = "model:\n  a: 1\n  b:\n    - x\n    - y\n  # note\n\n# data\ndata:\n  c: 2\n";
        assert_eq!(
            insert_model_keys(text, "  d: 3\n").unwrap(),
            "model:\n  a: 1\n  b:\n    - x\n    - y\n  # note\n  d: 3\n\n# data\ndata:\n  c: 2\n"
        );
        assert_eq!(
            insert_model_keys("model:\n  a: 1", "  d: 3\n").unwrap(),
            "model:\n  a: 1\n  d: 3\n"
        );
        assert!(insert_model_keys("model: {a: 1}\n", "  d: 3\n").is_err());
        assert!(insert_model_keys("data:\n  a: 1\n", "  d: 3\n").is_err());
    }
}
