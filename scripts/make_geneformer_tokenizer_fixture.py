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


# ---------------------------------------------------------------------------
# The pipeline fixture (forge-data's `tokenizer.strategy: geneformer`): a tiny
# counts .h5ad, dictionaries as Geneformer ships them (pickle protocol 4 with
# NumPy scalar values: numpy.int16 token ids except <pad>/<mask>,
# numpy.float64 medians) and the same dictionaries as JSON, plus the tokens
# and scaled values of every cell from the plain Python rule above.
# Its own generator, so the fixtures written above do not change.
import anndata
import pandas as pd
import scipy.sparse as sp

prng = np.random.default_rng(2020)
P_GENES, P_CELLS = 40, 12
ens = [f"ENSG{900000 + i:011d}" for i in range(P_GENES)]
ens[30] = ens[4]  # a duplicate id: summed into the first column's gene
symbols = [f"GENE{i}" for i in range(P_GENES)]
p_medians = {g: float(prng.lognormal(0.0, 0.6)) for i, g in enumerate(ens) if i % 11 != 3}
p_genes_kept = [g for i, g in enumerate(dict.fromkeys(ens)) if i % 9 != 5]
p_tok_v1 = {"<pad>": 0, "<mask>": 1}
p_tok_v2 = {"<pad>": 0, "<mask>": 1, "<cls>": 2, "<eos>": 3}
for j, g in enumerate(p_genes_kept):
    p_tok_v1[g] = 2 + j
    p_tok_v2[g] = 4 + j
p_counts = np.zeros((P_CELLS, P_GENES), dtype=np.float32)
for c in range(P_CELLS):
    mu = prng.lognormal(-0.5, 1.2, P_GENES) * prng.choice([0.5, 2.0, 6.0])
    p_counts[c] = prng.negative_binomial(2, 2 / (2 + mu))
# Cell 5 expresses only genes outside the token dictionary: no gene token.
outside = [i for i, g in enumerate(ens) if g not in p_tok_v1 or g not in p_medians]
p_counts[5] = 0
p_counts[5, outside[:2]] = [3, 1]
# n_counts in obs (Geneformer reads it when present): the row sum plus
# counts of genes not in the file, as after a gene filter.
n_counts = p_counts.sum(axis=1).astype(np.float64) + prng.integers(0, 50, P_CELLS)


def p_reference(row, total, tokens, input_size, special):
    slots = []
    for g in ens:
        if g in tokens and g in p_medians and g not in slots:
            slots.append(g)
    summed = {g: 0.0 for g in slots}
    for i, g in enumerate(ens):
        if g in summed:
            summed[g] += float(row[i])
    scaled = [(summed[g] / total * 10000 / p_medians[g], tokens[g]) for g in slots if summed[g] != 0]
    scaled = sorted(scaled, key=lambda s: -s[0])  # stable: ties in column order
    ranked = scaled[: input_size - 2] if special else scaled[:input_size]
    ids = [t for _, t in ranked]
    vals = [v for v, _ in ranked]
    if special:
        ids = [tokens["<cls>"]] + ids + [tokens["<eos>"]]
        vals = [0.0] + vals + [0.0]
    return ids, vals


pipe = {"n_counts": n_counts.tolist()}
for key, tokens, size, special in [("v1", p_tok_v1, 16, False), ("v2", p_tok_v2, 12, True)]:
    res = [p_reference(p_counts[c], n_counts[c], tokens, size, special) for c in range(P_CELLS)]
    pipe[key] = {
        "input_size": size,
        "vocab_size": max(tokens.values()) + 1,
        "input_ids": [r[0] for r in res],
        "values": [r[1] for r in res],
    }
    assert any(len(r[0]) == size for r in res) and any(len(r[0]) < size for r in res)
with open(os.path.join(OUT, "geneformer_pipeline.json"), "w") as f:
    json.dump(pipe, f, indent=0)

adata = anndata.AnnData(
    X=sp.csr_matrix(p_counts),
    obs=pd.DataFrame(
        {
            "n_counts": n_counts,
            "cell_type": pd.Categorical(["T" if c % 2 else "B" for c in range(P_CELLS)]),
        },
        index=[f"cell{c}" for c in range(P_CELLS)],
    ),
    var=pd.DataFrame({"ensembl_id": ens}, index=symbols),
)
adata.write_h5ad(os.path.join(OUT, "geneformer_pipeline.h5ad"))


def np_scalars(d, kind):
    # As Geneformer's files: numpy.int16 ids (plain <pad>/<mask>), numpy.float64 medians.
    if kind == "int":
        return {k: (v if k in ("<pad>", "<mask>") else np.int16(v)) for k, v in d.items()}
    return {k: np.float64(v) for k, v in d.items()}


for name, d, kind in [("medians", p_medians, "float"), ("tokens_v1", p_tok_v1, "int"),
                      ("tokens_v2", p_tok_v2, "int")]:
    with open(os.path.join(OUT, f"geneformer_pipeline_{name}.pkl"), "wb") as f:
        pickle.dump(np_scalars(d, kind), f, protocol=4)
    with open(os.path.join(OUT, f"geneformer_pipeline_{name}.json"), "w") as f:
        json.dump(d, f)
print("pipeline fixture:", {k: len(v["input_ids"]) for k, v in pipe.items() if k != "n_counts"})
