#!/usr/bin/env python3
"""Python baseline of forge's data benchmark: from an `.h5ad` file to padded,
masked batches with anndata + numpy (+ torch.from_numpy for the tensors),
the same steps as forge's streaming loader:

1. read blocks of `--chunk` consecutive cells (anndata backed mode, CSR),
   in a shuffled block order;
2. library-size normalisation to 1e4 and log1p (vectorised per block);
3. a shuffle buffer of `--buffer` cells;
4. per cell, as scModelForge's dataset does: rank_value tokenization
   (values > 0, stable argsort descending, CLS + at most max_genes - 1
   genes), masking (n = max(1, round(n * 0.15)) positions; 80% MASK, 10%
   random gene, 10% kept; vectorised per cell);
5. collation of `--batch-size` cells into padded arrays (input_ids,
   attention_mask, values, labels, masked_positions) wrapped as torch
   tensors.

Single process, as scModelForge with num_workers=0. Prints one JSON line:
{"cells": N, "seconds": s, "cells_per_s": r, "batches": b}.

    .venv/bin/python scripts/bench_data_python.py FILE.h5ad --cells 20000
"""

from __future__ import annotations

import argparse
import json
import time
import warnings

import anndata as ad
import numpy as np
import torch

PAD, UNK, MASK, CLS, FIRST = 0, 1, 2, 3, 4


def tokenize(idx, vals, gene_ids, max_genes):
    keep = vals > 0
    idx, vals = idx[keep], vals[keep]
    order = np.argsort(-vals, kind="stable")[: max_genes - 1]
    ids = np.empty(len(order) + 1, dtype=np.int64)
    ids[0] = CLS
    ids[1:] = gene_ids[idx[order]]
    v = np.empty(len(order) + 1, dtype=np.float32)
    v[0] = 0.0
    v[1:] = vals[order]
    return ids, v


def mask(ids, rng, vocab_size):
    labels = np.full(len(ids), -100, dtype=np.int64)
    masked = np.zeros(len(ids), dtype=bool)
    out = ids.copy()
    maskable = np.nonzero((ids != CLS) & (ids != PAD))[0]
    if len(maskable) == 0:
        return out, labels, masked
    n = max(1, round(len(maskable) * 0.15))
    chosen = rng.choice(maskable, size=n, replace=False)
    labels[chosen] = ids[chosen]
    masked[chosen] = True
    r = rng.random(n)
    out[chosen[r < 0.8]] = MASK
    rnd = chosen[(r >= 0.8) & (r < 0.9)]
    out[rnd] = rng.integers(FIRST, vocab_size, size=len(rnd))
    return out, labels, masked


def collate(cells):
    b = len(cells)
    s = max(len(c[0]) for c in cells)
    input_ids = np.zeros((b, s), dtype=np.int64)
    attn = np.zeros((b, s), dtype=np.int64)
    values = np.zeros((b, s), dtype=np.float32)
    labels = np.full((b, s), -100, dtype=np.int64)
    masked = np.zeros((b, s), dtype=bool)
    for i, (ids, v, lab, m) in enumerate(cells):
        n = len(ids)
        input_ids[i, :n] = ids
        attn[i, :n] = 1
        values[i, :n] = v
        labels[i, :n] = lab
        masked[i, :n] = m
    return {
        "input_ids": torch.from_numpy(input_ids),
        "attention_mask": torch.from_numpy(attn),
        "values": torch.from_numpy(values),
        "labels": torch.from_numpy(labels),
        "masked_positions": torch.from_numpy(masked),
    }


def main():
    p = argparse.ArgumentParser()
    p.add_argument("file")
    p.add_argument("--cells", type=int, default=0,
                   help="read this many cells, then drain the buffer (0: all)")
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--max-genes", type=int, default=2048)
    p.add_argument("--chunk", type=int, default=10000)
    p.add_argument("--buffer", type=int, default=10000)
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args()

    t0 = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        a = ad.read_h5ad(args.file, backed="r")
    n_obs, n_vars = a.shape
    gene_ids = np.arange(FIRST, FIRST + n_vars, dtype=np.int64)
    vocab_size = FIRST + n_vars
    rng = np.random.default_rng(args.seed)
    limit = args.cells or n_obs
    blocks = list(range(0, n_obs, args.chunk))
    rng.shuffle(blocks)
    buffer, batch = [], []
    done = n_batches = read = 0

    def emit(cell):
        nonlocal done, n_batches, batch
        idx, vals = cell
        ids, v = tokenize(idx, vals, gene_ids, args.max_genes)
        out, lab, m = mask(ids, rng, vocab_size)
        batch.append((out, v, lab, m))
        done += 1
        if len(batch) == args.batch_size:
            collate(batch)
            n_batches += 1
            batch = []

    for start in blocks:
        if read >= limit:
            break
        end = min(start + args.chunk, n_obs, start + limit - read)
        read += end - start
        x = a.X[start:end]
        totals = np.asarray(x.sum(axis=1)).ravel()
        scale = np.where(totals > 0, 1e4 / np.maximum(totals, 1e-12), 0.0).astype(np.float32)
        data = x.data.astype(np.float32) * np.repeat(scale, np.diff(x.indptr))
        data = np.log1p(data)
        for i in range(end - start):
            lo, hi = x.indptr[i], x.indptr[i + 1]
            cell = (x.indices[lo:hi], data[lo:hi])
            if len(buffer) < args.buffer:
                buffer.append(cell)
                continue
            j = rng.integers(len(buffer))
            cell, buffer[j] = buffer[j], cell
            emit(cell)
    rng.shuffle(buffer)
    for cell in buffer:
        emit(cell)
    if batch:
        collate(batch)
        n_batches += 1
    secs = time.perf_counter() - t0
    print(json.dumps({"cells": done, "seconds": secs, "cells_per_s": done / secs,
                      "batches": n_batches}))


if __name__ == "__main__":
    main()
