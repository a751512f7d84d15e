//! The `forge` binary, run as a user would.

use std::path::Path;
use std::process::{Command, Output};

fn forge(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_forge"))
        .args(args)
        .env_remove("LD_LIBRARY_PATH")
        .output()
        .expect("forge runs")
}

fn text(out: &Output) -> (String, String) {
    (
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn repo(path: &str) -> String {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join(path)
        .display()
        .to_string()
}

#[test]
fn doctor_reports_the_setup_without_ld_library_path() {
    let out = forge(&["doctor"]);
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "{stdout}{stderr}");
    assert!(stdout.contains("torch        2.13.0"), "{stdout}");
    assert!(stdout.contains("libtorch_cuda linked"), "{stdout}");
    assert!(stdout.contains("status       ok"), "{stdout}");
}

#[test]
fn models_lists_what_the_binary_links() {
    let out = forge(&["models"]);
    let (stdout, _) = text(&out);
    assert!(out.status.success());
    assert_eq!(
        stdout.lines().collect::<Vec<_>>(),
        [
            "autoregressive_transformer",
            "masked_autoencoder",
            "transformer_encoder"
        ],
        "the binary links forge-core's models and not the test-only plugin"
    );
}

#[test]
fn config_prints_the_resolved_file() {
    let out = forge(&["config", &repo("configs/transformer_encoder_pbmc.yaml")]);
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "{stderr}");
    // Defaults the file leaves out are filled in.
    assert!(stdout.contains("decoder_layers: 4"), "{stdout}");
    assert!(stdout.contains("hidden_dim: 128"), "{stdout}");
    // The printed config loads again to the same values.
    let again = forge_core::ForgeConfig::from_yaml_str(&stdout, "printed").unwrap();
    let file =
        forge_core::ForgeConfig::load(Path::new(&repo("configs/transformer_encoder_pbmc.yaml")))
            .unwrap();
    assert_eq!(again, file);
}

#[test]
fn config_lists_every_problem_and_fails() {
    let dir = std::env::temp_dir().join(format!("forge-cli-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let bad = dir.join("bad.yaml");
    std::fs::write(
        &bad,
        "model:\n  hiden_dim: 64\n  pooling: mena\n  num_heads: 5\n  dropout: 1.5\ntraining:\n  optimizer:\n    lrr: 0.1\n",
    )
    .unwrap();
    let out = forge(&["config", bad.to_str().unwrap()]);
    let (stdout, stderr) = text(&out);
    assert!(!out.status.success());
    assert!(stdout.is_empty(), "nothing is printed on error: {stdout}");
    for needle in [
        "model.hiden_dim",
        "hidden_dim",
        "model.pooling",
        "mean",
        "model.dropout",
        "training.optimizer.lrr",
    ] {
        assert!(stderr.contains(needle), "missing {needle:?} in:\n{stderr}");
    }
    assert!(stderr.contains("bad.yaml"), "{stderr}");
    let missing = forge(&["config", dir.join("nope.yaml").to_str().unwrap()]);
    let (_, stderr) = text(&missing);
    assert!(
        !missing.status.success() && stderr.contains("nope.yaml"),
        "{stderr}"
    );
    std::fs::remove_dir_all(&dir).ok();
}
