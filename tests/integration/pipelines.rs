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

/// scModelForge's shipped example and recipe configs
/// (`tests/fixtures/scmodelforge/`, same keys and values, with the data path
/// and sizes changed) train on the embedded PBMC data: the example pretrains
/// for 2 steps once its 4-GPU request is refused and lowered to 1; each
/// recipe fine-tunes the result for one epoch.
#[test]
fn scmodelforge_configs_train_on_pbmc() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let data = root.join("data/pbmc68k_reduced.h5ad");
    assert!(
        data.is_file(),
        "run scripts/setup.sh to fetch {}",
        data.display()
    );
    let dir = scratch("scmodelforge");
    let fixture = |name: &str, edit: &dyn Fn(String) -> String| {
        let text = std::fs::read_to_string(root.join("tests/fixtures/scmodelforge").join(name))
            .unwrap()
            .replace("@DATA@", s(&data));
        let path = dir.join(name);
        std::fs::write(&path, edit(text)).unwrap();
        path
    };
    let example = fixture("geneformer_basic.yaml", &|t| t);
    let run = dir.join("run");
    let err = refused(&[
        "train",
        "--config",
        s(&example),
        "--out",
        s(&run),
        "--max-steps",
        "2",
    ]);
    // num_gpus: 4 starts 4 ranks, one per GPU; this machine has fewer and
    // no --accelerator cpu was given.
    assert!(
        err.contains("training.num_gpus is 4, but this machine has")
            && err.contains("--accelerator cpu"),
        "{err}"
    );
    assert!(!run.exists(), "nothing written for a refused config");
    let example = fixture("geneformer_basic.yaml", &|t| {
        t.replace("num_gpus: 4", "num_gpus: 1")
    });
    let out = forge(&[
        "train",
        "--config",
        s(&example),
        "--out",
        s(&run),
        "--max-steps",
        "2",
    ]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(String::from_utf8_lossy(&out.stdout).contains("2 steps"));
    // gene_vocab: human_protein_coding is a name: the vocabulary is built
    // from the data, as scModelForge does.
    assert!(stderr.contains("vocabulary 765 genes"), "{stderr}");
    assert!(
        !stderr.contains("training.scheduler.total_steps"),
        "2 steps are below total_steps: {stderr}"
    );
    let ckpt = run.join("pretrained");
    for recipe in [
        "cell_type_annotation.yaml",
        "batch_integration.yaml",
        "perturbation_prediction.yaml",
    ] {
        let config = fixture(recipe, &|t| t);
        let out_dir = dir.join(recipe.trim_end_matches(".yaml"));
        let out = forge(&[
            "finetune",
            "--config",
            s(&config),
            "--checkpoint",
            s(&ckpt),
            "--out",
            s(&out_dir),
        ]);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "{recipe}: {stderr}");
        assert!(out_dir.join("head.safetensors").is_file(), "{recipe}");
        if recipe.starts_with("perturbation") {
            // data.perturbation is set, and not used by training.
            assert!(
                stderr.contains("warning: ") && stderr.contains("data.perturbation"),
                "{stderr}"
            );
        }
    }
    // Without use_raw, PBMC's scaled X (negatives included) would be
    // library-size normalised: refused, naming the keys that fix it.
    let scaled = fixture("geneformer_basic.yaml", &|t| {
        t.replace("num_gpus: 4", "num_gpus: 1")
            .replace("  use_raw: true\n", "")
    });
    let err = refused(&[
        "train",
        "--config",
        s(&scaled),
        "--out",
        s(&dir.join("scaled")),
        "--max-steps",
        "2",
    ]);
    for needle in [
        "data.preprocessing.normalize",
        "negative values",
        "data.use_raw: true",
    ] {
        assert!(err.contains(needle), "lacks {needle}: {err}");
    }
}

