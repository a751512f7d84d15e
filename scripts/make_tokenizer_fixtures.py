#!/usr/bin/env python3
"""Regenerate the fixtures of forge-core's data pipeline tests
(tokenizers, masking, gene identifiers) from a plain numpy reference of
scModelForge's rules.

The reference below is written from the rules in
shared/reference/scmodelforge-behaviour.md (Tokenizers and masking), not
from forge's Rust code:

- preprocessing: library size to `target_sum` (scale computed in float64,
  applied in float32), then `log1p` in float32;
- rank_value: values > 0, stable sort by value descending, truncated to
  `max_genes` tokens including the prepended CLS (value 0);
- binned_expression: the genes with a value > 0 in input order (what
  scModelForge's store hands its tokenizers: zeros never become tokens), bins:
  0 for values <= 0, else 1 + number of inner edges strictly below the
  value, capped at n_bins - 1; uniform inner edges 10*k/(n_bins-1),
  quantile inner edges np.quantile(positive values, k/(n_bins-1));
- continuous_projection: the genes with a value > 0 in input order,
  optional log1p;
- masking: n = max(1, round(n_maskable * mask_ratio)) (Python's round),
  positions uniform without replacement, then each chosen token becomes
  MASK (80%), a random gene id in 4..vocab_size (10%), or stays (10%).

Tokenization and binning are matched exactly by the Rust tests; masking,
whose random streams differ between numpy and Rust, is matched through its
invariants and statistics (counts per cell exactly, proportions within a
tolerance).

It also writes small `.h5ad` files with anndata for the gene-identifier
tests (duplicates, mixed identifiers), a small pipeline file with its
expected rank_value tokens, and `ties.h5ad`: a dense X of cells longer than
`max_genes` whose values tie at the cut and above it (values rounded to 3
decimals, as in PBMC's X), with the order numpy's stable argsort gives.

Run from the repository root:

    .venv/bin/python scripts/make_tokenizer_fixtures.py

Outputs go to forge-core/tests/fixtures/data/ and are committed.
"""

from __future__ import annotations

import json
from pathlib import Path

import anndata as ad
import numpy as np
import pandas as pd
import scipy.sparse as sp

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "forge-core" / "tests" / "fixtures" / "data"

PAD, UNK, MASK, CLS, FIRST = 0, 1, 2, 3, 4


def preprocess(counts: np.ndarray, target_sum: float | None, log1p: bool) -> np.ndarray:
    v = counts.astype(np.float32)
    total = float(counts.astype(np.float64).sum())
    if target_sum is not None and total > 0:
        v = v * np.float32(target_sum / total)
    if log1p:
        v = np.log1p(v).astype(np.float32)
    return v


def rank_value(genes, values, gene_ids, max_genes, cls):
    keep = values > 0
    g, v = genes[keep], values[keep]
    order = np.argsort(-v, kind="stable")
    budget = max_genes - (1 if cls else 0)
    order = order[:budget]
    ids = [int(gene_ids[x]) for x in g[order]]
    vals = [float(x) for x in v[order]]
    if cls:
        ids, vals = [CLS] + ids, [0.0] + vals
    return ids, vals, None


def expressed(genes, values, n_universe, budget):
    """The first `budget` entries with a value > 0 (and a gene of the
    universe), in input order, values in float32."""
    out = [(int(g), np.float32(v)) for g, v in zip(genes, values) if v > 0 and g < n_universe]
    return out[:budget]


def bin_of(v, edges, n_bins):
    if not (v > 0):
        return 0
    below = int(np.sum(edges < v))
    return min(1 + below, n_bins - 1)


def binned(genes, values, gene_ids, max_genes, cls, edges, n_bins):
    budget = max_genes - (1 if cls else 0)
    kept = expressed(genes, values, len(gene_ids), budget)
    ids = [int(gene_ids[g]) for g, _ in kept]
    vals = [float(v) for _, v in kept]
    bins = [bin_of(v, edges, n_bins) for _, v in kept]
    if cls:
        ids, vals, bins = [CLS] + ids, [0.0] + vals, [0] + bins
    return ids, vals, bins


def continuous(genes, values, gene_ids, max_genes, cls, log1p):
    budget = max_genes - (1 if cls else 0)
    kept = expressed(genes, values, len(gene_ids), budget)
    ids = [int(gene_ids[g]) for g, _ in kept]
    vals = [float(np.log1p(v).astype(np.float32)) if log1p else float(v) for _, v in kept]
    if cls:
        ids, vals = [CLS] + ids, [0.0] + vals
    return ids, vals, None


