"""PyTorch side of `cargo bench --bench model_step`.

Times `transformer_encoder` the way scModelForge runs it in eager PyTorch:
a training step is `model(**batch)` (vocabulary logits at every position,
cross-entropy with ignore_index -100), `loss.backward()`, AdamW; `encode`
runs in eval mode under `torch.no_grad()` on the padded batch. The model is
the PyTorch reference of `make_model_fixtures.py`, loaded with the weights
forge wrote, and runs on the batch forge wrote, so both sides compute the
same thing.

    bench_model_torch.py --config CONFIG.json --weights W.safetensors \
        --batch B.safetensors --threads N --iters K --out OUT.safetensors

Writes to OUT the seconds of each repetition (`train_s`, `encode_s`, after
one warm-up each), the loss of the first training step and the `encode`
embeddings (both computed with the initial weights) for forge to compare.
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
    parser.add_argument("--iters", type=int, default=3)
    parser.add_argument("--lr", type=float, default=1e-4)
    parser.add_argument("--out", required=True)
    args = parser.parse_args()

    torch.set_num_threads(args.threads)
    with open(args.config) as f:
        known = model_config()
        config = model_config(**{k: v for k, v in json.load(f).items() if k in known})
    model = MODELS[config["architecture"]](config)
    model.load_state_dict(load_file(args.weights), strict=True)
    batch = load_file(args.batch)
    inputs = {k: batch[k] for k in ("input_ids", "attention_mask", "values")}

    # encode: eval mode, no autograd (PyTorch's inference fast path).
    model.eval()
    encode_s = []
    with torch.no_grad():
        embeddings = model.encode(**inputs)
        for _ in range(args.iters):
            start = time.perf_counter()
            model.encode(**inputs)
            encode_s.append(time.perf_counter() - start)

    # Training steps: forward with labels, backward, AdamW.
    model.train()
    optimizer = torch.optim.AdamW(model.parameters(), lr=args.lr, weight_decay=0.01)
    train_s = []
    first_loss = None
    for step in range(args.iters + 1):
        start = time.perf_counter()
        loss = model(**inputs, labels=batch["labels"])["loss"]
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        elapsed = time.perf_counter() - start
        if step == 0:
            first_loss = loss.detach().clone()
        else:
            train_s.append(elapsed)

    save_file(
        {
            "train_s": torch.tensor(train_s, dtype=torch.float64),
            "encode_s": torch.tensor(encode_s, dtype=torch.float64),
            "loss": first_loss.reshape(1),
            "embeddings": embeddings.contiguous(),
        },
        args.out,
    )


if __name__ == "__main__":
    main()
