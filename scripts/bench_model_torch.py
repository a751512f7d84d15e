"""PyTorch side of `cargo bench --bench model_step`.

Runs `transformer_encoder` the way scModelForge runs it in eager PyTorch: a
training step is `model(**batch)` (vocabulary logits at every position,
cross-entropy with ignore_index -100), `loss.backward()`, AdamW; `encode`
runs in eval mode under `torch.no_grad()` on the padded batch. The model is
the PyTorch reference of `make_model_fixtures.py`, loaded with the weights
forge wrote, and runs on the batch forge wrote, so both sides compute the
same thing.

    bench_model_torch.py --config CONFIG.json --weights W.safetensors \
        --batch B.safetensors --threads N [--lr LR]

The benchmark drives it one repetition at a time over stdin/stdout, so that
forge and PyTorch runs alternate and share whatever else the machine is
doing. After loading it prints `ready`; then each line it reads is one
command and gets one line back. MODE is one of

- `fp32`: eager float32;
- `bf16`: eager under `torch.autocast("cpu", dtype=torch.bfloat16)` (what
  Lightning's `precision: bf16-mixed` does on the CPU);
- `compile-bf16`: `torch.compile(model)` under the same autocast (the
  first call compiles; the benchmark counts it as its warm-up).

Each mode has its own copy of the initial weights and its own AdamW, so
every mode's first loss and embeddings are computed from the same weights.

- `encode MODE` -> `<seconds>` (the first call's embeddings are kept)
- `train MODE`  -> `<seconds> <loss>` (one optimizer step)
- `check-compile` -> `ok` when `torch.compile` works here, else
  `unavailable: <reason>` (one line)
- `save OUT.safetensors` -> `saved`: writes, per mode run, the kept
  embeddings (`embeddings.MODE`) and first training loss (`loss.MODE`).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time

import torch
from safetensors.torch import load_file, save_file

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from make_model_fixtures import MODELS, model_config  # noqa: E402


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--config", required=True, help="model_config as JSON")
    parser.add_argument("--weights", required=True)
    parser.add_argument("--batch", required=True)
    parser.add_argument("--threads", type=int, required=True)
    parser.add_argument("--lr", type=float, default=1e-4)
    args = parser.parse_args()

    torch.set_num_threads(args.threads)
    with open(args.config) as f:
        known = model_config()
        config = model_config(**{k: v for k, v in json.load(f).items() if k in known})
    weights = load_file(args.weights)
    batch = load_file(args.batch)
    inputs = {k: batch[k] for k in ("input_ids", "attention_mask", "values")}
    kept = {}
    modes = {}

    def mode(name):
        if name not in modes:
            if name not in ("fp32", "bf16", "compile-bf16"):
                raise ValueError(f"unknown mode {name!r}")
            model = MODELS[config["architecture"]](config)
            model.load_state_dict(weights, strict=True)
            optimizer = torch.optim.AdamW(model.parameters(), lr=args.lr, weight_decay=0.01)
            run, encoder = model, model.encode
            if name.startswith("compile"):
                run, encoder = torch.compile(model), torch.compile(model.encode)
            modes[name] = (model, run, encoder, optimizer)
        return modes[name]

    def autocast(name):
        return torch.autocast("cpu", dtype=torch.bfloat16, enabled=name != "fp32")

    def encode(name):
        model, _, encoder, _ = mode(name)
        model.eval()
        with torch.no_grad(), autocast(name):
            start = time.perf_counter()
            embeddings = encoder(**inputs)
            elapsed = time.perf_counter() - start
        kept.setdefault(f"embeddings.{name}", embeddings.float().contiguous())
        return f"{elapsed}"

    def train(name):
        model, run, _, optimizer = mode(name)
        model.train()
        start = time.perf_counter()
        with autocast(name):
            loss = run(**inputs, labels=batch["labels"])["loss"]
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        elapsed = time.perf_counter() - start
        kept.setdefault(f"loss.{name}", loss.detach().float().reshape(1).clone())
        return f"{elapsed} {loss.item()}"

    def check_compile():
        try:
            f = torch.compile(lambda x: torch.relu(x) * 2)
            f(torch.randn(8))
            return "ok"
        except Exception as e:  # noqa: BLE001 - any failure means "not here"
            first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
            return f"unavailable: {type(e).__name__}: {first}"

    print("ready", flush=True)
    for line in sys.stdin:
        command, _, arg = line.strip().partition(" ")
        try:
            if command == "encode":
                reply = encode(arg or "fp32")
            elif command == "train":
                reply = train(arg or "fp32")
            elif command == "check-compile":
                reply = check_compile()
            elif command == "save":
                save_file(kept, arg)
                reply = "saved"
            elif command == "quit":
                break
            else:
                reply = f"error: unknown command {command!r}"
        except Exception as e:  # noqa: BLE001 - reported to the benchmark
            reply = f"error: {type(e).__name__}: {str(e).strip().splitlines()[0] if str(e).strip() else ''}"
        print(reply, flush=True)


if __name__ == "__main__":
    main()