def uniform_edges(n_bins):
    return np.array([10.0 * k / (n_bins - 1) for k in range(1, n_bins - 1)], dtype=np.float32)


def quantile_edges(n_bins, values):
    pos = values[np.isfinite(values) & (values > 0)].astype(np.float64)
    qs = [k / (n_bins - 1) for k in range(1, n_bins - 1)]
    return np.quantile(pos, qs).astype(np.float32)


def mask_cell(ids, rng, vocab_size, mask_ratio=0.15, random_ratio=0.1, keep_ratio=0.1):
    ids = list(ids)
    maskable = [i for i, t in enumerate(ids) if t not in (CLS, PAD)]
    labels = [-100] * len(ids)
    masked = [False] * len(ids)
    out = list(ids)
    if not maskable:
        return out, labels, masked
    n = max(1, round(len(maskable) * mask_ratio))
    chosen = rng.choice(maskable, size=min(n, len(maskable)), replace=False)
    p_mask = 1.0 - random_ratio - keep_ratio
    for pos in chosen:
        labels[pos] = ids[pos]
        masked[pos] = True
        r = rng.random()
        if r < p_mask:
            out[pos] = MASK
        elif r < p_mask + random_ratio:
            out[pos] = int(rng.integers(FIRST, vocab_size))
    return out, labels, masked


def make_cells(rng):
    """Sparse count rows over 20 genes, with ties, an empty cell and a cell
    longer than max_genes."""
    n_genes = 20
    cells = []
    # ties on purpose: counts drawn from a small range
    for _ in range(6):
        nnz = int(rng.integers(3, 15))
        genes = np.sort(rng.choice(n_genes, size=nnz, replace=False))
        counts = rng.integers(1, 5, size=nnz).astype(np.float64)
        cells.append((genes, counts))
    cells.append((np.array([], dtype=np.int64), np.array([], dtype=np.float64)))
    cells.append((np.arange(n_genes), rng.integers(1, 50, size=n_genes).astype(np.float64)))
    cells.append((np.array([2, 7]), np.array([0.0, 3.0])))  # explicit zero
    return n_genes, cells


def tokenizer_fixture():
    rng = np.random.default_rng(7)
    n_genes, cells = make_cells(rng)
    gene_ids = np.array([FIRST + j for j in range(n_genes)])
    gene_ids[5] = UNK  # a gene the vocabulary lacks
    prepared = []
    for genes, counts in cells:
        values = preprocess(counts, 1e4, True)
        prepared.append((genes, counts, values))
    all_values = np.concatenate([p[2] for p in prepared])
    cases = []
    settings = [
        ("rank_value", dict(max_genes=8, cls=True)),
        ("rank_value", dict(max_genes=30, cls=False)),
        ("binned_uniform", dict(max_genes=12, cls=True, n_bins=11)),
        ("binned_quantile", dict(max_genes=25, cls=True, n_bins=7)),
        ("continuous", dict(max_genes=10, cls=True, log1p=False)),
        ("continuous_log1p", dict(max_genes=25, cls=False, log1p=True)),
    ]
    q_edges = quantile_edges(7, all_values)
    for name, s in settings:
        outs = []
        for genes, _, values in prepared:
            if name == "rank_value":
                r = rank_value(genes, values, gene_ids, s["max_genes"], s["cls"])
            elif name == "binned_uniform":
                r = binned(genes, values, gene_ids, s["max_genes"], s["cls"],
                           uniform_edges(s["n_bins"]), s["n_bins"])
            elif name == "binned_quantile":
                r = binned(genes, values, gene_ids, s["max_genes"], s["cls"], q_edges, s["n_bins"])
            else:
                r = continuous(genes, values, gene_ids, s["max_genes"], s["cls"], s["log1p"])
            outs.append({"ids": r[0], "values": r[1], "bin_ids": r[2]})
        cases.append({"name": name, "settings": s, "expected": outs})
    return {
        "n_genes": n_genes,
        "gene_ids": [int(x) for x in gene_ids],
        "target_sum": 1e4,
        "cells": [
            {"genes": [int(g) for g in genes], "counts": [float(c) for c in counts],
             "values": [float(v) for v in values]}
            for genes, counts, values in prepared
        ],
        "quantile_edges_7": [float(e) for e in q_edges],
        "uniform_edges_11": [float(e) for e in uniform_edges(11)],
        "cases": cases,
    }


