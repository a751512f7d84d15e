//! The benchmarks of `eval.benchmarks`, by scModelForge's registry names,
//! with their parameters and results in scModelForge's form.
//!
//! - `linear_probe` (params `cell_type_key` = "cell_type", `test_size` =
//!   0.2, `max_iter` = 1000, `seed` = 42): accuracy, f1_macro, f1_weighted
//!   (see [`super::probe`]).
//! - `embedding_quality` (params `cell_type_key` = "cell_type",
//!   `batch_key` = "batch" or `null`, `n_neighbors` = 15): nmi, ari,
//!   asw_cell_type, and with more than one batch asw_batch and
//!   graph_connectivity; overall (see [`super::quality`]).
//!
//! As in scModelForge, an empty benchmark list means `[linear_probe]`, a
//! benchmark's `dataset` is routing metadata only, and every obs key a
//! benchmark needs (`batch_key` included) must be in the data. A name forge
//! does not have, or a parameter a benchmark does not take, is refused with
//! what is accepted.
//!
//! This module is pure: it gets an embedding and a way to read obs columns;
//! running a model over cells lives in `forge_train::harness` (a crate above this one).

use ndarray::ArrayView2;
use serde_json::{Map, Value, json};

use super::probe::linear_probe_with;
use super::quality::{QualityOptions, embedding_quality_with};
use super::{AssessError, Result};
use forge_core::config::value::join_path;
use forge_core::config::{BenchmarkSpec, ConfigErrors, EvalConfig};

/// The benchmark names forge has, sorted.
pub const AVAILABLE: &[&str] = &["embedding_quality", "linear_probe"];

/// One configured benchmark.
#[derive(Debug, Clone, PartialEq)]
pub enum Benchmark {
    /// Logistic regression on the embedding (scModelForge's
    /// `LinearProbeBenchmark`).
    LinearProbe {
        /// obs column with the cell types.
        cell_type_key: String,
        /// Held-out fraction.
        test_size: f64,
        /// Iteration cap of the solver.
        max_iter: u64,
        /// Seed of the split.
        seed: u64,
    },
    /// scIB-style scores (scModelForge's `EmbeddingQualityBenchmark`).
    EmbeddingQuality {
        /// obs column with the cell types.
        cell_type_key: String,
        /// obs column with the batches; `None` skips the batch scores.
        batch_key: Option<String>,
        /// kNN graph size.
        n_neighbors: usize,
    },
}

/// What one benchmark measured on one dataset (scModelForge's
/// `BenchmarkResult`).
#[derive(Debug, Clone, PartialEq)]
pub struct BenchmarkResult {
    /// Registry name of the benchmark.
    pub benchmark_name: String,
    /// Name of the dataset.
    pub dataset_name: String,
    /// Metric name and value, in a fixed order.
    pub metrics: Vec<(String, f64)>,
    /// What the numbers were computed on.
    pub metadata: Map<String, Value>,
}

impl BenchmarkResult {
    /// `{benchmark_name, dataset_name, metrics, metadata}`, as
    /// scModelForge's `BenchmarkResult.to_dict` writes it.
    pub fn to_json(&self) -> Value {
        let metrics: Map<String, Value> = self
            .metrics
            .iter()
            .map(|(k, v)| (k.clone(), json!(v)))
            .collect();
        json!({
            "benchmark_name": self.benchmark_name,
            "dataset_name": self.dataset_name,
            "metrics": metrics,
            "metadata": self.metadata,
        })
    }

    /// `[name] dataset: metric=value, ...` with metrics sorted by name.
    pub fn summary(&self) -> String {
        let mut m: Vec<_> = self.metrics.iter().collect();
        m.sort_by(|a, b| a.0.cmp(&b.0));
        let parts: Vec<String> = m.iter().map(|(k, v)| format!("{k}={v:.4}")).collect();
        format!(
            "[{}] {}: {}",
            self.benchmark_name,
            self.dataset_name,
            parts.join(", ")
        )
    }
}

