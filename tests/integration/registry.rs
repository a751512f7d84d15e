//! The model registry: names, errors, run-time registration and plugins.

use forge_core::config::options::{NoOptions, OptionsInfo};
use forge_core::registry::{self, ModelRegistration, Registry};
use forge_core::tch::{Device, nn::VarStore};

use crate::common::tiny_config;

#[test]
fn lists_reference_and_plugin_models_sorted() {
    let names = registry::list();
    for name in [
        "autoregressive_transformer",
        "example_plugin_model",
        "masked_autoencoder",
        "transformer_encoder",
    ] {
        assert!(names.contains(&name), "{name} missing from {names:?}");
    }
    let mut sorted = names.clone();
    sorted.sort();
    assert_eq!(names, sorted);
    registry::check().expect("no name is claimed twice");
}

#[test]
fn unknown_name_lists_models_and_suggests() {
    let vs = VarStore::new(Device::Cpu);
    let err = registry::get("transformer_encodr", &vs.root(), &tiny_config("x"))
        .err()
        .unwrap()
        .to_string();
    assert!(err.contains("no model named `transformer_encodr`"), "{err}");
    assert!(err.contains("did you mean `transformer_encoder`?"), "{err}");
    assert!(err.contains("masked_autoencoder"), "{err}");
    let err = registry::get("resnet", &vs.root(), &tiny_config("x"))
        .err()
        .unwrap()
        .to_string();
    assert!(!err.contains("did you mean"), "{err}");
}

#[test]
fn two_types_under_one_name_are_refused_naming_both() {
    let mut reg = Registry::new();
    let first = ModelRegistration {
        name: "dup",
        type_name: "crate_a::ModelA",
        build: forge_core::registry::build_boxed::<forge_core::models::TransformerEncoderModel>,
        options: OptionsInfo::of::<NoOptions>(),
    };
    let second = ModelRegistration {
        type_name: "crate_b::ModelB",
        ..first
    };
    reg.register(first).unwrap();
    reg.register(first).expect("the same type again is a no-op");
    let err = reg.register(second).unwrap_err().to_string();
    assert!(
        err.contains("`dup`") && err.contains("crate_a::ModelA") && err.contains("crate_b::ModelB"),
        "{err}"
    );
    assert_eq!(reg.list(), ["dup"]);
}

#[test]
fn run_time_registration_reaches_the_global_registry() {
    let reg = ModelRegistration {
        name: "runtime_registered_encoder",
        type_name: "tests::RuntimeEncoder",
        build: forge_core::registry::build_boxed::<forge_core::models::TransformerEncoderModel>,
        options: OptionsInfo::of::<NoOptions>(),
    };
    registry::register(reg).unwrap();
    assert!(registry::list().contains(&"runtime_registered_encoder"));
    let vs = VarStore::new(Device::Cpu);
    let model = registry::get("runtime_registered_encoder", &vs.root(), &tiny_config("x")).unwrap();
    assert_eq!(model.registry_name(), "transformer_encoder");
}

#[test]
fn registry_builds_with_pytorch_names_in_the_varstore() {
    let vs = VarStore::new(Device::Cpu);
    let model = registry::build(&vs.root(), &tiny_config("transformer_encoder")).unwrap();
    let mut in_store: Vec<String> = vs.variables().into_keys().collect();
    in_store.sort();
    let mut visited: Vec<String> = forge_core::params::named_parameters(&model)
        .into_iter()
        .map(|(n, _)| n)
        .collect();
    visited.sort();
    assert_eq!(in_store, visited);
    assert!(in_store.contains(&"encoder.layers.1.self_attn.in_proj_weight".to_string()));
    assert!(in_store.contains(&"head.decoder.bias".to_string()));
}
