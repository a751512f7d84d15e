//! `#[derive(ForgeModel)]` at run time, on the example plugin model (a
//! derived model from another crate): registration, from_config, parameter
//! counting against a hand count, and a training step.

use forge_core::params::named_parameters;
use forge_core::tch::nn::{self, OptimizerConfig};
use forge_core::tch::{self as tch, Device, Tensor, nn::VarStore};
use forge_core::{Architecture, ForgeModel};
use forge_plugin_example::ExamplePluginModel;

use crate::common::{batch, build, tiny_config};

const NAME: &str = "example_plugin_model";

#[test]
fn derived_model_registers_and_builds_by_name() {
    assert_eq!(ExamplePluginModel::REGISTRY_NAME, NAME);
    let vs = VarStore::new(Device::Cpu);
    let model = forge_core::registry::get(NAME, &vs.root(), &tiny_config(NAME)).unwrap();
    assert_eq!(model.registry_name(), NAME);
}

#[test]
fn from_config_reads_renamed_defaulted_and_skipped_fields() {
    let (_vs, m) = build::<ExamplePluginModel>(&tiny_config(NAME));
    assert_eq!(m.width, 32, "plugin_width unset: default hidden_dim / 2");
    assert_eq!(m.calls.get(), 0);
    let config = tiny_config(NAME).with_option("plugin_width", 48);
    let (_vs, m) = build::<ExamplePluginModel>(&config);
    assert_eq!(m.width, 48);
    // The plugin's own options are checked, with did-you-mean.
    let bad = tiny_config(NAME).with_option("plugin_widht", 48);
    let err = ExamplePluginModel::from_config(&VarStore::new(Device::Cpu).root(), &bad)
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("model.plugin_widht: unknown key; did you mean \"plugin_width\"?"),
        "{err}"
    );
    let bad = tiny_config(NAME).with_option("plugin_width", 0);
    let err = ExamplePluginModel::from_config(&VarStore::new(Device::Cpu).root(), &bad)
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("model.plugin_width: must be at least 1, got 0"),
        "{err}"
    );
    let err = ExamplePluginModel::from_config(
        &VarStore::new(Device::Cpu).root(),
        &forge_core::ModelConfig {
            vocab_size: None,
            ..tiny_config(NAME)
        },
    )
    .unwrap_err();
    assert!(err.to_string().contains("vocab_size must be set"));
}

#[test]
fn invalid_configs_are_refused_before_any_tensor_is_made() {
    let config = forge_core::ModelConfig {
        num_heads: 5,
        ..tiny_config(NAME)
    };
    let vs = VarStore::new(Device::Cpu);
    let err = ExamplePluginModel::from_config(&vs.root(), &config)
        .unwrap_err()
        .to_string();
    assert!(err.contains("num_heads"), "{err}");
    assert!(vs.variables().is_empty());
}

#[test]
fn parameter_count_equals_a_hand_count() {
    let (vs, m) = build::<ExamplePluginModel>(&tiny_config(NAME));
    let (v, h, f, s) = (100, 64, 128, 32);
    let embedding = v * h + s * h + (h + h) + (h + h);
    let layer = (3 * h * h + 3 * h) + (h * h + h) + (h * f + f) + (f * h + h) + 2 * (h + h);
    let head = (h * h + h) + (h + 1);
    let hand = embedding + layer + head + 1 + (h * h + h);
    assert_eq!(m.num_parameters(true), hand);
    assert_eq!(m.num_parameters(false), hand);
    let in_store: i64 = vs.variables().values().map(|t| t.numel() as i64).sum();
    assert_eq!(in_store, hand, "every VarStore variable is visited, once");
    let table = m.parameter_table();
    let rows: Vec<&str> = table.rows.iter().map(|r| r.0.as_str()).collect();
    assert_eq!(rows, ["embedding", "encoder", "head", "scale", "proj"]);
    assert_eq!(table.totals(), (hand, hand));

    // Frozen parameters are not trainable.
    for (name, t) in named_parameters(&m) {
        if name.starts_with("embedding.") {
            let t = t;
            let _ = t.set_requires_grad(false);
        }
    }
    assert_eq!(m.num_parameters(true), hand - embedding);
    assert_eq!(m.num_parameters(false), hand);
}

#[test]
fn trains_one_step() {
    let (vs, m) = build::<ExamplePluginModel>(&tiny_config(NAME));
    let b = batch();
    let start: Vec<(String, Tensor)> = vs
        .variables()
        .into_iter()
        .map(|(name, t)| (name, t.copy()))
        .collect();
    let loss0 = m.loss(&b).unwrap().double_value(&[]);
    // Plain SGD along the gradient: a small enough step lowers the loss.
    // How small depends on the random initialisation, so smaller steps are
    // tried, each from the same starting weights.
    let mut tried = Vec::new();
    for lr in [1e-3, 1e-4, 1e-5, 1e-6] {
        let current = vs.variables();
        tch::no_grad(|| {
            for (name, t) in &start {
                current[name].shallow_clone().copy_(t);
            }
        });
        let mut opt = nn::Sgd::default().build(&vs, lr).unwrap();
        let before = m.head.output.ws.copy();
        opt.backward_step(&m.loss(&b).unwrap());
        let moved = (&m.head.output.ws - before).abs().max().double_value(&[]);
        assert!(moved > 0.0, "the optimizer updated the head");
        let loss1 = m.loss(&b).unwrap().double_value(&[]);
        tried.push((lr, loss1));
        if loss1 < loss0 {
            assert_eq!(m.calls.get(), 1 + 2 * tried.len() as u64);
            return;
        }
    }
    panic!("no step along the gradient lowered the loss {loss0}: {tried:?}");
}