/// The benchmarks of `eval.benchmarks` (`[linear_probe]` when empty), or
/// every problem with them.
pub fn from_config(eval: &EvalConfig) -> std::result::Result<Vec<Benchmark>, ConfigErrors> {
    let mut errors = ConfigErrors::new("config");
    let default = [BenchmarkSpec::named("linear_probe")];
    let specs: &[BenchmarkSpec] = if eval.benchmarks.is_empty() {
        &default
    } else {
        &eval.benchmarks
    };
    let out: Vec<Benchmark> = specs
        .iter()
        .enumerate()
        .filter_map(|(i, spec)| {
            Benchmark::from_spec(spec, &format!("eval.benchmarks[{i}]"), &mut errors)
        })
        .collect();
    errors.into_result(out)
}

/// Reads typed parameters out of a `params` mapping, recording problems.
struct Params<'a> {
    map: &'a Map<String, Value>,
    path: String,
    errors: &'a mut ConfigErrors,
}

impl Params<'_> {
    fn key_path(&self, key: &str) -> String {
        join_path(&join_path(&self.path, "params"), key)
    }

    fn string(&mut self, key: &str, default: &str) -> String {
        match self.map.get(key) {
            None => default.to_string(),
            Some(Value::String(s)) => s.clone(),
            Some(other) => {
                let p = self.key_path(key);
                self.errors
                    .push(p, format!("expected an obs column name, found {other}"));
                default.to_string()
            }
        }
    }

    fn opt_string(&mut self, key: &str, default: Option<&str>) -> Option<String> {
        match self.map.get(key) {
            None => default.map(str::to_string),
            Some(Value::Null) => None,
            Some(Value::String(s)) => Some(s.clone()),
            Some(other) => {
                let p = self.key_path(key);
                self.errors.push(
                    p,
                    format!("expected an obs column name or null, found {other}"),
                );
                None
            }
        }
    }

    fn number(&mut self, key: &str, default: f64) -> f64 {
        match self.map.get(key) {
            None => default,
            Some(v) => match v.as_f64() {
                Some(x) => x,
                None => {
                    let p = self.key_path(key);
                    self.errors.push(p, format!("expected a number, found {v}"));
                    default
                }
            },
        }
    }

    fn count(&mut self, key: &str, default: u64, least: u64) -> u64 {
        match self.map.get(key) {
            None => default,
            Some(v) => match v.as_u64().filter(|&x| x >= least) {
                Some(x) => x,
                None => {
                    let p = self.key_path(key);
                    self.errors.push(
                        p,
                        format!("expected a whole number of at least {least}, found {v}"),
                    );
                    default
                }
            },
        }
    }

    fn refuse_others(&mut self, name: &str, accepted: &[&str]) {
        for key in self.map.keys() {
            if !accepted.contains(&key.as_str()) {
                let hint = match forge_core::suggest::closest(key, accepted.iter().copied()) {
                    Some(best) => format!("did you mean \"{best}\"? "),
                    None => String::new(),
                };
                let p = self.key_path(key);
                self.errors.push(
                    p,
                    format!(
                        "{name} takes no parameter `{key}`; {hint}accepted: {}",
                        accepted.join(", ")
                    ),
                );
            }
        }
    }
}

impl Benchmark {
    /// The benchmark a config entry names, or `None` with the problems
    /// recorded under `path` (unknown name: the list forge has).
    pub fn from_spec(spec: &BenchmarkSpec, path: &str, errors: &mut ConfigErrors) -> Option<Self> {
        let before = errors.len();
        let mut p = Params {
            map: &spec.params,
            path: path.to_string(),
            errors,
        };
        let bench = match spec.name.as_str() {
            "linear_probe" => {
                p.refuse_others(
                    "linear_probe",
                    &["cell_type_key", "test_size", "max_iter", "seed"],
                );
                let test_size = p.number("test_size", 0.2);
                if !(test_size > 0.0 && test_size < 1.0) {
                    let at = p.key_path("test_size");
                    p.errors.push(at, format!("{test_size} is not in (0, 1)"));
                }
                Benchmark::LinearProbe {
                    cell_type_key: p.string("cell_type_key", "cell_type"),
                    test_size,
                    max_iter: p.count("max_iter", 1000, 1),
                    seed: p.count("seed", 42, 0),
                }
            }
            "embedding_quality" => {
                p.refuse_others(
                    "embedding_quality",
                    &["cell_type_key", "batch_key", "n_neighbors"],
                );
                Benchmark::EmbeddingQuality {
                    cell_type_key: p.string("cell_type_key", "cell_type"),
                    batch_key: p.opt_string("batch_key", Some("batch")),
                    n_neighbors: p.count("n_neighbors", 15, 2) as usize,
                }
            }
            other => {
                let hint = match forge_core::suggest::closest(other, AVAILABLE.iter().copied()) {
                    Some(best) => format!("did you mean \"{best}\"? "),
                    None => String::new(),
                };
                p.errors.push(
                    join_path(path, "name"),
                    format!(
                        "forge has no benchmark \"{other}\"; {hint}available: {}",
                        AVAILABLE.join(", ")
                    ),
                );
                return None;
            }
        };
        (errors.len() == before).then_some(bench)
    }

