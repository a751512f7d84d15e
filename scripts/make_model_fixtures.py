"""PyTorch reference for forge's three models, and the fixtures that prove
the Rust port equal to it.

The modules below are the scModelForge reference models as the behaviour
notes describe them (`transformer_encoder`, `autoregressive_transformer`,
`masked_autoencoder`): same architecture, parameter names and init rules,
built from the component modules of `make_component_fixtures.py`.

Modes:

- no arguments: writes, under forge-core/tests/fixtures/models/,
  * `param_counts.json`: parameter names, shapes and counts per model for
    vocab 100, hidden 64, 2 layers, 4 heads, max_seq_len 32, defaults
    otherwise;
  * one scModelForge checkpoint folder per model (`config.json`,
    `model.safetensors`, `gene_vocab.json`, `README.md`), tiny sizes;
  * `<model>.cases.safetensors`: a padded batch (`input.*`) and what the
    PyTorch model computes on it in eval mode (`expected.*`).
- `run CHECKPOINT_DIR INPUTS OUT`: loads a checkpoint folder (e.g. one
  written by forge) into the PyTorch model, strictly, runs the same cases
  on the batch in INPUTS (a safetensors file of `input.*` tensors) and
  writes the `expected.*` outputs to OUT. forge's tests use this to check
  that what forge writes loads in PyTorch and computes the same.

Expected outputs are computed in eval mode with autograd on: that keeps
PyTorch off its fused inference fast path, so every position (padding
included) is computed the plain, documented way.

Run with the project's venv:  .venv/bin/python scripts/make_model_fixtures.py
"""

from __future__ import annotations

import json
import os
import sys

import torch
import torch.nn as nn
import torch.nn.functional as F
from safetensors.torch import load_file, save_file

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from make_component_fixtures import (  # noqa: E402
    ExpressionPredictionHead,
    GeneExpressionEmbedding,
    MaskedGenePredictionHead,
    encoder,
    init_weights,
    padded_mask,
)

OUT = os.path.join(os.path.dirname(__file__), "..", "forge-core", "tests", "fixtures", "models")
IGNORE_INDEX = -100
PAD, MASK, CLS, FIRST_GENE = 0, 2, 3, 4
SCMODELFORGE_VERSION = "0.1.0"


def model_config(**overrides):
    """scModelForge's ModelConfig defaults, with overrides."""
    config = {
        "architecture": "transformer_encoder",
        "hidden_dim": 512,
        "num_layers": 12,
        "num_heads": 8,
        "ffn_dim": None,
        "dropout": 0.1,
        "max_seq_len": 2048,
        "pooling": "cls",
        "activation": "gelu",
        "use_expression_values": True,
        "pretraining_task": "masked_gene_prediction",
        "mask_ratio": 0.15,
        "vocab_size": None,
        "n_bins": 51,
        "gene_loss_weight": 1.0,
        "expression_loss_weight": 1.0,
        "decoder_dim": None,
        "decoder_layers": 4,
        "decoder_heads": None,
    }
    unknown = set(overrides) - set(config)
    assert not unknown, f"not ModelConfig keys: {unknown}"
    config.update(overrides)
    return config


def tokenizer_config(**overrides):
    """scModelForge's TokenizerConfig defaults, with overrides."""
    config = {
        "strategy": "rank_value",
        "max_genes": 2048,
        "gene_vocab": None,
        "prepend_cls": True,
        "n_bins": 51,
        "binning_method": "uniform",
        "embedding_path": None,
        "embedding_dim": 200,
        "masking": {"mask_ratio": 0.15, "random_replace_ratio": 0.1, "keep_ratio": 0.1},
    }
    config.update(overrides)
    return config


def pool(strategy, hidden, attention_mask):
    if strategy == "cls":
        return hidden[:, 0]
    if strategy == "mean":
        mask = attention_mask.unsqueeze(-1).to(hidden.dtype)
        return (hidden * mask).sum(1) / mask.sum(1).clamp(min=1)
    raise ValueError(f"Unknown pooling strategy: {strategy!r}")


