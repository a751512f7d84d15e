#!/usr/bin/env python3
"""Check that Python's anndata reads the `.h5ad` files forge writes.

Called by forge-core's test `data::tests::anndata_reads_what_forge_writes`
with one argument: a JSON file listing files and what must be true of them:

    [{"path": ..., "n_obs": 40, "n_vars": 30, "nnz": 123, "x_sum": 456.0,
      "row0": [...], "obs": {"cell_type": [codes] or null (present only)},
      "var_names_head": [...],
      "obsm": {"X_forge": {"shape": [40, 5], "values": [...]}},
      "obsm_same_as": {"original": path, "keys": ["X_pca"]}}, ...]

Every key but `path` is optional. Exits non-zero with a message naming the
file and the check that failed.
"""

from __future__ import annotations

import json
import sys
import warnings

import anndata as ad
import numpy as np
import scipy.sparse as sp


def fail(path, msg):
    print(f"{path}: {msg}", file=sys.stderr)
    sys.exit(1)


def check(spec):
    path = spec["path"]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        a = ad.read_h5ad(path)
    if "n_obs" in spec and a.n_obs != spec["n_obs"]:
        fail(path, f"n_obs {a.n_obs} != {spec['n_obs']}")
    if "n_vars" in spec and a.n_vars != spec["n_vars"]:
        fail(path, f"n_vars {a.n_vars} != {spec['n_vars']}")
    x = a.X
    if "nnz" in spec:
        nnz = x.nnz if sp.issparse(x) else int(np.count_nonzero(x))
        if nnz != spec["nnz"]:
            fail(path, f"nnz {nnz} != {spec['nnz']}")
    if "x_sum" in spec and not np.isclose(float(x.sum()), spec["x_sum"], rtol=1e-6):
        fail(path, f"sum of X {float(x.sum())} != {spec['x_sum']}")
    if "row0" in spec:
        row0 = np.asarray(x[0].todense()).ravel() if sp.issparse(x) else np.asarray(x[0])
        if not np.allclose(row0, spec["row0"]):
            fail(path, "row 0 of X differs")
    for key, codes in spec.get("obs", {}).items():
        if key not in a.obs:
            fail(path, f"obs lacks {key}")
        col = a.obs[key]
        if str(col.dtype) != "category":
            fail(path, f"obs[{key}] is {col.dtype}, expected category")
        if codes is not None and list(col.cat.codes) != codes:
            fail(path, f"obs[{key}] codes differ")
    if "var_names_head" in spec and list(a.var_names[: len(spec["var_names_head"])]) != spec["var_names_head"]:
        fail(path, "var names differ")
    for key, want in spec.get("obsm", {}).items():
        if key not in a.obsm:
            fail(path, f"obsm lacks {key} (has {list(a.obsm.keys())})")
        got = np.asarray(a.obsm[key])
        if list(got.shape) != want["shape"]:
            fail(path, f"obsm[{key}] shape {got.shape} != {want['shape']}")
        if got.dtype != np.float32:
            fail(path, f"obsm[{key}] dtype {got.dtype}, expected float32")
        if not np.array_equal(got.ravel(), np.asarray(want["values"], dtype=np.float32)):
            fail(path, f"obsm[{key}] values differ")
    same = spec.get("obsm_same_as")
    if same:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            orig = ad.read_h5ad(same["original"])
        for key in same["keys"]:
            if not np.array_equal(np.asarray(a.obsm[key]), np.asarray(orig.obsm[key])):
                fail(path, f"obsm[{key}] differs from the original file")
        if not np.array_equal(np.asarray(a.X), np.asarray(orig.X)):
            fail(path, "X differs from the original file")
        if list(a.obs.columns) != list(orig.obs.columns):
            fail(path, "obs columns differ from the original file")
    print(f"ok: {path}")


def main():
    with open(sys.argv[1]) as f:
        specs = json.load(f)
    for spec in specs:
        check(spec)


if __name__ == "__main__":
    main()
