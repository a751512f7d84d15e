//! Tests for `autoregressive_transformer`: the guide's Step 4, plus the
//! causal mask, the bin loss and its targets, and edge batches.

use forge_core::models::AutoregressiveTransformer as Model;
use forge_core::tch::{self, Device, Kind, Tensor};
use forge_core::{Architecture, Batch, ForgeModel, ModelOutput};

use crate::common::*;

const NAME: &str = "autoregressive_transformer";

fn model() -> Model {
    build::<Model>(&tiny_config(NAME)).1
}

fn with_bins(b: Batch) -> Batch {
    let bins = Tensor::randint(51, [2, 10], (Kind::Int64, Device::Cpu));
    Batch::builder(b.input_ids().copy(), b.attention_mask().copy())
        .values(b.values().unwrap().copy())
        .labels(b.labels().unwrap().copy())
        .bin_ids(bins)
        .build()
        .unwrap()
}

#[test]
fn forward_returns_model_output_with_shapes() {
    let out: ModelOutput = model().forward(&batch(), false);
    assert_eq!(out.embeddings.unwrap().size(), [2, 64]);
    assert_eq!(out.logits.unwrap().size(), [2, 10, 100]);
}

#[test]
fn forward_with_labels_has_positive_scalar_loss() {
    assert!(scalar(&model().forward(&batch(), false).loss.unwrap()) > 0.0);
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
    let emb = tch::no_grad(|| m.encode(&batch_without_labels()));
    assert_eq!(emb.size(), [2, 64]);
    assert!(!emb.requires_grad());
}

#[test]
fn from_config_builds_and_requires_vocab_size() {
    assert_eq!(model().registry_name(), NAME);
    assert_vocab_size_required::<Model>(NAME);
}

#[test]
fn gradients_reach_embedding_and_both_heads() {
    let m = model();
    assert_gradients_reach(
        &m,
        &with_bins(batch()),
        &[
            "embedding.gene_embedding",
            "encoder.layers.0",
            "gene_head.decoder",
            "expression_head.decoder",
        ],
    );
}

#[test]
fn fast_loss_equals_forward_loss_with_and_without_bins() {
    let m = model();
    assert_fast_loss_matches_forward(&m, &batch());
    assert_fast_loss_matches_forward(&m, &with_bins(batch()));
}

#[test]
fn bin_loss_is_added_with_its_weight() {
    // One model and one batch: nothing here depends on the global RNG,
    // which other tests running in parallel also use.
    let mut m = model();
    let b = with_bins(batch());
    let no_bins = Batch::builder(b.input_ids().copy(), b.attention_mask().copy())
        .values(b.values().unwrap().copy())
        .labels(b.labels().unwrap().copy())
        .build()
        .unwrap();
    let gene_only = scalar(&m.forward(&no_bins, false).loss.unwrap());
    let both = scalar(&m.forward(&b, false).loss.unwrap());
    assert!(both > gene_only, "the bin loss adds to the gene loss");
    m.expression_loss_weight = 0.0;
    let weighted = scalar(&m.forward(&b, false).loss.unwrap());
    assert!(
        (weighted - gene_only).abs() < 1e-5,
        "weight 0 removes the bin loss"
    );
}

#[test]
fn causal_forward_differs_from_bidirectional_encode() {
    let m = model();
    let b = batch();
    let causal = m.forward(&b, false).embeddings.unwrap();
    let bidirectional = m.encode(&b);
    // CLS pooling: the first token sees only itself under the causal mask.
    let diff = (&causal - &bidirectional).abs().max().double_value(&[]);
    assert!(
        diff > 1e-4,
        "causal and bidirectional passes agree ({diff})"
    );
    // Changing the last token cannot affect earlier logits in forward.
    let ids = b.input_ids().copy();
    let _ = ids.get(0).get(9).fill_(50);
    let changed = Batch::builder(ids, b.attention_mask().copy())
        .values(b.values().unwrap().copy())
        .build()
        .unwrap();
    let a = m.forward(&b, false).logits.unwrap().get(0).narrow(0, 0, 9);
    let c = m
        .forward(&changed, false)
        .logits
        .unwrap()
        .get(0)
        .narrow(0, 0, 9);
    assert!((a - c).abs().max().double_value(&[]) < 1e-5);
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
