#!/usr/bin/env python3
"""Writes forge-core/tests/fixtures/data/geneformer_tokenize.json and the
dictionaries it uses (geneformer_medians.pkl, geneformer_tokens_v1.pkl,
geneformer_tokens_v2.pkl): synthetic PBMC-like counts tokenized by a plain
Python implementation of Geneformer's median-scaled rank, independent of
forge (forge-data/src/geneformer_tokenize.rs is tested against it for
exact token-id equality).

The rule (Geneformer's geneformer/tokenizer.py, see the Rust module docs):
  n_counts = the cell's sum over all genes of the file;
  genes kept: id in the token dictionary (special keys excluded) and in the
  median dictionary; duplicate ids summed, placed at their first column;
  value = count / n_counts * 10000 / median, in float64, left to right;
  nonzero genes sorted descending, ties in column order (a stable sort,
  = np.argsort(-x, kind="stable"));
  v1: tokens[:input_size]; v2: [<cls>] + tokens[:input_size - 2] + [<eos>].

It also counts the cells where Geneformer's own np.argsort(-x) (unstable
default) gives the same order, i.e. the cells whose order is not decided by
ties.

Run: .venv/bin/python scripts/make_geneformer_tokenizer_fixture.py
"""
import json
import os
import pickle

import numpy as np

OUT = os.path.join(os.path.dirname(__file__), "..", "forge-core", "tests", "fixtures", "data")
rng = np.random.default_rng(20)

N_GENES, N_CELLS = 300, 40
genes = [f"ENSG{i:011d}" for i in range(N_GENES)]
# Three columns repeat an earlier id (summed), one is a special key.
genes[250], genes[251], genes[252] = genes[3], genes[10], genes[3]
genes[253] = "<cls>"

# Medians: most continuous, a group of 40 genes sharing a few values (ties).
medians = {}
for i, g in enumerate(genes):
    if g.startswith("<") or i % 17 == 5:  # some genes have no median
        continue
    medians[g] = float(rng.choice([0.5, 1.0, 2.0])) if i < 40 else float(rng.lognormal(0.0, 0.7))
# Tokens: some genes absent; v2 ids shifted past four specials.
kept = [g for i, g in enumerate(dict.fromkeys(genes)) if not g.startswith("<") and i % 13 != 7]
tokens_v1 = {"<pad>": 0, "<mask>": 1}
tokens_v2 = {"<pad>": 0, "<mask>": 1, "<cls>": 2, "<eos>": 3}
for j, g in enumerate(kept):
    tokens_v1[g] = 2 + j
    tokens_v2[g] = 4 + j

# PBMC-like counts: gene means lognormal, cells with varied depth, NB noise.
gene_mean = rng.lognormal(-1.0, 1.5, N_GENES)
cells = []
for c in range(N_CELLS):
    depth = rng.choice([0.05, 0.3, 1.0, 3.0])
    mu = gene_mean * depth
    x = rng.negative_binomial(2, 2 / (2 + mu))
    idx = np.nonzero(x)[0]
    cells.append({"indices": idx.tolist(), "values": x[idx].astype(float).tolist()})


def reference(cell, tokens, input_size, special):
    total = sum(cell["values"])
    slot_of, slots = {}, []
    for g in genes:
        if g in ("<pad>", "<mask>", "<cls>", "<eos>") or g not in tokens or g not in medians:
            continue
        if g not in slot_of:
            slot_of[g] = len(slots)
            slots.append(g)
    summed = [0.0] * len(slots)
    for i, v in zip(cell["indices"], cell["values"]):
        g = genes[i]
        if g in slot_of:
            summed[slot_of[g]] += v
    scaled = [(x / total * 10000 / medians[g], tokens[g]) for x, g in zip(summed, slots) if x != 0]
    order = sorted(range(len(scaled)), key=lambda k: -scaled[k][0])  # stable
    ranked = [scaled[k][1] for k in order]
    unstable = [scaled[k][1] for k in np.argsort(-np.array([s[0] for s in scaled]))] if scaled else []
    ties = len({s[0] for s in scaled}) != len(scaled)
    if special:
        out = [tokens["<cls>"]] + ranked[: input_size - 2] + [tokens["<eos>"]]
    else:
        out = ranked[:input_size]
    return out, len(ranked) > (input_size - 2 if special else input_size), ties, unstable == ranked, len(slots)


fixture = {"genes": genes, "cells": cells, "stats": {}}
stats = fixture["stats"]
for key, tokens, size, special in [("v1", tokens_v1, 64, False), ("v2", tokens_v2, 48, True)]:
    res = [reference(c, tokens, size, special) for c in cells]
    fixture[key] = {"input_size": size, "expected": [r[0] for r in res]}
    stats[f"cells_truncated_{key}"] = sum(r[1] for r in res)
    if key == "v1":
        stats["cells_with_ties"] = sum(r[2] for r in res)
        stats["cells_geneformer_argsort_equal"] = sum(r[3] for r in res)
        stats["distinct_genes"] = res[0][4]
stats["matched_columns"] = sum(
    1 for g in genes if g not in ("<pad>", "<mask>", "<cls>", "<eos>") and g in tokens_v1 and g in medians
)

with open(os.path.join(OUT, "geneformer_tokenize.json"), "w") as f:
    json.dump(fixture, f, separators=(",", ":"))
for name, d in [("geneformer_medians.pkl", medians), ("geneformer_tokens_v1.pkl", tokens_v1),
                ("geneformer_tokens_v2.pkl", tokens_v2)]:
    with open(os.path.join(OUT, name), "wb") as f:
        pickle.dump(d, f)
print(stats)
