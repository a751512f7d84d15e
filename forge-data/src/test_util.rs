//! Helpers shared by the crate's test modules: fixture paths, the expected
//! values the Python scripts wrote, and scratch folders.

use std::path::{Path, PathBuf};

use serde_json::Value;

/// `forge-core/tests/fixtures/<dir>/<name>`: the fixtures stay where the
/// scripts that make them write them.
pub fn fixture(dir: &str, name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../forge-core/tests/fixtures")
        .join(dir)
        .join(name)
}

/// `tests/fixtures/<dir>/expected.json`, parsed.
pub fn expected(dir: &str) -> Value {
    let text = std::fs::read_to_string(fixture(dir, "expected.json")).expect("expected.json");
    serde_json::from_str(&text).expect("expected.json parses")
}

/// The workspace's `data/pbmc68k_reduced.h5ad` (fetched by setup).
pub fn pbmc_path() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../data/pbmc68k_reduced.h5ad")
}

/// `path` when it exists; otherwise `None`, with a note that the test is
/// skipped (what scripts/setup.sh fetches or installs may be missing).
pub fn if_present(path: PathBuf) -> Option<PathBuf> {
    if !path.exists() {
        eprintln!(
            "skipping: {} not found (run scripts/setup.sh)",
            path.display()
        );
        return None;
    }
    Some(path)
}

/// The elements of a JSON array, each read by `f`.
pub fn array<T>(v: &Value, f: impl Fn(&Value) -> T) -> Vec<T> {
    v.as_array().expect("array").iter().map(f).collect()
}

pub fn i64s(v: &Value) -> Vec<i64> {
    array(v, |x| x.as_i64().expect("integer"))
}

pub fn f32s(v: &Value) -> Vec<f32> {
    array(v, |x| x.as_f64().expect("number") as f32)
}

/// Numbers, `null` read as NaN.
pub fn f64s(v: &Value) -> Vec<f64> {
    array(v, |x| x.as_f64().unwrap_or(f64::NAN))
}

pub fn strings(v: &Value) -> Vec<String> {
    array(v, |x| x.as_str().expect("string").to_string())
}

/// A per-test scratch folder, removed on drop.
pub struct Scratch(PathBuf);

impl Scratch {
    pub fn new(name: &str) -> Scratch {
        let p = std::env::temp_dir().join(format!("forge-data-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&p);
        std::fs::create_dir_all(&p).unwrap();
        Scratch(p)
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.0.join(name)
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// The message of `r`'s error, after checking that `r` failed with a
/// message holding each of `needles`.
#[track_caller]
pub fn fails<T, E: std::fmt::Display>(r: Result<T, E>, needles: &[&str]) -> String {
    let Err(e) = r else {
        panic!("expected an error holding {needles:?}, got a success");
    };
    let msg = e.to_string();
    for n in needles {
        assert!(msg.contains(n), "lacks {n:?}: {msg}");
    }
    msg
}
