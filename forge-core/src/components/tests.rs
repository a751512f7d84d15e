//! Component tests: shapes, padding, init statistics, and equality with the
//! PyTorch modules (fixtures from `scripts/make_component_fixtures.py`).

use std::collections::BTreeMap;
use std::path::PathBuf;

use tch::{Device, Kind, Tensor, nn::VarStore};

use super::mask::{attention_bias, causal_mask};
use super::*;
use crate::config::{Activation, Pooling};
use crate::params::{Parameters, count_parameters, named_parameters};
use crate::state_dict::load_state_dict;

const TOL: f64 = 1e-5;

fn fixture_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/components")
}

/// Weights, inputs and expected outputs of one fixture case.
struct Case {
    weights: Vec<(String, Tensor)>,
    inputs: BTreeMap<String, Tensor>,
    expected: BTreeMap<String, Tensor>,
}

fn case(name: &str) -> Case {
    let path = fixture_dir().join(format!("{name}.safetensors"));
    let all = Tensor::read_safetensors(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let mut c = Case {
        weights: vec![],
        inputs: BTreeMap::new(),
        expected: BTreeMap::new(),
    };
    for (k, t) in all {
        if let Some(k) = k.strip_prefix("input.") {
            c.inputs.insert(k.to_string(), t);
        } else if let Some(k) = k.strip_prefix("expected.") {
            c.expected.insert(k.to_string(), t);
        } else {
            c.weights.push((k, t));
        }
    }
    c
}

fn max_abs_diff(a: &Tensor, b: &Tensor) -> f64 {
    assert_eq!(a.size(), b.size());
    (a - b).abs().max().double_value(&[])
}

fn assert_close(name: &str, got: &Tensor, want: &Tensor) {
    let d = max_abs_diff(got, want);
    assert!(
        d < TOL,
        "{name}: max |forge - torch| = {d:e} (tolerance {TOL:e})"
    );
}

fn param_fixture() -> serde_json::Value {
    let text = std::fs::read_to_string(fixture_dir().join("param_counts.json")).unwrap();
    serde_json::from_str(&text).unwrap()
}

fn assert_same_parameters<P: Parameters>(key: &str, module: &P) {
    let fixture = &param_fixture()[key];
    let want: BTreeMap<String, Vec<i64>> =
        serde_json::from_value(fixture["parameters"].clone()).unwrap();
    let got: BTreeMap<String, Vec<i64>> = named_parameters(module)
        .into_iter()
        .map(|(n, t)| (n, t.size()))
        .collect();
    assert_eq!(
        got, want,
        "{key}: parameter names/shapes differ from PyTorch"
    );
    assert_eq!(
        count_parameters(module, true),
        fixture["total"].as_i64().unwrap(),
        "{key}: parameter count differs from PyTorch"
    );
}

#[test]
fn parameter_names_and_counts_equal_pytorch() {
    let vs = VarStore::new(Device::Cpu);
    let p = vs.root();
    let (v, h, s) = (100, 64, 32);
    assert_same_parameters(
        "embedding",
        &GeneExpressionEmbedding::new(&p / "e1", v, h, s, 0.1, true),
    );
    assert_same_parameters(
        "embedding_no_values",
        &GeneExpressionEmbedding::new(&p / "e2", v, h, s, 0.1, false),
    );
    assert_same_parameters(
        "masked_gene_head",
        &MaskedGenePredictionHead::new(&p / "h1", h, v),
    );
    assert_same_parameters("bin_head", &BinPredictionHead::new(&p / "h2", h, 51));
    assert_same_parameters(
        "expression_head",
        &ExpressionPredictionHead::new(&p / "h3", h),
    );
    let enc =
        |name: &str, ffn| TransformerEncoder::new(&p / name, 2, h, 4, ffn, 0.1, Activation::Gelu);
    assert_same_parameters("encoder", &enc("enc1", 4 * h));
    assert_same_parameters("encoder_ffn_128", &enc("enc2", 128));
}

#[test]
fn embedding_equals_pytorch() {
    let c = case("embedding");
    let vs = VarStore::new(Device::Cpu);
    let emb = GeneExpressionEmbedding::new(vs.root(), 50, 16, 16, 0.1, true);
    load_state_dict(&emb, &c.weights).unwrap();
    let ids = &c.inputs["input_ids"];
    let values = &c.inputs["values"];
    assert_close(
        "with values",
        &emb.forward_padded(ids, Some(values), false),
        &c.expected["with_values"],
    );
    assert_close(
        "without values",
        &emb.forward_padded(ids, None, false),
        &c.expected["without_values"],
    );
}

#[test]
fn encoder_layers_equal_pytorch_with_padding_and_causal_masks() {
    for (name, activation) in [
        ("encoder_gelu", Activation::Gelu),
        ("encoder_relu", Activation::Relu),
    ] {
        let c = case(name);
        let vs = VarStore::new(Device::Cpu);
        let enc = TransformerEncoder::new(vs.root(), 2, 16, 2, 40, 0.1, activation);
        load_state_dict(&enc, &c.weights).unwrap();
        let x = &c.inputs["x"];
        let mask = &c.inputs["attention_mask"];
        // Compare real tokens: PyTorch's outputs at padded query positions are
        // not part of its contract (its fast path may zero them).
        let real = mask.unsqueeze(-1).to_kind(Kind::Float);
        let padding = enc.forward_padded(x, mask, false, false);
        assert_close(
            &format!("{name} padding"),
            &(padding * &real),
            &(&c.expected["padding"] * &real),
        );
        let causal = enc.forward_padded(x, mask, true, false);
        assert_close(
            &format!("{name} causal"),
            &(causal * &real),
            &(&c.expected["causal"] * &real),
        );
    }
}

#[test]
fn heads_equal_pytorch() {
    let vs = VarStore::new(Device::Cpu);
    let c = case("masked_gene_head");
    let head = MaskedGenePredictionHead::new(&vs.root() / "a", 16, 50);
    load_state_dict(&head, &c.weights).unwrap();
    let out = head.forward(&c.inputs["hidden"]);
    assert_eq!(out.size(), [3, 7, 50]);
    assert_close("masked gene head", &out, &c.expected["logits"]);

    let c = case("expression_head");
    let head = ExpressionPredictionHead::new(&vs.root() / "b", 16);
    load_state_dict(&head, &c.weights).unwrap();
    let out = head.forward(&c.inputs["hidden"]);
    assert_eq!(out.size(), [3, 7]);
    assert_close("expression head", &out, &c.expected["values"]);
}

#[test]
fn state_dict_mismatch_lists_every_problem_and_copies_nothing() {
    let vs = VarStore::new(Device::Cpu);
    let head = ExpressionPredictionHead::new(vs.root(), 4);
    let before = head.dense.ws.copy();
    let weights = vec![
        (
            "dense.weight".to_string(),
            Tensor::ones([4, 4], (Kind::Float, Device::Cpu)),
        ),
        (
            "dense.bias".to_string(),
            Tensor::ones([5], (Kind::Float, Device::Cpu)),
        ),
        (
            "output.weight".to_string(),
            Tensor::ones([1, 4], (Kind::Float, Device::Cpu)),
        ),
        (
            "extra.weight".to_string(),
            Tensor::ones([1], (Kind::Float, Device::Cpu)),
        ),
    ];
    let err = load_state_dict(&head, &weights).unwrap_err();
    assert_eq!(err.missing, ["output.bias"]);
    assert_eq!(err.unexpected, ["extra.weight"]);
    assert_eq!(
        err.mis_shaped,
        [("dense.bias".to_string(), vec![4], vec![5])]
    );
    let msg = err.to_string();
    assert!(msg.contains("output.bias") && msg.contains("extra.weight") && msg.contains("[5]"));
    assert_eq!(
        max_abs_diff(&head.dense.ws, &before),
        0.0,
        "nothing may be copied"
    );
}

#[test]
fn init_statistics_follow_scmodelforge() {
    tch::manual_seed(1);
    let vs = VarStore::new(Device::Cpu);
    let emb = GeneExpressionEmbedding::new(&vs.root() / "emb", 2000, 64, 32, 0.1, true);
    let ws = &emb.gene_embedding.ws;
    assert_eq!(
        ws.get(0).abs().sum(Kind::Float).double_value(&[]),
        0.0,
        "padding row is zero"
    );
    let std = ws.narrow(0, 1, 1999).std(true).double_value(&[]);
    assert!((std - 0.02).abs() < 0.001, "embedding std {std}");
    let ln = &emb.layer_norm;
    assert_eq!(ln.ws.as_ref().unwrap().min().double_value(&[]), 1.0);
    assert_eq!(ln.bs.as_ref().unwrap().abs().max().double_value(&[]), 0.0);

    let layer =
        TransformerEncoderLayer::new(&vs.root() / "layer", 64, 4, 256, 0.1, Activation::Gelu);
    let check_xavier = |name: &str, w: &Tensor, fan_in: i64, fan_out: i64| {
        let bound = (6.0 / (fan_in + fan_out) as f64).sqrt();
        let max = w.abs().max().double_value(&[]);
        let std = w.std(true).double_value(&[]);
        assert!(max <= bound, "{name}: |w| max {max} > xavier bound {bound}");
        let want = bound / 3f64.sqrt();
        assert!(
            (std - want).abs() < 0.05 * want,
            "{name}: std {std}, uniform std {want}"
        );
    };
    check_xavier("in_proj_weight", &layer.self_attn.in_proj_weight, 64, 192);
    check_xavier("linear1", &layer.linear1.ws, 64, 256);
    check_xavier("linear2", &layer.linear2.ws, 256, 64);
    for (name, t) in named_parameters(&layer) {
        if name.ends_with("bias") {
            assert_eq!(
                t.abs().max().double_value(&[]),
                0.0,
                "{name} starts at zero"
            );
        }
    }
}

#[test]
fn padding_row_gets_no_gradient() {
    let vs = VarStore::new(Device::Cpu);
    let emb = GeneExpressionEmbedding::new(vs.root(), 10, 8, 8, 0.0, false);
    let ids = Tensor::from_slice(&[4i64, 5, 0, 0]).view([1, 4]);
    // A weighted sum: a plain sum of LayerNorm outputs is constant.
    let out = emb.forward_padded(&ids, None, true);
    (&out * Tensor::randn(out.size(), (Kind::Float, Device::Cpu)))
        .sum(Kind::Float)
        .backward();
    let grad = emb.gene_embedding.ws.grad();
    assert_eq!(grad.get(0).abs().sum(Kind::Float).double_value(&[]), 0.0);
    assert!(grad.get(4).abs().sum(Kind::Float).double_value(&[]) > 0.0);
}

#[test]
fn pooling_uses_first_token_or_real_token_mean() {
    let hidden = Tensor::arange(2 * 3 * 2, (Kind::Float, Device::Cpu)).view([2, 3, 2]);
    let mask = Tensor::from_slice(&[1i64, 1, 1, 1, 0, 0]).view([2, 3]);
    let cls = pool(Pooling::Cls, &hidden, &mask);
    assert_eq!(
        Vec::<f32>::try_from(cls.reshape([-1])).unwrap(),
        [0., 1., 6., 7.]
    );
    let mean = pool(Pooling::Mean, &hidden, &mask);
    // Cell 0: mean of rows (0,1),(2,3),(4,5); cell 1: only its first row.
    assert_eq!(
        Vec::<f32>::try_from(mean.view([-1])).unwrap(),
        [2., 3., 6., 7.]
    );
    let empty = Tensor::zeros([1, 3], (Kind::Int64, Device::Cpu));
    let pooled = mean_pool(&hidden.narrow(0, 0, 1), &empty);
    assert_eq!(
        pooled.abs().sum(Kind::Float).double_value(&[]),
        0.0,
        "all padding gives zeros"
    );
}

#[test]
fn causal_mask_and_attention_bias() {
    let m = causal_mask(3, Device::Cpu);
    let v: Vec<f32> = Vec::try_from(m.view([-1])).unwrap();
    let inf = f32::NEG_INFINITY;
    assert_eq!(v, [0., inf, inf, 0., 0., inf, 0., 0., 0.]);

    let mask = Tensor::from_slice(&[1i64, 1, 0]).view([1, 3]);
    let b = attention_bias(&mask, false, Kind::Float);
    assert_eq!(b.size(), [1, 1, 1, 3]);
    let b = attention_bias(&mask, true, Kind::Float);
    assert_eq!(b.size(), [1, 1, 3, 3]);
    let v: Vec<f32> = Vec::try_from(b.view([-1])).unwrap();
    let m = mask::MASKED as f32;
    assert_eq!(v, [0., m, m, 0., 0., m, 0., 0., m]);
}

fn small_encoder(vs: &VarStore, dropout: f64) -> TransformerEncoder {
    TransformerEncoder::new(vs.root(), 2, 16, 4, 32, dropout, Activation::Gelu)
}

#[test]
fn padding_content_never_changes_real_outputs() {
    tch::manual_seed(3);
    let vs = VarStore::new(Device::Cpu);
    let enc = small_encoder(&vs, 0.1);
    let x = Tensor::randn([2, 5, 16], (Kind::Float, Device::Cpu));
    let mask = Tensor::from_slice(&[1i64, 1, 1, 1, 1, 1, 1, 1, 0, 0]).view([2, 5]);
    let noise = Tensor::randn([2, 5, 16], (Kind::Float, Device::Cpu))
        * mask.unsqueeze(-1).eq(0).to_kind(Kind::Float);
    let a = enc.forward_padded(&x, &mask, false, false);
    let b = enc.forward_padded(&(&x + noise), &mask, false, false);
    let real = mask.unsqueeze(-1).to_kind(Kind::Float);
    assert!(max_abs_diff(&(a * &real), &(b * &real)) < 1e-6);
}

#[test]
fn all_padding_cells_and_batch_of_one_stay_finite() {
    let vs = VarStore::new(Device::Cpu);
    let enc = small_encoder(&vs, 0.0);
    let x = Tensor::randn([2, 4, 16], (Kind::Float, Device::Cpu));
    let mask = Tensor::from_slice(&[1i64, 1, 0, 0, 0, 0, 0, 0]).view([2, 4]);
    for causal in [false, true] {
        let out = enc.forward_padded(&x, &mask, causal, false);
        assert_eq!(out.isfinite().all().int64_value(&[]), 1, "causal={causal}");
    }
    let one = enc.forward_padded(&x.narrow(0, 0, 1), &mask.narrow(0, 0, 1), false, false);
    assert_eq!(one.size(), [1, 4, 16]);
}

#[test]
fn dropout_is_real_in_training_only() {
    tch::manual_seed(4);
    let vs = VarStore::new(Device::Cpu);
    let enc = small_encoder(&vs, 0.5);
    let x = Tensor::randn([2, 4, 16], (Kind::Float, Device::Cpu));
    let mask = Tensor::ones([2, 4], (Kind::Int64, Device::Cpu));
    let e1 = enc.forward_padded(&x, &mask, false, false);
    let e2 = enc.forward_padded(&x, &mask, false, false);
    assert_eq!(max_abs_diff(&e1, &e2), 0.0, "eval is deterministic");
    let t1 = enc.forward_padded(&x, &mask, false, true);
    let t2 = enc.forward_padded(&x, &mask, false, true);
    assert!(max_abs_diff(&t1, &t2) > 1e-3, "training applies dropout");
}

#[test]
fn causal_attention_ignores_later_tokens() {
    let vs = VarStore::new(Device::Cpu);
    let enc = small_encoder(&vs, 0.0);
    let x = Tensor::randn([1, 5, 16], (Kind::Float, Device::Cpu));
    let mask = Tensor::ones([1, 5], (Kind::Int64, Device::Cpu));
    let y = x.copy();
    let _ = y.narrow(1, 4, 1).fill_(7.0);
    let a = enc.forward_padded(&x, &mask, true, false).narrow(1, 0, 4);
    let b = enc.forward_padded(&y, &mask, true, false).narrow(1, 0, 4);
    assert!(
        max_abs_diff(&a, &b) < 1e-6,
        "earlier positions cannot see later ones"
    );
    let c = enc.forward_padded(&x, &mask, false, false).narrow(1, 0, 4);
    let d = enc.forward_padded(&y, &mask, false, false).narrow(1, 0, 4);
    assert!(
        max_abs_diff(&c, &d) > 1e-4,
        "bidirectional attention sees every token"
    );
}
