//! The `forge` binary, run as a user would.

use std::path::Path;
use std::process::{Command, Output};

/// Runs the `forge` binary with `args`, without `LD_LIBRARY_PATH`.
pub fn forge(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_forge"))
        .args(args)
        .env_remove("LD_LIBRARY_PATH")
        .output()
        .expect("forge runs")
}

/// Variables that tell forge a launcher started it.
const LAUNCH_VARS: &[&str] = &[
    "TORCHELASTIC_RUN_ID",
    "RANK",
    "WORLD_SIZE",
    "LOCAL_RANK",
    "LOCAL_WORLD_SIZE",
    "GROUP_RANK",
    "NODE_RANK",
    "MASTER_ADDR",
    "MASTER_PORT",
    "SLURM_NTASKS",
    "SLURM_PROCID",
    "SLURM_LOCALID",
    "SLURM_NODEID",
    "SLURM_NTASKS_PER_NODE",
    "SLURM_JOB_NAME",
    "SLURM_JOB_ID",
    "SLURM_NODELIST",
    "SLURM_JOB_NODELIST",
];

/// `forge doctor` with no launcher variables but `vars`.
fn doctor_with(vars: &[(&str, &str)]) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_forge"));
    cmd.arg("doctor").env_remove("LD_LIBRARY_PATH");
    for v in LAUNCH_VARS {
        cmd.env_remove(v);
    }
    cmd.envs(vars.iter().copied()).output().expect("forge runs")
}

fn text(out: &Output) -> (String, String) {
    (
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn repo(path: &str) -> String {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join(path)
        .display()
        .to_string()
}

#[test]
fn doctor_reports_the_setup_without_ld_library_path() {
    let out = doctor_with(&[]);
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "{stdout}{stderr}");
    assert!(stdout.contains("torch        2.13.0"), "{stdout}");
    assert!(stdout.contains("libtorch_cuda linked"), "{stdout}");
    assert!(stdout.contains("status       ok"), "{stdout}");
    // Process-group backends, the launcher, threads.
    assert!(
        stdout.contains("\nc10d gloo    built (CPU tensors"),
        "{stdout}"
    );
    assert!(stdout.contains("\nc10d nccl    not built: "), "{stdout}");
    assert!(
        stdout.contains("\nlauncher     single process (no torchrun, Slurm"),
        "{stdout}"
    );
    assert!(stdout.contains("\nthreads      "), "{stdout}");
    // GPUs as the driver lists them, or a line saying there are none.
    let driver = Path::new("/proc/driver/nvidia/gpus");
    let listed = std::fs::read_dir(driver).map_or(0, |d| d.count());
    let gpu_lines = stdout.lines().filter(|l| l.starts_with("gpu  ")).count();
    assert_eq!(gpu_lines, listed, "{stdout}");
    assert_eq!(
        stdout.contains("\ngpus         none reported"),
        listed == 0,
        "{stdout}"
    );
    // Whether the CPU has bfloat16 matrix units, read here independently.
    let flags = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let flags = flags
        .lines()
        .find(|l| l.starts_with("flags"))
        .unwrap_or_default();
    let line = stdout
        .lines()
        .find(|l| l.starts_with("bf16 on cpu"))
        .unwrap_or_else(|| panic!("no bf16 line: {stdout}"));
    if cfg!(all(target_os = "linux", target_arch = "x86_64")) {
        let units = flags
            .split_whitespace()
            .any(|f| f == "amx_bf16" || f == "avx512_bf16");
        assert_eq!(line.contains("yes:"), units, "{line} ({flags})");
        assert_eq!(line.contains("gains nothing"), !units, "{line}");
    }
}

#[test]
fn doctor_reports_the_launcher_and_names_a_bad_variable() {
    let out = doctor_with(&[
        ("TORCHELASTIC_RUN_ID", "job1"),
        ("RANK", "1"),
        ("WORLD_SIZE", "2"),
        ("LOCAL_RANK", "1"),
        ("LOCAL_WORLD_SIZE", "2"),
        ("MASTER_ADDR", "127.0.0.1"),
        ("MASTER_PORT", "29500"),
    ]);
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "{stdout}{stderr}");
    assert!(
        stdout.contains(
            "\nlauncher     torchrun: rank 1 of 2, local rank 1 of 2, node 0, master 127.0.0.1:29500\n"
        ),
        "{stdout}"
    );
    let out = doctor_with(&[
        ("SLURM_NTASKS", "4"),
        ("SLURM_PROCID", "0"),
        ("SLURM_LOCALID", "0"),
        ("SLURM_NODELIST", "gpu[007-008]"),
        ("SLURM_JOB_ID", "991234"),
        ("MASTER_ADDR", "other"),
    ]);
    let (stdout, _) = text(&out);
    assert!(out.status.success(), "{stdout}");
    assert!(
        stdout
            .contains("launcher     slurm: rank 0 of 4, local rank 0, node 0, master gpu007:16234"),
        "{stdout}"
    );
    assert!(
        stdout.contains("launcher     warning: MASTER_ADDR=\"other\" is ignored under Slurm"),
        "{stdout}"
    );
    let out = doctor_with(&[("RANK", "2"), ("WORLD_SIZE", "2")]);
    let (stdout, _) = text(&out);
    assert_eq!(out.status.code(), Some(1), "{stdout}");
    assert!(
        stdout.contains(
            "problem      launcher environment: RANK=\"2\" is not below WORLD_SIZE=\"2\""
        ),
        "{stdout}"
    );
}

