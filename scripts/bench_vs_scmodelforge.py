"""End to end against the real scModelForge: steady-state training cells/s of
the same config, on the same file, on the same machine, one tool after the
other.

Not a test and not part of forge: scModelForge runs from a copy of its
repository that you fetch yourself, with its Python dependencies installed
into a folder of their own (never into the project's venv), e.g.:

    git clone <scModelForge> /tmp/sfm
    .venv/bin/pip install --no-deps --target /tmp/sfm-site lightning \\
        lightning-utilities torchmetrics omegaconf antlr4-python3-runtime==4.9.3 \\
        rich markdown-it-py mdurl pygments click pyyaml tqdm fsspec
    .venv/bin/python scripts/bench_vs_scmodelforge.py \\
        --scmodelforge /tmp/sfm/src --site /tmp/sfm-site --case pbmc

The project's venv supplies torch, numpy and anndata to both tools.

Cases (as in issue 19):
- `pbmc`: PBMC's log-normalised values (raw, 700 cells x 765 genes, no
  further preprocessing), hidden 128, 4 layers, 8 heads, max_genes 256,
  batch 32.
- `synthetic`: 600 cells x 20,000 genes of counts (about 2,400 expressed per
  cell), library-size normalisation and log1p, hidden 256, 4 layers, 8
  heads, max_genes 2,048, batch 8.

Both tools train `transformer_encoder` with rank_value and masking, AdamW,
on `--threads` CPU threads, for `--steps` steps: scModelForge at
`--precision` (default its own default, bf16-mixed, which Lightning runs as
CPU autocast to bfloat16), forge once per `--forge-precisions` (default
bf16-mixed and 32-true). Steady state is the cells of the steps after the
first `--warmup` over the summed time of those steps, each from its batch in
hand to the end of its optimizer step (forge's metrics log records exactly
this per step; scModelForge's is taken by a Lightning callback between
`on_train_batch_start` and `on_train_batch_end`). scModelForge's `wall`
column adds its in-process data loading (time between batch starts). The
1-minute load average before and after each run is printed: on a shared
machine, compare only runs under similar load.
"""

from __future__ import annotations

import argparse
import csv
import os
import shutil
import subprocess
import sys
import time

import numpy as np

ROOT = os.path.normpath(os.path.join(os.path.dirname(__file__), ".."))

CASES = {
    "pbmc": dict(hidden=128, layers=4, heads=8, max_genes=256, batch=32, normalize=False),
    "synthetic": dict(hidden=256, layers=4, heads=8, max_genes=2048, batch=8, normalize=True),
}


def make_data(case, out_dir):
    import anndata as ad
    import scipy.sparse as sp

    path = os.path.join(out_dir, f"{case}.h5ad")
    if os.path.exists(path):
        return path
    if case == "pbmc":
        src = ad.read_h5ad(os.path.join(ROOT, "data/pbmc68k_reduced.h5ad"))
        adata = ad.AnnData(X=src.raw.X.copy(), obs=src.obs[["bulk_labels"]].copy(), var=src.raw.var.copy())
    else:
        rng = np.random.default_rng(0)
        n_cells, n_genes, expressed = 600, 20_000, 2_400
        rows, cols, vals = [], [], []
        for i in range(n_cells):
            genes = np.sort(rng.choice(n_genes, size=expressed, replace=False))
            rows.append(np.full(expressed, i))
            cols.append(genes)
            vals.append(rng.negative_binomial(2, 0.4, size=expressed) + 1)
        X = sp.csr_matrix(
            (np.concatenate(vals).astype(np.float32), (np.concatenate(rows), np.concatenate(cols))),
            shape=(n_cells, n_genes),
        )
        adata = ad.AnnData(X=X)
        adata.var_names = [f"GENE{g:05d}" for g in range(n_genes)]
        adata.obs_names = [f"cell{i}" for i in range(n_cells)]
    adata.write_h5ad(path)
    return path


