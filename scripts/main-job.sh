#!/usr/bin/env bash
# The main job on the embedded default dataset (PBMC 68k reduced, 700 cells):
#   1. setup (idempotent) and a release build;
#   2. check the runtime and inspect the data;
#   3. pretrain transformer_encoder for a few minutes on CPU (GPU if present);
#   4. assess its embeddings against the same architecture with random
#      weights and a PCA baseline (linear probe + scIB-style metrics on
#      bulk_labels), printing the table.
# Outputs go to runs/pbmc/ (git-ignored). MINUTES=N changes the training
# budget (default 4).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

step() { printf '\n==> %s\n' "$*"; }
minutes="${MINUTES:-4}"
data=data/pbmc68k_reduced.h5ad
out=runs/pbmc

step "setup"
bash scripts/setup.sh

step "build (release)"
cargo build --release --bins
forge=target/release/forge

step "forge doctor"
"$forge" doctor

step "forge inspect $data"
"$forge" inspect "$data"

step "forge train (up to $minutes minutes)"
"$forge" train --config configs/transformer_encoder_pbmc.yaml --out "$out" \
  --max-minutes "$minutes"

step "forge assess"
"$forge" assess --model "$out/pretrained" --data "$data" --label-key bulk_labels \
  --baselines random,pca --out "$out/assess"
