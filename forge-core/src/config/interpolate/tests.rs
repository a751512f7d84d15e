//! Interpolation against OmegaConf: the cases of
//! `tests/fixtures/config/interpolation.json`, written by
//! `scripts/make_interpolation_fixtures.py` with the real `omegaconf`, plus
//! the wording of forge's messages and the lookups into defaults.

use std::collections::HashMap;
use std::path::Path;

use serde_json::{Value, json};

use super::*;
use crate::config::ConfigErrors;
use crate::config::yaml;

fn resolve_text(text: &str, env: &HashMap<String, String>) -> Result<Value, ConfigErrors> {
    let mut errors = ConfigErrors::new("t.yaml");
    let mut tree = yaml::parse(text, &mut errors).expect("fixture YAML parses");
    resolve_with_env(&mut tree.root, &json!({}), &mut errors, &|k| {
        env.get(k).cloned()
    });
    errors.into_result(tree.root)
}

#[test]
fn matches_omegaconf_on_every_fixture_case() {
    let path =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/config/interpolation.json");
    let fixture: Value = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    let cases = fixture["cases"].as_array().unwrap();
    assert!(cases.len() >= 30);
    for case in cases {
        let name = case["name"].as_str().unwrap();
        let text = case["yaml"].as_str().unwrap();
        let env: HashMap<String, String> = serde_json::from_value(case["env"].clone()).unwrap();
        let got = resolve_text(text, &env);
        match (&case.get("expected"), got) {
            (Some(expected), Ok(tree)) => assert_eq!(&tree, *expected, "case {name}"),
            (Some(_), Err(e)) => panic!("case {name}: OmegaConf resolves it, forge refused: {e}"),
            (None, Ok(tree)) => panic!(
                "case {name}: OmegaConf refuses it ({}), forge resolved {tree}",
                case["error"]
            ),
            (None, Err(e)) => {
                // The problem is reported at the key OmegaConf names.
                let key = case["error_key"].as_str().unwrap();
                assert!(
                    e.has_path(key),
                    "case {name}: expected a problem at {key}: {e}"
                );
            }
        }
    }
}

fn err(text: &str) -> String {
    resolve_text(text, &HashMap::new()).unwrap_err().to_string()
}

#[test]
fn messages_name_the_key_and_the_reference() {
    assert_eq!(
        err("model:\n  hidden_dim: ${tokenizer.max_gene}\ntokenizer:\n  max_genes: 8\n"),
        "t.yaml: model.hidden_dim: interpolation ${tokenizer.max_gene}: tokenizer has no key \
         \"max_gene\"; did you mean \"tokenizer.max_genes\"?"
    );
    assert_eq!(
        err("a: ${nope.x}\n"),
        "t.yaml: a: interpolation ${nope.x}: the top level has no key \"nope\"; keys there: a"
    );
    assert!(err("a: ${oc.env:FORGE_SURELY_UNSET}\n").contains(
        "a: interpolation ${oc.env:FORGE_SURELY_UNSET}: environment variable \
             FORGE_SURELY_UNSET is not set; set it, or give a default"
    ));
    assert!(err("c: ${a}\na: ${c}\n").contains("refers back to itself (a -> c -> a)"));
    assert!(err("c: 'x ${a.b'\n").contains("c: interpolation \"${a.b\" is not closed"));
    assert!(
        err("c: ${oc.decode:'1'}\n")
            .contains("unknown resolver `oc.decode`; forge resolves oc.env, oc.select")
    );
    assert!(err("a:\n  b: ${...x}\n").contains("3 leading dots go above the top"));
    assert!(err("l: [1]\nc: ${l.3}\n").contains("the list there has 1 item(s)"));
    assert!(err("c: ${a..b}\n").contains("is not a key path"));
}

#[test]
fn references_see_the_defaults() {
    let mut errors = ConfigErrors::new("t.yaml");
    let mut root = json!({"model": {"max_seq_len": "${tokenizer.max_genes}"}});
    let defaults = json!({"tokenizer": {"max_genes": 2048}, "model": {"max_seq_len": 1}});
    resolve(&mut root, &defaults, &mut errors);
    assert!(errors.is_empty(), "{errors}");
    // Only the file's tree is returned: defaults are not copied into it.
    assert_eq!(root, json!({"model": {"max_seq_len": 2048}}));
}

#[test]
fn defaults_for_null_sections_written_as_mappings() {
    let file = json!({"finetune": {"label_key": "${data.paths.0}"}});
    let d = defaults_for(
        &file,
        &json!({"finetune": null, "training": {"fsdp": null}}),
        &[
            ("finetune", json!({"head": {"task": "classification"}})),
            ("training.fsdp", json!({"x": 1})),
        ],
    );
    assert_eq!(d["finetune"]["head"]["task"], json!("classification"));
    assert_eq!(d["training"]["fsdp"], Value::Null);
}

#[test]
fn python_float_repr() {
    for (x, text) in [
        (1e-5, "1e-05"),
        (1e-4, "0.0001"),
        (100000.0, "100000.0"),
        (1e16, "1e+16"),
        (1.5e15, "1500000000000000.0"),
        (1e20, "1e+20"),
        (-2.5, "-2.5"),
        (0.1, "0.1"),
        (123.456, "123.456"),
        (1.2345e-7, "1.2345e-07"),
        (0.0, "0.0"),
    ] {
        assert_eq!(py_float(x), text, "{x}");
    }
}

#[test]
fn splitting_and_arguments() {
    assert_eq!(
        split_args("A, 'x,y' ,${a:${b}},"),
        ["A", " 'x,y' ", "${a:${b}}", ""]
    );
    assert_eq!(split_args("  "), Vec::<String>::new());
    assert_eq!(
        parse_key("a.b[2][0].c"),
        Some(vec![
            Seg::Key("a".into()),
            Seg::Key("b".into()),
            Seg::Index(2),
            Seg::Index(0),
            Seg::Key("c".into())
        ])
    );
    assert_eq!(parse_key("a..b"), None);
    assert_eq!(parse_key("a[x]"), None);
    assert_eq!(primitive("007"), json!("007"));
    assert_eq!(primitive("-3"), json!(-3));
    assert_eq!(primitive("NULL"), Value::Null);
    assert_eq!(resolver_call("oc.env:HOME"), Some(("oc.env", "HOME")));
    assert_eq!(resolver_call("a.b"), None);
}
