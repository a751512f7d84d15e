//! Shared fixtures for model tests: the guide's tiny config and batch, and
//! contract checks every model must pass, written once and called from each
//! model's test file.

use forge_core::config::{Activation, ModelConfig, Pooling};
use forge_core::params::named_parameters;
use forge_core::tch::{Device, Kind, Tensor, nn::VarStore};
use forge_core::{Batch, ForgeModel};

/// Tiny config for fast tests: vocab 100, hidden 64, 2 layers, 4 heads,
/// FFN 128, no dropout, 32 positions.
pub fn tiny_config(architecture: &str) -> ModelConfig {
    ModelConfig {
        architecture: architecture.to_string(),
        vocab_size: Some(100),
        hidden_dim: 64,
        num_layers: 2,
        num_heads: 4,
        ffn_dim: Some(128),
        dropout: 0.0,
        max_seq_len: 32,
        pooling: Pooling::Cls,
        activation: Activation::Gelu,
        use_expression_values: true,
        ..ModelConfig::default()
    }
}

/// The guide's batch: B=2, S=10, the second cell with two padding tokens,
/// three labelled positions.
pub fn batch() -> Batch {
    batch_builder().build().expect("valid batch")
}

/// [`batch`] without labels.
pub fn batch_without_labels() -> Batch {
    batch().without_labels()
}

/// The tensors of [`batch`], before `build`, so tests can add keys.
pub fn batch_builder() -> forge_core::BatchBuilder {
    forge_core::tch::manual_seed(42);
    let (b, s, v) = (2, 10, 100);
    let input_ids = Tensor::randint_low(4, v, [b, s], (Kind::Int64, Device::Cpu));
    let attention_mask = Tensor::ones([b, s], (Kind::Int64, Device::Cpu));
    let _ = attention_mask.get(1).narrow(0, s - 2, 2).fill_(0);
    let _ = input_ids.get(1).narrow(0, s - 2, 2).fill_(0);
    let values = Tensor::rand([b, s], (Kind::Float, Device::Cpu));
    let labels = Tensor::full([b, s], -100, (Kind::Int64, Device::Cpu));
    for (cell, pos) in [(0, 1), (0, 3), (1, 2)] {
        labels
            .get(cell)
            .get(pos)
            .copy_(&input_ids.get(cell).get(pos));
    }
    Batch::builder(input_ids, attention_mask)
        .values(values)
        .labels(labels)
}

/// Builds `M` from `config` in a fresh VarStore.
pub fn build<M: ForgeModel>(config: &ModelConfig) -> (VarStore, M) {
    let vs = VarStore::new(Device::Cpu);
    let model = M::from_config(&vs.root(), config).expect("model builds");
    (vs, model)
}

/// Scalar of a 0-dim tensor.
pub fn scalar(t: &Tensor) -> f64 {
    assert_eq!(t.size(), Vec::<i64>::new(), "expected a scalar");
    t.double_value(&[])
}

/// Whether every value is finite.
pub fn all_finite(t: &Tensor) -> bool {
    t.isfinite().all().int64_value(&[]) == 1
}

/// `from_config` refuses an unset vocabulary with the contract's message.
pub fn assert_vocab_size_required<M: ForgeModel + std::fmt::Debug>(architecture: &str) {
    let config = ModelConfig {
        vocab_size: None,
        ..tiny_config(architecture)
    };
    let vs = VarStore::new(Device::Cpu);
    let err = M::from_config(&vs.root(), &config).unwrap_err().to_string();
    assert!(err.contains("vocab_size must be set"), "{err}");
}

/// One training step changes every parameter that the loss reaches, and the
/// named ones receive a gradient.
pub fn assert_gradients_reach<M: ForgeModel>(model: &M, batch: &Batch, must_reach: &[&str]) {
    let loss = model.loss(batch).expect("batch has targets");
    loss.backward();
    let params = named_parameters(model);
    for prefix in must_reach {
        let reached = params.iter().any(|(name, t)| {
            name.starts_with(prefix) && {
                let g = t.grad();
                g.defined() && g.abs().sum(Kind::Float).double_value(&[]) > 0.0
            }
        });
        assert!(reached, "no gradient reaches `{prefix}`");
    }
}