#[test]
fn models_lists_what_the_binary_links() {
    let out = forge(&["models"]);
    let (stdout, _) = text(&out);
    assert!(out.status.success());
    assert_eq!(
        stdout.lines().collect::<Vec<_>>(),
        [
            "autoregressive_transformer",
            "geneformer",
            "masked_autoencoder",
            "transformer_encoder"
        ],
        "the binary links forge-core's models and not the test-only plugin"
    );
}

#[test]
fn config_prints_the_resolved_file() {
    let out = forge(&["config", &repo("configs/transformer_encoder_pbmc.yaml")]);
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "{stderr}");
    // Defaults the file leaves out are filled in.
    assert!(stdout.contains("n_bins: 51"), "{stdout}");
    assert!(stdout.contains("hidden_dim: 128"), "{stdout}");
    // The printed config loads again to the same values.
    let again = forge_core::ForgeConfig::from_yaml_str(&stdout, "printed").unwrap();
    let file =
        forge_core::ForgeConfig::load(Path::new(&repo("configs/transformer_encoder_pbmc.yaml")))
            .unwrap();
    assert_eq!(again, file);
}

#[test]
fn config_lists_every_problem_and_fails() {
    let dir = std::env::temp_dir().join(format!("forge-cli-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let bad = dir.join("bad.yaml");
    std::fs::write(
        &bad,
        "model:\n  hiden_dim: 64\n  pooling: mena\n  num_heads: 5\n  dropout: 1.5\ntraining:\n  optimizer:\n    lrr: 0.1\n",
    )
    .unwrap();
    let out = forge(&["config", bad.to_str().unwrap()]);
    let (stdout, stderr) = text(&out);
    assert!(!out.status.success());
    assert!(stdout.is_empty(), "nothing is printed on error: {stdout}");
    for needle in [
        "model.hiden_dim",
        "hidden_dim",
        "model.pooling",
        "mean",
        "model.dropout",
        "training.optimizer.lrr",
    ] {
        assert!(stderr.contains(needle), "missing {needle:?} in:\n{stderr}");
    }
    assert!(stderr.contains("bad.yaml"), "{stderr}");
    let missing = forge(&["config", dir.join("nope.yaml").to_str().unwrap()]);
    let (_, stderr) = text(&missing);
    assert!(
        !missing.status.success() && stderr.contains("nope.yaml"),
        "{stderr}"
    );
    std::fs::remove_dir_all(&dir).ok();
}

/// `forge finetune` on a tiny random checkpoint and synthetic cells: trains,
/// reports per epoch, writes a folder whose backbone `forge embed` reads,
/// and refuses to overwrite it or to use a label column the file lacks.
#[test]
fn finetune_trains_a_head_and_writes_a_loadable_model() {
    use forge_core::config::{ModelConfig, Pooling, TokenizerConfig};
    use forge_core::tch::{Device, nn::VarStore};
    use forge_data::synthetic::{SyntheticOptions, write_synthetic_with};
    use forge_data::{Corpus, GeneVocab};

    let dir = std::env::temp_dir().join(format!("forge-cli-finetune-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let cells = dir.join("cells.h5ad");
    write_synthetic_with(
        &cells,
        &SyntheticOptions {
            n_cells: 60,
            n_genes: 50,
            n_types: 3,
            nonzero_fraction: 0.4,
            ..SyntheticOptions::default()
        },
    )
    .unwrap();
    let data = forge_core::config::DataConfig {
        paths: vec![cells.display().to_string()],
        ..Default::default()
    };
    let vocab = GeneVocab::from_genes(Corpus::from_config(&data).unwrap().genes());
    let model_cfg = ModelConfig {
        vocab_size: Some(vocab.len() as i64),
        hidden_dim: 16,
        num_layers: 1,
        num_heads: 2,
        ffn_dim: Some(32),
        dropout: 0.0,
        max_seq_len: 16,
        pooling: Pooling::Mean,
        ..ModelConfig::default()
    };
    let vs = VarStore::new(Device::Cpu);
    let model = forge_core::registry::build(&vs.root(), &model_cfg).unwrap();
    let ckpt = dir.join("ckpt");
    let tok = TokenizerConfig {
        max_genes: 16,
        ..TokenizerConfig::default()
    };
    forge_core::checkpoint::save_pretrained(
        model.as_ref(),
        &model_cfg,
        &tok,
        vocab.entries(),
        &ckpt,
        false,
    )
    .unwrap();
    let config = |label_key: &str| {
        let path = dir.join(format!("{label_key}.yaml"));
        std::fs::write(
            &path,
            format!(
                "data:\n  paths: [{}]\n  num_workers: 1\ntraining:\n  batch_size: 16\n  \
                 max_epochs: 2\n  precision: 32-true\n  scheduler: null\n  val_split: 0.2\n  \
                 optimizer:\n    lr: 0.003\nfinetune:\n  label_key: {label_key}\n  \
                 freeze_backbone_epochs: 1\n  lora:\n    enabled: true\n    rank: 2\n",
                cells.display()
            ),
        )
        .unwrap();
        path.display().to_string()
    };
    let good = config("cell_type");
    let out_dir = dir.join("out");
    let args = [
        "finetune",
        "--config",
        &good,
        "--checkpoint",
        ckpt.to_str().unwrap(),
        "--out",
        out_dir.to_str().unwrap(),
    ];
    let out = forge(&args);
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "{stdout}{stderr}");
    for needle in [
        "epoch 1/2",
        "epoch 2/2",
        "accuracy",
        "f1_macro",
        "backbone frozen",
    ] {
        assert!(stderr.contains(needle), "{needle:?} missing:\n{stderr}");
    }
    assert!(stderr.contains("LoRA rank 2 on 3 weights"), "{stderr}");
    assert!(stdout.contains("final: train loss"), "{stdout}");
    for f in [
        "pretrained/config.json",
        "head.safetensors",
        "labels.json",
        "logs/metrics.csv",
    ] {
        assert!(out_dir.join(f).is_file(), "{f} missing");
    }
    let metrics = std::fs::read_to_string(out_dir.join("logs/metrics.csv")).unwrap();
    assert_eq!(metrics.lines().count(), 3, "{metrics}");
    // Checkpoints beside the output; a run that does not resume refuses
    // to start over them without --force.
    let last = dir.join("out-checkpoints/last");
    assert!(last.join("trainer_state.json").is_file());
    assert!(stdout.contains("--resume-from"), "{stdout}");

    // The fine-tuned backbone is a plain checkpoint.
    let emb = dir.join("emb.npy");
    let embed = forge(&[
        "embed",
        "--model",
        out_dir.join("pretrained").to_str().unwrap(),
        "--data",
        cells.to_str().unwrap(),
        "--out",
        emb.to_str().unwrap(),
    ]);
    assert!(embed.status.success(), "{:?}", text(&embed));

    // No silent overwrite; a missing label column is named with the choices.
    let again = forge(&args);
    let (_, stderr) = text(&again);
    assert!(
        !again.status.success() && stderr.contains("--force"),
        "{stderr}"
    );
    // Resumed with one more epoch: only epoch 3 trains, the metrics of all
    // three are in the new output, which replaces the old (--force).
    let three = with_max_epochs(&good, 3, dir.join("three.yaml"));
    let resumed = forge(&[
        "finetune",
        "--config",
        three.to_str().unwrap(),
        "--checkpoint",
        ckpt.to_str().unwrap(),
        "--out",
        out_dir.to_str().unwrap(),
        "--force",
        "--resume-from",
        last.to_str().unwrap(),
    ]);
    let (stdout, stderr) = text(&resumed);
    assert!(resumed.status.success(), "{stdout}{stderr}");
    assert!(
        stderr.contains("epoch 3/3") && !stderr.contains("epoch 1/3"),
        "{stderr}"
    );
    let metrics = std::fs::read_to_string(out_dir.join("logs/metrics.csv")).unwrap();
    assert_eq!(metrics.lines().count(), 4, "{metrics}");
    let bad = config("cell_typo");
    let mut bad_args = args;
    bad_args[2] = &bad;
    bad_args[6] = "/nonexistent/never-written";
    let failed = forge(&bad_args);
    let (_, stderr) = text(&failed);
    assert!(!failed.status.success());
    for needle in [
        "cells.h5ad",
        "cell_typo",
        "available",
        "did you mean `cell_type`",
    ] {
        assert!(stderr.contains(needle), "{needle:?} missing:\n{stderr}");
    }
    interrupted_finetuning_resumes(&dir, &good, &ckpt);
    std::fs::remove_dir_all(&dir).ok();
}

/// Writes `config` (a fine-tune config with `max_epochs: 2`) to `path` with
/// `max_epochs: epochs`.
fn with_max_epochs(config: &str, epochs: u64, path: std::path::PathBuf) -> std::path::PathBuf {
    let text = std::fs::read_to_string(config).unwrap();
    assert!(text.contains("max_epochs: 2"), "{text}");
    std::fs::write(
        &path,
        text.replace("max_epochs: 2", &format!("max_epochs: {epochs}")),
    )
    .unwrap();
    path
}

/// Ctrl-C as a user sends it: SIGINT to a long `forge finetune` saves a
/// resumable `last/` checkpoint, writes no model and exits 130; resumed
/// from it, the run finishes the epoch it was in.
fn interrupted_finetuning_resumes(dir: &Path, config: &str, ckpt: &Path) {
    use std::time::{Duration, Instant};
    let long = with_max_epochs(config, 100_000, dir.join("long.yaml"));
    let out = dir.join("int");
    let log = dir.join("int.log");
    let mut child = Command::new(env!("CARGO_BIN_EXE_forge"))
        .args(["finetune", "--config", long.to_str().unwrap()])
        .args(["--checkpoint", ckpt.to_str().unwrap()])
        .args(["--out", out.to_str().unwrap()])
        .stdout(std::process::Stdio::null())
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .expect("forge runs");
    let log_text = || std::fs::read_to_string(&log).unwrap_or_default();
    let started = Instant::now();
    while !log_text().contains("epoch 2/") {
        if started.elapsed() > Duration::from_secs(120) {
            child.kill().ok();
            panic!("no second epoch within 120 s:\n{}", log_text());
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let sent = Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(sent.success());
    let waited = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if waited.elapsed() > Duration::from_secs(60) {
            child.kill().ok();
            panic!("no exit within 60 s of SIGINT:\n{}", log_text());
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    assert_eq!(status.code(), Some(130), "{}", log_text());
    assert!(!out.exists(), "an interrupted run writes no model");
    let last = dir.join("int-checkpoints/last");
    let state: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(last.join("trainer_state.json")).unwrap())
            .unwrap();
    let epochs = state["epoch"].as_u64().unwrap() + 1;
    let short = with_max_epochs(config, epochs, dir.join("short.yaml"));
    let resumed = forge(&[
        "finetune",
        "--config",
        short.to_str().unwrap(),
        "--checkpoint",
        ckpt.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
        "--resume-from",
        last.to_str().unwrap(),
    ]);
    let (stdout, stderr) = text(&resumed);
    assert!(resumed.status.success(), "{stdout}{stderr}");
    assert!(
        stderr.contains(&format!("epoch {epochs}/{epochs}")) && !stderr.contains("epoch 1/"),
        "{stderr}"
    );
    assert!(out.join("head.safetensors").is_file());
}
