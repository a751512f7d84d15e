//! The pipelines through the `forge` binary, as a user runs them: synthetic
//! cells -> `train` -> `embed` -> `assess`, and the bad inputs each one must
//! refuse with an error that names the problem. Models are tiny so this
//! takes seconds.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::cli::forge;

/// Runs forge, failing the test with both streams unless it succeeded.
fn ok(args: &[&str]) -> String {
    let out = forge(args);
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "forge {args:?} failed\n{stdout}\n{stderr}"
    );
    stdout
}

/// Runs forge expecting failure; returns stderr.
fn refused(args: &[&str]) -> String {
    let out = forge(args);
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(
        !out.status.success(),
        "forge {args:?} should have failed:\n{}",
        String::from_utf8_lossy(&out.stdout)
    );
    assert!(!stderr.contains("panicked"), "{stderr}");
    stderr
}

fn scratch(name: &str) -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("pipelines-{name}"));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// Every file of folder `dir` with its bytes.
fn files_of(dir: &Path) -> Vec<(String, Vec<u8>)> {
    let mut files: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| {
            let path = e.unwrap().path();
            let name = path.file_name().unwrap().to_string_lossy().into_owned();
            (name, std::fs::read(&path).unwrap())
        })
        .collect();
    files.sort();
    files
}

fn tiny_config(data: &Path) -> String {
    format!(
        "data:
  paths: [{}]
  max_genes: 32
  num_workers: 1
tokenizer:
  strategy: rank_value
  max_genes: 32
model:
  architecture: transformer_encoder
  hidden_dim: 16
  num_layers: 1
  num_heads: 2
  ffn_dim: 32
  dropout: 0.0
  max_seq_len: 32
training:
  batch_size: 16
  max_epochs: 2
  seed: 1
  precision: 32-true
  optimizer: {{name: adamw, lr: 1.0e-3}}
  scheduler: {{name: cosine_warmup, warmup_steps: 2, total_steps: 20}}
  log_every_n_steps: 2
  val_split: 0.2
",
        data.display()
    )
}

