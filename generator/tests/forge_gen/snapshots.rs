//! insta snapshots of what forge-gen generates: the blank template, each
//! head and pooling, `--from` each reference model, with options, and a
//! plugin crate. Each snapshot is the plan's unified diff against a copy of
//! the workspace's files as they are, so it holds every generated file in full and
//! every insertion in context, with relative paths only.
//!
//! Accept changes with `cargo insta review`.

use std::collections::BTreeSet;

use forge_gen::layout::Site;
use forge_gen::layout::Target;
use forge_gen::new::plan as plan_new;
use forge_gen::templates;
use forge_gen::tree::FsTree;

use crate::common::*;

fn snap(name: &str, words: &[&str]) {
    let dir = fixture();
    let plan = new_plan(dir.path(), words, false).unwrap();
    let text = format!("{}\n{}", plan.summary(), plan.diff());
    insta::assert_snapshot!(name, text);
}

#[test]
fn blank_template() {
    snap("blank", &["my_model"]);
}

#[test]
fn blank_with_options() {
    snap(
        "blank_with_options",
        &[
            "my_model",
            "--option",
            "decoder_scale:f64=0.5",
            "--option",
            "label:String=cells",
            "--option",
            "max_steps:Option<i64>",
            "--option",
            "use_gate:bool=true",
        ],
    );
}

#[test]
fn bin_head_mean_pooling() {
    snap(
        "head_bin",
        &["my_model", "--head", "bin", "--pooling", "mean"],
    );
}

#[test]
fn expression_head() {
    snap("head_expression", &["my_model", "--head", "expression"]);
}

#[test]
fn masked_gene_head_explicit() {
    // The default head, named: same files as the blank template, except
    // that the header records the flags.
    let dir = fixture();
    let named = new_plan(dir.path(), &["my_model", "--head", "masked_gene"], false).unwrap();
    let blank = new_plan(dir.path(), &["my_model"], false).unwrap();
    let strip = |s: &str| s.split_once('\n').map(|(_, b)| b.to_string()).unwrap();
    for (a, b) in named.changes.iter().zip(&blank.changes) {
        if a.path.ends_with(".rs") && a.before.is_none() {
            assert_eq!(
                strip(a.after.as_ref().unwrap()),
                strip(b.after.as_ref().unwrap())
            );
        }
    }
}

#[test]
fn from_transformer_encoder() {
    snap(
        "from_transformer_encoder",
        &["my_model", "--from", "transformer_encoder"],
    );
}

#[test]
fn from_autoregressive_transformer() {
    snap(
        "from_autoregressive_transformer",
        &["my_model", "--from", "autoregressive_transformer"],
    );
}

#[test]
fn from_masked_autoencoder_with_option() {
    snap(
        "from_masked_autoencoder_with_option",
        &[
            "my_model",
            "--from",
            "masked_autoencoder",
            "--option",
            "mask_scale:f64=2",
        ],
    );
}

#[test]
fn plugin_crate() {
    let dir = plugin_fixture();
    let tree = FsTree::new(dir.path());
    let site = Site {
        tree: &tree,
        target: Target::Plugin {
            ident: "my_plugin".into(),
        },
        workspace: None,
    };
    let plan = plan_new(
        &site,
        &request(&["my_model", "--head", "expression"]),
        false,
    )
    .unwrap();
    let text = format!("{}\n{}", plan.summary(), plan.diff());
    insta::assert_snapshot!("plugin_crate", text);
}

/// Every file in templates/ is embedded, and every embedded template is
/// rendered (directly, or included by one that is) by the cases above.
#[test]
fn every_template_is_embedded_and_used() {
    let on_disk: BTreeSet<String> = std::fs::read_dir(workspace_dir().join("templates"))
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    let embedded: BTreeSet<String> = templates::TEMPLATES
        .iter()
        .map(|(n, _)| n.to_string())
        .collect();
    assert_eq!(on_disk, embedded, "templates/ and TEMPLATES differ");

    // Render every case in this test too (tests run in any order).
    blank_with_options();
    bin_head_mean_pooling();
    from_masked_autoencoder_with_option();
    plugin_crate();
    let mut used = templates::rendered();
    let direct: Vec<String> = used.iter().cloned().collect();
    for name in direct {
        used.extend(templates::includes(&name));
    }
    let unused: Vec<_> = embedded.difference(&used).collect();
    assert!(unused.is_empty(), "templates never rendered: {unused:?}");
}

/// `benches/models/bench_blank.rs`, the model that `model_step`'s
/// "freshly generated" row measures, is exactly what
/// `forge-gen new bench_blank` generates from the blank template today, so
/// that row measures the template. When the template changes, this test
/// writes what it generates next to the file (`bench_blank.rs.new`) and
/// fails: review the difference and rename it over the old one.
#[test]
fn bench_model_is_the_blank_template_as_generated() {
    let dir = fixture();
    let plan = new_plan(dir.path(), &["bench_blank"], false).unwrap();
    let generated = plan
        .get("forge-core/src/models/bench_blank.rs")
        .and_then(|c| c.after.clone())
        .expect("forge-gen new bench_blank generates the model file");
    let path = workspace_dir().join("benches/models/bench_blank.rs");
    let checked_in = std::fs::read_to_string(&path).unwrap_or_default();
    if checked_in != generated {
        let new = path.with_extension("rs.new");
        std::fs::write(&new, &generated).unwrap();
        panic!(
            "{} is not what `forge-gen new bench_blank` generates now; the generated \
             file is at {}: review it and rename it over the old one",
            path.display(),
            new.display()
        );
    }
}
