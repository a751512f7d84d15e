//! Applying a plan all or nothing.
//!
//! 1. Check that every file is still what the plan was computed from.
//! 2. Write every new content to a temporary file next to its target
//!    (failure here touches nothing).
//! 3. Move each existing target aside to a backup name, then rename the
//!    temporary file onto it (or leave it absent, for a removal). If any
//!    step fails, every step done so far is undone in reverse order, so the
//!    tree is as it was.
//! 4. Delete the backups and folders that removals left empty.
//!
//! Renames within one folder are atomic on POSIX filesystems, so no reader
//! ever sees a half-written file.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};

use crate::plan::Plan;

/// A test hook: make step `n` (0-based) of the commit phase fail, to check
/// that a failure midway leaves the tree unchanged. Also read from the
/// environment variable `FORGE_GEN_FAIL_AT_STEP` by the binary.
#[derive(Debug, Clone, Copy, Default)]
pub struct Faults {
    /// Fail before this commit step.
    pub fail_at_step: Option<usize>,
}

enum Done {
    /// `target` was moved to `backup`.
    BackedUp { target: PathBuf, backup: PathBuf },
    /// A temporary file was renamed onto `target`.
    Installed { target: PathBuf },
}

fn sibling(path: &Path, suffix: &str) -> PathBuf {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    path.with_file_name(format!(".{name}.forge-gen-{suffix}"))
}

/// Applies `plan` under `root`, all or nothing. Returns the paths written
/// or removed.
pub fn apply(root: &Path, plan: &Plan, faults: Faults) -> Result<Vec<String>> {
    if plan.has_conflicts() {
        bail!("the plan has conflicts; nothing was written");
    }
    let changes: Vec<_> = plan.changes.iter().filter(|c| c.status.writes()).collect();

    // 1. Still as planned?
    for c in &changes {
        let path = root.join(&c.path);
        let now = match fs::read_to_string(&path) {
            Ok(t) => Some(t),
            Err(e) if e.kind() == io::ErrorKind::NotFound => None,
            Err(e) => return Err(e).with_context(|| format!("cannot read {}", c.path)),
        };
        if now != c.before {
            bail!(
                "{} changed while forge-gen was planning; nothing was written, run it again",
                c.path
            );
        }
    }

    // 2. Temporary files (and missing folders).
    let mut created_dirs: Vec<PathBuf> = vec![];
    let mut temps: Vec<(usize, PathBuf)> = vec![];
    let prepared: Result<()> = (|| {
        for (i, c) in changes.iter().enumerate() {
            let Some(after) = &c.after else { continue };
            let path = root.join(&c.path);
            let parent = path.parent().context("a file path has a folder")?;
            let mut missing = vec![];
            let mut dir = parent;
            while !dir.exists() {
                missing.push(dir.to_path_buf());
                match dir.parent() {
                    Some(p) => dir = p,
                    None => break,
                }
            }
            for d in missing.into_iter().rev() {
                fs::create_dir(&d).with_context(|| format!("cannot create {}", d.display()))?;
                created_dirs.push(d);
            }
            let temp = sibling(&path, "new");
            fs::write(&temp, after).with_context(|| format!("cannot write {}", temp.display()))?;
            if let Ok(meta) = fs::metadata(&path) {
                fs::set_permissions(&temp, meta.permissions())?;
            }
            temps.push((i, temp));
        }
        Ok(())
    })();
    if let Err(err) = prepared {
        cleanup(&temps, &created_dirs);
        return Err(err.context("nothing was changed"));
    }

    // 3. Commit, undoing everything on the first failure.
    let mut done: Vec<Done> = vec![];
    let committed: Result<()> = (|| {
        for (i, c) in changes.iter().enumerate() {
            if faults.fail_at_step == Some(i) {
                bail!("injected failure before writing {}", c.path);
            }
            let path = root.join(&c.path);
            if c.before.is_some() {
                let backup = sibling(&path, "old");
                fs::rename(&path, &backup)
                    .with_context(|| format!("cannot move {} aside", c.path))?;
                done.push(Done::BackedUp {
                    target: path.clone(),
                    backup,
                });
            }
            if let Some((_, temp)) = temps.iter().find(|(j, _)| *j == i) {
                fs::rename(temp, &path).with_context(|| format!("cannot write {}", c.path))?;
                done.push(Done::Installed { target: path });
            }
        }
        Ok(())
    })();
    if let Err(err) = committed {
        let mut undo_errors = vec![];
        for step in done.iter().rev() {
            let undone = match step {
                Done::Installed { target } => fs::remove_file(target),
                Done::BackedUp { target, backup } => fs::rename(backup, target),
            };
            if let Err(e) = undone {
                undo_errors.push(e.to_string());
            }
        }
        cleanup(&temps, &created_dirs);
        if !undo_errors.is_empty() {
            return Err(err.context(format!(
                "and undoing failed too ({}); backups named .NAME.forge-gen-old are next to \
                 the files",
                undo_errors.join("; ")
            )));
        }
        return Err(err.context("every change was undone; the tree is as it was"));
    }

    // 4. Clean up.
    for step in &done {
        if let Done::BackedUp { backup, .. } = step {
            let _ = fs::remove_file(backup);
        }
    }
    for c in changes.iter().filter(|c| c.after.is_none()) {
        let mut dir = root.join(&c.path);
        while let Some(parent) = dir.parent() {
            if parent == root || fs::remove_dir(parent).is_err() {
                break;
            }
            dir = parent.to_path_buf();
        }
    }
    Ok(changes.iter().map(|c| c.path.clone()).collect())
}

fn cleanup(temps: &[(usize, PathBuf)], created_dirs: &[PathBuf]) {
    for (_, temp) in temps {
        let _ = fs::remove_file(temp);
    }
    for dir in created_dirs.iter().rev() {
        let _ = fs::remove_dir(dir);
    }
}
