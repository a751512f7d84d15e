//! Tests for `masked_autoencoder`: the guide's Step 4, plus masking
//! sources, loss only at masked positions, the unmasked case and edge
//! batches.

use forge_core::models::MaskedAutoencoder as Model;
use forge_core::tch::{self, Device, Kind, Tensor};
use forge_core::{Architecture, Batch, ForgeModel, ModelOutput};

use crate::common::*;

const NAME: &str = "masked_autoencoder";

fn model() -> Model {
    build::<Model>(&tiny_config(NAME)).1
}

#[test]
fn forward_returns_model_output_with_shapes() {
    let out: ModelOutput = model().forward(&batch(), false);
    assert_eq!(out.embeddings.unwrap().size(), [2, 64]);
    // Predicted expression values, one per position.
    assert_eq!(out.logits.unwrap().size(), [2, 10]);
}

#[test]
fn forward_with_labels_has_positive_scalar_loss() {
    assert!(scalar(&model().forward(&batch(), false).loss.unwrap()) > 0.0);
}

#[test]
fn without_masking_gives_embeddings_only() {
    let out = model().forward(&batch_without_labels(), false);
    assert!(out.loss.is_none() && out.logits.is_none());
    assert_eq!(out.embeddings.unwrap().size(), [2, 64]);
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
    // Embeddings come from the full, unmasked pass in forward too.
    let out = m.forward(&b, false).embeddings.unwrap();
    assert!((emb - out).abs().max().double_value(&[]) < 1e-6);
}

#[test]
fn from_config_builds_and_requires_vocab_size() {
    let m = model();
    assert_eq!(m.registry_name(), NAME);
    assert_eq!(
        m.mask_token.size(),
        [1, 1, 32],
        "decoder_dim defaults to hidden/2"
    );
    assert_eq!(m.decoder.layers.len(), 4, "decoder_layers defaults to 4");
    assert_vocab_size_required::<Model>(NAME);
}

#[test]
fn gradients_reach_embedding_mask_token_and_head() {
    let m = model();
    assert_gradients_reach(
        &m,
        &batch(),
        &[
            "embedding.gene_embedding",
            "encoder.layers.1",
            "enc_to_dec",
            "mask_token",
            "decoder.layers.0",
            "expression_head.output",
        ],
    );
}

#[test]
fn fast_loss_equals_forward_loss() {
    assert_fast_loss_matches_forward(&model(), &batch());
}

#[test]
fn masked_positions_take_precedence_over_labels() {
    let m = model();
    let b = batch();
    let masked = Tensor::zeros([2, 10], (Kind::Bool, Device::Cpu));
    let _ = masked.get(0).get(5).fill_(1);
    let explicit = Batch::builder(b.input_ids().copy(), b.attention_mask().copy())
        .values(b.values().unwrap().copy())
        .labels(b.labels().unwrap().copy())
        .masked_positions(masked)
        .build()
        .unwrap();
    let from_labels = scalar(&m.forward(&b, false).loss.unwrap());
    let from_mask = scalar(&m.forward(&explicit, false).loss.unwrap());
    assert!((from_labels - from_mask).abs() > 1e-7);
}

#[test]
fn loss_is_mse_at_masked_positions_only() {
    let m = model();
    let b = batch();
    let out = m.forward(&b, false);
    let predicted = out.logits.unwrap();
    let masked = b.labels().unwrap().ne(-100);
    let want = (predicted.masked_select(&masked) - b.values().unwrap().masked_select(&masked))
        .square()
        .mean(Kind::Float)
        .double_value(&[]);
    assert!((scalar(&out.loss.unwrap()) - want).abs() < 1e-6);
}

#[test]
fn every_position_masked_still_runs() {
    let m = model();
    let b = batch();
    let all = Tensor::ones([2, 10], (Kind::Bool, Device::Cpu));
    let every = Batch::builder(b.input_ids().copy(), b.attention_mask().copy())
        .values(b.values().unwrap().copy())
        .masked_positions(all)
        .build()
        .unwrap();
    let out = m.forward(&every, false);
    assert!(all_finite(&out.loss.unwrap()));
    assert!(all_finite(&out.logits.unwrap()));
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
    assert_registered(NAME);
}
