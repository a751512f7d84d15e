//! `forge assess --config F --model DIR --data FILE.h5ad`: a config's
//! `eval.benchmarks`, run as scModelForge's `benchmark` command runs them.
//!
//! The cells of `--data` are read as the config's `data` section says
//! (`use_raw`, `gene_key`, preprocessing; the `--use-raw`-style flags still
//! override it), embedded with the checkpoint in batches of
//! `eval.batch_size`, and every benchmark runs on them under the dataset
//! name `data`. One summary line per benchmark is printed; with `--out DIR`
//! the results are written to `DIR/benchmarks.json` as scModelForge writes
//! them (a list of `{benchmark_name, dataset_name, metrics, metadata}`).
//!
//! The model comes from the checkpoint folder (its own `config.json`); the
//! config's `model` section is not used.

use std::path::Path;
use std::process::ExitCode;

use anyhow::Context;
use forge_core::ForgeConfig;
use forge_core::checkpoint::load_pretrained;
use forge_core::runtime::RuntimeInfo;
use forge_train::embed::checkpoint_pipeline;
use forge_train::harness::Harness;

use super::Args;

pub fn run(args: &Args, config: &Path, cfg: &ForgeConfig) -> anyhow::Result<ExitCode> {
    let harness = Harness::from_config(&cfg.eval).map_err(|mut e| {
        e.source_name = config.display().to_string();
        e
    })?;
    let device = RuntimeInfo::default_device();
    let loaded = load_pretrained(&args.model, device)?;
    let data = args.genes.apply(cfg.data.clone());
    let pipeline = checkpoint_pipeline(
        &loaded,
        &args.model,
        &data,
        std::slice::from_ref(&args.data),
    )?;
    for cov in pipeline.coverage() {
        eprintln!("{cov}");
    }
    harness.check_data(&pipeline).map_err(|e| match e {
        forge_core::ForgeError::Config(mut errors) => {
            errors.source_name = config.display().to_string();
            anyhow::Error::new(errors)
        }
        other => other.into(),
    })?;
    println!(
        "Loaded {} cells from {}",
        pipeline.corpus().n_cells(),
        args.data.display()
    );
    let results = harness.run(loaded.model.as_ref(), &pipeline, "data", device)?;
    for r in &results {
        println!("{}", r.summary());
    }
    if let Some(out) = &args.out {
        std::fs::create_dir_all(out).with_context(|| format!("creating {}", out.display()))?;
        let list: Vec<_> = results.iter().map(|r| r.to_json()).collect();
        let path = out.join("benchmarks.json");
        forge_core::atomic::write_file(&path, &serde_json::to_vec_pretty(&list)?)?;
        println!("Results saved to {}", path.display());
    }
    Ok(ExitCode::SUCCESS)
}