def masking_fixture():
    rng = np.random.default_rng(11)
    vocab_size = 1000
    counts = {}
    for n_maskable in [1, 2, 3, 5, 7, 10, 13, 17, 23, 30, 49, 50, 100, 2047]:
        counts[str(n_maskable)] = max(1, round(n_maskable * 0.15))
    # statistics over many cells of 50 tokens (CLS + 49 genes)
    n_cells, length = 4000, 50
    n_masked = n_mask = n_random = n_keep = 0
    pos_hist = np.zeros(length)
    for _ in range(n_cells):
        ids = [CLS] + list(rng.integers(FIRST, vocab_size, size=length - 1))
        out, labels, masked = mask_cell(ids, rng, vocab_size)
        assert not masked[0]
        for i, m in enumerate(masked):
            if m:
                n_masked += 1
                pos_hist[i] += 1
                if out[i] == MASK:
                    n_mask += 1
                elif out[i] != ids[i]:
                    n_random += 1
                else:
                    n_keep += 1
    return {
        "vocab_size": vocab_size,
        "mask_ratio": 0.15,
        "random_replace_ratio": 0.1,
        "keep_ratio": 0.1,
        "n_masked_for_n_maskable": counts,
        "stats_cells": n_cells,
        "stats_length": length,
        "masked_per_cell": n_masked / n_cells,
        "frac_mask_token": n_mask / n_masked,
        "frac_random": n_random / n_masked,
        "frac_kept": n_keep / n_masked,
        "frac_per_position_sd": float(np.std(pos_hist[1:] / n_cells)),
    }


