#!/usr/bin/env python3
"""Writes forge-core/tests/fixtures/data/distributed_sampler.json: the
indices PyTorch's own `torch.utils.data.DistributedSampler` gives every rank
(explicit `num_replicas` and `rank`, no process group needed) for a grid of
dataset sizes, world sizes, seeds, epochs, `shuffle` and `drop_last`, plus
plain `torch.randperm(n, generator=torch.Generator().manual_seed(s))`
permutations. forge-data's `shard` module must reproduce them exactly.

Run: .venv/bin/python scripts/make_distributed_sampler_fixture.py
"""
import json
import os

import torch
from torch.utils.data import DistributedSampler

OUT = os.path.join(
    os.path.dirname(__file__), "..", "forge-core", "tests", "fixtures", "data",
    "distributed_sampler.json",
)


def sampler_cases():
    grid = []
    for n in (0, 1, 3, 10, 37, 100):
        for world in (1, 2, 3, 4, 8):
            for shuffle in (True, False):
                for drop_last in (False, True):
                    grid.append((n, world, shuffle, drop_last, 42, 0))
    # Seeds (one above 2**32: the generator keeps its low 32 bits) and epochs.
    for seed, epoch in ((0, 0), (0, 5), (7, 2), (2**32 + 7, 1), (123456789, 9)):
        grid.append((37, 3, True, False, seed, epoch))
        grid.append((701, 4, True, True, seed, epoch))
    cases = []
    for n, world, shuffle, drop_last, seed, epoch in grid:
        ranks = []
        for rank in range(world):
            s = DistributedSampler(
                range(n), num_replicas=world, rank=rank, shuffle=shuffle,
                seed=seed, drop_last=drop_last,
            )
            s.set_epoch(epoch)
            ranks.append(list(iter(s)))
        cases.append({
            "n": n, "num_replicas": world, "shuffle": shuffle,
            "drop_last": drop_last, "seed": seed, "epoch": epoch,
            "ranks": ranks,
        })
    return cases


def randperm_cases():
    out = []
    for n, seed in ((0, 3), (1, 3), (2, 0), (5, 1), (1000, 12345), (4096, 2**40 + 99)):
        g = torch.Generator()
        g.manual_seed(seed)
        out.append({"n": n, "seed": seed, "perm": torch.randperm(n, generator=g).tolist()})
    return out


def main():
    data = {
        "torch": torch.__version__,
        "sampler": sampler_cases(),
        "randperm": randperm_cases(),
    }
    with open(OUT, "w") as f:
        json.dump(data, f, separators=(",", ":"))
        f.write("\n")
    print(f"wrote {OUT}: {len(data['sampler'])} sampler cases")


if __name__ == "__main__":
    main()
