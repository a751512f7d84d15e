//! Where things live: the forge workspace (models in forge-core) or a
//! user's plugin crate (`--crate PATH`), and what models a tree already has.
//!
//! Paths handed out here are relative to the target's root, so plans,
//! messages and snapshots never carry absolute paths. Reading and writing
//! files is not done here (see `tree.rs` and `apply.rs`).

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};

use crate::region::Anchor;
use crate::rust_source;
use crate::tree::Tree;

/// Module list of a models folder: `pub mod name;` lines.
pub const MODULES: Anchor = Anchor::new("model-modules", "//");
/// Re-exports of model structs: `pub use name::Struct;` lines.
pub const EXPORTS: Anchor = Anchor::new("model-exports", "//");
/// Test modules: `mod name;` lines.
pub const TESTS: Anchor = Anchor::new("model-tests", "//");
/// Sections of the models page.
pub const DOCS: Anchor = Anchor::new("model-docs", "<!--");

/// Where a model is generated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    /// The forge workspace: the model joins forge-core.
    Workspace,
    /// A plugin crate depending on forge-core; `ident` is its crate name as
    /// a Rust identifier (`my_plugin`).
    Plugin {
        /// Crate name as written in Rust paths.
        ident: String,
    },
}

impl Target {
    /// The folder holding model files.
    pub fn models_dir(&self) -> &'static str {
        match self {
            Target::Workspace => "forge-core/src/models",
            Target::Plugin { .. } => "src",
        }
    }

    /// The model file of `name`.
    pub fn model_file(&self, name: &str) -> String {
        format!("{}/{name}.rs", self.models_dir())
    }

    /// The file declaring the model modules (markers [`MODULES`]).
    pub fn module_list(&self) -> &'static str {
        match self {
            Target::Workspace => "forge-core/src/models/mod.rs",
            Target::Plugin { .. } => "src/lib.rs",
        }
    }

    /// The file re-exporting model structs (markers [`EXPORTS`]), if any.
    pub fn exports(&self) -> Option<&'static str> {
        match self {
            Target::Workspace => Some("forge-core/src/models/mod.rs"),
            Target::Plugin { .. } => None,
        }
    }

    /// The test file of `name`.
    pub fn test_file(&self, name: &str) -> String {
        match self {
            Target::Workspace => format!("tests/integration/models/{name}.rs"),
            Target::Plugin { .. } => format!("tests/{name}.rs"),
        }
    }

    /// The file declaring the test modules (markers [`TESTS`]), if any: a
    /// plugin's test files are test binaries of their own.
    pub fn test_list(&self) -> Option<&'static str> {
        match self {
            Target::Workspace => Some("tests/integration/models/mod.rs"),
            Target::Plugin { .. } => None,
        }
    }

    /// The models page (markers [`DOCS`]), if any.
    pub fn docs(&self) -> Option<&'static str> {
        match self {
            Target::Workspace => Some("docs/api/models.md"),
            Target::Plugin { .. } => None,
        }
    }

    /// The folder of example configs.
    pub fn configs_dir(&self) -> &'static str {
        "configs"
    }

    /// The example config generated for `name`.
    pub fn config_file(&self, name: &str) -> String {
        format!("{}/{name}.yaml", self.configs_dir())
    }

    /// Whether this is a plugin crate.
    pub fn is_plugin(&self) -> bool {
        matches!(self, Target::Plugin { .. })
    }
}

/// Where a command works: the tree and its layout, plus the forge
/// workspace when the target is a plugin crate (models to copy with
/// `--from` may live there).
pub struct Site<'a> {
    /// The files of the target.
    pub tree: &'a dyn Tree,
    /// Its layout.
    pub target: Target,
    /// The forge workspace, for `--from` in a plugin crate.
    pub workspace: Option<&'a dyn Tree>,
}

/// A `Cargo.toml`, parsed; `what` names it in the error.
fn manifest(what: &str, text: &str) -> Result<toml::Table> {
    text.parse::<toml::Table>()
        .map_err(|err| anyhow::anyhow!("{what} is not valid TOML: {err}"))
}

/// Finds the forge workspace: `explicit` if given, else the nearest
/// ancestor of `start` whose Cargo.toml has a `[workspace]` table.
pub fn find_workspace_root(explicit: Option<&Path>, start: &Path) -> Result<PathBuf> {
    if let Some(root) = explicit {
        let path = root.join("Cargo.toml");
        let text = std::fs::read_to_string(&path).with_context(|| {
            format!("--root {}: cannot read {}", root.display(), path.display())
        })?;
        if !manifest(&path.display().to_string(), &text)?.contains_key("workspace") {
            bail!(
                "--root {}: its Cargo.toml has no [workspace] table; pass the folder of the \
                 forge workspace (the one holding forge-core/)",
                root.display()
            );
        }
        return Ok(root.to_path_buf());
    }
    for dir in start.ancestors() {
        let path = dir.join("Cargo.toml");
        if let Ok(text) = std::fs::read_to_string(&path)
            && manifest(&path.display().to_string(), &text)?.contains_key("workspace")
        {
            return Ok(dir.to_path_buf());
        }
    }
    bail!(
        "no Cargo workspace found in {} or any folder above it; run forge-gen inside the forge \
         workspace, or pass --root PATH (or --crate PATH for a plugin crate)",
        start.display()
    )
}