def write_gene_files():
    """Small files for the gene identifier tests."""
    rng = np.random.default_rng(3)

    def write(name, var_names, extra_var=None, n_obs=6):
        n_vars = len(var_names)
        x = sp.random(n_obs, n_vars, density=0.6, format="csr", random_state=rng,
                      data_rvs=lambda k: rng.integers(1, 9, size=k)).astype(np.float32)
        var = pd.DataFrame(index=pd.Index(var_names, dtype=str))
        for k, v in (extra_var or {}).items():
            var[k] = v
        obs = pd.DataFrame(
            {"cell_type": pd.Categorical(["a", "b"] * (n_obs // 2))},
            index=[f"c{i}" for i in range(n_obs)],
        )
        a = ad.AnnData(X=x, obs=obs, var=var)
        # anndata refuses duplicate names only with a warning; keep them
        a.write_h5ad(OUT / name)
        return a

    ens = [f"ENSG{1000 + j:011d}" for j in range(10)]
    # duplicates: the same symbol twice, and one Ensembl id with two versions
    dup = write(
        "genes_dup.h5ad",
        ["CD3E", "LYZ", "CD3E", f"{ens[0]}.1", f"{ens[0]}.2", "MS4A1"],
    )
    mixed = write("genes_mixed.h5ad", ["CD3E", "LYZ", ens[1], ens[2], "ENSA", "MS4A1"])
    dense_dup = np.asarray(dup.X.todense())
    return {
        "genes_dup": {
            "var_names": list(dup.var_names),
            "rows": dense_dup.tolist(),
        },
        "genes_mixed": {"var_names": list(mixed.var_names)},
    }


def pipeline_file():
    """A CSR file with unsorted indices and an empty cell, and its expected
    rank_value tokens under a vocabulary built from its genes."""
    rng = np.random.default_rng(5)
    n_obs, n_vars = 8, 12
    dense_x = rng.integers(0, 6, size=(n_obs, n_vars)).astype(np.float32)
    dense_x[dense_x < 3] = 0
    dense_x[3] = 0  # a cell with no expressed gene
    csr = sp.csr_matrix(dense_x)
    # scramble the column order within rows
    for i in range(n_obs):
        lo, hi = csr.indptr[i], csr.indptr[i + 1]
        perm = rng.permutation(hi - lo)
        csr.indices[lo:hi] = csr.indices[lo:hi][perm]
        csr.data[lo:hi] = csr.data[lo:hi][perm]
    csr.has_sorted_indices = False
    var_names = [f"G{j}" for j in range(n_vars)]
    obs = pd.DataFrame(
        {"cell_type": pd.Categorical(["t0", "t1", "t0", "t2", "t1", "t0", "t2", "t1"])},
        index=[f"c{i}" for i in range(n_obs)],
    )
    a = ad.AnnData(X=csr, obs=obs, var=pd.DataFrame(index=var_names))
    a.write_h5ad(OUT / "pipeline.h5ad")
    gene_ids = np.array([FIRST + j for j in range(n_vars)])
    expected = []
    for i in range(n_obs):
        row = dense_x[i]
        genes = np.nonzero(row)[0]
        values = preprocess(row[genes].astype(np.float64), 1e4, True)
        ids, vals, _ = rank_value(genes, values, gene_ids, 6, True)
        expected.append({"ids": ids, "values": vals})
    return {"max_genes": 6, "cells": expected,
            "cell_type_codes": [0, 1, 0, 2, 1, 0, 2, 1], "classes": ["t0", "t1", "t2"]}


def ties_file():
    """Dense X, values rounded to 3 decimals and negatives as in a scaled X:
    cells with more positive values than fit, ties at the cut and above it,
    few and many distinct values; the expected rank_value order is plain
    numpy: `np.argsort(-v, kind="stable")` over the file's column order."""
    rng = np.random.default_rng(18)
    n_obs, n_vars = 6, 700
    x = np.zeros((n_obs, n_vars), dtype=np.float32)
    # 0: 600 positive, hundreds of distinct values, long runs of ties
    x[0, :600] = np.round(rng.uniform(0.0, 1.0, 600), 3) + 0.001
    x[0, 100:160] = x[0, 50]
    # 1: as a scaled X: negatives, zeros and positive values of 3 decimals
    x[1] = np.round(rng.normal(0.0, 1.0, n_vars), 3)
    # 2: few distinct values (whole counts): ties everywhere
    x[2] = rng.integers(0, 6, n_vars)
    # 3: fewer positive values than fit, with ties
    x[3, ::5] = np.round(rng.uniform(0.0, 2.0, 140), 1) + 0.1
    # 4: hundreds of distinct values, one value shared far apart in the row
    x[4, :] = np.round(rng.uniform(-0.5, 2.0, n_vars), 3)
    x[4, 3::7] = 0.777
    # 5: every positive value equal
    x[5, 1::2] = 0.5
    for i in (0, 1, 4):
        v = x[i][x[i] > 0]
        order = np.argsort(-v, kind="stable")
        cut = v[order[254]]
        # ties at the cut of max_genes 256 with CLS (255 genes kept): the
        # cut value again, before and after it in column order
        pos = np.nonzero(x[i] > 0)[0]
        for j in (pos[3], pos[len(pos) // 2], pos[-2]):
            x[i, j] = cut
    x = x.astype(np.float32)
    var_names = [f"T{j}" for j in range(n_vars)]
    obs = pd.DataFrame(index=[f"c{i}" for i in range(n_obs)])
    ad.AnnData(X=x, obs=obs, var=pd.DataFrame(index=var_names)).write_h5ad(OUT / "ties.h5ad")
    gene_ids = np.array([FIRST + j for j in range(n_vars)])
    cases = []
    for max_genes, cls in [(256, True), (130, False), (8, True)]:
        cells = []
        for i in range(n_obs):
            genes = np.arange(n_vars)
            ids, vals, _ = rank_value(genes, x[i], gene_ids, max_genes, cls)
            cells.append({"ids": ids, "values": vals})
        cases.append({"max_genes": max_genes, "cls": cls, "cells": cells})
    stats = []
    for i in range(n_obs):
        v = x[i][x[i] > 0]
        order = np.argsort(-v, kind="stable")
        cut = v[order[254]] if len(v) > 255 else None
        stats.append({
            "positive": int(len(v)),
            "distinct": int(len(np.unique(v))),
            "tied_at_cut_256": int((v == cut).sum()) if cut is not None else 0,
        })
    return {"n_vars": n_vars, "cases": cases, "stats": stats}


def main():
    OUT.mkdir(parents=True, exist_ok=True)
    fixtures = {
        "tokenizer": tokenizer_fixture(),
        "masking": masking_fixture(),
        "genes": write_gene_files(),
        "pipeline": pipeline_file(),
        "ties": ties_file(),
    }
    (OUT / "expected.json").write_text(json.dumps(fixtures, indent=1) + "\n")
    print(f"wrote {OUT}")


if __name__ == "__main__":
    main()
