//! `forge embed` against scModelForge's own evaluation pipeline, on the
//! embedded PBMC file, both ways:
//!
//! - checkpoint folders as scModelForge's `save_pretrained` writes them
//!   (no record of preprocessing) embed, with no extra flag, as
//!   scModelForge's `benchmark` command embeds them: `X` as stored, genes
//!   aligned by name, values > 0 only, stable rank order;
//! - a checkpoint forge writes loads with scModelForge's layout rules and
//!   embeds the same in that pipeline as in `forge embed`.
//!
//! The reference is `scripts/scmodelforge_eval.py` (plain PyTorch, run with
//! the venv that `scripts/setup.sh` makes). Every one of the 700 cells must
//! agree within 1e-5.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::cli::forge;

const TOLERANCE: f32 = 1e-5;

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).to_path_buf()
}

fn pbmc() -> PathBuf {
    let path = root().join("data/pbmc68k_reduced.h5ad");
    assert!(
        path.is_file(),
        "{}: missing; run scripts/setup.sh",
        path.display()
    );
    path
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

fn scratch(name: &str) -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("embed-parity-{name}"));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// Runs the reference script with `args`, failing with its stderr.
fn reference(args: &[&str]) {
    let python = root().join(".venv/bin/python");
    let out = Command::new(&python)
        .arg("-W")
        .arg("ignore")
        .arg(root().join("scripts/scmodelforge_eval.py"))
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("{}: {e}; run scripts/setup.sh", python.display()));
    assert!(
        out.status.success(),
        "scmodelforge_eval.py {args:?} failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Runs `forge embed` to `out` (.npy); returns its stderr.
fn forge_embed(model: &Path, out: &Path, extra: &[&str]) -> String {
    let data = pbmc();
    let mut args = vec![
        "embed",
        "--model",
        s(model),
        "--data",
        s(&data),
        "--out",
        s(out),
    ];
    args.extend_from_slice(extra);
    let run = forge(&args);
    let stderr = String::from_utf8_lossy(&run.stderr).into_owned();
    assert!(run.status.success(), "forge {args:?} failed:\n{stderr}");
    stderr
}

/// A float32 C-order `.npy` file: (rows, cols, values).
fn read_npy(path: &Path) -> (usize, usize, Vec<f32>) {
    let bytes = std::fs::read(path).unwrap();
    assert_eq!(&bytes[..6], b"\x93NUMPY", "{}", path.display());
    let (header_len, start) = match bytes[6] {
        1 => (u16::from_le_bytes([bytes[8], bytes[9]]) as usize, 10),
        _ => (
            u32::from_le_bytes(bytes[8..12].try_into().unwrap()) as usize,
            12,
        ),
    };
    let header = std::str::from_utf8(&bytes[start..start + header_len]).unwrap();
    assert!(header.contains("'<f4'") && header.contains("'fortran_order': False"));
    let shape = &header[header.find("'shape': (").unwrap() + 10..];
    let dims: Vec<usize> = shape[..shape.find(')').unwrap()]
        .split(',')
        .filter(|d| !d.trim().is_empty())
        .map(|d| d.trim().parse().unwrap())
        .collect();
    let values = bytes[start + header_len..]
        .chunks_exact(4)
        .map(|c| f32::from_le_bytes(c.try_into().unwrap()))
        .collect();
    (dims[0], dims[1], values)
}

/// The largest |a - b| of each cell, after checking shapes.
fn per_cell_diff(a: &Path, b: &Path) -> Vec<f32> {
    let (ra, ca, va) = read_npy(a);
    let (rb, cb, vb) = read_npy(b);
    assert_eq!((ra, ca), (rb, cb), "{} vs {}", a.display(), b.display());
    va.chunks(ca)
        .zip(vb.chunks(cb))
        .map(|(x, y)| {
            x.iter()
                .zip(y)
                .map(|(p, q)| (p - q).abs())
                .fold(0f32, f32::max)
        })
        .collect()
}

fn assert_cells_agree(case: &str, forge: &Path, reference: &Path) {
    let diffs = per_cell_diff(forge, reference);
    assert_eq!(diffs.len(), 700, "{case}: every PBMC cell is embedded");
    let bad: Vec<(usize, f32)> = diffs
        .iter()
        .copied()
        .enumerate()
        .filter(|(_, d)| d.is_nan() || *d > TOLERANCE)
        .collect();
    let max = diffs.iter().copied().fold(0f32, f32::max);
    println!("{case}: max |forge - scModelForge| over 700 cells = {max:.2e}");
    assert!(
        bad.is_empty(),
        "{case}: {} of 700 cells differ by more than {TOLERANCE} (first: {:?})",
        bad.len(),
        &bad[..bad.len().min(5)]
    );
}

#[test]
fn scmodelforge_checkpoints_embed_as_scmodelforge_evaluates_them() {
    let dir = scratch("scmodelforge");
    reference(&["make", s(&dir), s(&pbmc())]);
    let cases: serde_json::Map<String, serde_json::Value> =
        serde_json::from_slice(&std::fs::read(dir.join("cases.json")).unwrap()).unwrap();
    assert!(cases.len() >= 4, "{cases:?}");
    for (name, flags) in &cases {
        let flags: Vec<&str> = flags
            .as_array()
            .unwrap()
            .iter()
            .map(|f| f.as_str().unwrap())
            .collect();
        let out = dir.join(format!("{name}.forge.npy"));
        let stderr = forge_embed(&dir.join(name), &out, &flags);
        assert!(
            stderr.contains("reading X as stored, as scModelForge's evaluation does")
                && stderr.contains("--config"),
            "{name}: no note on how cells are read:\n{stderr}"
        );
        assert_cells_agree(name, &out, &dir.join(format!("{name}.expected.npy")));
    }

    // --config: the data section of a training YAML decides how cells are
    // read. With library-size normalisation and log1p the embeddings
    // change, and no note is printed.
    let config = dir.join("normalised.yaml");
    std::fs::write(
        &config,
        "data:\n  preprocessing:\n    normalize: library_size\n    target_sum: 10000\n    log1p: true\n",
    )
    .unwrap();
    let out = dir.join("te_cls.normalised.npy");
    let stderr = forge_embed(&dir.join("te_cls"), &out, &["--config", s(&config)]);
    assert!(
        !stderr.contains("scModelForge's evaluation does"),
        "{stderr}"
    );
    let diffs = per_cell_diff(&out, &dir.join("te_cls.expected.npy"));
    assert!(
        diffs.iter().any(|&d| d > 1e-3),
        "--config's preprocessing changed nothing"
    );
}

#[test]
fn forge_checkpoints_embed_the_same_in_scmodelforge_pipeline() {
    let dir = scratch("forge");
    let data = pbmc();
    for (architecture, pooling) in [
        ("transformer_encoder", "mean"),
        ("masked_autoencoder", "cls"),
    ] {
        let config = dir.join(format!("{architecture}.yaml"));
        // scModelForge's evaluation reads X as stored: train that way, so
        // the checkpoint's record and the reference read the same cells.
        std::fs::write(
            &config,
            format!(
                "data:
  paths: [{}]
  preprocessing: {{normalize: null, log1p: false}}
tokenizer: {{strategy: rank_value, max_genes: 64}}
model:
  architecture: {architecture}
  pooling: {pooling}
  hidden_dim: 16
  num_layers: 1
  num_heads: 2
  max_seq_len: 64
training:
  batch_size: 32
  max_epochs: 1
  seed: 3
  precision: 32-true
  optimizer: {{name: adamw, lr: 1.0e-3}}
  scheduler: {{name: cosine_warmup, warmup_steps: 1, total_steps: 10}}
  val_split: 0.1
  num_workers: 1
",
                data.display()
            ),
        )
        .unwrap();
        let run = dir.join(architecture);
        let train = forge(&[
            "train",
            "--config",
            s(&config),
            "--out",
            s(&run),
            "--max-steps",
            "2",
        ]);
        assert!(
            train.status.success(),
            "{}",
            String::from_utf8_lossy(&train.stderr)
        );
        let model = run.join("pretrained");
        let ours = dir.join(format!("{architecture}.forge.npy"));
        let stderr = forge_embed(&model, &ours, &[]);
        assert!(
            !stderr.contains("scModelForge's evaluation does"),
            "{stderr}"
        );
        let theirs = dir.join(format!("{architecture}.reference.npy"));
        reference(&["embed", s(&model), s(&data), s(&theirs)]);
        assert_cells_agree(architecture, &ours, &theirs);

        // The same data section given with --config reads the same cells.
        let again = dir.join(format!("{architecture}.config.npy"));
        forge_embed(&model, &again, &["--config", s(&config)]);
        assert!(per_cell_diff(&ours, &again).iter().all(|&d| d == 0.0));
    }
}
