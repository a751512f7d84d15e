//! Tests for `transformer_encoder` (the guide's Step 4, plus gradients to
//! every head, edge batches and the fast loss path).

use forge_core::models::TransformerEncoderModel as Model;
use forge_core::tch::{self, Kind};
use forge_core::{Architecture, ForgeModel, ModelOutput};

use crate::common::*;

const NAME: &str = "transformer_encoder";

fn model() -> Model {
    build::<Model>(&tiny_config(NAME)).1
}

#[test]
fn forward_returns_model_output_with_shapes() {
    let out: ModelOutput = model().forward(&batch(), false);
    assert_eq!(out.embeddings.unwrap().size(), [2, 64]);
    assert_eq!(out.logits.unwrap().size(), [2, 10, 100]);
    assert_eq!(out.hidden_states.unwrap().size(), [2, 10, 64]);
}

#[test]
fn forward_with_labels_has_positive_scalar_loss() {
    let loss = model().forward(&batch(), false).loss.expect("loss");
    assert!(scalar(&loss) > 0.0);
}

#[test]
fn forward_without_labels_has_no_loss() {
    assert!(
        model()
            .forward(&batch_without_labels(), false)
            .loss
            .is_none()
    );
}

#[test]
fn encode_gives_cell_embeddings_without_grad() {
    let m = model();
    // One batch for both calls: building two would race other tests on
    // the global RNG.
    let b = batch();
    let emb = tch::no_grad(|| m.encode(&b.without_labels()));
    assert_eq!(emb.size(), [2, 64]);
    assert!(!emb.requires_grad());
    let out = m.forward(&batch(), false);
    let same = (&emb - out.embeddings.unwrap())
        .abs()
        .max()
        .double_value(&[]);
    assert!(
        same < 1e-6,
        "encode equals forward's embeddings in eval mode"
    );
}

#[test]
fn from_config_builds_and_requires_vocab_size() {
    assert_eq!(model().registry_name(), NAME);
    assert_vocab_size_required::<Model>(NAME);
}

#[test]
fn gradients_reach_embedding_encoder_and_head() {
    let m = model();
    assert_gradients_reach(
        &m,
        &batch(),
        &[
            "embedding.gene_embedding",
            "embedding.expression_proj",
            "encoder.layers.1",
            "head.decoder",
        ],
    );
}

#[test]
fn fast_loss_equals_forward_loss() {
    assert_fast_loss_matches_forward(&model(), &batch());
}

#[test]
fn pooling_cls_and_mean() {
    assert_pooling_options::<Model>(NAME);
    assert_unknown_pooling_refused(NAME);
}

#[test]
fn batch_of_one_and_all_padding_cells() {
    assert_edge_batches_finite(&model());
}

#[test]
fn num_parameters_and_registry() {
    let m = model();
    assert!(m.num_parameters(true) > 0);
    assert_eq!(m.num_parameters(false), m.parameter_table().totals().0);
    assert_registered(NAME);
}

#[test]
fn loss_is_cross_entropy_at_labelled_positions_only() {
    let m = model();
    let b = batch();
    let out = m.forward(&b, false);
    let logits = out.logits.unwrap();
    let labels = b.labels().unwrap();
    let mut total = 0.0;
    let picked = [(0, 1), (0, 3), (1, 2)];
    for (cell, pos) in picked {
        let row = logits.get(cell).get(pos).log_softmax(-1, Kind::Float);
        let target = labels.get(cell).get(pos).int64_value(&[]);
        total -= row.double_value(&[target]);
    }
    let want = total / picked.len() as f64;
    let got = scalar(&out.loss.unwrap());
    assert!(
        (got - want).abs() < 1e-5,
        "loss {got}, cross-entropy at labelled positions {want}"
    );
}
