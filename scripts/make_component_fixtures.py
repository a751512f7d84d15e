"""Reference fixtures for forge-core's components, built with PyTorch.

Builds the PyTorch modules scModelForge's components are made of (same
architecture, names and init rules), then writes, under
forge-core/tests/fixtures/components/:

- param_counts.json: parameter names, shapes and counts per component for
  vocab 100, hidden 64, 2 layers, 4 heads, max_seq_len 32, n_bins 51.
- <case>.safetensors: weights (under their state-dict names) plus inputs and
  expected outputs (keys prefixed `input.` / `expected.`), in eval mode.

Run with the project's venv:  .venv/bin/python scripts/make_component_fixtures.py
"""

from __future__ import annotations

import json
import os

import torch
import torch.nn as nn
import torch.nn.functional as F
from safetensors.torch import save_file

OUT = os.path.join(os.path.dirname(__file__), "..", "forge-core", "tests", "fixtures", "components")


def init_weights(module: nn.Module) -> None:
    if isinstance(module, nn.Linear):
        nn.init.xavier_uniform_(module.weight)
        if module.bias is not None:
            nn.init.zeros_(module.bias)
    elif isinstance(module, nn.Embedding):
        nn.init.normal_(module.weight, mean=0.0, std=0.02)
        if module.padding_idx is not None:
            with torch.no_grad():
                module.weight[module.padding_idx].zero_()
    elif isinstance(module, nn.LayerNorm):
        nn.init.ones_(module.weight)
        nn.init.zeros_(module.bias)


class GeneExpressionEmbedding(nn.Module):
    def __init__(self, vocab_size, hidden_dim, max_seq_len, dropout, use_expression_values=True):
        super().__init__()
        self.gene_embedding = nn.Embedding(vocab_size, hidden_dim, padding_idx=0)
        self.position_embedding = nn.Embedding(max_seq_len, hidden_dim)
        self.expression_proj = nn.Linear(1, hidden_dim) if use_expression_values else None
        self.layer_norm = nn.LayerNorm(hidden_dim, eps=1e-12)
        self.dropout = nn.Dropout(dropout)

    def forward(self, input_ids, values=None):
        positions = torch.arange(input_ids.size(1), device=input_ids.device)
        h = self.gene_embedding(input_ids) + self.position_embedding(positions).unsqueeze(0)
        if self.expression_proj is not None and values is not None:
            h = h + self.expression_proj(values.unsqueeze(-1))
        return self.dropout(self.layer_norm(h))


class MaskedGenePredictionHead(nn.Module):
    def __init__(self, hidden_dim, out_dim):
        super().__init__()
        self.dense = nn.Linear(hidden_dim, hidden_dim)
        self.layer_norm = nn.LayerNorm(hidden_dim, eps=1e-12)
        self.decoder = nn.Linear(hidden_dim, out_dim)

    def forward(self, h):
        return self.decoder(self.layer_norm(F.gelu(self.dense(h))))


class ExpressionPredictionHead(nn.Module):
    def __init__(self, hidden_dim):
        super().__init__()
        self.dense = nn.Linear(hidden_dim, hidden_dim)
        self.output = nn.Linear(hidden_dim, 1)

    def forward(self, h):
        return self.output(F.gelu(self.dense(h))).squeeze(-1)


def encoder(hidden_dim, num_heads, ffn_dim, num_layers, dropout=0.0, activation="gelu"):
    layer = nn.TransformerEncoderLayer(
        d_model=hidden_dim,
        nhead=num_heads,
        dim_feedforward=ffn_dim,
        dropout=dropout,
        activation=activation,
        batch_first=True,
        norm_first=True,
        layer_norm_eps=1e-12,
    )
    return nn.TransformerEncoder(layer, num_layers=num_layers, enable_nested_tensor=False)


def init(module):
    module.apply(init_weights)
    return module


def describe(module):
    return {
        "total": sum(p.numel() for p in module.parameters()),
        "parameters": {name: list(p.shape) for name, p in module.state_dict().items()},
    }


def save_case(name, module, inputs, expected):
    tensors = {k: v.detach().contiguous() for k, v in module.state_dict().items()}
    tensors.update({f"input.{k}": v.contiguous() for k, v in inputs.items()})
    tensors.update({f"expected.{k}": v.detach().contiguous() for k, v in expected.items()})
    save_file(tensors, os.path.join(OUT, f"{name}.safetensors"))


def padded_mask(lengths, seq_len):
    return (torch.arange(seq_len)[None, :] < torch.tensor(lengths)[:, None]).long()


def main():
    os.makedirs(OUT, exist_ok=True)
    torch.manual_seed(0)
    V, H, L, NH, S = 100, 64, 2, 4, 32
    counts = {
        "embedding": describe(init(GeneExpressionEmbedding(V, H, S, 0.1))),
        "embedding_no_values": describe(init(GeneExpressionEmbedding(V, H, S, 0.1, False))),
        "masked_gene_head": describe(init(MaskedGenePredictionHead(H, V))),
        "bin_head": describe(init(MaskedGenePredictionHead(H, 51))),
        "expression_head": describe(init(ExpressionPredictionHead(H))),
        "encoder": describe(init(encoder(H, NH, 4 * H, L))),
        "encoder_ffn_128": describe(init(encoder(H, NH, 128, L))),
    }
    with open(os.path.join(OUT, "param_counts.json"), "w") as f:
        json.dump(counts, f, indent=1, sort_keys=True)

    # Numerics: small sizes keep the fixture files tiny.
    V, H, NH, F_, L, S, B = 50, 16, 2, 40, 2, 7, 3
    lengths = [7, 5, 2]
    mask = padded_mask(lengths, S)
    ids = torch.randint(4, V, (B, S)) * mask
    values = torch.rand(B, S) * mask

    emb = init(GeneExpressionEmbedding(V, H, 16, 0.1)).eval()
    with torch.no_grad():
        save_case("embedding", emb, {"input_ids": ids, "values": values},
                  {"with_values": emb(ids, values), "without_values": emb(ids)})

    x = torch.randn(B, S, H)
    for activation in ("gelu", "relu"):
        enc = init(encoder(H, NH, F_, L, activation=activation)).eval()
        pad = mask == 0
        causal = torch.triu(torch.full((S, S), float("-inf")), diagonal=1)
        with torch.no_grad():
            out = enc(x, src_key_padding_mask=pad)
            pad_float = torch.zeros(B, S).masked_fill(pad, float("-inf"))
            out_causal = enc(x, mask=causal, src_key_padding_mask=pad_float)
        save_case(f"encoder_{activation}", enc, {"x": x, "attention_mask": mask},
                  {"padding": out, "causal": out_causal})

    head = init(MaskedGenePredictionHead(H, V)).eval()
    ehead = init(ExpressionPredictionHead(H)).eval()
    with torch.no_grad():
        save_case("masked_gene_head", head, {"hidden": x}, {"logits": head(x)})
        save_case("expression_head", ehead, {"hidden": x}, {"values": ehead(x)})
    print("wrote fixtures to", os.path.normpath(OUT))


if __name__ == "__main__":
    main()