/// `loss` (the fast training path) equals the loss of `forward(batch, true)`
/// when there is no dropout.
pub fn assert_fast_loss_matches_forward<M: ForgeModel>(model: &M, batch: &Batch) {
    let slow = scalar(&model.forward(batch, true).loss.expect("loss"));
    let fast = scalar(&model.loss(batch).expect("loss"));
    assert!(
        (slow - fast).abs() < 1e-5,
        "forward loss {slow} != fast loss {fast}"
    );
    // Validation's path: the same loss in evaluation mode.
    let slow = scalar(&tch::no_grad(|| {
        model.forward(batch, false).loss.expect("loss")
    }));
    let fast = scalar(&tch::no_grad(|| model.eval_loss(batch).expect("loss")));
    assert!(
        (slow - fast).abs() < 1e-5,
        "forward loss {slow} != eval_loss {fast} in evaluation mode"
    );
}

/// A batch of one cell and a batch with an all-padding cell run and stay
/// finite.
pub fn assert_edge_batches_finite<M: ForgeModel>(model: &M) {
    let one = {
        let b = batch();
        Batch::builder(
            b.input_ids().narrow(0, 0, 1),
            b.attention_mask().narrow(0, 0, 1),
        )
        .values(b.values().unwrap().narrow(0, 0, 1))
        .labels(b.labels().unwrap().narrow(0, 0, 1))
        .build()
        .unwrap()
    };
    let out = model.forward(&one, false);
    assert_eq!(out.embeddings.as_ref().unwrap().size()[0], 1);
    assert!(all_finite(out.embeddings.as_ref().unwrap()));
    assert!(all_finite(out.loss.as_ref().unwrap()));

    let b = batch();
    let mask = b.attention_mask().copy();
    let ids = b.input_ids().copy();
    let _ = mask.get(1).fill_(0);
    let _ = ids.get(1).fill_(0);
    let labels = b.labels().unwrap().copy();
    let _ = labels.get(1).fill_(-100);
    let padded = Batch::builder(ids, mask)
        .values(b.values().unwrap().shallow_clone())
        .labels(labels)
        .build()
        .unwrap();
    let out = model.forward(&padded, false);
    assert!(
        all_finite(out.embeddings.as_ref().unwrap()),
        "all-padding cell gives NaN embeddings"
    );
    assert!(all_finite(&model.encode(&padded)));
    if let Some(logits) = &out.logits {
        assert!(all_finite(logits), "all-padding cell gives NaN logits");
    }
}

/// Pooling follows the config: cls and mean both give (B,H) and differ.
pub fn assert_pooling_options<M: ForgeModel>(architecture: &str) {
    let mut embeddings = vec![];
    for pooling in [Pooling::Cls, Pooling::Mean] {
        let config = ModelConfig {
            pooling,
            ..tiny_config(architecture)
        };
        forge_core::tch::manual_seed(7);
        let (_vs, model) = build::<M>(&config);
        let out = model.forward(&batch(), false);
        let emb = out.embeddings.unwrap();
        assert_eq!(emb.size(), [2, 64]);
        embeddings.push(emb);
    }
    let diff = (&embeddings[0] - &embeddings[1])
        .abs()
        .max()
        .double_value(&[]);
    assert!(diff > 1e-6, "cls and mean pooling gave the same embeddings");
}

/// An invalid pooling name fails when the config is loaded, naming the key
/// and the accepted values (the Rust counterpart of "Unknown pooling").
pub fn assert_unknown_pooling_refused(architecture: &str) {
    let yaml = format!("model:\n  architecture: {architecture}\n  pooling: bad\n");
    let err = forge_core::ForgeConfig::from_yaml_str(&yaml, "test.yaml")
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("model.pooling") && err.contains("cls, mean"),
        "{err}"
    );
}

/// Registered under its name, and the registry builds it.
pub fn assert_registered(architecture: &str) {
    assert!(forge_core::registry::list().contains(&architecture));
    let vs = VarStore::new(Device::Cpu);
    let model = forge_core::registry::build(&vs.root(), &tiny_config(architecture)).unwrap();
    assert_eq!(model.registry_name(), architecture);
}