def config_yaml(case, data, precision, out_dir, workers):
    c = CASES[case]
    pre = (
        "{normalize: library_size, target_sum: 10000, log1p: true}"
        if c["normalize"]
        else "{normalize: null, log1p: false}"
    )
    return f"""data:
  paths: [{data}]
  preprocessing: {pre}
  max_genes: {c['max_genes']}
  num_workers: {workers}
tokenizer:
  strategy: rank_value
  max_genes: {c['max_genes']}
  prepend_cls: true
model:
  architecture: transformer_encoder
  hidden_dim: {c['hidden']}
  num_layers: {c['layers']}
  num_heads: {c['heads']}
  max_seq_len: {c['max_genes']}
  dropout: 0.1
training:
  batch_size: {c['batch']}
  max_epochs: 1000
  seed: 0
  precision: {precision}
  optimizer: {{name: adamw, lr: 1.0e-4, weight_decay: 0.01}}
  scheduler: {{name: cosine_warmup, warmup_steps: 10, total_steps: 100000}}
  logger: csv
  log_every_n_steps: 1
  log_dir: {out_dir}/logs
  checkpoint_dir: {out_dir}/checkpoints
  save_top_k: 1
  num_workers: {workers}
  val_split: 0.05
"""


def run_scmodelforge(args, config_path):
    """scModelForge's own TrainingPipeline, with max_steps and a timer."""
    code = f"""
import sys, time, torch
sys.path[:0] = [{args.site!r}, {args.scmodelforge!r}]
torch.set_num_threads({args.threads})
import lightning.pytorch as pl
from scmodelforge.config import load_config
from scmodelforge.training.pipeline import TrainingPipeline

starts, ends, cells = [], [], []
class Timer(pl.Callback):
    def on_train_batch_start(self, trainer, module, batch, idx):
        starts.append(time.perf_counter()); cells.append(int(batch["input_ids"].shape[0]))
    def on_train_batch_end(self, trainer, module, outputs, batch, idx):
        ends.append(time.perf_counter())
        if idx == 0:
            print("THREADS", torch.get_num_threads(), "PRECISION", trainer.precision, flush=True)

Trainer = pl.Trainer
def timed(*a, **kw):
    kw["max_steps"] = {args.steps}
    kw["callbacks"] = list(kw.get("callbacks") or []) + [Timer()]
    kw["enable_progress_bar"] = False
    kw["num_sanity_val_steps"] = 0
    kw["limit_val_batches"] = 0
    kw["enable_checkpointing"] = False
    kw["callbacks"] = [c for c in kw["callbacks"] if not isinstance(c, pl.callbacks.ModelCheckpoint)]
    return Trainer(*a, **kw)
pl.Trainer = timed
TrainingPipeline(load_config({config_path!r})).run()
w = {args.warmup}
print("STEP", sum(cells[w:]) / sum(e - s for s, e in zip(starts[w:], ends[w:])))
print("WALL", sum(cells[w:-1]) / (starts[-1] - starts[w]))
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    if out.returncode != 0:
        sys.exit(f"scModelForge failed:\n{out.stderr[-4000:]}")
    found = {}
    for line in out.stdout.splitlines():
        key, _, value = line.partition(" ")
        if key in ("STEP", "WALL", "THREADS"):
            found[key] = value
    if found.get("THREADS", "").split()[0] != str(args.threads):
        sys.exit(f"scModelForge ran on other threads than asked: {found.get('THREADS')}")
    return float(found["STEP"]), float(found["WALL"])


def run_forge(args, config_path, out_dir):
    """`forge train` with --max-steps; its metrics log has one record per
    step (log_every_n_steps 1) with that step's cells/s, measured from the
    batch in hand to the end of the optimizer step."""
    forge = args.forge
    run = os.path.join(out_dir, "forge-run")
    shutil.rmtree(run, ignore_errors=True)
    cmd = [forge, "train", "--config", config_path, "--out", run, "--max-steps", str(args.steps)]
    env = dict(os.environ, OMP_NUM_THREADS=str(args.threads))
    out = subprocess.run(cmd, capture_output=True, text=True, env=env)
    if out.returncode != 0:
        sys.exit(f"forge failed:\n{out.stderr[-4000:]}")
    with open(os.path.join(run, "logs/metrics.csv")) as f:
        rows = [r for r in csv.DictReader(f) if r["split"] == "train" and r["cells_per_s"]]
    rates = [float(r["cells_per_s"]) for r in rows if int(r["step"]) > args.warmup]
    if len(rates) < args.steps - args.warmup:
        sys.exit(f"forge logged {len(rates)} steps after the warm-up, expected {args.steps - args.warmup}")
    # Steps of one batch each: cells over summed step times, as scModelForge's
    # STEP measure (the harmonic mean of the per-step rates).
    return len(rates) / sum(1.0 / r for r in rates), None


def load():
    return os.getloadavg()[0]


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--scmodelforge", required=True, help="the src/ folder of a scModelForge checkout")
    p.add_argument("--site", required=True, help="folder with scModelForge's extra dependencies")
    p.add_argument("--case", choices=sorted(CASES), default="pbmc")
    p.add_argument("--precision", default="bf16-mixed", help="scModelForge's precision")
    p.add_argument(
        "--forge-precisions",
        default="bf16-mixed,32-true",
        help="forge's precisions, comma-separated (one forge run each)",
    )
    p.add_argument("--forge", default=os.path.join(ROOT, "target/release/forge"), help="the forge binary")
    p.add_argument(
        "--tools",
        default="scmodelforge,forge",
        help="which tools run, comma-separated (scmodelforge first when given)",
    )
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--steps", type=int, default=30)
    p.add_argument("--warmup", type=int, default=3)
    p.add_argument("--workdir", default="/tmp/forge-bench-vs-scmodelforge")
    args = p.parse_args()
    os.makedirs(args.workdir, exist_ok=True)
    data = make_data(args.case, args.workdir)
    tools = args.tools.split(",")
    runs = [("scmodelforge", args.precision)] if "scmodelforge" in tools else []
    if "forge" in tools:
        runs += [("forge", x) for x in args.forge_precisions.split(",") if x]
    results = []
    for tool, precision in runs:
        out_dir = os.path.join(args.workdir, f"{args.case}-{tool}-{precision}")
        os.makedirs(out_dir, exist_ok=True)
        # scModelForge loads in the training process (no worker processes
        # to share the two cores); forge's loader is one thread.
        workers = 0 if tool == "scmodelforge" else 1
        config_path = os.path.join(out_dir, "config.yaml")
        with open(config_path, "w") as f:
            f.write(config_yaml(args.case, data, precision, out_dir, workers))
        before = load()
        t0 = time.perf_counter()
        step, wall = run_scmodelforge(args, config_path) if tool == "scmodelforge" else run_forge(args, config_path, out_dir)
        results.append((tool, precision, step, wall, time.perf_counter() - t0, before, load()))
        print(f"done: {tool} {precision} {step:.2f} cells/s", file=sys.stderr, flush=True)
    base = results[0][2] if results[0][0] == "scmodelforge" else None
    print(f"{args.case}: {args.threads} threads, steps {args.warmup + 1}..{args.steps} of each run; cells/s over summed step times")
    print(f"{'tool':13} {'precision':11} {'cells/s':>9} {'vs sMF':>7} {'wall':>9} {'run s':>6}  load (1 min) before/after")
    for tool, precision, step, wall, secs, before, after in results:
        wall_text = f"{wall:9.2f}" if wall is not None else f"{'-':>9}"
        ratio = f"{step / base:6.2f}x" if base else f"{'-':>7}"
        print(f"{tool:13} {precision:11} {step:9.2f} {ratio} {wall_text} {secs:6.0f}  {before:.1f}/{after:.1f}")


if __name__ == "__main__":
    main()