#[test]
fn train_embed_assess_on_synthetic_cells() {
    let dir = scratch("e2e");
    let data = dir.join("cells.h5ad");
    ok(&[
        "synth",
        "--cells",
        "120",
        "--genes",
        "60",
        "--types",
        "3",
        "--out",
        s(&data),
    ]);
    let config = dir.join("tiny.yaml");
    std::fs::write(&config, tiny_config(&data)).unwrap();
    let run = dir.join("run");
    ok(&["train", "--config", s(&config), "--out", s(&run)]);
    let model = run.join("pretrained");
    for file in [
        "config.json",
        "model.safetensors",
        "gene_vocab.json",
        "README.md",
    ] {
        assert!(model.join(file).is_file(), "pretrained/{file} missing");
    }
    let metrics = std::fs::read_to_string(run.join("logs/metrics.csv")).unwrap();
    assert!(metrics.lines().count() > 1, "{metrics}");

    // A save that fails midway (files limited to 8 KiB, as on a full disk)
    // stops training with an error naming the file and leaves the previous
    // checkpoint as it was, with no partial folder behind.
    let last = run.join("checkpoints/last");
    let before = files_of(&last);
    std::fs::write(
        &config,
        tiny_config(&data).replace("max_epochs: 2", "max_epochs: 3"),
    )
    .unwrap();
    let limited = Command::new("bash")
        .arg("-c")
        .arg("trap '' XFSZ; ulimit -f 8; exec \"$@\"")
        .arg("forge")
        .arg(env!("CARGO_BIN_EXE_forge"))
        .args([
            "train",
            "--config",
            s(&config),
            "--out",
            s(&run),
            "--resume-from",
            s(&last),
        ])
        .env_remove("LD_LIBRARY_PATH")
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&limited.stderr);
    assert!(!limited.status.success(), "{err}");
    assert!(
        err.contains("model.safetensors") && err.contains("File too large"),
        "{err}"
    );
    assert_eq!(files_of(&last), before, "the previous checkpoint is intact");
    let names: Vec<String> = std::fs::read_dir(run.join("checkpoints"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert!(names.iter().all(|n| !n.starts_with('.')), "{names:?}");

    // Resuming a checkpoint of another architecture, or of a vocabulary
    // built from other data, lists what does not fit.
    let other_arch = dir.join("ar.yaml");
    let text = tiny_config(&data).replace("transformer_encoder", "autoregressive_transformer");
    std::fs::write(&other_arch, text).unwrap();
    let err = refused(&[
        "train",
        "--config",
        s(&other_arch),
        "--out",
        s(&dir.join("ar")),
        "--resume-from",
        s(&last),
    ]);
    assert!(
        err.contains("missing: expression_head") && err.contains("unexpected: head"),
        "{err}"
    );
    let other_data = dir.join("other.h5ad");
    ok(&[
        "synth",
        "--cells",
        "40",
        "--genes",
        "80",
        "--out",
        s(&other_data),
    ]);
    let other_vocab = dir.join("other.yaml");
    std::fs::write(&other_vocab, tiny_config(&other_data)).unwrap();
    let err = refused(&[
        "train",
        "--config",
        s(&other_vocab),
        "--out",
        s(&dir.join("ov")),
        "--resume-from",
        s(&last),
    ]);
    assert!(
        err.contains("embedding.gene_embedding.weight: model has shape [84, 16]"),
        "{err}"
    );

    let npy = dir.join("emb.npy");
    ok(&[
        "embed",
        "--model",
        s(&model),
        "--data",
        s(&data),
        "--out",
        s(&npy),
    ]);
    let bytes = std::fs::read(&npy).unwrap();
    assert!(bytes.starts_with(b"\x93NUMPY"));
    let header = String::from_utf8_lossy(&bytes[..128]);
    assert!(header.contains("(120, 16)"), "{header}");

    let report = dir.join("assess");
    let table = ok(&[
        "assess",
        "--model",
        s(&model),
        "--data",
        s(&data),
        "--label-key",
        "cell_type",
        "--batch-key",
        "batch",
        "--out",
        s(&report),
    ]);
    for needle in ["linear probe", "accuracy", "pca", "random"] {
        assert!(table.contains(needle), "lacks {needle}: {table}");
    }
    let json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(report.join("assess.json")).unwrap())
            .unwrap();
    assert!(json.to_string().contains("f1_macro"), "{json}");
    assert!(report.join("embedding.png").is_file());

    // Bad inputs, each named in the error.
    let err = refused(&[
        "assess",
        "--model",
        s(&model),
        "--data",
        s(&data),
        "--label-key",
        "celltype",
    ]);
    assert!(
        err.contains("celltype") && err.contains("cell_type"),
        "{err}"
    );
    let err = refused(&[
        "embed",
        "--model",
        s(&dir),
        "--data",
        s(&data),
        "--out",
        s(&npy),
    ]);
    assert!(err.contains("config.json"), "{err}");

    // Ensembl ids against a vocabulary of symbols: refused, saying what to
    // change; a threshold of 0 lets it through.
    let ens = dir.join("ens.h5ad");
    ok(&[
        "synth",
        "--cells",
        "40",
        "--genes",
        "60",
        "--ensembl",
        "--out",
        s(&ens),
    ]);
    let out = dir.join("ens.npy");
    let err = refused(&[
        "embed",
        "--model",
        s(&model),
        "--data",
        s(&ens),
        "--out",
        s(&out),
    ]);
    assert!(
        err.contains("ens.h5ad") && err.contains("data.gene_key") && err.contains("Ensembl"),
        "{err}"
    );
    assert!(!out.exists(), "no partial output");
    let err = refused(&[
        "embed",
        "--model",
        s(&model),
        "--data",
        s(&ens),
        "--out",
        s(&out),
        "--min-gene-coverage",
        "1.5",
    ]);
    assert!(err.contains("outside [0, 1]"), "{err}");
    ok(&[
        "embed",
        "--model",
        s(&model),
        "--data",
        s(&ens),
        "--out",
        s(&out),
        "--min-gene-coverage",
        "0",
    ]);
    assert!(out.is_file());

    // `forge inspect` names the identifier kind and, with a model, the
    // coverage; the var column it suggests fixes it.
    let err = refused(&["inspect", s(&ens), "--model", s(&model)]);
    assert!(err.contains("gene_symbol"), "{err}");
    let report = ok(&[
        "inspect",
        s(&ens),
        "--model",
        s(&model),
        "--gene-key",
        "gene_symbol",
    ]);
    assert!(report.contains("60 of 60"), "{report}");
    let report = ok(&["inspect", s(&ens)]);
    assert!(report.contains("Ensembl gene ids"), "{report}");
}

