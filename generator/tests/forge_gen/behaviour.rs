//! The promises of a generator, each checked on a scratch copy of the
//! fixture workspace: dry runs write nothing, re-runs are identical, a
//! failure midway leaves the tree unchanged, bad names and missing markers
//! are refused clearly, `remove` restores the tree byte for byte, and hand
//! edits are never overwritten without `--force`.

use forge_gen::apply::{Faults, apply};
use forge_gen::layout::Site;
use forge_gen::layout::Target;
use forge_gen::new::plan as plan_new;
use forge_gen::plan::Status;
use forge_gen::tree::FsTree;

use crate::common::*;

const WITH_OPTION: &[&str] = &["my_model", "--option", "demo_scale:f64=1.0"];

#[test]
fn planning_writes_nothing() {
    let dir = fixture();
    let before = snapshot(dir.path());
    let plan = new_plan(dir.path(), WITH_OPTION, false).unwrap();
    assert_eq!(
        statuses(&plan),
        [
            "create forge-core/src/models/my_model.rs",
            "update forge-core/src/models/mod.rs",
            "create tests/integration/models/my_model.rs",
            "update tests/integration/models/mod.rs",
            "create configs/my_model.yaml",
            "update docs/api/models.md",
        ]
    );
    let _ = plan.diff();
    assert_eq!(snapshot(dir.path()), before);
}

#[test]
fn rerun_is_identical_and_remove_restores_byte_for_byte() {
    for words in [
        WITH_OPTION,
        &["my_model", "--head", "bin", "--pooling", "mean"][..],
        &[
            "my_model",
            "--from",
            "masked_autoencoder",
            "--option",
            "x_scale:f64=2",
        ][..],
        &["my_model", "--from", "transformer_encoder"][..],
    ] {
        let dir = fixture();
        let before = snapshot(dir.path());
        new_apply(dir.path(), words);
        let again = new_plan(dir.path(), words, false).unwrap();
        assert!(again.is_noop(), "{words:?}: {}", again.summary());
        assert!(
            again.changes.iter().all(|c| c.status == Status::Identical),
            "{}",
            again.summary()
        );
        remove_apply(dir.path(), "my_model");
        assert_eq!(snapshot(dir.path()), before, "{words:?}");
    }
}

#[test]
fn two_models_then_removal_in_either_order() {
    let dir = fixture();
    let before = snapshot(dir.path());
    new_apply(
        dir.path(),
        &["alpha_model", "--option", "alpha_scale:f64=1"],
    );
    let after_alpha = snapshot(dir.path());
    new_apply(
        dir.path(),
        &["zeta_model", "--option", "zeta_flag:bool=true"],
    );
    remove_apply(dir.path(), "zeta_model");
    assert_eq!(snapshot(dir.path()), after_alpha);
    new_apply(
        dir.path(),
        &["zeta_model", "--option", "zeta_flag:bool=true"],
    );
    remove_apply(dir.path(), "alpha_model");
    remove_apply(dir.path(), "zeta_model");
    assert_eq!(snapshot(dir.path()), before);
}

#[test]
fn a_failure_midway_leaves_the_tree_unchanged() {
    let dir = fixture();
    let before = snapshot(dir.path());
    let plan = new_plan(dir.path(), WITH_OPTION, false).unwrap();
    let steps = plan.changes.iter().filter(|c| c.status.writes()).count();
    assert_eq!(steps, 6);
    for step in 0..steps {
        let err = apply(
            dir.path(),
            &plan,
            Faults {
                fail_at_step: Some(step),
            },
        )
        .unwrap_err();
        let text = format!("{err:#}");
        assert!(text.contains("injected failure"), "{text}");
        assert!(text.contains("the tree is as it was"), "{text}");
        assert_eq!(snapshot(dir.path()), before, "failure at step {step}");
    }
    // And a removal that fails midway.
    new_apply(dir.path(), WITH_OPTION);
    let generated = snapshot(dir.path());
    let plan = remove_plan(dir.path(), "my_model", false).unwrap();
    for step in 0..plan.changes.iter().filter(|c| c.status.writes()).count() {
        let faults = Faults {
            fail_at_step: Some(step),
        };
        assert!(apply(dir.path(), &plan, faults).is_err());
        assert_eq!(snapshot(dir.path()), generated, "removal failure at {step}");
    }
}

