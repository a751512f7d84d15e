//! `forge assess --model DIR --data FILE.h5ad --label-key KEY`: how good are
//! a checkpoint's cell embeddings?
//!
//! Embeds the cells and reports linear_probe (accuracy, f1_macro,
//! f1_weighted) and embedding_quality (NMI, ARI, cell-type ASW, batch ASW
//! with `--batch-key`, graph connectivity, overall) beside baselines on the
//! same cells: `random` (the same architecture with fresh random weights)
//! and `pca` (50 principal components of the preprocessed expression).
//! Prints a table; with `--out DIR` also writes `assess.json` and a 2-D
//! scatter of the embedding coloured by label (`embedding.png`).

use std::path::PathBuf;
use std::process::ExitCode;

mod benchmark;

use super::gene_args::GeneArgs;
use super::precision_args::PrecisionArgs;
use anyhow::Context;
use forge_assess::{AssessReport, assess_embedding, ndarray::ArrayView2, pca, project_2d};
use forge_core::runtime::RuntimeInfo;
use forge_core::tch::nn::VarStore;
use forge_data::H5ad;
use forge_train::embed::{CellEmbeddings, embed_cells, expression_matrix};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Checkpoint folder (save_pretrained layout).
    #[arg(long)]
    pub model: PathBuf,
    /// The cells to assess (.h5ad).
    #[arg(long)]
    pub data: PathBuf,
    /// obs column with cell types (not needed with a --config that sets
    /// eval.benchmarks).
    #[arg(long)]
    pub label_key: Option<String>,
    /// obs column with batches (adds batch ASW and the batch score).
    #[arg(long)]
    pub batch_key: Option<String>,
    /// Baselines to add, comma-separated: random, pca.
    #[arg(long, value_delimiter = ',', default_value = "random,pca")]
    pub baselines: Vec<String>,
    /// Folder for assess.json and embedding.png.
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Seed of splits, clusterings and the random baseline.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    #[command(flatten)]
    pub genes: GeneArgs,
    #[command(flatten)]
    pub precision: PrecisionArgs,
}

fn obs_labels(h5: &H5ad, key: &str) -> anyhow::Result<Vec<String>> {
    let column = h5.obs_column(key)?;
    Ok((0..column.len())
        .map(|i| column.label(i).unwrap_or("NA").to_string())
        .collect())
}

pub fn run(args: &Args) -> anyhow::Result<ExitCode> {
    // --config (shared with embed, see gene_args): its `data` section says
    // how cells are read; when it sets `eval.benchmarks`, those are run
    // instead of the default report, as scModelForge's `benchmark` command
    // does, and written to --out/benchmarks.json.
    if let Some(path) = &args.genes.config {
        let cfg = match forge_core::ForgeConfig::load(path) {
            Ok(cfg) => cfg,
            Err(errors) => {
                eprintln!("{errors}");
                return Ok(ExitCode::FAILURE);
            }
        };
        if !cfg.eval.benchmarks.is_empty() {
            return benchmark::run(args, path, &cfg);
        }
    }
    let Some(label_key) = args.label_key.as_deref() else {
        anyhow::bail!(
            "--label-key is required (the obs column with cell types), unless --config names a \
             config whose eval.benchmarks say what to run"
        );
    };
    for b in &args.baselines {
        if !["random", "pca"].contains(&b.as_str()) {
            anyhow::bail!("unknown baseline `{b}`; accepted: random, pca");
        }
    }
    let h5 = H5ad::open(&args.data)?;
    let labels = obs_labels(&h5, label_key)?;
    let batches = args
        .batch_key
        .as_ref()
        .map(|k| obs_labels(&h5, k))
        .transpose()?;
    let device = RuntimeInfo::default_device();
    let (loaded, pipeline) = args
        .genes
        .open_checkpoint(&args.model, &args.data, device)?;
    let mut named: Vec<(String, CellEmbeddings)> = Vec::new();
    eprintln!(
        "embedding {} cells with {}",
        labels.len(),
        loaded.model.registry_name()
    );
    let precision = args.precision.resolve(&args.model, device)?;
    let in_precision = |model: &dyn forge_core::ForgeModel| {
        forge_core::precision::with_precision(precision, device, || {
            embed_cells(model, &pipeline, 64, device)
        })
    };
    named.push((
        loaded.model.registry_name().to_string(),
        in_precision(loaded.model.as_ref())?,
    ));
    if args.baselines.iter().any(|b| b == "random") {
        forge_core::tch::manual_seed(args.seed as i64);
        let vs = VarStore::new(device);
        let random = forge_core::registry::build(&vs.root(), &loaded.config)?;
        named.push(("random".into(), in_precision(random.as_ref())?));
    }
    if args.baselines.iter().any(|b| b == "pca") {
        let expr = expression_matrix(pipeline.corpus())?;
        let view = ArrayView2::from_shape((expr.n_cells, expr.dim), &expr.values)?;
        let fitted = pca(view, 50.min(expr.dim).min(expr.n_cells), args.seed)?;
        let emb = fitted.embedding.as_standard_layout().to_owned();
        let (n, d) = emb.dim();
        named.push((
            "pca".into(),
            CellEmbeddings {
                values: emb.into_raw_vec_and_offset().0,
                n_cells: n,
                dim: d,
            },
        ));
    }
    let mut report = AssessReport::new();
    for (name, emb) in &named {
        let view = ArrayView2::from_shape((emb.n_cells, emb.dim), &emb.values)?;
        report.push(
            name.clone(),
            assess_embedding(view, &labels, batches.as_deref(), args.seed)?,
        );
    }
    println!("{report}");
    if let Some(out) = &args.out {
        std::fs::create_dir_all(out).with_context(|| format!("creating {}", out.display()))?;
        let json = serde_json::to_vec_pretty(&report.to_json())?;
        forge_core::atomic::write_file(&out.join("assess.json"), &json)?;
        let (_, emb) = &named[0];
        let view = ArrayView2::from_shape((emb.n_cells, emb.dim), &emb.values)?;
        let xy = project_2d(view)?;
        let png = out.join("embedding.png");
        forge_assess::plot::scatter_png(
            &png,
            &xy,
            &labels,
            &format!("{} embedding by {label_key}", named[0].0),
            ("PC 1", "PC 2"),
            (900, 700),
        )?;
        println!(
            "wrote {} and {}",
            out.join("assess.json").display(),
            png.display()
        );
    }
    Ok(ExitCode::SUCCESS)
}
