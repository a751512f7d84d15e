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
command and gets one line back:

- `encode` -> `<seconds>` (the first call's embeddings are kept)
- `train`  -> `<seconds> <loss>` (one optimizer step)
- `save OUT.safetensors` -> `saved`: writes the kept embeddings and the
  first training loss, both computed with the initial weights.
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
    model = MODELS[config["architecture"]](config)
    model.load_state_dict(load_file(args.weights), strict=True)
    batch = load_file(args.batch)
    inputs = {k: batch[k] for k in ("input_ids", "attention_mask", "values")}
    optimizer = torch.optim.AdamW(model.parameters(), lr=args.lr, weight_decay=0.01)
    kept = {}

    def encode():
        model.eval()
        with torch.no_grad():
            start = time.perf_counter()
            embeddings = model.encode(**inputs)
            elapsed = time.perf_counter() - start
        kept.setdefault("embeddings", embeddings.contiguous())
        return f"{elapsed}"

    def train():
        model.train()
        start = time.perf_counter()
        loss = model(**inputs, labels=batch["labels"])["loss"]
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        elapsed = time.perf_counter() - start
        kept.setdefault("loss", loss.detach().reshape(1).clone())
        return f"{elapsed} {loss.item()}"

    print("ready", flush=True)
    for line in sys.stdin:
        command, _, arg = line.strip().partition(" ")
        if command == "encode":
            reply = encode()
        elif command == "train":
            reply = train()
        elif command == "save":
            save_file(kept, arg)
            reply = "saved"
        elif command == "quit":
            break
        else:
            reply = f"error: unknown command {command!r}"
        print(reply, flush=True)


if __name__ == "__main__":
    main()
