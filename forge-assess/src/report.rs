//! Several embeddings assessed side by side ("forge", "pca", "random"...):
//! printed as an aligned table (rows = metrics, columns = embeddings) and
//! serialized as JSON.

use std::fmt;

use ndarray::ArrayView2;
use serde::Serialize;

use super::Result;
use super::probe::{ProbeResult, linear_probe};
use super::quality::{QualityResult, embedding_quality};

/// Linear probe and embedding quality of one embedding.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct EmbeddingAssessment {
    /// [`linear_probe`] scores.
    pub linear_probe: ProbeResult,
    /// [`embedding_quality`] scores.
    pub embedding_quality: QualityResult,
}

/// Runs [`linear_probe`] and [`embedding_quality`] on one embedding with
/// the same `seed`.
pub fn assess_embedding<S: AsRef<str>, B: AsRef<str>>(
    emb: ArrayView2<'_, f32>,
    cell_types: &[S],
    batches: Option<&[B]>,
    seed: u64,
) -> Result<EmbeddingAssessment> {
    Ok(EmbeddingAssessment {
        linear_probe: linear_probe(emb, cell_types, seed)?,
        embedding_quality: embedding_quality(emb, cell_types, batches, seed)?,
    })
}

/// Named assessments in insertion order.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct AssessReport {
    entries: Vec<(String, EmbeddingAssessment)>,
}

type Getter = fn(&EmbeddingAssessment) -> Option<f64>;

/// Table rows: section, metric name, value.
const ROWS: &[(&str, &str, Getter)] = &[
    ("linear probe", "accuracy", |a| {
        Some(a.linear_probe.accuracy)
    }),
    ("linear probe", "f1_macro", |a| {
        Some(a.linear_probe.f1_macro)
    }),
    ("linear probe", "f1_weighted", |a| {
        Some(a.linear_probe.f1_weighted)
    }),
    ("embedding quality", "nmi", |a| {
        Some(a.embedding_quality.nmi)
    }),
    ("embedding quality", "ari", |a| {
        Some(a.embedding_quality.ari)
    }),
    ("embedding quality", "asw_celltype", |a| {
        Some(a.embedding_quality.asw_celltype)
    }),
    ("embedding quality", "asw_batch", |a| {
        a.embedding_quality.asw_batch
    }),
    ("embedding quality", "graph_connectivity", |a| {
        Some(a.embedding_quality.graph_connectivity)
    }),
    ("embedding quality", "bio", |a| {
        Some(a.embedding_quality.bio)
    }),
    ("embedding quality", "batch", |a| {
        a.embedding_quality.batch_score
    }),
    ("embedding quality", "overall", |a| {
        Some(a.embedding_quality.overall)
    }),
];

impl AssessReport {
    /// An empty report.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds (or replaces) the assessment called `name`; it becomes a column.
    pub fn push(&mut self, name: impl Into<String>, assessment: EmbeddingAssessment) {
        let name = name.into();
        match self.entries.iter_mut().find(|(n, _)| *n == name) {
            Some(entry) => entry.1 = assessment,
            None => self.entries.push((name, assessment)),
        }
    }

    /// The assessment called `name`.
    pub fn get(&self, name: &str) -> Option<&EmbeddingAssessment> {
        self.entries.iter().find(|(n, _)| n == name).map(|(_, a)| a)
    }

    /// All assessments, in insertion order.
    pub fn entries(&self) -> &[(String, EmbeddingAssessment)] {
        &self.entries
    }

    /// `{"embeddings": {NAME: {"linear_probe": {...}, "embedding_quality":
    /// {...}}, ...}}`, names in insertion order; absent batch metrics are
    /// `null`.
    pub fn to_json(&self) -> serde_json::Value {
        let mut map = serde_json::Map::new();
        for (name, a) in &self.entries {
            map.insert(
                name.clone(),
                serde_json::to_value(a).unwrap_or(serde_json::Value::Null),
            );
        }
        serde_json::json!({ "embeddings": map })
    }
}