/// Reads a plugin crate's manifest: it must be a package depending on
/// forge-core (under `[dependencies]`, by name or through `package =
/// "forge-core"`). Returns the crate name as a Rust identifier.
pub fn plugin_crate_ident(tree: &dyn Tree) -> Result<String> {
    let root = tree.root().display();
    let Some(text) = tree.read("Cargo.toml")? else {
        bail!(
            "--crate {root}: no Cargo.toml there; pass the folder of a crate that depends on \
             forge-core"
        );
    };
    let table = manifest(&format!("--crate {root}: Cargo.toml"), &text)?;
    let Some(package) = table.get("package").and_then(toml::Value::as_table) else {
        bail!("--crate {root}: Cargo.toml has no [package] table; pass a crate, not a workspace");
    };
    if !depends_on_forge_core(&table) {
        bail!(
            "--crate {root}: Cargo.toml does not depend on forge-core; add it under \
             [dependencies], e.g. `forge-core = {{ path = \"../forge/forge-core\" }}`"
        );
    }
    let name = package
        .get("name")
        .and_then(toml::Value::as_str)
        .with_context(|| format!("--crate {root}: Cargo.toml has no package name"))?;
    Ok(name.replace('-', "_"))
}

fn depends_on_forge_core(manifest: &toml::Table) -> bool {
    let Some(deps) = manifest.get("dependencies").and_then(toml::Value::as_table) else {
        return false;
    };
    deps.iter().any(|(key, spec)| {
        let package = spec.get("package").and_then(toml::Value::as_str);
        package.unwrap_or(key) == "forge-core"
    })
}

/// A model found in a tree.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExistingModel {
    /// Registry name (`#[forge(name = "...")]`).
    pub name: String,
    /// Name of the struct deriving `ForgeModel`.
    pub struct_name: String,
    /// File declaring it, relative to the root.
    pub file: String,
}

/// Every model declared in the models folder of `target`, sorted by name.
pub fn existing_models(tree: &dyn Tree, target: &Target) -> Result<Vec<ExistingModel>> {
    let mut models = vec![];
    for file in tree.list_files(target.models_dir(), "rs")? {
        let Some(text) = tree.read(&file)? else {
            continue;
        };
        let declared = rust_source::declared_models(&file, &text).with_context(|| {
            format!(
                "forge-gen reads the models of {} from their files",
                target.models_dir()
            )
        })?;
        for (name, struct_name) in declared {
            models.push(ExistingModel {
                name,
                struct_name,
                file: file.clone(),
            });
        }
    }
    models.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(models)
}

/// The struct of model `name` in `file` (text `source`), if it declares it.
pub fn declared_model_struct(file: &str, source: &str, name: &str) -> Result<Option<String>> {
    Ok(rust_source::declared_models(file, source)?
        .into_iter()
        .find(|(n, _)| n == name)
        .map(|(_, s)| s))
}

/// Module names taken in the models folder (file stems, sub-folders).
pub fn existing_modules(tree: &dyn Tree, target: &Target) -> Result<Vec<String>> {
    let mut modules: Vec<String> = tree
        .list_files(target.models_dir(), "rs")?
        .iter()
        .filter_map(|f| Path::new(f).file_stem()?.to_str().map(str::to_string))
        .filter(|stem| stem != "mod")
        .collect();
    modules.extend(tree.list_dirs(target.models_dir())?);
    modules.sort();
    Ok(modules)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_plugin_manifests_with_a_toml_parser() {
        use crate::tree::FsTree;
        let dir = std::env::temp_dir().join(format!("forge-gen-layout-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let tree = FsTree::new(&dir);
        let cases: [(&str, Result<&str, &str>); 5] = [
            (
                "[package]\nname = \"my-plugin\"\n[dependencies]\nforge-core = \"0.1\"\n",
                Ok("my_plugin"),
            ),
            (
                "[package]\nname = \"p\"\n[dependencies.core]\npackage = \"forge-core\"\n",
                Ok("p"),
            ),
            (
                "# forge-core = \"0.1\"\n[package]\nname = \"p\"\n[dev-dependencies]\n\
                 forge-core = \"0.1\"\n",
                Err("does not depend on forge-core"),
            ),
            ("[workspace]\n", Err("no [package] table")),
            ("[package\n", Err("not valid TOML")),
        ];
        for (text, want) in cases {
            std::fs::write(dir.join("Cargo.toml"), text).unwrap();
            match (plugin_crate_ident(&tree), want) {
                (Ok(ident), Ok(want)) => assert_eq!(ident, want),
                (Err(err), Err(want)) => assert!(format!("{err:#}").contains(want), "{err:#}"),
                (got, want) => panic!("{text}: {got:?}, expected {want:?}"),
            }
        }
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
