#!/usr/bin/env python3
"""Regenerate forge-core/tests/fixtures/checks/bad_values.h5ad for the tests
of forge-core's `data::checks` (values forge refuses to train on).

X (6 cells x 4 genes g0..g3, dense float32):
  c0 [1, 2, 0, 3]      clean
  c1 [nan, 1, 0, 0]    NaN in g0
  c2 [1, inf, 0, 0]    inf in g1
  c3 [0, 0, 0, 0]      no value above 0
  c4 [-1, -2, 0, 0]    negative, no value above 0
  c5 [2, 0, 1, nan]    NaN in g3
raw.X: four of the six cells hold no value above 0 (c1..c4).

Run from the repository root: .venv/bin/python scripts/make_value_check_fixtures.py
"""

from pathlib import Path

import anndata as ad
import numpy as np
import pandas as pd

OUT = Path("forge-core/tests/fixtures/checks/bad_values.h5ad")

nan, inf = np.nan, np.inf
x = np.array([
    [1, 2, 0, 3],
    [nan, 1, 0, 0],
    [1, inf, 0, 0],
    [0, 0, 0, 0],
    [-1, -2, 0, 0],
    [2, 0, 1, nan],
], dtype=np.float32)
raw = np.array([
    [1, 0, 0, 0],
    [0, 0, 0, 0],
    [0, 0, 0, 0],
    [0, 0, 0, 0],
    [0, 0, 0, 0],
    [2, 1, 0, 0],
], dtype=np.float32)
obs = pd.DataFrame(index=[f"c{i}" for i in range(6)])
var = pd.DataFrame(index=[f"g{j}" for j in range(4)])
a = ad.AnnData(X=x, obs=obs, var=var)
a.raw = ad.AnnData(X=raw, obs=obs, var=var)
OUT.parent.mkdir(parents=True, exist_ok=True)
a.write_h5ad(OUT)
print(f"wrote {OUT}")