#[test]
fn a_failure_in_a_new_folder_removes_the_folder() {
    let dir = fixture();
    std::fs::remove_dir_all(dir.path().join("configs")).unwrap();
    let before = snapshot(dir.path());
    let tree = FsTree::new(dir.path());
    let site = Site {
        tree: &tree,
        target: Target::Workspace,
        workspace: None,
    };
    // Blank models need no existing config, so configs/ is created.
    let plan = plan_new(&site, &request(&["my_model"]), false).unwrap();
    let last = plan.changes.iter().filter(|c| c.status.writes()).count() - 1;
    let faults = Faults {
        fail_at_step: Some(last),
    };
    assert!(apply(dir.path(), &plan, faults).is_err());
    assert_eq!(snapshot(dir.path()), before);
    assert!(!dir.path().join("configs").exists());
}

#[test]
fn a_file_changed_after_planning_stops_everything() {
    let dir = fixture();
    let plan = new_plan(dir.path(), WITH_OPTION, false).unwrap();
    let docs = dir.path().join("docs/api/models.md");
    let mut text = std::fs::read_to_string(&docs).unwrap();
    text.push_str("\nlate edit\n");
    std::fs::write(&docs, &text).unwrap();
    let before = snapshot(dir.path());
    let err = apply(dir.path(), &plan, Faults::default()).unwrap_err();
    assert!(
        err.to_string().contains("docs/api/models.md changed"),
        "{err}"
    );
    assert_eq!(snapshot(dir.path()), before);
}

#[test]
fn bad_names_are_refused_before_anything() {
    let dir = fixture();
    let before = snapshot(dir.path());
    let cases: &[(&[&str], &str)] = &[
        (&["MyModel"], "uppercase letters; did you mean `my_model`?"),
        (&["my-model"], "did you mean `my_model`?"),
        (&["2nd_model"], "start with a lowercase letter"),
        (&["my__model"], "double or trailing underscore"),
        (&["struct"], "Rust keyword"),
        (&["std"], "shadow"),
        (
            &["loss"],
            "already a module in forge-core/src/models/ that is not a model",
        ),
        (&["tensor"], "struct `Tensor`, which is already a name"),
        (
            &["transformer_encoder_model"],
            "clashes with the existing model `transformer_encoder`",
        ),
        (
            &["ok_model", "--option", "n_bins:i64=3"],
            "`n_bins` is a key every model shares",
        ),
        (
            &["ok_model", "--option", "head:i64=3"],
            "already has a field `head`",
        ),
        (
            &["ok_model", "--option", "x:float=1"],
            "unknown type `float`",
        ),
        (
            &["ok_model", "--option", "x:i64=1", "--option", "x:i64=2"],
            "given twice",
        ),
        (
            &["ok_model", "--from", "nope"],
            "no such model; models that can be copied: autoregressive_transformer",
        ),
        (
            &["ok_model", "--from", "transformer_encoder", "--head", "bin"],
            "--head and --pooling choose",
        ),
    ];
    for (words, want) in cases {
        let err = new_plan(dir.path(), words, false).unwrap_err();
        let text = format!("{err:#}");
        assert!(text.contains(want), "{words:?}: {text}");
        if words.len() == 1 && !text.contains("already") && !text.contains("clashes") {
            assert!(text.contains("accepted: snake_case"), "{words:?}: {text}");
        }
    }
    assert_eq!(snapshot(dir.path()), before);
}