def build_embedding(c):
    return GeneExpressionEmbedding(
        c["vocab_size"], c["hidden_dim"], c["max_seq_len"], c["dropout"], c["use_expression_values"]
    )


def build_encoder(c):
    H = c["hidden_dim"]
    return encoder(H, c["num_heads"], c["ffn_dim"] or 4 * H, c["num_layers"], c["dropout"], c["activation"])


class TransformerEncoderModel(nn.Module):
    """`transformer_encoder`: embedding -> encoder (padding mask) -> head."""

    def __init__(self, c):
        super().__init__()
        self.pooling = c["pooling"]
        self.embedding = build_embedding(c)
        self.encoder = build_encoder(c)
        self.head = MaskedGenePredictionHead(c["hidden_dim"], c["vocab_size"])
        self.apply(init_weights)

    def hidden(self, input_ids, attention_mask, values):
        x = self.embedding(input_ids, values)
        return self.encoder(x, src_key_padding_mask=attention_mask == 0)

    def forward(self, input_ids, attention_mask, values=None, labels=None, **_):
        hidden = self.hidden(input_ids, attention_mask, values)
        logits = self.head(hidden)
        loss = None
        if labels is not None:
            loss = F.cross_entropy(logits.view(-1, logits.size(-1)), labels.view(-1), ignore_index=IGNORE_INDEX)
        return {"loss": loss, "logits": logits, "embeddings": pool(self.pooling, hidden, attention_mask)}

    def encode(self, input_ids, attention_mask, values=None, **_):
        return pool(self.pooling, self.hidden(input_ids, attention_mask, values), attention_mask)


class AutoregressiveTransformer(nn.Module):
    """`autoregressive_transformer`: causal encoder, gene and bin heads."""

    def __init__(self, c):
        super().__init__()
        self.pooling = c["pooling"]
        self.gene_loss_weight = c["gene_loss_weight"]
        self.expression_loss_weight = c["expression_loss_weight"]
        self.embedding = build_embedding(c)
        self.encoder = build_encoder(c)
        self.gene_head = MaskedGenePredictionHead(c["hidden_dim"], c["vocab_size"])
        self.expression_head = MaskedGenePredictionHead(c["hidden_dim"], c["n_bins"])
        self.apply(init_weights)

    def forward(self, input_ids, attention_mask, values=None, labels=None, bin_ids=None, **_):
        S = input_ids.size(1)
        x = self.embedding(input_ids, values)
        causal = torch.triu(torch.full((S, S), float("-inf")), diagonal=1)
        padding = torch.zeros(attention_mask.shape).masked_fill(attention_mask == 0, float("-inf"))
        hidden = self.encoder(x, mask=causal, src_key_padding_mask=padding)
        logits = self.gene_head(hidden)
        loss = None
        if labels is not None:
            gene = F.cross_entropy(logits.view(-1, logits.size(-1)), labels.view(-1), ignore_index=IGNORE_INDEX)
            loss = self.gene_loss_weight * gene
            if bin_ids is not None:
                bin_logits = self.expression_head(hidden)
                targets = bin_ids.masked_fill(labels == IGNORE_INDEX, IGNORE_INDEX)
                bins = F.cross_entropy(
                    bin_logits.view(-1, bin_logits.size(-1)), targets.view(-1), ignore_index=IGNORE_INDEX
                )
                loss = loss + self.expression_loss_weight * bins
        return {"loss": loss, "logits": logits, "embeddings": pool(self.pooling, hidden, attention_mask)}

    def encode(self, input_ids, attention_mask, values=None, **_):
        x = self.embedding(input_ids, values)
        hidden = self.encoder(x, src_key_padding_mask=attention_mask == 0)
        return pool(self.pooling, hidden, attention_mask)


