//! The guide's Step 5 for a generated model: formatting, lints and the new
//! tests, run with the real toolchain and reported step by step.
//!
//! Runs after the files are written; `--no-verify` skips it.

use std::path::Path;
use std::process::Command;

use crate::layout::Target;

/// One verification step: what is run, and where.
struct Step {
    title: String,
    program: &'static str,
    args: Vec<String>,
}

/// The steps for model `name` generated into `target` at `root`; `rust_files`
/// are the generated Rust files, relative to `root`.
fn steps(root: &Path, target: &Target, name: &str, rust_files: &[String]) -> Vec<Step> {
    let mut fmt_args = vec![
        "--edition".to_string(),
        "2024".to_string(),
        "--check".to_string(),
    ];
    fmt_args.extend(rust_files.iter().cloned());
    let manifest = |args: &mut Vec<String>| {
        if target.is_plugin() {
            args.push("--manifest-path".into());
            args.push(root.join("Cargo.toml").display().to_string());
        }
    };
    let mut clippy = vec!["clippy".to_string()];
    manifest(&mut clippy);
    clippy.extend(["--all-targets", "--", "-D", "warnings"].map(String::from));
    if !target.is_plugin() {
        clippy.insert(1, "--workspace".into());
    }
    let mut test = vec!["test".to_string()];
    manifest(&mut test);
    match target {
        Target::Workspace => {
            test.extend([
                "--test".into(),
                "integration".into(),
                format!("models::{name}::"),
            ]);
        }
        Target::Plugin { .. } => test.extend(["--test".into(), name.to_string()]),
    }
    vec![
        Step {
            title: "rustfmt --check on the generated files".into(),
            program: "rustfmt",
            args: fmt_args,
        },
        Step {
            title: "cargo clippy (warnings are errors)".into(),
            program: "cargo",
            args: clippy,
        },
        Step {
            title: format!("the tests of `{name}`"),
            program: "cargo",
            args: test,
        },
    ]
}

/// Runs every step, printing each result; returns whether all passed.
pub fn run(root: &Path, target: &Target, name: &str, rust_files: &[String]) -> bool {
    let mut ok = true;
    println!("\nverifying `{name}` (skip with --no-verify):");
    for step in steps(root, target, name, rust_files) {
        let shown = format!("{} {}", step.program, step.args.join(" "));
        println!("  running: {shown}");
        let out = Command::new(step.program)
            .args(&step.args)
            .current_dir(root)
            .output();
        match out {
            Ok(out) if out.status.success() => println!("  PASS  {}", step.title),
            Ok(out) => {
                ok = false;
                println!("  FAIL  {}", step.title);
                let text = format!(
                    "{}{}",
                    String::from_utf8_lossy(&out.stdout),
                    String::from_utf8_lossy(&out.stderr)
                );
                let lines: Vec<&str> = text.lines().collect();
                let tail = &lines[lines.len().saturating_sub(40)..];
                for line in tail {
                    println!("        {line}");
                }
            }
            Err(err) => {
                ok = false;
                println!("  FAIL  {}: cannot run {}: {err}", step.title, step.program);
            }
        }
    }
    println!(
        "{}",
        if ok {
            "verification passed"
        } else {
            "verification FAILED (the files are written; fix them, or `forge-gen remove` them)"
        }
    );
    ok
}
