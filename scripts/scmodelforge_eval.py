"""scModelForge's evaluation pipeline in plain PyTorch: what its `benchmark`
command embeds for a checkpoint folder and an `.h5ad` file.

This is the reference `forge embed` is checked against (tests/integration/
embed_parity.rs). It follows scModelForge's own path, not only its modules:

- cells are read from `X` as stored (no preprocessing: the evaluation path
  builds its dataset without a preprocessing pipeline);
- a file's genes are aligned to the vocabulary by exact name, in the file's
  column order; genes the vocabulary lacks are dropped;
- only values > 0 reach the tokenizer (the store filters them), so zeros
  and negative values never become tokens, whatever the strategy;
- rank_value ranks by value, descending, with a stable sort (ties keep the
  file's column order), then truncates to max_genes (one less with CLS);
  binned_expression and continuous_projection keep column order and
  truncate; CLS gets value 0 (and bin 0);
- cells are padded to the longest in each batch of 256, the model runs in
  eval mode under no_grad, and `encode(input_ids, attention_mask, values)`
  gives the embedding.

Modes (run with the project's venv, .venv/bin/python):

- `make OUT DATA`: writes under OUT one scModelForge checkpoint folder per
  configuration of `CONFIGS` (config.json, model.safetensors,
  gene_vocab.json, README.md, as save_pretrained writes them) and, beside
  each, `<name>.expected.npy`: the embeddings of DATA's cells. Also
  `cases.json`: the extra `forge embed` flags each configuration needs
  (none, except where a configuration tests a forge flag).
- `embed CHECKPOINT DATA OUT.npy [--use-raw]`: loads any checkpoint folder
  strictly (scModelForge's load_pretrained layout rules) and writes the
  embeddings of DATA's cells.
"""

from __future__ import annotations

import json
import os
import sys

import anndata as ad
import numpy as np
import scipy.sparse as sp
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from make_model_fixtures import (  # noqa: E402
    CLS,
    MODELS,
    load_checkpoint,
    model_config,
    tokenizer_config,
    write_checkpoint,
)

BATCH = 256


# --- reading cells as scModelForge's store does -----------------------------


def read_cells(path, use_raw=False):
    """(matrix, gene names) of `X`, or of `raw` when asked."""
    adata = ad.read_h5ad(path)
    if use_raw:
        return adata.raw.X, list(adata.raw.var_names)
    return adata.X, list(adata.var_names)


def aligned_cells(matrix, names, vocab):
    """Per cell: (values > 0 as float32, their vocabulary ids), in the file's
    column order over the genes the vocabulary has."""
    source = np.array([i for i, g in enumerate(names) if g in vocab], dtype=np.int64)
    ids = np.array([vocab[names[i]] for i in source], dtype=np.int64)
    for i in range(matrix.shape[0]):
        row = matrix[i]
        row = row.toarray().ravel() if sp.issparse(row) else np.asarray(row).ravel()
        aligned = row[source]
        keep = aligned > 0
        yield aligned[keep].astype(np.float32), ids[keep]


# --- tokenizers -------------------------------------------------------------


def bin_ids(values, n_bins, value_max=10.0):
    """Uniform edges over 0..value_max; zero is bin 0."""
    edges = torch.as_tensor(np.linspace(0.0, value_max, n_bins + 1)[1:-1], dtype=values.dtype)
    bins = torch.bucketize(values, edges, right=False).clamp(0, n_bins - 1)
    bins[values == 0] = 0
    return bins.long()


def tokenize(values, ids, t):
    values = torch.as_tensor(values, dtype=torch.float32)
    ids = torch.as_tensor(ids, dtype=torch.long)
    if t["strategy"] == "rank_value":
        order = torch.argsort(-values, stable=True)
        values, ids = values[order], ids[order]
    elif t["strategy"] not in ("binned_expression", "continuous_projection"):
        raise ValueError(f"no reference for tokenizer {t['strategy']!r}")
    budget = t["max_genes"] - (1 if t["prepend_cls"] else 0)
    values, ids = values[:budget], ids[:budget]
    bins = bin_ids(values, t["n_bins"]) if t["strategy"] == "binned_expression" else None
    if t["prepend_cls"]:
        ids = torch.cat([torch.tensor([CLS]), ids])
        values = torch.cat([torch.zeros(1), values])
        if bins is not None:
            bins = torch.cat([torch.zeros(1, dtype=torch.long), bins])
    return ids, values, bins


def collate(cells):
    """Pads to the longest cell: ids 0, mask 0, values 0."""
    width = max(len(ids) for ids, _, _ in cells)
    out = {
        "input_ids": torch.zeros(len(cells), width, dtype=torch.long),
        "attention_mask": torch.zeros(len(cells), width, dtype=torch.long),
        "values": torch.zeros(len(cells), width),
    }
    for i, (ids, values, _) in enumerate(cells):
        n = len(ids)
        out["input_ids"][i, :n] = ids
        out["attention_mask"][i, :n] = 1
        out["values"][i, :n] = values
    return out


