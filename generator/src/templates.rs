//! The tera templates of `templates/`, compiled into the binary so that
//! forge-gen works from any folder, and the one place they are rendered.
//!
//! Which template fills which file, and with what context, is decided in
//! `render.rs` and `copy.rs`; this module only knows the templates
//! themselves.

use std::collections::BTreeSet;
use std::sync::{Mutex, OnceLock};

use anyhow::{Context as _, Result};
use tera::{Context, Tera};

/// Every template: (name, text). The name is the file name in
/// `templates/`.
pub const TEMPLATES: &[(&str, &str)] = &[
    (
        "model.rs.tera",
        include_str!("../../templates/model.rs.tera"),
    ),
    (
        "option_fields.rs.tera",
        include_str!("../../templates/option_fields.rs.tera"),
    ),
    (
        "model_test.rs.tera",
        include_str!("../../templates/model_test.rs.tera"),
    ),
    (
        "config_test.rs.tera",
        include_str!("../../templates/config_test.rs.tera"),
    ),
    (
        "option_tests.rs.tera",
        include_str!("../../templates/option_tests.rs.tera"),
    ),
    (
        "plugin_common.rs.tera",
        include_str!("../../templates/plugin_common.rs.tera"),
    ),
    (
        "config.yaml.tera",
        include_str!("../../templates/config.yaml.tera"),
    ),
    (
        "config_options.yaml.tera",
        include_str!("../../templates/config_options.yaml.tera"),
    ),
    (
        "option_decls.rs.tera",
        include_str!("../../templates/option_decls.rs.tera"),
    ),
    (
        "model_options.rs.tera",
        include_str!("../../templates/model_options.rs.tera"),
    ),
    (
        "docs_entry.md.tera",
        include_str!("../../templates/docs_entry.md.tera"),
    ),
];

fn tera() -> &'static Tera {
    static TERA: OnceLock<Tera> = OnceLock::new();
    TERA.get_or_init(|| {
        let mut tera = Tera::default();
        tera.autoescape_on(vec![]);
        tera.add_raw_templates(TEMPLATES.iter().copied())
            .expect("the embedded templates parse (checked by the crate's tests)");
        tera
    })
}

/// Names of the templates rendered so far in this process (directly, not
/// through `include`); the tests use it to check every template is used.
pub fn rendered() -> BTreeSet<String> {
    used().lock().map(|s| s.clone()).unwrap_or_default()
}

fn used() -> &'static Mutex<BTreeSet<String>> {
    static USED: OnceLock<Mutex<BTreeSet<String>>> = OnceLock::new();
    USED.get_or_init(|| Mutex::new(BTreeSet::new()))
}

/// Renders template `name` with `context`.
pub fn render(name: &str, context: &Context) -> Result<String> {
    if let Ok(mut set) = used().lock() {
        set.insert(name.to_string());
    }
    tera()
        .render(name, context)
        .with_context(|| format!("rendering template {name}"))
}

/// Templates that `name` includes, directly.
pub fn includes(name: &str) -> Vec<String> {
    let text = TEMPLATES
        .iter()
        .find(|(n, _)| *n == name)
        .map(|(_, t)| *t)
        .unwrap_or("");
    text.split("{% include \"")
        .skip(1)
        .filter_map(|rest| rest.split_once('"').map(|(n, _)| n.to_string()))
        .collect()
}