#[test]
fn an_existing_model_is_refused_unless_forced() {
    let dir = fixture();
    new_apply(dir.path(), &["my_model"]);
    // Same name, other inputs: the generated files conflict.
    let plan = new_plan(dir.path(), &["my_model", "--head", "bin"], false).unwrap();
    assert!(plan.has_conflicts());
    let model = plan.get("forge-core/src/models/my_model.rs").unwrap();
    assert_eq!(model.status, Status::Conflict);
    assert!(
        model.note.as_deref().unwrap().contains("from other inputs"),
        "{:?}",
        model.note
    );
    assert!(apply(dir.path(), &plan, Faults::default()).is_err());
    // A hand-written reference model is a conflict too.
    let plan = new_plan(dir.path(), &["masked_autoencoder"], false).unwrap();
    let model = plan
        .get("forge-core/src/models/masked_autoencoder.rs")
        .unwrap();
    assert_eq!(model.status, Status::Conflict);
    assert!(
        model
            .note
            .as_deref()
            .unwrap()
            .contains("not generated by forge-gen")
    );
    // --force regenerates.
    let plan = new_plan(dir.path(), &["my_model", "--head", "bin"], true).unwrap();
    assert!(!plan.has_conflicts());
    assert_eq!(
        plan.get("forge-core/src/models/my_model.rs")
            .unwrap()
            .status,
        Status::Force
    );
    apply(dir.path(), &plan, Faults::default()).unwrap();
    let text =
        std::fs::read_to_string(dir.path().join("forge-core/src/models/my_model.rs")).unwrap();
    assert!(text.contains("BinPredictionHead"));
}

#[test]
fn hand_edits_are_never_overwritten_or_removed_silently() {
    let dir = fixture();
    new_apply(dir.path(), WITH_OPTION);
    let model = dir.path().join("forge-core/src/models/my_model.rs");
    let edited = std::fs::read_to_string(&model)
        .unwrap()
        .replace("Final LayerNorm", "My own LayerNorm");
    std::fs::write(&model, &edited).unwrap();
    let docs = dir.path().join("docs/api/models.md");
    let docs_edited = std::fs::read_to_string(&docs).unwrap().replace(
        "- Options: `demo_scale`",
        "- Options: `demo_scale` (see paper)",
    );
    std::fs::write(&docs, &docs_edited).unwrap();
    let before = snapshot(dir.path());

    // new: same inputs, but the edited files conflict.
    let plan = new_plan(dir.path(), WITH_OPTION, false).unwrap();
    let model_change = plan.get("forge-core/src/models/my_model.rs").unwrap();
    assert_eq!(model_change.status, Status::Conflict);
    assert!(
        model_change
            .note
            .as_deref()
            .unwrap()
            .contains("edited by hand")
    );
    assert_eq!(
        plan.get("docs/api/models.md").unwrap().status,
        Status::Conflict
    );
    assert_eq!(
        plan.get("tests/integration/models/my_model.rs")
            .unwrap()
            .status,
        Status::Identical
    );
    assert!(apply(dir.path(), &plan, Faults::default()).is_err());

    // remove: refused, nothing touched.
    let plan = remove_plan(dir.path(), "my_model", false).unwrap();
    assert!(plan.has_conflicts(), "{}", plan.summary());
    assert!(apply(dir.path(), &plan, Faults::default()).is_err());
    assert_eq!(snapshot(dir.path()), before);

    // remove --force: everything goes.
    let plan = remove_plan(dir.path(), "my_model", true).unwrap();
    assert!(!plan.has_conflicts());
    apply(dir.path(), &plan, Faults::default()).unwrap();
    assert_eq!(snapshot(dir.path()), snapshot(fixture().path()));
}

#[test]
fn missing_markers_fail_clearly_and_write_nothing() {
    for (file, marker) in [
        (
            "forge-core/src/models/mod.rs",
            "// forge-gen: model-modules begin",
        ),
        (
            "forge-core/src/models/mod.rs",
            "// forge-gen: model-exports end",
        ),
        (
            "tests/integration/models/mod.rs",
            "// forge-gen: model-tests end",
        ),
        ("docs/api/models.md", "<!-- forge-gen: model-docs begin -->"),
    ] {
        let dir = fixture();
        let path = dir.path().join(file);
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(text.contains(marker), "{file} has {marker}");
        std::fs::write(&path, text.replace(marker, "")).unwrap();
        let before = snapshot(dir.path());
        let err = new_plan(dir.path(), WITH_OPTION, false)
            .unwrap_err()
            .to_string();
        assert!(
            err.contains(&format!("{file}: marker line `{marker}` not found")),
            "{err}"
        );
        assert!(err.contains("put both lines back"), "{err}");
        assert_eq!(snapshot(dir.path()), before);
    }
}

