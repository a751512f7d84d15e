//! Read-only access to the files of a target tree, by paths relative to its
//! root. Planning reads through this and nothing else, so a plan is a
//! function of the inputs and of what this returns.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};

/// The files of a tree, read-only.
pub trait Tree {
    /// The tree's root (for messages only).
    fn root(&self) -> &Path;
    /// The text of `rel`, or `None` when there is no such file.
    fn read(&self, rel: &str) -> Result<Option<String>>;
    /// Files directly in folder `dir` whose name ends in `.ext`, as
    /// relative paths, sorted.
    fn list_files(&self, dir: &str, ext: &str) -> Result<Vec<String>>;
    /// Names of the sub-folders of `dir`, sorted.
    fn list_dirs(&self, dir: &str) -> Result<Vec<String>>;
}

/// The text of `path`, which forge-gen needs in order to add `what`: an
/// error naming the file and the tree when it is missing.
pub fn read_required(tree: &dyn Tree, path: &str, what: &str) -> Result<String> {
    tree.read(path)?.with_context(|| {
        format!(
            "{path} not found under {}; forge-gen edits it to add {what}. Is this the forge \
             workspace (or pass --root)?",
            tree.root().display()
        )
    })
}

/// A tree on disk.
#[derive(Debug, Clone)]
pub struct FsTree {
    root: PathBuf,
}

impl FsTree {
    /// The tree rooted at `root`.
    pub fn new(root: impl Into<PathBuf>) -> Self {
        FsTree { root: root.into() }
    }

    fn entries(&self, dir: &str) -> Result<Vec<(String, bool)>> {
        let path = self.root.join(dir);
        let read = match std::fs::read_dir(&path) {
            Ok(read) => read,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(vec![]),
            Err(e) => return Err(e).with_context(|| format!("cannot list {}", path.display())),
        };
        let mut out = vec![];
        for entry in read {
            let entry = entry.with_context(|| format!("cannot list {}", path.display()))?;
            let Ok(name) = entry.file_name().into_string() else {
                continue;
            };
            out.push((name, entry.path().is_dir()));
        }
        out.sort();
        Ok(out)
    }
}

impl Tree for FsTree {
    fn root(&self) -> &Path {
        &self.root
    }

    fn read(&self, rel: &str) -> Result<Option<String>> {
        let path = self.root.join(rel);
        match std::fs::read_to_string(&path) {
            Ok(text) => Ok(Some(text)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e).with_context(|| format!("cannot read {rel}")),
        }
    }

    fn list_files(&self, dir: &str, ext: &str) -> Result<Vec<String>> {
        let suffix = format!(".{ext}");
        Ok(self
            .entries(dir)?
            .into_iter()
            .filter(|(name, is_dir)| !is_dir && name.ends_with(&suffix) && !name.starts_with('.'))
            .map(|(name, _)| format!("{dir}/{name}"))
            .collect())
    }

    fn list_dirs(&self, dir: &str) -> Result<Vec<String>> {
        Ok(self
            .entries(dir)?
            .into_iter()
            .filter(|(name, is_dir)| *is_dir && !name.starts_with('.'))
            .map(|(name, _)| name)
            .collect())
    }
}
