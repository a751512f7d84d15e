//! Scratch trees for the tests: copies of the workspace's files (and of a
//! small plugin crate) in temporary folders, and helpers to run
//! forge-gen's planning and applying on them.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use forge_gen::apply::{Faults, apply};
use forge_gen::cli::NewRequest;
use forge_gen::layout::Site;
use forge_gen::layout::Target;
use forge_gen::new::plan as plan_new;
use forge_gen::plan::Plan;
use forge_gen::remove::plan as plan_remove;
use forge_gen::tree::FsTree;
use tempfile::TempDir;

/// The generator crate's folder.
pub fn crate_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The forge workspace holding this crate.
pub fn workspace_dir() -> PathBuf {
    crate_dir().parent().unwrap().to_path_buf()
}

/// A copy of folder `from` in a fresh temporary folder.
pub fn copy_tree(from: &Path) -> TempDir {
    let dir = tempfile::tempdir().unwrap();
    copy_dir(from, dir.path());
    dir
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let dest = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_dir(&entry.path(), &dest);
        } else {
            std::fs::copy(entry.path(), dest).unwrap();
        }
    }
}

/// A scratch copy of the files of this workspace that forge-gen reads or
/// edits (models, their tests, configs, the docs),
/// taken as they are now, so the tests and snapshots follow the real files.
pub fn fixture() -> TempDir {
    let ws = workspace_dir();
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("Cargo.toml"), "[workspace]\n").unwrap();
    for folder in [
        "forge-core/src/models",
        "tests/integration/models",
        "configs",
    ] {
        for entry in std::fs::read_dir(ws.join(folder)).unwrap() {
            let path = entry.unwrap().path();
            if path.is_file() {
                let dest = dir.path().join(folder).join(path.file_name().unwrap());
                std::fs::create_dir_all(dest.parent().unwrap()).unwrap();
                std::fs::copy(&path, dest).unwrap();
            }
        }
    }
    let docs = "docs/api/models.md";
    let dest = dir.path().join(docs);
    std::fs::create_dir_all(dest.parent().unwrap()).unwrap();
    std::fs::copy(ws.join(docs), dest).unwrap();
    dir
}

/// A scratch copy of the fixture plugin crate.
pub fn plugin_fixture() -> TempDir {
    copy_tree(&crate_dir().join("tests/fixtures/plugin"))
}

/// Every file under `root` with its bytes, by relative path (folders
/// included, as empty entries, so a leftover empty folder shows).
pub fn snapshot(root: &Path) -> BTreeMap<String, Vec<u8>> {
    let mut out = BTreeMap::new();
    walk(root, root, &mut out);
    out
}

fn walk(root: &Path, dir: &Path, out: &mut BTreeMap<String, Vec<u8>>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        let rel = path.strip_prefix(root).unwrap().display().to_string();
        if path.is_dir() {
            out.insert(format!("{rel}/"), vec![]);
            walk(root, &path, out);
        } else {
            out.insert(rel, std::fs::read(&path).unwrap());
        }
    }
}

/// A `new` request from command-line style words: `["name", "--head",
/// "bin"]`.
pub fn request(words: &[&str]) -> NewRequest {
    let mut args = vec!["new".to_string()];
    args.extend(words.iter().map(|w| w.to_string()));
    NewRequest::from_args(&args).unwrap()
}

/// The plan of `new` in the workspace at `root`.
pub fn new_plan(root: &Path, words: &[&str], force: bool) -> anyhow::Result<Plan> {
    let tree = FsTree::new(root);
    let site = Site {
        tree: &tree,
        target: Target::Workspace,
        workspace: None,
    };
    plan_new(&site, &request(words), force)
}

/// Plans and applies `new`; panics on conflicts.
pub fn new_apply(root: &Path, words: &[&str]) -> Plan {
    let plan = new_plan(root, words, false).unwrap();
    assert!(!plan.has_conflicts(), "{}", plan.summary());
    apply(root, &plan, Faults::default()).unwrap();
    plan
}

/// The plan of `remove` in the workspace at `root`.
pub fn remove_plan(root: &Path, name: &str, force: bool) -> anyhow::Result<Plan> {
    let tree = FsTree::new(root);
    let site = Site {
        tree: &tree,
        target: Target::Workspace,
        workspace: None,
    };
    plan_remove(&site, name, force)
}

/// Plans and applies `remove`; panics on conflicts.
pub fn remove_apply(root: &Path, name: &str) -> Plan {
    let plan = remove_plan(root, name, false).unwrap();
    assert!(!plan.has_conflicts(), "{}", plan.summary());
    apply(root, &plan, Faults::default()).unwrap();
    plan
}

/// The statuses of a plan, as `status path` lines.
pub fn statuses(plan: &Plan) -> Vec<String> {
    plan.changes
        .iter()
        .map(|c| format!("{} {}", c.status.word(), c.path))
        .collect()
}
