#!/usr/bin/env bash
# Distributed training check for a CUDA machine (issue #17), short and
# prepared: run it as one command where a GPU machine is lent.
#
#   bash scripts/gpu-check.sh            # from the repository root
#
# 1. builds forge (release) and prints `forge doctor` (GPUs, c10d backends:
#    NCCL is reported as built or not, with the reason);
# 2. runs the CPU/Gloo data parallel tests (DDP and ZeRO-2 equivalence with
#    one process, resume, a killed rank), bounded;
# 3. trains PBMC (data/pbmc68k_reduced.h5ad) on one GPU in bf16-mixed for
#    STEPS steps, then, when the machine has N >= 2 GPUs, with
#    `num_gpus: N` (forge starts N ranks, one per GPU) for as many steps
#    with the same global batch, and prints cells/s of both and the scaling
#    efficiency (N-GPU cells/s / (N x 1-GPU cells/s)).
#
# While NCCL is not built into forge-dist, the ranks' collectives run over
# Gloo on CPU copies of the gradients (correct, slower than NCCL); the
# doctor line says which. Every step is bounded by `timeout`.
set -euo pipefail
cd "$(dirname "$0")/.."

STEPS="${STEPS:-30}"
BATCH="${BATCH:-64}"
OUT="${OUT:-$(mktemp -d /tmp/forge-gpu-check.XXXXXX)}"
export FORGE_DIST_TIMEOUT="${FORGE_DIST_TIMEOUT:-120}"

echo "== build (release)"
timeout 1500 cargo build --release --bin forge
FORGE=target/release/forge

echo "== forge doctor"
"$FORGE" doctor || true

echo "== data parallel tests (CPU, Gloo)"
timeout 600 cargo test --release -p forge-train --lib parallel -- --nocapture 2>&1 \
  | grep -E "max \||resume|rank 0 ended|test result|FAILED|panicked" || true

GPUS=$(nvidia-smi -L 2>/dev/null | grep -c '^GPU' || true)
echo "== $GPUS GPU(s)"
if [ "$GPUS" -lt 1 ]; then
  echo "no GPU: nothing more to check"
  exit 0
fi
test -f data/pbmc68k_reduced.h5ad || { echo "data/pbmc68k_reduced.h5ad missing (bash scripts/setup.sh)"; exit 1; }

config() { # $1 = num_gpus, $2 = batch_size per process, $3 = file
  python3 - "$1" "$2" "$3" <<'PY'
import sys
n, batch, out = sys.argv[1:]
lines = open("configs/transformer_encoder_pbmc.yaml").read().split("\n")
section, res = None, []
for l in lines:
    if l and not l.startswith(" "):
        section = l.split(":")[0]
    if section == "training" and l.startswith("  batch_size:"):
        l = f"  batch_size: {batch}"
    if section == "training" and l.startswith("  precision:"):
        l = "  precision: bf16-mixed"
    res.append(l)
    if l == "training:":
        res.append(f"  num_gpus: {n}")
open(out, "w").write("\n".join(res))
PY
}

rate() { # cells/s from forge train's last line
  grep -o '[0-9.]* cells/s' "$1" | tail -1 | cut -d' ' -f1
}

echo "== 1 GPU, batch $BATCH, $STEPS steps"
config 1 "$BATCH" "$OUT/one.yaml"
timeout 900 "$FORGE" train --config "$OUT/one.yaml" --out "$OUT/one" --max-steps "$STEPS" \
  > "$OUT/one.log" 2>&1 || { tail -20 "$OUT/one.log"; exit 1; }
ONE=$(rate "$OUT/one.log")
echo "1 GPU: $ONE cells/s"

if [ "$GPUS" -ge 2 ]; then
  PER=$((BATCH / GPUS))
  echo "== $GPUS GPUs (ranks), batch $PER per rank (global $((PER * GPUS))), $STEPS steps"
  config "$GPUS" "$PER" "$OUT/many.yaml"
  timeout 900 "$FORGE" train --config "$OUT/many.yaml" --out "$OUT/many" --max-steps "$STEPS" \
    > "$OUT/many.log" 2>&1 || { tail -20 "$OUT/many.log"; exit 1; }
  MANY=$(rate "$OUT/many.log")
  echo "$GPUS GPUs: $MANY cells/s"
  python3 -c "print(f'scaling efficiency {100*$MANY/($GPUS*$ONE):.1f}% over $GPUS GPUs')"
  # Both runs log the loss of every step at the same global batch.
  echo "last train losses: 1 GPU $(tail -1 "$OUT"/one/logs/*/metrics.csv 2>/dev/null | cut -d, -f1-4)," \
       "$GPUS GPUs $(tail -1 "$OUT"/many/logs/*/metrics.csv 2>/dev/null | cut -d, -f1-4)"
else
  echo "one GPU only: no multi-GPU run (scaling needs 2 or more)"
fi
echo "outputs in $OUT"