def embed(model, matrix, names, vocab, t):
    model.eval()
    tokenized = [tokenize(v, g, t) for v, g in aligned_cells(matrix, names, vocab)]
    rows = []
    with torch.no_grad():
        for start in range(0, len(tokenized), BATCH):
            b = collate(tokenized[start : start + BATCH])
            rows.append(model.encode(b["input_ids"], b["attention_mask"], values=b["values"]))
    return torch.cat(rows).numpy().astype(np.float32)


# --- the configurations forge is checked on ---------------------------------

BASE = dict(hidden_dim=64, num_layers=2, num_heads=4, max_seq_len=256)
RANK = dict(strategy="rank_value", max_genes=256, prepend_cls=True)

# name -> (model_config overrides, tokenizer_config overrides, vocab rule,
#          forge embed flags). Dropout stays at scModelForge's default 0.1,
# so every case also checks that embedding runs in eval mode.
CONFIGS = {
    # The four of the issue: rank_value with CLS, 256 tokens.
    "te_cls": (dict(architecture="transformer_encoder", pooling="cls"), RANK, "file", []),
    "te_mean": (dict(architecture="transformer_encoder", pooling="mean"), RANK, "file", []),
    "ar": (dict(architecture="autoregressive_transformer"), RANK, "file", []),
    "mae": (dict(architecture="masked_autoencoder", pooling="mean"), RANK, "file", []),
    # Other tokenizers: only positive values reach them, in column order.
    "te_binned": (
        dict(architecture="transformer_encoder", pooling="mean"),
        dict(strategy="binned_expression", max_genes=200, n_bins=51),
        "file",
        [],
    ),
    "mae_continuous": (
        dict(architecture="masked_autoencoder", pooling="mean"),
        dict(strategy="continuous_projection", max_genes=128),
        "file",
        [],
    ),
    # No CLS: mean pooling over real tokens only.
    "te_no_cls": (
        dict(architecture="transformer_encoder", pooling="mean"),
        dict(RANK, prepend_cls=False),
        "file",
        [],
    ),
    # A vocabulary that lacks a third of the file's genes and has others the
    # file lacks, with ids in another order: missing genes are dropped.
    "te_partial_vocab": (dict(architecture="transformer_encoder", pooling="mean"), RANK, "partial", []),
    # forge's --use-raw reads adata.raw (CSR) as the reference reads it.
    "te_raw": (dict(architecture="transformer_encoder", pooling="cls"), RANK, "raw", ["--use-raw", "true"]),
}


def vocabulary(names, rule, seed):
    if rule in ("file", "raw"):
        return {g: i + 4 for i, g in enumerate(names)}
    rng = np.random.default_rng(seed)
    kept = [g for i, g in enumerate(names) if i % 3 != 1] + [f"NOT_IN_FILE_{i}" for i in range(40)]
    rng.shuffle(kept)
    return {g: i + 4 for i, g in enumerate(kept)}


def make(out, data):
    os.makedirs(out, exist_ok=True)
    cases = {}
    for k, (name, (m_over, t_over, rule, flags)) in enumerate(CONFIGS.items()):
        matrix, names = read_cells(data, use_raw=rule == "raw")
        vocab = vocabulary(names, rule, seed=k)
        m_config = model_config(**BASE, vocab_size=max(vocab.values()) + 1, **m_over)
        t_config = tokenizer_config(**t_over)
        torch.manual_seed(1000 + k)
        model = MODELS[m_config["architecture"]](m_config)
        with torch.no_grad():
            # Non-trivial biases and LayerNorm parameters, so that their
            # wiring shows in the embeddings (init leaves them 0 and 1).
            for p in model.parameters():
                if p.dim() == 1:
                    p.add_(0.1 * torch.randn_like(p))
        write_checkpoint(os.path.join(out, name), model, m_config, t_config, vocab)
        np.save(os.path.join(out, f"{name}.expected.npy"), embed(model, matrix, names, vocab, t_config))
        cases[name] = flags
    with open(os.path.join(out, "cases.json"), "w") as f:
        json.dump(cases, f, indent=1)


def embed_checkpoint(directory, data, out, use_raw):
    model, _ = load_checkpoint(directory)
    with open(os.path.join(directory, "config.json")) as f:
        t_config = tokenizer_config(**json.load(f)["tokenizer_config"])
    with open(os.path.join(directory, "gene_vocab.json")) as f:
        vocab = json.load(f)
    matrix, names = read_cells(data, use_raw)
    np.save(out, embed(model, matrix, names, vocab, t_config))


def main(argv):
    if len(argv) == 3 and argv[0] == "make":
        make(argv[1], argv[2])
    elif len(argv) in (4, 5) and argv[0] == "embed" and argv[4:] in ([], ["--use-raw"]):
        embed_checkpoint(argv[1], argv[2], argv[3], use_raw=len(argv) == 5)
    else:
        sys.exit(__doc__)


if __name__ == "__main__":
    main(sys.argv[1:])
