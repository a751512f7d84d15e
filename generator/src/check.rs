//! `forge-gen list` and `forge-gen check`: what models a tree has, and
//! whether each is registered, tested, documented and configured.
//!
//! The checks read files only (forge-gen does not link forge-core):
//! - registered: its module is declared (`pub mod NAME;`, read with syn) in
//!   the models module list, so the derive's registration is compiled in;
//! - tested: its test file exists and, in the workspace, is declared in the
//!   test list;
//! - documented: the models page has a ``## `NAME` `` section (workspace);
//! - configured: some `configs/*.yaml` sets `model.architecture: NAME`.
//!
//! Entries that name no model (a stale test module or docs section) are
//! reported too, as are missing markers.

use std::fmt::Write as _;

use anyhow::Result;

use crate::entries::Region;
use crate::header;
use crate::layout::{self, Target};
use crate::region;
use crate::rust_source;
use crate::tree::Tree;
use crate::yaml::{config_architecture, find_config};

/// The state of one model.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ModelStatus {
    /// Registry name.
    pub name: String,
    /// Struct name.
    pub struct_name: String,
    /// File declaring it.
    pub file: String,
    /// Module declared in the module list.
    pub registered: bool,
    /// Test file present (and declared).
    pub tested: bool,
    /// Docs section present (`None`: no models page for this target).
    pub documented: Option<bool>,
    /// Example config, if any.
    pub config: Option<String>,
    /// `generated` (pristine forge-gen output), `edited` or `hand-written`.
    pub origin: &'static str,
}

/// The state of every model, plus problems that are not about one model.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Report {
    /// One per model, by name.
    pub models: Vec<ModelStatus>,
    /// Other problems (missing markers, stale entries).
    pub problems: Vec<String>,
}

/// The keys of `region`'s entries in `file`; a missing file or marker is
/// recorded in `problems`.
fn entry_keys(
    tree: &dyn Tree,
    file: &str,
    region: Region,
    problems: &mut Vec<String>,
) -> Result<Vec<String>> {
    let Some(text) = tree.read(file)? else {
        problems.push(format!("{file} is missing"));
        return Ok(vec![]);
    };
    match region::keys(file, &text, &region.anchor(), region.kind(), region.what()) {
        Ok(keys) => Ok(keys),
        Err(err) => {
            problems.push(err.to_string());
            Ok(vec![])
        }
    }
}

/// Inspects every model of the target.
pub fn inspect(tree: &dyn Tree, target: &Target) -> Result<Report> {
    let mut report = Report::default();
    let models = layout::existing_models(tree, target)?;
    let module_file = target.module_list();
    let declared_modules = match tree.read(module_file)? {
        Some(text) => rust_source::declared_modules(module_file, &text)?,
        None => vec![],
    };
    // The markers must be there for forge-gen to work.
    let mut problems = vec![];
    let mut keys = |region: Region| -> Result<Option<Vec<String>>> {
        match region.file(target) {
            Some(file) => Ok(Some(entry_keys(tree, file, region, &mut problems)?)),
            None => Ok(None),
        }
    };
    keys(Region::Modules)?;
    keys(Region::Exports)?;
    let tests = keys(Region::Tests)?;
    let docs = keys(Region::Docs)?;
    report.problems.extend(problems);

    for m in &models {
        let stem = std::path::Path::new(&m.file)
            .file_stem()
            .and_then(|s| s.to_str())
            .unwrap_or_default()
            .to_string();
        let registered = m.file == module_file || declared_modules.contains(&stem);
        let test_file = target.test_file(&m.name);
        let tested = tree.read(&test_file)?.is_some()
            && tests.as_ref().is_none_or(|keys| keys.contains(&m.name));
        let documented = docs.as_ref().map(|keys| keys.contains(&m.name));
        let config = find_config(tree, target, &m.name)?.map(|(path, _)| path);
        let origin = match tree.read(&m.file)?.as_deref().and_then(header::read) {
            Some(h) if h.pristine => "generated",
            Some(_) => "edited",
            None => "hand-written",
        };
        report.models.push(ModelStatus {
            name: m.name.clone(),
            struct_name: m.struct_name.clone(),
            file: m.file.clone(),
            registered,
            tested,
            documented,
            config,
            origin,
        });
    }
    let names: Vec<&str> = models.iter().map(|m| m.name.as_str()).collect();
    if let (Some(keys), Some(file)) = (&tests, target.test_list()) {
        for key in keys.iter().filter(|k| !names.contains(&k.as_str())) {
            report.problems.push(format!(
                "{file} declares `mod {key};` but there is no model `{key}`"
            ));
        }
    }
    if let (Some(keys), Some(file)) = (&docs, target.docs()) {
        for key in keys.iter().filter(|k| !names.contains(&k.as_str())) {
            report.problems.push(format!(
                "{file} documents `{key}` but there is no model `{key}`"
            ));
        }
    }
    for file in tree.list_files(target.configs_dir(), "yaml")? {
        if let Some(arch) = tree.read(&file)?.as_deref().and_then(config_architecture)
            && !names.contains(&arch.as_str())
        {
            report.problems.push(format!(
                "{file} sets model.architecture `{arch}` but there is no model `{arch}`"
            ));
        }
    }
    Ok(report)
}

impl Report {
    /// What is missing, one line each; empty when all is well.
    pub fn missing(&self, target: &Target) -> Vec<String> {
        let mut out = vec![];
        for m in &self.models {
            if !m.registered {
                out.push(format!(
                    "{}: not registered (no `pub mod {};` in {})",
                    m.name,
                    std::path::Path::new(&m.file)
                        .file_stem()
                        .and_then(|s| s.to_str())
                        .unwrap_or(&m.name),
                    target.module_list()
                ));
            }
            if !m.tested {
                let list = target
                    .test_list()
                    .map(|f| format!(", declared in {f}"))
                    .unwrap_or_default();
                out.push(format!(
                    "{}: not tested (expected {}{list})",
                    m.name,
                    target.test_file(&m.name)
                ));
            }
            if m.documented == Some(false) {
                out.push(format!(
                    "{}: not documented (no ## `{}` section in {})",
                    m.name,
                    m.name,
                    target.docs().unwrap_or_default()
                ));
            }
            if m.config.is_none() {
                out.push(format!(
                    "{}: not configured (no {}/*.yaml sets model.architecture: {})",
                    m.name,
                    target.configs_dir(),
                    m.name
                ));
            }
        }
        out.extend(self.problems.iter().cloned());
        out
    }

    /// The `list` table.
    pub fn table(&self) -> String {
        let yes = |b: bool| if b { "yes" } else { "NO" };
        let mut out = String::new();
        let _ = writeln!(
            out,
            "{:<28} {:<30} {:<12} {:<10} {:<7} {:<10} config",
            "model", "struct", "origin", "registered", "tested", "documented"
        );
        for m in &self.models {
            let _ = writeln!(
                out,
                "{:<28} {:<30} {:<12} {:<10} {:<7} {:<10} {}",
                m.name,
                m.struct_name,
                m.origin,
                yes(m.registered),
                yes(m.tested),
                m.documented.map(yes).unwrap_or("-"),
                m.config.as_deref().unwrap_or("NO")
            );
        }
        out
    }
}