#[test]
fn train_refuses_bad_configs_naming_the_key() {
    let dir = scratch("bad-config");
    let data = dir.join("cells.h5ad");
    ok(&["synth", "--cells", "30", "--genes", "20", "--out", s(&data)]);
    let config = dir.join("bad.yaml");
    let text = tiny_config(&data)
        .replace("num_heads: 2", "num_heads: 3")
        .replace("strategy: rank_value", "strategy: rank_values");
    std::fs::write(&config, text).unwrap();
    let err = refused(&[
        "train",
        "--config",
        s(&config),
        "--out",
        s(&dir.join("run")),
    ]);
    for needle in [
        "bad.yaml",
        "model.num_heads",
        "tokenizer.strategy",
        "rank_value",
    ] {
        assert!(err.contains(needle), "lacks {needle}: {err}");
    }
    assert!(
        !dir.join("run").exists(),
        "nothing written for a bad config"
    );

    let missing = dir.join("missing.yaml");
    std::fs::write(&missing, tiny_config(&dir.join("nope.h5ad"))).unwrap();
    let err = refused(&[
        "train",
        "--config",
        s(&missing),
        "--out",
        s(&dir.join("run2")),
    ]);
    assert!(err.contains("nope.h5ad"), "{err}");
}

#[test]
fn a_run_too_short_to_log_still_saves_the_model() {
    let dir = scratch("short");
    let data = dir.join("cells.h5ad");
    ok(&["synth", "--cells", "40", "--genes", "30", "--out", s(&data)]);
    let config = dir.join("tiny.yaml");
    let text = tiny_config(&data).replace("log_every_n_steps: 2", "log_every_n_steps: 50");
    std::fs::write(&config, text).unwrap();
    let run = dir.join("run");
    let out = ok(&[
        "train",
        "--config",
        s(&config),
        "--out",
        s(&run),
        "--max-steps",
        "1",
    ]);
    assert!(out.contains("no loss was logged"), "{out}");
    assert!(run.join("pretrained/model.safetensors").is_file());
    assert!(!run.join("logs/loss_curve.png").exists());
}

/// Reads a float32 `.npy` written by `forge embed`.
fn read_npy(path: &Path) -> Vec<f32> {
    let bytes = std::fs::read(path).unwrap();
    let header = u16::from_le_bytes([bytes[8], bytes[9]]) as usize;
    bytes[10 + header..]
        .chunks_exact(4)
        .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
        .collect()
}

#[test]
fn bf16_mixed_trains_and_embeds_in_bf16_unless_told_fp32() {
    let dir = scratch("bf16");
    let data = dir.join("cells.h5ad");
    ok(&["synth", "--cells", "60", "--genes", "50", "--out", s(&data)]);
    let config = dir.join("bf16.yaml");
    let text = tiny_config(&data)
        .replace("precision: 32-true", "precision: bf16-mixed")
        .replace("max_epochs: 2", "max_epochs: 1");
    std::fs::write(&config, text).unwrap();
    let run = dir.join("run");
    ok(&["train", "--config", s(&config), "--out", s(&run)]);
    let model = run.join("pretrained");
    let embed = |out: &Path, extra: &[&str]| {
        let mut args = vec![
            "embed",
            "--model",
            s(&model),
            "--data",
            s(&data),
            "--out",
            s(out),
        ];
        args.extend_from_slice(extra);
        let out = forge(&args);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stderr).into_owned()
    };
    let (bf16, fp32) = (dir.join("bf16.npy"), dir.join("fp32.npy"));
    let note = embed(&bf16, &[]);
    assert!(note.contains("running in bf16-mixed"), "{note}");
    let note = embed(&fp32, &["--fp32"]);
    assert!(!note.contains("running in"), "{note}");
    let (a, b) = (read_npy(&bf16), read_npy(&fp32));
    assert_eq!(a.len(), 60 * 16);
    let scale = b.iter().fold(0f32, |m, v| m.max(v.abs()));
    let diff = a
        .iter()
        .zip(&b)
        .fold(0f32, |m, (x, y)| m.max((x - y).abs()));
    assert!(diff > 0.0 && diff < 0.05 * scale, "{diff} of {scale}");

    // Weights in a 16-bit type are refused, naming the key.
    let true16 = dir.join("true16.yaml");
    std::fs::write(
        &true16,
        tiny_config(&data).replace("precision: 32-true", "precision: bf16-true"),
    )
    .unwrap();
    let err = refused(&["train", "--config", s(&true16), "--out", s(&dir.join("t"))]);
    assert!(
        err.contains("training.precision") && err.contains("bf16-mixed"),
        "{err}"
    );
}
