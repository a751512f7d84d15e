//! The `forge-gen` binary as a user runs it: exit codes, messages, workspace
//! discovery, `--dry-run`, `list`, `check`, and how fast `new` is.

use std::path::Path;
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use crate::common::*;

fn forge_gen(cwd: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_forge-gen"))
        .args(args)
        .current_dir(cwd)
        .output()
        .expect("forge-gen runs")
}

fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

#[test]
fn new_finds_the_workspace_from_a_subfolder_and_reruns_identically() {
    let dir = fixture();
    let sub = dir.path().join("docs/api");
    let out = forge_gen(&sub, &["new", "my_model", "--no-verify"]);
    assert!(out.status.success(), "{}", text(&out));
    assert!(text(&out).contains("create     forge-core/src/models/my_model.rs"));
    assert!(text(&out).contains("next:"));
    let again = forge_gen(&sub, &["new", "my_model", "--no-verify"]);
    assert!(again.status.success());
    assert!(text(&again).contains("nothing to do"), "{}", text(&again));
    assert!(text(&again).contains("identical  forge-core/src/models/my_model.rs"));
    let listed = forge_gen(dir.path(), &["list"]);
    assert!(text(&listed).contains("my_model"), "{}", text(&listed));
    assert!(text(&listed).contains("generated"));
    let removed = forge_gen(dir.path(), &["remove", "my_model"]);
    assert!(removed.status.success(), "{}", text(&removed));
    assert_eq!(snapshot(dir.path()), snapshot(fixture().path()));
}

#[test]
fn dry_run_prints_plan_and_diff_and_writes_nothing() {
    let dir = fixture();
    let before = snapshot(dir.path());
    let out = forge_gen(
        dir.path(),
        &[
            "new",
            "my_model",
            "--option",
            "demo_scale:f64=1.0",
            "--dry-run",
        ],
    );
    assert!(out.status.success(), "{}", text(&out));
    let t = text(&out);
    assert!(t.contains("dry run: nothing is written"));
    assert!(!t.contains("forge-core/src/config/schema.rs"));
    assert!(t.contains("+++ b/forge-core/src/models/my_model.rs"));
    assert!(t.contains("+        demo_scale: f64 = 1.0,"));
    assert_eq!(snapshot(dir.path()), before);
}

#[test]
fn refusals_exit_non_zero_and_write_nothing() {
    let dir = fixture();
    let before = snapshot(dir.path());
    let out = forge_gen(dir.path(), &["new", "MyModel", "--no-verify"]);
    assert!(!out.status.success());
    assert!(
        text(&out).contains("did you mean `my_model`?"),
        "{}",
        text(&out)
    );
    let out = forge_gen(dir.path(), &["new", "masked_autoencoder", "--no-verify"]);
    assert!(!out.status.success());
    let t = text(&out);
    assert!(
        t.contains("model `masked_autoencoder` already exists"),
        "{t}"
    );
    assert!(t.contains("--force"), "{t}");
    let out = forge_gen(dir.path(), &["new", "x_model", "--no-verify"]);
    assert!(out.status.success());
    let env_fail = Command::new(env!("CARGO_BIN_EXE_forge-gen"))
        .args(["remove", "x_model"])
        .env("FORGE_GEN_FAIL_AT_STEP", "3")
        .current_dir(dir.path())
        .output()
        .unwrap();
    assert!(!env_fail.status.success());
    assert!(
        text(&env_fail).contains("the tree is as it was"),
        "{}",
        text(&env_fail)
    );
    assert!(
        forge_gen(dir.path(), &["remove", "x_model"])
            .status
            .success()
    );
    assert_eq!(snapshot(dir.path()), before);
    let out = forge_gen(Path::new("/"), &["list"]);
    assert!(!out.status.success());
    assert!(
        text(&out).contains("no Cargo workspace found"),
        "{}",
        text(&out)
    );
}

#[test]
fn check_exits_non_zero_naming_what_is_missing() {
    let dir = fixture();
    assert!(forge_gen(dir.path(), &["check"]).status.success());
    std::fs::remove_file(dir.path().join("configs/masked_autoencoder_pbmc.yaml")).unwrap();
    let out = forge_gen(dir.path(), &["check"]);
    assert!(!out.status.success());
    assert!(
        text(&out).contains("masked_autoencoder: not configured"),
        "{}",
        text(&out)
    );
}

/// `forge-gen new` without verification takes well under 100 ms; the
/// bound here is loose (debug build, busy machines); the figure for a
/// release build is in generator/README.md.
#[test]
fn new_is_fast() {
    let dir = fixture();
    let mut best = Duration::MAX;
    for i in 0..5 {
        let name = format!("fast_model_{i}");
        let start = Instant::now();
        let out = forge_gen(
            dir.path(),
            &[
                "new",
                &name,
                "--option",
                &format!("o{i}:f64=1"),
                "--no-verify",
            ],
        );
        best = best.min(start.elapsed());
        assert!(out.status.success(), "{}", text(&out));
    }
    eprintln!("forge-gen new: best of 5 = {best:?}");
    assert!(
        best < Duration::from_millis(500),
        "forge-gen new took {best:?}"
    );
}