    /// Registry name.
    pub fn name(&self) -> &'static str {
        match self {
            Benchmark::LinearProbe { .. } => "linear_probe",
            Benchmark::EmbeddingQuality { .. } => "embedding_quality",
        }
    }

    /// The obs columns this benchmark needs.
    pub fn required_obs_keys(&self) -> Vec<&str> {
        match self {
            Benchmark::LinearProbe { cell_type_key, .. } => vec![cell_type_key],
            Benchmark::EmbeddingQuality {
                cell_type_key,
                batch_key,
                ..
            } => {
                let mut keys = vec![cell_type_key.as_str()];
                keys.extend(batch_key.as_deref());
                keys
            }
        }
    }

    /// Runs on `emb` (one row per cell); `obs(key)` gives one label per
    /// cell, or `None` when the data has no such column.
    pub fn run(
        &self,
        emb: ArrayView2<'_, f32>,
        obs: &dyn Fn(&str) -> Option<Vec<String>>,
        dataset_name: &str,
    ) -> Result<BenchmarkResult> {
        let required = self.required_obs_keys();
        let columns: Vec<Option<Vec<String>>> = required.iter().map(|k| obs(k)).collect();
        let missing: Vec<&str> = required
            .iter()
            .zip(&columns)
            .filter(|(_, c)| c.is_none())
            .map(|(k, _)| *k)
            .collect();
        if !missing.is_empty() {
            return Err(AssessError::InvalidParameter {
                name: "obs keys",
                message: format!(
                    "benchmark '{}' requires obs keys [{}], but the data has no [{}]",
                    self.name(),
                    required.join(", "),
                    missing.join(", ")
                ),
            });
        }
        let mut columns = columns.into_iter().flatten();
        let cell_types = columns.next().unwrap_or_default();
        let n_cells = emb.nrows();
        let (metrics, metadata) = match self {
            Benchmark::LinearProbe {
                cell_type_key,
                test_size,
                max_iter,
                seed,
            } => {
                let r = linear_probe_with(emb, &cell_types, *test_size, *max_iter, *seed)?;
                (
                    vec![
                        ("accuracy".to_string(), r.accuracy),
                        ("f1_macro".to_string(), r.f1_macro),
                        ("f1_weighted".to_string(), r.f1_weighted),
                    ],
                    json!({"n_cells": n_cells, "n_classes": r.n_classes,
                           "test_size": test_size, "cell_type_key": cell_type_key}),
                )
            }
            Benchmark::EmbeddingQuality {
                cell_type_key,
                batch_key,
                n_neighbors,
            } => {
                // Batch scores only with more than one batch, as scModelForge.
                let batches = columns.next().filter(|b| {
                    let mut distinct: Vec<&String> = b.iter().collect();
                    distinct.sort();
                    distinct.dedup();
                    distinct.len() > 1
                });
                let options = QualityOptions {
                    n_neighbors: *n_neighbors,
                    ..QualityOptions::default()
                };
                let q = embedding_quality_with(emb, &cell_types, batches.as_deref(), &options)?;
                let mut m = vec![
                    ("nmi".to_string(), q.nmi),
                    ("ari".to_string(), q.ari),
                    ("asw_cell_type".to_string(), q.asw_celltype),
                ];
                if let Some(asw_batch) = q.asw_batch {
                    m.push(("asw_batch".to_string(), asw_batch));
                    m.push(("graph_connectivity".to_string(), q.graph_connectivity));
                }
                m.push(("overall".to_string(), q.overall));
                (
                    m,
                    json!({"n_cells": n_cells, "cell_type_key": cell_type_key,
                           "batch_key": batch_key, "n_neighbors": n_neighbors}),
                )
            }
        };
        Ok(BenchmarkResult {
            benchmark_name: self.name().to_string(),
            dataset_name: dataset_name.to_string(),
            metrics,
            metadata: metadata.as_object().cloned().unwrap_or_default(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_support::clusters;

    fn eval(benchmarks: Value) -> EvalConfig {
        let mut errors = ConfigErrors::new("<test>");
        let list = benchmarks
            .as_array()
            .unwrap()
            .iter()
            .map(|v| {
                <BenchmarkSpec as forge_core::config::ConfigValue>::from_value(v, "b", &mut errors)
                    .unwrap()
            })
            .collect();
        assert!(errors.is_empty(), "{errors}");
        EvalConfig {
            benchmarks: list,
            ..EvalConfig::default()
        }
    }

    #[test]
    fn empty_list_means_linear_probe_with_scmodelforge_defaults() {
        let b = from_config(&EvalConfig::default()).unwrap();
        assert_eq!(
            b,
            [Benchmark::LinearProbe {
                cell_type_key: "cell_type".into(),
                test_size: 0.2,
                max_iter: 1000,
                seed: 42
            }]
        );
        let b = from_config(&eval(json!([{"name": "embedding_quality",
            "dataset": "pbmc", "params": {"cell_type_key": "bulk_labels", "batch_key": null}}])))
        .unwrap();
        assert_eq!(b[0].required_obs_keys(), ["bulk_labels"]);
    }

    #[test]
    fn unknown_names_and_params_are_refused_with_what_exists() {
        let err = from_config(&eval(json!(["linear_prob", "perturbation",
            {"name": "linear_probe", "test_sise": 0.3},
            {"name": "embedding_quality", "n_neighbors": "many"}])))
        .unwrap_err()
        .to_string();
        assert!(
            err.contains("eval.benchmarks[0].name: forge has no benchmark \"linear_prob\"; did you mean \"linear_probe\"? available: embedding_quality, linear_probe"),
            "{err}"
        );
        assert!(err.contains("eval.benchmarks[1].name: forge has no benchmark \"perturbation\"; available: embedding_quality, linear_probe"), "{err}");
        assert!(err.contains("eval.benchmarks[2].params.test_sise: linear_probe takes no parameter `test_sise`; did you mean \"test_size\"?"), "{err}");
        assert!(
            err.contains("eval.benchmarks[3].params.n_neighbors: expected a whole number"),
            "{err}"
        );
    }

    #[test]
    fn runs_and_reports_in_scmodelforge_form() {
        let (emb, labels) = clusters(3, 30, 8, 4.0, 1);
        let view = emb.view();
        let labels: Vec<String> = labels.iter().map(|l| l.to_string()).collect();
        let obs = |key: &str| (key == "cell_type").then(|| labels.clone());
        let probe = &from_config(&EvalConfig::default()).unwrap()[0];
        let r = probe.run(view, &obs, "val").unwrap();
        assert_eq!(r.benchmark_name, "linear_probe");
        let names: Vec<&str> = r.metrics.iter().map(|(k, _)| k.as_str()).collect();
        assert_eq!(names, ["accuracy", "f1_macro", "f1_weighted"]);
        assert!(r.metrics[0].1 > 0.9, "{r:?}");
        let j = r.to_json();
        assert_eq!(j["dataset_name"], "val");
        assert_eq!(j["metadata"]["cell_type_key"], "cell_type");
        assert!(r.summary().starts_with("[linear_probe] val: accuracy="));
        // embedding_quality needs its default batch_key "batch", as in
        // scModelForge.
        let eq = Benchmark::EmbeddingQuality {
            cell_type_key: "cell_type".into(),
            batch_key: Some("batch".into()),
            n_neighbors: 15,
        };
        let err = eq.run(view, &obs, "val").unwrap_err().to_string();
        assert!(
            err.contains("requires obs keys [cell_type, batch], but the data has no [batch]"),
            "{err}"
        );
        let one_batch = |key: &str| match key {
            "cell_type" => Some(labels.clone()),
            "batch" => Some(vec!["b".to_string(); labels.len()]),
            _ => None,
        };
        let r = eq.run(view, &one_batch, "val").unwrap();
        let names: Vec<&str> = r.metrics.iter().map(|(k, _)| k.as_str()).collect();
        assert_eq!(names, ["nmi", "ari", "asw_cell_type", "overall"]);
    }
}