class MaskedAutoencoder(nn.Module):
    """`masked_autoencoder`: encoder over visible tokens, decoder over all."""

    def __init__(self, c):
        super().__init__()
        H = c["hidden_dim"]
        D = c["decoder_dim"] or H // 2
        self.pooling = c["pooling"]
        self.embedding = build_embedding(c)
        self.encoder = build_encoder(c)
        self.enc_to_dec = nn.Linear(H, D)
        self.mask_token = nn.Parameter(torch.zeros(1, 1, D))
        self.decoder_position_embedding = nn.Embedding(c["max_seq_len"], D)
        self.decoder = encoder(D, c["decoder_heads"] or c["num_heads"], 4 * D, c["decoder_layers"], c["dropout"],
                               c["activation"])
        self.expression_head = ExpressionPredictionHead(D)
        self.apply(init_weights)
        nn.init.normal_(self.mask_token, std=0.02)

    def forward(self, input_ids, attention_mask, values=None, labels=None, masked_positions=None, **_):
        B, S = input_ids.shape
        if masked_positions is None and labels is not None:
            masked_positions = labels != IGNORE_INDEX
        emb = self.embedding(input_ids, values)
        padding = attention_mask == 0
        embeddings = pool(self.pooling, self.encoder(emb, src_key_padding_mask=padding), attention_mask)
        if masked_positions is None or not masked_positions.any():
            return {"loss": None, "logits": None, "embeddings": embeddings}
        masked_positions = masked_positions.bool()
        visible = ~masked_positions & attention_mask.bool()
        k = int(visible.sum(1).max())
        dec = self.mask_token.expand(B, S, -1).clone()
        if k > 0:
            packed = emb.new_zeros(B, k, emb.size(-1))
            packed_padding = torch.ones(B, k, dtype=torch.bool)
            where = [visible[i].nonzero(as_tuple=True)[0] for i in range(B)]
            for i, idx in enumerate(where):
                packed[i, : len(idx)] = emb[i, idx]
                packed_padding[i, : len(idx)] = False
            projected = self.enc_to_dec(self.encoder(packed, src_key_padding_mask=packed_padding))
            for i, idx in enumerate(where):
                dec[i, idx] = projected[i, : len(idx)]
        dec = dec + self.decoder_position_embedding(torch.arange(S)).unsqueeze(0)
        predicted = self.expression_head(self.decoder(dec, src_key_padding_mask=padding))
        loss = None
        if values is not None:
            loss = F.mse_loss(predicted[masked_positions], values[masked_positions])
        return {"loss": loss, "logits": predicted, "embeddings": embeddings}

    def encode(self, input_ids, attention_mask, values=None, **_):
        emb = self.embedding(input_ids, values)
        return pool(self.pooling, self.encoder(emb, src_key_padding_mask=attention_mask == 0), attention_mask)


MODELS = {
    "transformer_encoder": TransformerEncoderModel,
    "autoregressive_transformer": AutoregressiveTransformer,
    "masked_autoencoder": MaskedAutoencoder,
}


def describe(module):
    return {
        "total": sum(p.numel() for p in module.parameters() if p.requires_grad),
        "parameters": {name: list(p.shape) for name, p in module.state_dict().items()},
    }


# --- checkpoint folders, the scModelForge layout -------------------------


def write_checkpoint(directory, model, m_config, t_config, vocab, extra_model_keys=None):
    """config.json, model.safetensors, gene_vocab.json and README.md."""
    os.makedirs(directory, exist_ok=True)
    config = {
        "scmodelforge_version": SCMODELFORGE_VERSION,
        "model_type": m_config["architecture"],
        "model_config": dict(m_config, **(extra_model_keys or {})),
        "tokenizer_config": t_config,
    }
    with open(os.path.join(directory, "config.json"), "w") as f:
        json.dump(config, f, indent=2)
    weights = {k: v.detach().contiguous() for k, v in model.state_dict().items()}
    save_file(weights, os.path.join(directory, "model.safetensors"))
    with open(os.path.join(directory, "gene_vocab.json"), "w") as f:
        json.dump(vocab, f, indent=2)
    with open(os.path.join(directory, "README.md"), "w") as f:
        f.write(f"# scModelForge Model\n\n**Architecture:** {m_config['architecture']}\n")


