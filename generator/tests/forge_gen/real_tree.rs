//! forge-gen on every variant over the workspace's files (the marker files,
//! the reference models, their tests, docs and configs), so a change to
//! those files that breaks forge-gen shows here and not only in the
//! end-to-end script. Also: the generated Rust is rustfmt-clean, and
//! `check` passes on the real workspace.

use forge_gen::check;
use forge_gen::layout::Target;
use forge_gen::tree::FsTree;

use crate::common::*;

const CASES: &[&[&str]] = &[
    &[
        "my_model",
        "--option",
        "demo_scale:f64=1.0",
        "--option",
        "demo_label:String=a",
    ],
    &[
        "my_model",
        "--head",
        "bin",
        "--pooling",
        "mean",
        "--option",
        "demo_steps:Option<i64>",
    ],
    &[
        "my_model",
        "--head",
        "expression",
        "--option",
        "demo_flag:bool=false",
    ],
    &["my_model", "--from", "transformer_encoder"],
    &[
        "my_model",
        "--from",
        "autoregressive_transformer",
        "--option",
        "demo_w:Option<f64>=0.5",
    ],
    &["my_model", "--from", "masked_autoencoder"],
];

#[test]
fn every_variant_round_trips_on_the_real_files() {
    for words in CASES {
        let dir = fixture();
        let before = snapshot(dir.path());
        new_apply(dir.path(), words);
        assert!(
            new_plan(dir.path(), words, false).unwrap().is_noop(),
            "{words:?}"
        );
        let tree = FsTree::new(dir.path());
        let report = check::inspect(&tree, &Target::Workspace).unwrap();
        let missing = report.missing(&Target::Workspace);
        assert!(missing.is_empty(), "{words:?}: {missing:?}");
        remove_apply(dir.path(), "my_model");
        assert_eq!(snapshot(dir.path()), before, "{words:?}");
    }
}

#[test]
fn renamed_copies_keep_no_trace_of_the_old_name() {
    for from in [
        "transformer_encoder",
        "autoregressive_transformer",
        "masked_autoencoder",
    ] {
        let dir = fixture();
        new_apply(dir.path(), &["my_model", "--from", from]);
        for file in [
            "forge-core/src/models/my_model.rs",
            "tests/integration/models/my_model.rs",
            "configs/my_model.yaml",
        ] {
            let text = std::fs::read_to_string(dir.path().join(file)).unwrap();
            let body = text.split_once('\n').unwrap().1;
            assert!(!body.contains(from), "{from}: `{from}` left in {file}");
            assert!(
                !body.contains(&from.to_uppercase()),
                "{from}: SCREAMING name left in {file}"
            );
        }
        let model =
            std::fs::read_to_string(dir.path().join("forge-core/src/models/my_model.rs")).unwrap();
        assert!(model.contains("#[forge(name = \"my_model\""));
        // forge-core's encoder component keeps its name.
        assert!(model.contains("TransformerEncoder,") || model.contains("TransformerEncoder::new"));
    }
}

/// rustfmt accepts every generated Rust file as it is (skipped when
/// rustfmt is not installed).
#[test]
fn generated_rust_is_rustfmt_clean() {
    if std::process::Command::new("rustfmt")
        .arg("--version")
        .output()
        .is_err()
    {
        eprintln!("rustfmt not found; skipped");
        return;
    }
    for words in CASES {
        let dir = fixture();
        let plan = new_plan(dir.path(), words, false).unwrap();
        // Created files only: a module list cannot be checked on its own
        // (rustfmt follows its `mod` lines); the end-to-end script checks
        // the edited files in place.
        let created = plan.changes.iter().filter(|c| c.before.is_none());
        for change in created.filter(|c| c.path.ends_with(".rs")) {
            let text = change.after.as_deref().unwrap();
            let file = dir.path().join("check.rs");
            std::fs::write(&file, text).unwrap();
            let out = std::process::Command::new("rustfmt")
                .args(["--edition", "2024", "--check"])
                .arg(&file)
                .output()
                .unwrap();
            assert!(
                out.status.success(),
                "{words:?}: {} is not rustfmt-clean:\n{}",
                change.path,
                String::from_utf8_lossy(&out.stdout)
            );
        }
    }
}

#[test]
fn check_passes_on_the_real_workspace() {
    let tree = FsTree::new(workspace_dir());
    let report = check::inspect(&tree, &Target::Workspace).unwrap();
    let missing = report.missing(&Target::Workspace);
    assert!(missing.is_empty(), "{missing:#?}");
    assert!(report.models.len() >= 3);
}

#[test]
fn check_names_what_is_missing() {
    let dir = fixture();
    let root = dir.path();
    std::fs::remove_file(root.join("configs/masked_autoencoder_pbmc.yaml")).unwrap();
    std::fs::remove_file(root.join("tests/integration/models/transformer_encoder.rs")).unwrap();
    let docs = root.join("docs/api/models.md");
    let text = std::fs::read_to_string(&docs).unwrap();
    std::fs::write(
        &docs,
        text.replace("## `autoregressive_transformer`", "## `old_model`"),
    )
    .unwrap();
    let tree = FsTree::new(root);
    let missing = check::inspect(&tree, &Target::Workspace)
        .unwrap()
        .missing(&Target::Workspace);
    let all = missing.join("\n");
    assert!(all.contains("masked_autoencoder: not configured"), "{all}");
    assert!(all.contains("transformer_encoder: not tested"), "{all}");
    assert!(
        all.contains("autoregressive_transformer: not documented"),
        "{all}"
    );
    assert!(
        all.contains("documents `old_model` but there is no model"),
        "{all}"
    );
}

#[test]
fn prelude_names_are_forge_cores_prelude() {
    // forge-gen keeps model structs off the names `forge_core::prelude::*`
    // brings in; its list (`forge_names::PRELUDE_NAMES`) must be exactly
    // what forge-core's prelude module exports.
    let path = workspace_dir().join("forge-core/src/lib.rs");
    let source = std::fs::read_to_string(&path).unwrap();
    let exported =
        forge_gen::rust_source::module_use_names("forge-core/src/lib.rs", &source, "prelude")
            .unwrap()
            .expect("forge-core/src/lib.rs has `pub mod prelude { ... }`");
    let mut listed: Vec<String> = forge_names::PRELUDE_NAMES
        .iter()
        .map(|s| s.to_string())
        .collect();
    listed.sort();
    assert_eq!(
        exported, listed,
        "forge_names::PRELUDE_NAMES differs from forge-core's prelude: update the list in \
         forge-names/src/lib.rs"
    );
}

#[test]
fn a_model_struct_may_not_take_a_prelude_name() {
    // `tensor` would become `Tensor`, which every model file imports.
    let dir = fixture();
    let site = forge_gen::layout::Site {
        tree: &FsTree::new(dir.path()),
        target: Target::Workspace,
        workspace: None,
    };
    for (name, taken) in [
        ("tensor", "Tensor"),
        ("batch_builder", "BatchBuilder"),
        ("model", "Model"),
    ] {
        let err = forge_gen::new::plan(&site, &request(&[name]), false)
            .unwrap_err()
            .to_string();
        assert!(err.contains(&format!("struct `{taken}`")), "{name}: {err}");
    }
}
