//! Compile-fail tests of `#[derive(ForgeModel)]` (trybuild).
//!
//! Each case in `tests/ui` is compiled afresh and its messages compared with
//! the recorded `.stderr`. Compiler wording changes between Rust releases,
//! so the full text is compared only on the rustc named in
//! `tests/ui/RUSTC_VERSION` (the one the files were recorded with); on any
//! other, each recorded `error` line must still appear. The compiler's list
//! of "other types that implement" a trait is left out of the comparison:
//! it grows with every model added to the workspace.
//!
//! To re-record after an intended change: `FORGE_UI_RECORD=1 cargo test
//! --test integration compile_fail` (rewrites the `.stderr` files and
//! `RUSTC_VERSION`); review the diff before committing.

use std::path::{Path, PathBuf};
use std::process::Command;

fn ui_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/ui")
}

fn rustc_version() -> String {
    let rustc = std::env::var("RUSTC").unwrap_or_else(|_| "rustc".into());
    let out = Command::new(rustc)
        .arg("--version")
        .output()
        .expect("rustc runs");
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

#[test]
fn derive_errors_point_at_the_users_code() {
    let fresh = record_fresh();
    if std::env::var_os("FORGE_UI_RECORD").is_some() {
        for entry in std::fs::read_dir(&fresh).unwrap() {
            let path = entry.unwrap().path();
            if path.extension().is_some_and(|e| e == "stderr") {
                let text = std::fs::read_to_string(&path).unwrap();
                let text = text.replace(&format!("{}/", fresh.display()), "tests/ui/");
                std::fs::write(ui_dir().join(path.file_name().unwrap()), text).unwrap();
            }
        }
        std::fs::write(ui_dir().join("RUSTC_VERSION"), rustc_version() + "\n").unwrap();
        return;
    }
    let recorded_version = std::fs::read_to_string(ui_dir().join("RUSTC_VERSION")).unwrap();
    let full_text = recorded_version.trim() == rustc_version();
    let mut cases: Vec<PathBuf> = std::fs::read_dir(ui_dir())
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "rs"))
        .collect();
    cases.sort();
    assert!(cases.len() >= 6, "ui cases are missing");
    for case in &cases {
        let file = case.with_extension("stderr");
        let name = file.file_name().unwrap();
        let want = std::fs::read_to_string(&file)
            .unwrap_or_else(|_| panic!("{} has no recorded .stderr", case.display()));
        let got = std::fs::read_to_string(fresh.join(name))
            .unwrap_or_else(|_| panic!("{} compiled, but must fail", case.display()));
        if full_text {
            assert_eq!(
                normalize(&got),
                normalize(&want),
                "{}: compiler output changed",
                case.display()
            );
        } else {
            for line in want.lines().filter(|l| l.starts_with("error")) {
                assert!(
                    got.contains(line),
                    "{}: recorded with {}, the error line\n  {line}\nis gone from:\n{got}",
                    case.display(),
                    recorded_version.trim()
                );
            }
        }
    }
}

/// Compiles every case in a scratch copy, with trybuild writing what the
/// compiler says next to each; returns the scratch folder.
fn record_fresh() -> PathBuf {
    let scratch = Path::new(env!("CARGO_TARGET_TMPDIR")).join("ui-fresh");
    let _ = std::fs::remove_dir_all(&scratch);
    std::fs::create_dir_all(&scratch).unwrap();
    for entry in std::fs::read_dir(ui_dir()).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "rs") {
            std::fs::copy(&path, scratch.join(path.file_name().unwrap())).unwrap();
        }
    }
    // SAFETY: set before trybuild starts; no other test reads TRYBUILD.
    unsafe { std::env::set_var("TRYBUILD", "overwrite") };
    trybuild::TestCases::new().compile_fail(scratch.join("*.rs"));
    unsafe { std::env::remove_var("TRYBUILD") };
    scratch
}

/// The comparable part of compiler output: source paths reduced to the file
/// name, and the lists of implementing types dropped.
fn normalize(text: &str) -> String {
    let mut out = Vec::new();
    let mut skipping = false;
    for line in text.lines() {
        // rustc lists the implementing types as a `help:` block or, when
        // the list is short, as a `= help:` note; either grows with every
        // model.
        if line
            .trim_start_matches([' ', '='])
            .starts_with("help: the following other types implement trait")
        {
            skipping = true;
            continue;
        }
        if skipping {
            let ends = line.starts_with("note:")
                || line.starts_with("error")
                || line.starts_with("help:")
                || line.is_empty();
            if !ends {
                continue;
            }
            skipping = false;
        }
        let line = match line.find("--> ") {
            Some(i) => {
                let path = &line[i + 4..];
                let file = path.rsplit('/').next().unwrap_or(path);
                format!("{}--> {file}", &line[..i])
            }
            None => line.to_string(),
        };
        out.push(line);
    }
    out.join("\n")
}