def load_checkpoint(directory):
    """Builds the PyTorch model a checkpoint folder describes and loads its
    weights strictly; checks the vocabulary and model card are there."""
    with open(os.path.join(directory, "config.json")) as f:
        config = json.load(f)
    for key in ("scmodelforge_version", "model_type", "model_config", "tokenizer_config"):
        assert key in config, f"config.json has no {key!r}"
    m_config = model_config(**{k: v for k, v in config["model_config"].items() if k in model_config()})
    model = MODELS[config["model_type"]](m_config)
    state = load_file(os.path.join(directory, "model.safetensors"))
    for name, tensor in state.items():
        assert tensor.dtype == torch.float32, f"{name} is {tensor.dtype}, expected float32"
    model.load_state_dict(state, strict=True)
    with open(os.path.join(directory, "gene_vocab.json")) as f:
        vocab = json.load(f)
    assert isinstance(vocab, dict) and all(isinstance(v, int) and v >= FIRST_GENE for v in vocab.values())
    assert max(vocab.values()) < m_config["vocab_size"], "gene ids must fit the vocabulary"
    assert os.path.getsize(os.path.join(directory, "README.md")) > 0
    return model.eval(), m_config


# --- cases ----------------------------------------------------------------


def make_batch(vocab_size, n_bins, lengths, seq_len, generator):
    """A padded batch: CLS first, genes after, some positions masked."""
    B = len(lengths)
    mask = padded_mask(lengths, seq_len)
    ids = torch.randint(FIRST_GENE, vocab_size, (B, seq_len), generator=generator)
    ids[:, 0] = CLS
    ids = ids * mask
    values = torch.rand(B, seq_len, generator=generator) * mask
    values[:, 0] = 0.0
    labels = torch.full((B, seq_len), IGNORE_INDEX)
    masked_positions = torch.zeros(B, seq_len, dtype=torch.bool)
    for i, n in enumerate(lengths):
        chosen = 1 + torch.randperm(n - 1, generator=generator)[: max(1, (n - 1) // 3)]
        labels[i, chosen] = ids[i, chosen]
        ids[i, chosen[: max(1, len(chosen) - 1)]] = MASK
        other = 1 + torch.randperm(n - 1, generator=generator)[: max(1, (n - 1) // 2)]
        masked_positions[i, other] = True
    bin_ids = torch.randint(0, n_bins, (B, seq_len), generator=generator) * mask
    return {
        "input_ids": ids,
        "attention_mask": mask,
        "values": values,
        "labels": labels,
        "masked_positions": masked_positions,
        "bin_ids": bin_ids,
    }


def pick(batch, *keys):
    return {k: batch[k] for k in ("input_ids", "attention_mask") + keys}


def run_cases(model_type, model, inputs):
    """Everything the Rust tests compare, keyed `expected.<case>.<output>`."""
    out = {}

    def record(case, result):
        for key, value in result.items():
            if value is not None:
                out[f"expected.{case}.{key}"] = value.detach().contiguous()

    def both_poolings(case, batch, keys=("embeddings",), forward=True):
        saved = model.pooling
        for strategy in ("cls", "mean"):
            model.pooling = strategy
            if forward:
                result = model(**batch)
                record(f"{case}.{strategy}", {k: result[k] for k in keys})
            record(f"{case}.{strategy}", {"encode": model.encode(**batch)})
        model.pooling = saved

    b = inputs
    if model_type == "transformer_encoder":
        record("labels", model(**pick(b, "values", "labels")))
        record("no_values", model(**pick(b, "labels")))
        both_poolings("labels", pick(b, "values", "labels"))
        both_poolings("no_values", pick(b))
    elif model_type == "autoregressive_transformer":
        record("labels", model(**pick(b, "values", "labels")))
        record("bins", model(**pick(b, "values", "labels", "bin_ids")))
        record("no_values", model(**pick(b, "labels")))
        both_poolings("labels", pick(b, "values", "labels"))
    elif model_type == "masked_autoencoder":
        record("masked_positions", model(**pick(b, "values", "labels", "masked_positions")))
        record("labels", model(**pick(b, "values", "labels")))
        record("no_masking", model(**pick(b, "values")))
        every = dict(pick(b, "values"), masked_positions=b["attention_mask"].bool())
        record("every_position", model(**every))
        both_poolings("masked_positions", pick(b, "values", "labels", "masked_positions"))
    else:
        raise ValueError(f"unknown model_type {model_type!r}")
    return out


# --- fixtures -------------------------------------------------------------


def perturb(model, generator):
    """Non-trivial biases and LayerNorm parameters, so that a wrong wiring
    of any of them shows up in the outputs (init leaves them 0 and 1)."""
    with torch.no_grad():
        for name, p in model.named_parameters():
            if p.dim() == 1 or name == "mask_token":
                p.add_(0.1 * torch.randn(p.shape, generator=generator))


def fixture_configs():
    tiny = dict(vocab_size=40, hidden_dim=16, num_layers=2, num_heads=2, max_seq_len=16)
    return {
        "transformer_encoder": (
            model_config(architecture="transformer_encoder", **tiny),
            tokenizer_config(max_genes=16),
        ),
        "autoregressive_transformer": (
            model_config(architecture="autoregressive_transformer", n_bins=7, expression_loss_weight=0.5, **tiny),
            tokenizer_config(strategy="binned_expression", max_genes=16, n_bins=7),
        ),
        "masked_autoencoder": (
            model_config(architecture="masked_autoencoder", pooling="mean", **tiny),
            tokenizer_config(strategy="continuous_projection", max_genes=16),
        ),
    }


def write_fixtures():
    os.makedirs(OUT, exist_ok=True)
    torch.manual_seed(0)
    counts = {}
    base = dict(vocab_size=100, hidden_dim=64, num_layers=2, num_heads=4, max_seq_len=32)
    for name, cls in MODELS.items():
        counts[name] = describe(cls(model_config(architecture=name, **base)))
    counts["transformer_encoder_no_values"] = describe(
        TransformerEncoderModel(model_config(use_expression_values=False, **base))
    )
    with open(os.path.join(OUT, "param_counts.json"), "w") as f:
        json.dump(counts, f, indent=1, sort_keys=True)

    for name, (m_config, t_config) in fixture_configs().items():
        generator = torch.Generator().manual_seed(sum(map(ord, name)))
        torch.manual_seed(sum(map(ord, name)))
        model = MODELS[name](m_config)
        perturb(model, generator)
        model.eval()
        V = m_config["vocab_size"]
        vocab = {f"GENE{i:03d}": i for i in range(FIRST_GENE, V)}
        # Newer scModelForge versions also write an `attention` section;
        # one fixture carries it to show that loaders skip keys they do not
        # know (the standard attention is the one both implement).
        extra = {"attention": {"type": "standard", "max_genes": 30000, "gene_bias_init_std": 0.02}}
        write_checkpoint(os.path.join(OUT, name), model, m_config, t_config, vocab,
                         extra if name == "transformer_encoder" else None)
        batch = make_batch(V, m_config["n_bins"], [9, 6, 3], 9, generator)
        tensors = {f"input.{k}": v.contiguous() for k, v in batch.items()}
        tensors.update(run_cases(name, model, batch))
        save_file(tensors, os.path.join(OUT, f"{name}.cases.safetensors"))
    print("wrote fixtures to", os.path.normpath(OUT))


def run_checkpoint(directory, inputs_path, out_path):
    model, _ = load_checkpoint(directory)
    with open(os.path.join(directory, "config.json")) as f:
        model_type = json.load(f)["model_type"]
    inputs = {k.removeprefix("input."): v for k, v in load_file(inputs_path).items() if k.startswith("input.")}
    save_file(run_cases(model_type, model, inputs), out_path)


def main(argv):
    if len(argv) == 0:
        write_fixtures()
    elif len(argv) == 4 and argv[0] == "run":
        run_checkpoint(*argv[1:])
    else:
        sys.exit(__doc__)


if __name__ == "__main__":
    main(sys.argv[1:])