impl fmt::Display for AssessReport {
    /// Rows = metrics grouped by benchmark, columns = embeddings, four
    /// decimals, `-` where a metric does not apply (no batch labels).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let label_width = ROWS
            .iter()
            .map(|(_, m, _)| m.len() + 2)
            .chain(ROWS.iter().map(|(s, _, _)| s.len()))
            .max()
            .unwrap_or(0);
        let widths: Vec<usize> = self.entries.iter().map(|(n, _)| n.len().max(7)).collect();
        write!(f, "{:label_width$}", "metric")?;
        for ((name, _), w) in self.entries.iter().zip(&widths) {
            write!(f, "  {name:>w$}")?;
        }
        writeln!(f)?;
        let mut section = "";
        for (sec, metric, get) in ROWS {
            if *sec != section {
                section = sec;
                writeln!(f, "{sec}")?;
            }
            write!(f, "{:label_width$}", format!("  {metric}"))?;
            for ((_, a), w) in self.entries.iter().zip(&widths) {
                match get(a) {
                    Some(v) => write!(f, "  {v:>w$.4}")?,
                    None => write!(f, "  {:>w$}", "-")?,
                }
            }
            writeln!(f)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_support::{clusters, noise};

    fn report() -> AssessReport {
        let (emb, labels) = clusters(3, 40, 6, 8.0, 1);
        let random = noise(120, 6, 2);
        let batches: Vec<String> = (0..120).map(|i| format!("b{}", i % 2)).collect();
        let mut r = AssessReport::new();
        r.push(
            "forge",
            assess_embedding(emb.view(), &labels, Some(&batches[..]), 0).unwrap(),
        );
        r.push(
            "random",
            assess_embedding(random.view(), &labels, None::<&[&str]>, 0).unwrap(),
        );
        r
    }

    #[test]
    fn table_is_aligned_with_one_column_per_embedding() {
        let r = report();
        let text = r.to_string();
        let lines: Vec<&str> = text.lines().collect();
        let header: Vec<&str> = lines[0].split_whitespace().collect();
        assert_eq!(header, ["metric", "forge", "random"]);
        assert_eq!(lines[1], "linear probe");
        let width = lines[0].len();
        for line in lines.iter().filter(|l| l.starts_with("  ")) {
            assert_eq!(line.len(), width, "{line:?}");
        }
        let batch_row = lines
            .iter()
            .find(|l| l.trim_start().starts_with("asw_batch"))
            .unwrap();
        let cells: Vec<&str> = batch_row.split_whitespace().collect();
        assert_eq!(cells[2], "-", "no batch labels for `random`: {batch_row:?}");
        assert!(cells[1].parse::<f64>().is_ok(), "{batch_row:?}");
        assert_eq!(text.lines().count(), 1 + 2 + ROWS.len());
    }

    #[test]
    fn json_keeps_order_and_nulls() {
        let r = report();
        let json = r.to_json();
        let names: Vec<&String> = json["embeddings"].as_object().unwrap().keys().collect();
        assert_eq!(names, ["forge", "random"]);
        let forge = &json["embeddings"]["forge"];
        assert!(forge["linear_probe"]["accuracy"].as_f64().unwrap() > 0.9);
        assert!(forge["embedding_quality"]["asw_batch"].is_f64());
        assert!(json["embeddings"]["random"]["embedding_quality"]["asw_batch"].is_null());
        assert_eq!(
            r.get("forge").unwrap().linear_probe.accuracy,
            forge["linear_probe"]["accuracy"].as_f64().unwrap()
        );
        let mut r2 = r.clone();
        r2.push("forge", *r.get("random").unwrap());
        assert_eq!(r2.entries().len(), 2);
    }

    /// Timings, run by hand: `cargo test -p forge-assess --lib --release
    /// assess::report::tests::timing -- --ignored --nocapture`. Set
    /// `FORGE_ASSESS_BENCH` to a JSON file `{"x": [[...]], "labels": [...],
    /// "batches": [...]}` (for example the PBMC cells) to time real data too.
    #[test]
    #[ignore = "timing, run by hand"]
    fn timing() {
        use std::time::Instant;
        if let Some(path) = std::env::var_os("FORGE_ASSESS_BENCH") {
            let v: serde_json::Value =
                serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
            let x = crate::test_support::matrix(&v["x"]);
            let labels = crate::test_support::strings(&v["labels"]);
            let batches = crate::test_support::strings(&v["batches"]);
            let t = Instant::now();
            let fitted = crate::pca(x.view(), 50, 0).unwrap();
            println!("{:?} PCA-50: {:.2}s", x.dim(), t.elapsed().as_secs_f64());
            let mut report = AssessReport::new();
            let t = Instant::now();
            report.push(
                "pca",
                assess_embedding(fitted.embedding.view(), &labels, Some(&batches[..]), 0).unwrap(),
            );
            println!("assess pca: {:.2}s", t.elapsed().as_secs_f64());
            let random = noise(x.nrows(), 50, 1);
            report.push(
                "random",
                assess_embedding(random.view(), &labels, Some(&batches[..]), 0).unwrap(),
            );
            println!("{report}");
            if let Some(dir) = std::env::var_os("FORGE_KEEP_PLOTS") {
                let xy = crate::project_2d(fitted.embedding.view()).unwrap();
                crate::plot::scatter_png(
                    &std::path::Path::new(&dir).join("pbmc_pca.png"),
                    &xy,
                    &labels,
                    "PCA baseline: 700 PBMC cells by bulk_labels",
                    ("PC 1", "PC 2"),
                    crate::plot::DEFAULT_SIZE,
                )
                .unwrap();
            }
        }
        let (emb, labels) = clusters(12, 834, 256, 3.0, 7);
        let batches: Vec<String> = (0..emb.nrows())
            .map(|i| format!("b{}", (i / 12) % 3))
            .collect();
        let t = Instant::now();
        let probe = linear_probe(emb.view(), &labels, 0).unwrap();
        println!(
            "{:?} linear_probe: {:.2}s {probe:?}",
            emb.dim(),
            t.elapsed().as_secs_f64()
        );
        let t = Instant::now();
        let q = embedding_quality(emb.view(), &labels, Some(&batches[..]), 0).unwrap();
        println!(
            "{:?} embedding_quality: {:.2}s {q:?}",
            emb.dim(),
            t.elapsed().as_secs_f64()
        );
        let t = Instant::now();
        let xy = crate::project_2d(emb.view()).unwrap();
        println!(
            "project_2d: {:.2}s ({} points)",
            t.elapsed().as_secs_f64(),
            xy.len()
        );
    }
}