/// Each key the issue found silently ignored now gets a refusal naming it
/// or a one-line warning, from `forge config` (which reports every problem
/// of a file at once, so a few files cover them all).
#[test]
fn ignored_keys_are_refused_or_warned() {
    let dir = scratch("ignored-keys");
    let check = |name: &str, yaml: &str| {
        let path = dir.join(format!("{name}.yaml"));
        std::fs::write(&path, yaml).unwrap();
        let out = forge(&["config", s(&path)]);
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    let refused_all = "\
data:
  source: cellxgene_census
  paths: [s3://bucket/cells.h5ad, gs://bucket/more.h5ad]
  census:
    organism: Mus musculus
    organsm: x
  cloud:
    cache_dir: /tmp/c
  gene_selection:
    strategy: most_expressed
    n_gene: 5
training:
  strategy: ddp
  num_gpus: 4
  logger: mlflow
  resume_from: epoch=3.ckpt
  sampling:
    stratgy: weighted
    strategy: balanced
  fsdp:
    cpu_ofload: true
finetune:
  checkpoint_path: model.ckpt
zoo:
  timout: 1
";
    let (ok, stdout, stderr) = check("refused", refused_all);
    assert!(!ok && stdout.is_empty(), "{stdout}{stderr}");
    for needle in [
        "data.source: \"cellxgene_census\" needs the CELLxGENE Census service",
        "write_h5ad",
        "data.census: CELLxGENE Census settings (organism) are refused",
        "data.census.organsm: unknown key; did you mean \"organism\"?",
        "data.paths[0]: \"s3://bucket/cells.h5ad\" is cloud storage (s3://)",
        "aws s3 cp",
        "data.paths[1]: \"gs://bucket/more.h5ad\" is cloud storage (gs://)",
        "data.cloud: cloud storage settings (cache_dir) are refused",
        "data.gene_selection.n_gene: unknown key; did you mean \"n_genes\"?",
        "data.gene_selection.n_genes: must be set when gene_selection.strategy is most_expressed",
        "training.fsdp.sharding_strategy: \"FULL_SHARD\" is not supported",
        "training.logger: invalid value \"mlflow\"",
        "training.resume_from: \"epoch=3.ckpt\" is a PyTorch Lightning checkpoint",
        "scmodelforge export",
        "training.sampling.stratgy: unknown key; did you mean \"strategy\"?",
        "training.sampling.strategy: invalid value \"balanced\"",
        "accepted values: random, weighted",
        "training.fsdp.cpu_ofload: unknown key; did you mean \"cpu_offload\"?",
        "finetune.checkpoint_path: \"model.ckpt\"",
        "zoo.timout: unknown key; did you mean \"timeout\"?",
    ] {
        assert!(stderr.contains(needle), "lacks {needle:?}:\n{stderr}");
    }
    let (ok, _, stderr) = check("ddp", "training:\n  strategy: ddp\n  num_gpus: 2\n");
    assert!(ok && stderr.is_empty(), "{stderr}");
    let (ok, _, stderr) = check("deepspeed", "training:\n  strategy: deepspeed\n");
    assert!(
        !ok && stderr.contains("training.strategy: \"deepspeed\" is not a strategy forge runs"),
        "{stderr}"
    );
    let (ok, _, stderr) = check("interp", "model:\n  hidden_dim: ${tokenizer.max_gene}\n");
    assert!(
        !ok && stderr.contains("did you mean \"tokenizer.max_genes\"? (line 2)"),
        "{stderr}"
    );
    let (ok, _, stderr) = check("yaml", "model:\n  hidden_dim: [1\n  pooling: cls\n");
    assert!(
        !ok && stderr.contains("the `[` at line 2, column 15 is not closed"),
        "{stderr}"
    );

    let warned_all = "\
data:
  num_workers: 9
  gene_vocab: mouse_genes
  shards:
    enabled: true
  multi_species:
    enabled: true
  perturbation:
    enabled: true
training:
  fsdp:
    cpu_offload: true
zoo:
  timeout: 5
";
    let (ok, stdout, stderr) = check("warned", warned_all);
    assert!(ok, "{stderr}");
    assert!(
        stdout.contains("shard_size: 500000"),
        "the config is printed: {stdout}"
    );
    let lines: Vec<_> = stderr.lines().collect();
    assert_eq!(lines.len(), 7, "{stderr}");
    for (line, needle) in lines.iter().zip([
        "data.shards: set (enabled) but not used",
        "data.multi_species: set (enabled) but not used",
        "data.perturbation: set (enabled) but not used",
        "zoo: set (timeout) but not used",
        "data.num_workers: not used",
        "data.gene_vocab: \"mouse_genes\" is a vocabulary name",
        "training.fsdp: set but not used",
    ]) {
        assert!(
            line.starts_with("warning: ") && line.contains(needle),
            "{needle}: {line}"
        );
    }

    // Interpolation, resolved as OmegaConf does, in `forge config`'s output.
    let (ok, out, stderr) = check(
        "interp_ok",
        "tokenizer:\n  max_genes: 64\nmodel:\n  max_seq_len: ${tokenizer.max_genes}\ntraining:\n  \
         run_name: run_${model.max_seq_len}_${oc.env:FORGE_TEST_UNSET_VAR,x}\n",
    );
    assert!(ok, "{stderr}");
    assert!(out.contains("max_seq_len: 64\n"), "{out}");
    assert!(out.contains("run_name: run_64_x\n"), "{out}");
}

/// A `.ckpt` given to `--resume-from` or `--checkpoint` is refused before
/// anything is read, and a missing vocabulary file is named once.
#[test]
fn lightning_checkpoints_and_missing_vocabularies_are_named() {
    let dir = scratch("ckpt-flags");
    let data = dir.join("cells.h5ad");
    ok(&["synth", "--cells", "30", "--genes", "20", "--out", s(&data)]);
    let config = dir.join("tiny.yaml");
    std::fs::write(&config, tiny_config(&data)).unwrap();
    let err = refused(&[
        "train",
        "--config",
        s(&config),
        "--out",
        s(&dir.join("run")),
        "--resume-from",
        "last.ckpt",
    ]);
    assert!(
        err.contains("--resume-from: \"last.ckpt\" is a PyTorch Lightning checkpoint"),
        "{err}"
    );
    assert!(err.contains("scmodelforge export"), "{err}");
    let err = refused(&[
        "finetune",
        "--config",
        s(&config),
        "--checkpoint",
        "model.ckpt",
        "--out",
        s(&dir.join("ft")),
    ]);
    assert!(err.contains("--checkpoint: \"model.ckpt\""), "{err}");
    let vocab = dir.join("vocab.yaml");
    let text = tiny_config(&data).replace(
        "  max_genes: 32\n  num_workers: 1\n",
        &format!(
            "  max_genes: 32\n  gene_vocab: {}\n",
            dir.join("missing.json").display()
        ),
    );
    std::fs::write(&vocab, text).unwrap();
    let err = refused(&[
        "train",
        "--config",
        s(&vocab),
        "--out",
        s(&dir.join("run2")),
    ]);
    assert!(err.contains("missing.json: cannot read the file"), "{err}");
    assert_eq!(
        err.matches("os error 2").count(),
        1,
        "the cause is printed once: {err}"
    );
    // A schedule that ends before the run does is named.
    let short = dir.join("short.yaml");
    std::fs::write(
        &short,
        tiny_config(&data).replace("total_steps: 20", "total_steps: 2"),
    )
    .unwrap();
    let out = forge(&[
        "train",
        "--config",
        s(&short),
        "--out",
        s(&dir.join("run3")),
    ]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(
        stderr.contains("warning: ")
            && stderr.contains("training.scheduler.total_steps (2) is below the 4 optimizer steps"),
        "{stderr}"
    );
}

/// `geneformer` through forge's own commands: train (masked-gene
/// pretraining), embed, assess and finetune; then the trained model
/// written in Hugging Face's BERT layout embeds the same through
/// `forge embed --model <that folder>`.
#[test]
fn geneformer_trains_embeds_assesses_finetunes_and_reads_its_hf_layout() {
    let dir = scratch("geneformer");
    let data = dir.join("cells.h5ad");
    // 24 genes: no cell is truncated, whatever the tokenizer's max_genes.
    ok(&[
        "synth",
        "--cells",
        "80",
        "--genes",
        "24",
        "--types",
        "3",
        "--out",
        s(&data),
    ]);
    let config = dir.join("geneformer.yaml");
    let text = tiny_config(&data)
        .replace("transformer_encoder", "geneformer")
        .replace("max_epochs: 2", "max_epochs: 1")
        .replace(
            "  max_seq_len: 32\n",
            "  max_seq_len: 32\n  activation: relu\n  use_expression_values: false\n  \
             pooling: mean\n  cls_token_id: 3\n",
        );
    std::fs::write(&config, text).unwrap();
    let run = dir.join("run");
    ok(&["train", "--config", s(&config), "--out", s(&run)]);
    let model = run.join("pretrained");
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
    assert_eq!(read_npy(&npy).len(), 80 * 16);
    let report = dir.join("assess");
    let table = ok(&[
        "assess",
        "--model",
        s(&model),
        "--data",
        s(&data),
        "--label-key",
        "cell_type",
        "--out",
        s(&report),
    ]);
    assert!(table.contains("linear probe"), "{table}");
    let ft_config = dir.join("ft.yaml");
    std::fs::write(
        &ft_config,
        format!(
            "data:\n  paths: [{}]\n  num_workers: 1\ntraining:\n  batch_size: 16\n  \
             max_epochs: 1\n  precision: 32-true\n  scheduler: null\n  val_split: 0.2\n\
             finetune:\n  label_key: cell_type\n",
            data.display()
        ),
    )
    .unwrap();
    let ft = dir.join("ft");
    ok(&[
        "finetune",
        "--config",
        s(&ft_config),
        "--checkpoint",
        s(&model),
        "--out",
        s(&ft),
    ]);
    assert!(ft.join("pretrained/model.safetensors").is_file());

    // The same model in Hugging Face's layout (config.json with BertConfig
    // keys, model.safetensors with bert.* / cls.* names), with forge's
    // gene vocabulary beside it, embeds the cells the same.
    let loaded =
        forge_core::checkpoint::load_pretrained(&model, forge_core::tch::Device::Cpu).unwrap();
    let hf = dir.join("hf");
    forge_core::checkpoint::hf::save_hf_pretrained(&*loaded.model, &loaded.config, &hf, false)
        .unwrap();
    std::fs::copy(model.join("gene_vocab.json"), hf.join("gene_vocab.json")).unwrap();
    let config_json = std::fs::read_to_string(hf.join("config.json")).unwrap();
    assert!(config_json.contains("\"BertForMaskedLM\""), "{config_json}");
    let hf_npy = dir.join("emb_hf.npy");
    ok(&[
        "embed",
        "--model",
        s(&hf),
        "--data",
        s(&data),
        "--config",
        s(&config),
        "--out",
        s(&hf_npy),
    ]);
    let (a, b) = (read_npy(&npy), read_npy(&hf_npy));
    let d = a
        .iter()
        .zip(&b)
        .map(|(x, y)| (x - y).abs())
        .fold(0f32, f32::max);
    assert!(d < 1e-5, "HF layout embeds differently: {d}");
}

/// `tokenizer.strategy: geneformer` end to end: `forge train` on raw
/// counts with Geneformer's dictionaries (pickles of NumPy scalars, as
/// Geneformer ships them), then `forge embed`, `forge finetune` and
/// `forge assess` on the checkpoint, which tokenize the cells again from the
/// dictionaries its tokenizer config names. The architecture is forge's
/// transformer_encoder (the model of Geneformer itself is tested with its
/// own files).
#[test]
fn geneformer_tokenizer_train_embed_finetune_assess() {
    let dir = scratch("geneformer_tokenizer");
    let fixtures = Path::new(env!("CARGO_MANIFEST_DIR")).join("forge-core/tests/fixtures/data");
    let f = |name: &str| fixtures.join(name).display().to_string();
    let data = f("geneformer_pipeline.h5ad");
    let config = dir.join("gf.yaml");
    let text = format!(
        "data:
  paths: [{data}]
  gene_key: ensembl_id
  num_workers: 1
  preprocessing: {{normalize: null, log1p: false}}
tokenizer:
  strategy: geneformer
  geneformer_version: v2
  model_input_size: 12
  token_dictionary: {}
  gene_median_dictionary: {}
model:
  architecture: transformer_encoder
  hidden_dim: 16
  num_layers: 1
  num_heads: 2
  ffn_dim: 32
  dropout: 0.0
  max_seq_len: 12
  pooling: mean
training:
  batch_size: 4
  max_epochs: 2
  seed: 1
  precision: 32-true
  optimizer: {{name: adamw, lr: 1.0e-3}}
  scheduler: null
  log_every_n_steps: 1
  val_split: 0.25
",
        f("geneformer_pipeline_tokens_v2.pkl"),
        f("geneformer_pipeline_medians.pkl"),
    );
    std::fs::write(&config, &text).unwrap();
    let run = dir.join("run");
    ok(&["train", "--config", s(&config), "--out", s(&run)]);
    let model = run.join("pretrained");
    let saved: serde_json::Value =
        serde_json::from_slice(&std::fs::read(model.join("config.json")).unwrap()).unwrap();
    // The model's vocabulary is the token dictionary's (largest id + 1, as
    // the fixture script records), and the tokenizer settings travel with it.
    let expected: serde_json::Value =
        serde_json::from_slice(&std::fs::read(f("geneformer_pipeline.json")).unwrap()).unwrap();
    assert_eq!(
        saved["model_config"]["vocab_size"], expected["v2"]["vocab_size"],
        "{saved}"
    );
    assert_eq!(saved["tokenizer_config"]["strategy"], "geneformer");
    assert_eq!(saved["tokenizer_config"]["geneformer_version"], "v2");

    let npy = dir.join("emb.npy");
    ok(&[
        "embed",
        "--model",
        s(&model),
        "--data",
        &data,
        "--out",
        s(&npy),
    ]);
    let bytes = std::fs::read(&npy).unwrap();
    let header = String::from_utf8_lossy(&bytes[..128]);
    assert!(header.contains("(12, 16)"), "{header}");

    let ft = dir.join("ft.yaml");
    std::fs::write(
        &ft,
        format!(
            "data:\n  paths: [{data}]\n  gene_key: ensembl_id\n  num_workers: 1\ntraining:\n  \
             batch_size: 4\n  max_epochs: 1\n  precision: 32-true\n  scheduler: null\n  \
             val_split: 0.25\nfinetune:\n  label_key: cell_type\n"
        ),
    )
    .unwrap();
    let ft_out = dir.join("ft");
    ok(&[
        "finetune",
        "--config",
        s(&ft),
        "--checkpoint",
        s(&model),
        "--out",
        s(&ft_out),
    ]);
    assert!(ft_out.join("head.safetensors").is_file());

    let report = dir.join("report");
    ok(&[
        "assess",
        "--model",
        s(&model),
        "--data",
        &data,
        "--label-key",
        "cell_type",
        "--out",
        s(&report),
    ]);

    // A scaled X is refused with what to do.
    let scaled = Path::new(env!("CARGO_MANIFEST_DIR")).join("data/pbmc68k_reduced.h5ad");
    if scaled.is_file() {
        let bad = dir.join("bad.yaml");
        std::fs::write(
            &bad,
            text.replace(&data, s(&scaled))
                .replace("  gene_key: ensembl_id\n", ""),
        )
        .unwrap();
        let err = refused(&["train", "--config", s(&bad), "--out", s(&dir.join("bad"))]);
        assert!(
            err.contains("raw counts") && err.contains("data.use_raw"),
            "{err}"
        );
    }
}
