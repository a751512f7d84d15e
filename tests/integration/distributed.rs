//! `forge train` / `forge finetune` with `training.num_gpus: 2` and
//! `--accelerator cpu`: the command starts 2 ranks of itself (Gloo over
//! loopback), rank 0 alone writes, and a 2-rank checkpoint resumes in one
//! process. The numerics (2 ranks against 1 process, ZeRO-2, a killed
//! rank) are tested in forge-train (`train::parallel::tests`).

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use forge_data::synthetic::{SyntheticOptions, write_synthetic_with};

/// Variables that would make forge think a launcher started it.
const LAUNCH_VARS: &[&str] = &[
    "TORCHELASTIC_RUN_ID",
    "RANK",
    "WORLD_SIZE",
    "LOCAL_RANK",
    "MASTER_ADDR",
    "MASTER_PORT",
    "SLURM_NTASKS",
    "SLURM_PROCID",
];

fn forge(args: &[&str], vars: &[(&str, &str)]) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_forge"));
    cmd.args(args).env_remove("LD_LIBRARY_PATH");
    for v in LAUNCH_VARS {
        cmd.env_remove(v);
    }
    cmd.env("FORGE_DIST_TIMEOUT", "60")
        .envs(vars.iter().copied())
        .output()
        .expect("forge runs")
}

fn text(out: &Output) -> (String, String) {
    (
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// A folder with 80 synthetic cells (obs `cell_type`) and a config for a
/// tiny model on `gpus` devices.
fn setup(name: &str) -> (PathBuf, PathBuf) {
    let dir = std::env::temp_dir().join(format!("forge-ddp-cli-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let cells = dir.join("cells.h5ad");
    write_synthetic_with(
        &cells,
        &SyntheticOptions {
            n_cells: 80,
            n_genes: 40,
            n_types: 3,
            nonzero_fraction: 0.5,
            ..SyntheticOptions::default()
        },
    )
    .unwrap();
    (dir, cells)
}

fn config(dir: &Path, cells: &Path, gpus: u32, extra: &str) -> PathBuf {
    let path = dir.join(format!("config-{gpus}.yaml"));
    std::fs::write(
        &path,
        format!(
            "data:\n  paths: [{}]\n  num_workers: 1\ntokenizer:\n  max_genes: 16\nmodel:\n  \
             architecture: transformer_encoder\n  hidden_dim: 16\n  num_layers: 1\n  \
             num_heads: 2\n  ffn_dim: 32\n  dropout: 0.0\n  max_seq_len: 17\n\
             training:\n  num_gpus: {gpus}\n  batch_size: 8\n  max_epochs: 1\n  \
             precision: 32-true\n  num_workers: 1\n  val_split: 0.2\n  \
             log_every_n_steps: 1\n  scheduler: null\n{extra}",
            cells.display()
        ),
    )
    .unwrap();
    path
}

#[test]
fn train_starts_two_cpu_ranks_rank_0_writes_and_one_process_resumes() {
    let (dir, cells) = setup("train");
    let two = config(&dir, &cells, 2, "");
    let out = dir.join("run");
    let run = forge(
        &[
            "train",
            "--config",
            s(&two),
            "--out",
            s(&out),
            "--accelerator",
            "cpu",
            "--max-steps",
            "2",
        ],
        &[],
    );
    let (stdout, stderr) = text(&run);
    assert!(run.status.success(), "{stdout}{stderr}");
    assert!(
        stderr.contains("distributed: starting 2 CPU processes on this machine"),
        "{stderr}"
    );
    assert!(stderr.contains("rank 0 of 2"), "{stderr}");
    // Only rank 0 reports and writes.
    assert_eq!(
        stdout.matches("training stopped at --max-steps").count(),
        1,
        "{stdout}"
    );
    assert!(stdout.contains("1 epochs, 2 steps") || stdout.contains("0 epochs, 2 steps"));
    for f in [
        "pretrained",
        "config.yaml",
        "checkpoints/last/trainer_state.json",
    ] {
        assert!(out.join(f).exists(), "{f} missing");
    }
    let state: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(out.join("checkpoints/last/trainer_state.json")).unwrap(),
    )
    .unwrap();
    assert_eq!(state["step"].as_i64(), Some(2), "{state}");

    // The 2-rank checkpoint continues in one process.
    let one = config(&dir, &cells, 1, "");
    let resumed = forge(
        &[
            "train",
            "--config",
            s(&one),
            "--out",
            s(&out),
            "--resume-from",
            s(&out.join("checkpoints/last")),
            "--max-steps",
            "3",
        ],
        &[],
    );
    let (stdout, stderr) = text(&resumed);
    assert!(resumed.status.success(), "{stdout}{stderr}");
    assert!(stdout.contains(", 3 steps"), "{stdout}");
    assert!(!stderr.contains("distributed:"), "{stderr}");

    // A rank that fails makes the command fail, naming it (here every rank
    // refuses the timeout variable; the first seen is named).
    let failed = forge(
        &[
            "train",
            "--config",
            s(&two),
            "--out",
            s(&dir.join("failed")),
            "--accelerator",
            "cpu",
        ],
        &[("FORGE_DIST_TIMEOUT", "soon")],
    );
    let (stdout, stderr) = text(&failed);
    assert!(!failed.status.success(), "{stdout}{stderr}");
    assert!(
        stderr.contains("FORGE_DIST_TIMEOUT=\"soon\": give a number of seconds above 0"),
        "{stderr}"
    );
    assert!(stderr.contains(" of 2 failed (exit status: 1)"), "{stderr}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn finetune_runs_on_two_cpu_ranks() {
    let (dir, cells) = setup("finetune");
    // A pretrained model to fine-tune, from one process.
    let one = config(&dir, &cells, 1, "");
    let pre = dir.join("pre");
    let run = forge(
        &[
            "train",
            "--config",
            s(&one),
            "--out",
            s(&pre),
            "--max-steps",
            "1",
        ],
        &[],
    );
    assert!(run.status.success(), "{:?}", text(&run));
    let two = config(
        &dir,
        &cells,
        2,
        "  fsdp:\n    sharding_strategy: SHARD_GRAD_OP\nfinetune:\n  label_key: cell_type\n",
    );
    let out = dir.join("tuned");
    let run = forge(
        &[
            "finetune",
            "--config",
            s(&two),
            "--checkpoint",
            s(&pre.join("pretrained")),
            "--out",
            s(&out),
            "--accelerator",
            "cpu",
        ],
        &[],
    );
    let (stdout, stderr) = text(&run);
    assert!(run.status.success(), "{stdout}{stderr}");
    assert!(stderr.contains("ZeRO-2"), "{stderr}");
    assert_eq!(stdout.matches("fine-tuned transformer_encoder").count(), 1);
    assert!(out.join("head.safetensors").is_file());
    assert!(
        dir.join("tuned-checkpoints/last/optimizer.safetensors")
            .is_file()
    );
    let _ = std::fs::remove_dir_all(&dir);
}
