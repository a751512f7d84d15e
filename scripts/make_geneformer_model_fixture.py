#!/usr/bin/env python3
"""Regenerate the Hugging Face reference of forge's `geneformer` model.

Builds a tiny `BertForMaskedLM` (Geneformer's architecture: post-norm BERT,
`hidden_act="relu"`, `layer_norm_eps=1e-12`, absolute positions) with
`transformers`, gives every parameter random values (seeded), and writes:

- forge-core/tests/fixtures/models/geneformer_hf/: the folder exactly as
  `save_pretrained` writes it (`config.json`, `model.safetensors`; the tied
  decoder weight is not in the file);
- forge-core/tests/fixtures/models/geneformer_hf.expected.safetensors: a
  padded batch of three cells in Geneformer V2's layout (`<cls>` first,
  `<eos>` last, `<pad>` 0 after) with its attention mask and MLM labels, and
  what `transformers` computes for it in evaluation mode: the MLM logits,
  every hidden state (`hidden_states.{i}`, `num_hidden_layers + 1` of them,
  the embedding output first), the MLM loss, and cell embeddings as
  Geneformer's `EmbExtractor` computes them (`emb_mode="cell"`):
  `cell_emb_layer_m1` (`emb_layer=-1`: the second-to-last layer's output,
  mean over non-padding positions without `<cls>` and `<eos>`),
  `cell_emb_layer_0` (`emb_layer=0`: the last layer, same mean) and
  `cell_emb_no_special` (`emb_layer=-1` with a V1 dictionary, which has no
  `<cls>`/`<eos>`: the mean over every non-padding position).

Run from the repository root (needs `transformers`, see PY_PACKAGES in
scripts/setup.sh):

    .venv/bin/python scripts/make_geneformer_model_fixture.py

The outputs are committed; the Rust tests never need Python.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import torch
from safetensors.torch import save_file
from transformers import BertConfig, BertForMaskedLM

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "forge-core" / "tests" / "fixtures" / "models"
FOLDER = OUT / "geneformer_hf"

PAD, MASK, CLS, EOS = 0, 1, 2, 3
VOCAB = 60
LAYERS = 2


def mean_nonpadding(embs: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
    """Geneformer's `mean_nonpadding_embs`: sum of positions < length / length."""
    mask = torch.arange(embs.size(1)).unsqueeze(0) < lengths.unsqueeze(1)
    return (embs * mask.unsqueeze(-1)).sum(1) / lengths.unsqueeze(1)


def cell_embeddings(hidden: torch.Tensor, lengths: torch.Tensor, specials: bool) -> torch.Tensor:
    """`get_embs(emb_mode="cell")`: with `<cls>` in the dictionary the first
    position is dropped and the length reduced by one, by two with `<eos>`
    as well (the `<eos>` then lies past the reduced length)."""
    if specials:
        return mean_nonpadding(hidden[:, 1:, :], lengths - 2)
    return mean_nonpadding(hidden, lengths)


def main() -> None:
    torch.manual_seed(20)
    config = BertConfig(
        vocab_size=VOCAB,
        hidden_size=16,
        num_hidden_layers=LAYERS,
        num_attention_heads=4,
        intermediate_size=32,
        hidden_act="relu",
        hidden_dropout_prob=0.02,
        attention_probs_dropout_prob=0.02,
        max_position_embeddings=32,
        type_vocab_size=2,
        initializer_range=0.02,
        layer_norm_eps=1e-12,
        pad_token_id=PAD,
        position_embedding_type="absolute",
        cls_token_id=CLS,
        eos_token_id=EOS,
    )
    model = BertForMaskedLM(config).eval()
    # Random values everywhere (LayerNorm scales and all biases included),
    # large enough that every part of the model shows in the outputs.
    with torch.no_grad():
        for _, p in model.named_parameters():
            p.normal_(0.0, 0.5)
        model.bert.embeddings.LayerNorm.weight.add_(1.0)
    model.tie_weights()

    if FOLDER.exists():
        shutil.rmtree(FOLDER)
    model.save_pretrained(FOLDER)

    # Three cells: <cls> genes <eos>, padded with <pad> to the longest.
    genes = torch.randint(4, VOCAB, (3, 8))
    lengths = torch.tensor([10, 6, 3])
    seq = int(lengths.max())
    input_ids = torch.full((3, seq), PAD, dtype=torch.long)
    for i, n in enumerate(lengths.tolist()):
        input_ids[i, 0] = CLS
        input_ids[i, 1 : n - 1] = genes[i, : n - 2]
        input_ids[i, n - 1] = EOS
    attention_mask = (torch.arange(seq).unsqueeze(0) < lengths.unsqueeze(1)).long()
    labels = torch.full((3, seq), -100, dtype=torch.long)
    for cell, pos in [(0, 2), (0, 5), (1, 1), (1, 4), (2, 1)]:
        labels[cell, pos] = input_ids[cell, pos]
    masked_ids = input_ids.clone()
    masked_ids[labels != -100] = MASK

    with torch.no_grad():
        out = model(
            input_ids=masked_ids,
            attention_mask=attention_mask,
            labels=labels,
            output_hidden_states=True,
        )
        plain = model(
            input_ids=input_ids, attention_mask=attention_mask, output_hidden_states=True
        )
    tensors = {
        "input_ids": input_ids,
        "masked_input_ids": masked_ids,
        "attention_mask": attention_mask,
        "labels": labels,
        "mlm_logits": out.logits.contiguous(),
        "mlm_loss": out.loss.reshape(1),
        "logits": plain.logits.contiguous(),
    }
    for i, h in enumerate(plain.hidden_states):
        tensors[f"hidden_states.{i}"] = h.contiguous()
    second_to_last = plain.hidden_states[LAYERS - 1]
    tensors["cell_emb_layer_m1"] = cell_embeddings(second_to_last, lengths, True)
    tensors["cell_emb_layer_0"] = cell_embeddings(plain.hidden_states[LAYERS], lengths, True)
    tensors["cell_emb_no_special"] = cell_embeddings(second_to_last, lengths, False)
    save_file(
        {k: v.contiguous() for k, v in tensors.items()},
        OUT / "geneformer_hf.expected.safetensors",
    )
    keys = sorted(json.loads((FOLDER / "config.json").read_text()))
    print(f"wrote {FOLDER} (config keys: {', '.join(keys)})")


if __name__ == "__main__":
    main()
