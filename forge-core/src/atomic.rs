//! All-or-nothing file and folder writes: content goes to a temporary path
//! beside the target, then one rename puts it in place, so a crash or a full
//! disk never leaves a half-written file where a good one was.

use std::path::{Path, PathBuf};

use crate::error::{ForgeError, Result};

fn sibling(target: &Path, tag: &str) -> PathBuf {
    let name = target
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    target.with_file_name(format!(".{name}.{tag}-{}", std::process::id()))
}

/// Writes `bytes` to `path` through a temporary file and a rename.
pub fn write_file(path: &Path, bytes: &[u8]) -> Result<()> {
    write_file_with(
        path,
        |tmp| std::fs::write(tmp, bytes).map_err(|e| ForgeError::io(path, e)),
        |p, e| ForgeError::io(p, e),
    )
}

/// Writes the file `path` all at once: `fill` writes a temporary file beside
/// it, which is then renamed over `path`. On failure the temporary file is
/// removed and `path` is left as it was. Generic over the caller's error
/// type `E`; `io` turns an I/O error at a path (creating the parent folder,
/// the rename) into one.
pub fn write_file_with<E>(
    path: &Path,
    fill: impl FnOnce(&Path) -> std::result::Result<(), E>,
    io: impl Fn(&Path, std::io::Error) -> E,
) -> std::result::Result<(), E> {
    if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent).map_err(|e| io(parent, e))?;
    }
    let tmp = sibling(path, "partial");
    let result = fill(&tmp).and_then(|()| std::fs::rename(&tmp, path).map_err(|e| io(path, e)));
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result
}

/// Builds a folder at `target` all at once: `fill` writes into a temporary
/// folder beside it, which then replaces `target`. When `target` exists it
/// is replaced only if `overwrite` (the old folder is kept until the new one
/// is in place); otherwise that is an error. On any failure `target` is left
/// as it was and the temporary folder is removed.
pub fn write_dir<F>(target: &Path, overwrite: bool, fill: F) -> Result<()>
where
    F: FnOnce(&Path) -> Result<()>,
{
    if target.exists() && !overwrite {
        return Err(ForgeError::io(
            target,
            std::io::Error::new(
                std::io::ErrorKind::AlreadyExists,
                "already exists; choose another folder or allow overwriting",
            ),
        ));
    }
    if let Some(parent) = target.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent).map_err(|e| ForgeError::io(parent, e))?;
    }
    let tmp = sibling(target, "partial");
    let _ = std::fs::remove_dir_all(&tmp);
    std::fs::create_dir(&tmp).map_err(|e| ForgeError::io(&tmp, e))?;
    if let Err(err) = fill(&tmp) {
        let _ = std::fs::remove_dir_all(&tmp);
        return Err(err);
    }
    let old = sibling(target, "old");
    let had_old = target.exists();
    if had_old {
        std::fs::rename(target, &old).map_err(|e| {
            let _ = std::fs::remove_dir_all(&tmp);
            ForgeError::io(target, e)
        })?;
    }
    if let Err(e) = std::fs::rename(&tmp, target) {
        if had_old {
            let _ = std::fs::rename(&old, target);
        }
        let _ = std::fs::remove_dir_all(&tmp);
        return Err(ForgeError::io(target, e));
    }
    if had_old {
        let _ = std::fs::remove_dir_all(&old);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scratch(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("forge-atomic-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    #[test]
    fn replaces_only_when_asked_and_keeps_the_old_on_failure() {
        let root = scratch("dir");
        let target = root.join("ckpt");
        write_dir(&target, false, |d| write_file(&d.join("a"), b"one")).unwrap();
        assert!(
            write_dir(&target, false, |_| Ok(())).is_err(),
            "no silent overwrite"
        );
        let failed = write_dir(&target, true, |d| {
            write_file(&d.join("a"), b"two")?;
            Err(ForgeError::io(d, std::io::Error::other("disk full")))
        });
        assert!(failed.is_err());
        assert_eq!(
            std::fs::read(target.join("a")).unwrap(),
            b"one",
            "previous intact"
        );
        write_dir(&target, true, |d| write_file(&d.join("a"), b"two")).unwrap();
        assert_eq!(std::fs::read(target.join("a")).unwrap(), b"two");
        let leftovers: Vec<_> = std::fs::read_dir(&root).unwrap().collect();
        assert_eq!(leftovers.len(), 1, "no temporary folders left behind");
        std::fs::remove_dir_all(&root).unwrap();
    }
}