#[test]
fn doubled_markers_fail_clearly() {
    let dir = fixture();
    let path = dir.path().join("tests/integration/models/mod.rs");
    let text = std::fs::read_to_string(&path).unwrap();
    std::fs::write(&path, format!("{text}// forge-gen: model-tests end\n")).unwrap();
    let err = new_plan(dir.path(), &["my_model"], false)
        .unwrap_err()
        .to_string();
    assert!(err.contains("appear 1 / 2 times"), "{err}");
}

#[test]
fn remove_refuses_unknown_and_hand_written_models() {
    let dir = fixture();
    let err = remove_plan(dir.path(), "nothing_here", false)
        .unwrap_err()
        .to_string();
    assert!(err.contains("no model `nothing_here` to remove"), "{err}");
    let plan = remove_plan(dir.path(), "transformer_encoder", false).unwrap();
    let model = plan
        .get("forge-core/src/models/transformer_encoder.rs")
        .unwrap();
    assert_eq!(model.status, Status::Conflict);
    assert!(
        model
            .note
            .as_deref()
            .unwrap()
            .contains("not generated by forge-gen")
    );
}

#[test]
fn plugin_crate_round_trip() {
    let dir = plugin_fixture();
    let before = snapshot(dir.path());
    let tree = FsTree::new(dir.path());
    let site = Site {
        tree: &tree,
        target: Target::Plugin {
            ident: "my_plugin".into(),
        },
        workspace: None,
    };
    let plan = plan_new(&site, &request(&["my_model"]), false).unwrap();
    assert_eq!(
        statuses(&plan),
        [
            "create src/my_model.rs",
            "update src/lib.rs",
            "create tests/my_model.rs",
            "create configs/my_model.yaml",
        ]
    );
    apply(dir.path(), &plan, Faults::default()).unwrap();
    let test = std::fs::read_to_string(dir.path().join("tests/my_model.rs")).unwrap();
    assert!(test.contains("use my_plugin::my_model::MyModel as Model;"));
    assert!(test.contains("mod common {"));
    let lib = std::fs::read_to_string(dir.path().join("src/lib.rs")).unwrap();
    assert!(lib.contains("// forge-gen: model-modules begin\npub mod my_model;\n"));
    assert!(
        plan_new(&site, &request(&["my_model"]), false)
            .unwrap()
            .is_noop()
    );
    let plan = forge_gen::remove::plan(&site, "my_model", false).unwrap();
    apply(dir.path(), &plan, Faults::default()).unwrap();
    // Options in a plugin crate are declared in the model's own file, and
    // go with it.
    let words = [
        "other",
        "--option",
        "a_scale:f64=1",
        "--option",
        "a_steps:Option<i64>",
    ];
    let plan = plan_new(&site, &request(&words), false).unwrap();
    apply(dir.path(), &plan, Faults::default()).unwrap();
    let model = std::fs::read_to_string(dir.path().join("src/other.rs")).unwrap();
    assert!(model.contains("pub struct OtherOptions {"), "{model}");
    assert!(model.contains("        a_scale: f64 = 1.0,\n"), "{model}");
    assert!(
        model.contains("        a_steps: Option<i64> = None,\n"),
        "{model}"
    );
    assert!(model.contains("#[forge(name = \"other\", options = OtherOptions)]"));
    assert!(model.contains("    #[forge(option)]\n    pub a_scale: f64,\n"));
    let plan = forge_gen::remove::plan(&site, "other", false).unwrap();
    apply(dir.path(), &plan, Faults::default()).unwrap();
    // tests/ and configs/ were created by `new`, and go with it.
    assert_eq!(snapshot(dir.path()), before);
}
