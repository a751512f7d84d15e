#!/usr/bin/env python3
"""Regenerate the `.h5ad` test fixtures of forge-core's `data::h5ad` module.

Writes small AnnData files in the current (>= 0.8) on-disk layout with the
`anndata` Python package, a few deliberately broken variants made with `h5py`,
and `expected.json`: the facts the Rust tests compare against (shapes, names,
densified rows, column values, category lists and counts, value statistics),
both for those files and for the embedded PBMC dataset
(`data/pbmc68k_reduced.h5ad`, which uses the old pre-0.7 layout and is not
rewritten here: it is only read).

Run from the repository root with the project's Python (it needs anndata,
numpy, scipy, pandas and h5py):

    .venv/bin/python scripts/make_h5ad_fixtures.py

The outputs go to forge-core/tests/fixtures/h5ad/ and are committed, so the
Rust tests never need Python. The file is deterministic: rerunning it yields
the same values (HDF5 byte layout may differ between library versions).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import anndata as ad
import h5py
import numpy as np
import pandas as pd
import scipy.sparse as sp

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "forge-core" / "tests" / "fixtures" / "h5ad"
PBMC = ROOT / "data" / "pbmc68k_reduced.h5ad"


def dense_of(m) -> np.ndarray:
    return np.asarray(m.todense()) if sp.issparse(m) else np.asarray(m)


def stats(m) -> dict:
    """Value statistics over every entry of the matrix, zeros included."""
    d = dense_of(m).astype(np.float64)
    if d.size == 0:
        return {"min": None, "max": None, "mean": None, "frac_nonzero": None,
                "all_integer": True, "nnz": 0}
    return {
        "min": float(d.min()),
        "max": float(d.max()),
        "mean": float(d.mean()),
        "frac_nonzero": float(np.count_nonzero(d) / d.size),
        "all_integer": bool(np.all(d == np.round(d))),
        "nnz": int(np.count_nonzero(d)),
    }


def column_json(s: pd.Series) -> dict:
    if isinstance(s.dtype, pd.CategoricalDtype):
        return {
            "kind": "categorical",
            "categories": [str(c) for c in s.cat.categories],
            "codes": [int(c) for c in s.cat.codes],
        }
    if s.dtype == bool:
        return {"kind": "bool", "values": [bool(v) for v in s]}
    if np.issubdtype(s.dtype, np.integer):
        return {"kind": "i64", "values": [int(v) for v in s]}
    if np.issubdtype(s.dtype, np.floating):
        return {"kind": "f64", "values": [None if np.isnan(v) else float(v) for v in s]}
    return {"kind": "str", "values": [str(v) for v in s]}


def describe(a: ad.AnnData, rows: int | None = None) -> dict:
    """Expected values for a small file: everything, densified."""
    x = dense_of(a.X)
    rows = a.n_obs if rows is None else rows
    out = {
        "n_obs": a.n_obs,
        "n_vars": a.n_vars,
        "obs_names": [str(n) for n in a.obs_names],
        "var_names": [str(n) for n in a.var_names],
        "obs": {c: column_json(a.obs[c]) for c in a.obs.columns},
        "var": {c: column_json(a.var[c]) for c in a.var.columns},
        "x_rows": x[:rows].astype(np.float64).tolist(),
        "x_stats": stats(a.X),
        "raw": None,
    }
    if a.raw is not None:
        r = dense_of(a.raw.X)
        out["raw"] = {
            "n_vars": a.raw.n_vars,
            "var_names": [str(n) for n in a.raw.var_names],
            "rows": r[:rows].astype(np.float64).tolist(),
            "stats": stats(a.raw.X),
        }
    return out


def obs_frame(n: int, rng: np.random.Generator, full: bool = True) -> pd.DataFrame:
    """Cell metadata; `full=False` keeps only `cell_type` (smaller files)."""
    types = np.array(["T cell", "B cell", "NK/ILC", "Monocyte"])
    cell_type = pd.Categorical(types[rng.integers(0, len(types), n)], categories=list(types))
    index = [f"cell_{i}" for i in range(n)]
    if not full:
        return pd.DataFrame({"cell_type": cell_type}, index=index)
    return pd.DataFrame(
        {
            "cell_type": cell_type,
            "batch": [f"batch{i % 2}" for i in range(n)],
            "n_counts": rng.uniform(100, 1000, n).round(3),
            "n_genes": rng.integers(10, 500, n).astype(np.int64),
            "is_doublet": np.array([i % 3 == 0 for i in range(n)]),
        },
        index=index,
    )


def var_frame(names: list[str], full: bool = True) -> pd.DataFrame:
    """Gene metadata; `full=False` keeps only the names (smaller files)."""
    if not full:
        return pd.DataFrame(index=names)
    return pd.DataFrame(
        {"highly_variable": np.array([i % 2 == 0 for i in range(len(names))]),
         "gene_ids": [f"ENSG{i:05d}" for i in range(len(names))]},
        index=names,
    )


def make_current(expected: dict) -> None:
    rng = np.random.default_rng(7)
    genes = [f"GENE{i}" for i in range(8)]

    # (1) dense X, float32, with negative values and an all-zero row.
    n = 7
    x = rng.normal(0, 1, (n, len(genes))).astype(np.float32)
    x[x < -0.5] = 0.0
    x[3] = 0.0
    a = ad.AnnData(X=x, obs=obs_frame(n, rng), var=var_frame(genes))
    # A categorical with a missing value (code -1).
    a.obs["condition"] = pd.Categorical(["ctrl", "stim", None, "ctrl", "stim", "ctrl", None],
                                        categories=["ctrl", "stim"])
    # Categoricals with numeric categories (stored as numbers by anndata).
    a.obs["cluster"] = pd.Categorical([2, 0, 1, 0, 2, 2, 1])
    a.obs["dose"] = pd.Categorical([0.5, 1.0, 0.5, 0.5, 1.0, 0.5, 0.5])
    write(a, "dense.h5ad", expected)

    # (2) CSR X holding raw counts, indices deliberately unsorted within rows,
    # with an empty row.
    n = 9
    counts = rng.poisson(0.8, (n, len(genes))).astype(np.float32)
    counts[4] = 0.0
    m = sp.csr_matrix(counts)
    perm_indices, perm_data = [], []
    for i in range(n):
        lo, hi = m.indptr[i], m.indptr[i + 1]
        idx = m.indices[lo:hi][::-1].copy()
        dat = m.data[lo:hi][::-1].copy()
        perm_indices.append(idx)
        perm_data.append(dat)
    unsorted = sp.csr_matrix(
        (np.concatenate(perm_data), np.concatenate(perm_indices), m.indptr.copy()),
        shape=m.shape,
    )
    unsorted.has_sorted_indices = False
    a = ad.AnnData(X=unsorted, obs=obs_frame(n, rng, full=False), var=var_frame(genes, full=False))
    write(a, "csr_unsorted.h5ad", expected, slim=True)
    with h5py.File(OUT / "csr_unsorted.h5ad", "r") as f:
        ind = f["X/indices"][:]
        ptr = f["X/indptr"][:]
        if all(np.all(np.diff(ind[ptr[i]:ptr[i + 1]]) > 0) for i in range(n)):
            sys.exit("csr_unsorted.h5ad: anndata sorted the indices; the fixture is useless")

    # (3) gzip-compressed, chunked CSR X (log-normalised) with a raw of wider var.
    n = 12
    raw_genes = genes + [f"EXTRA{i}" for i in range(4)]
    raw_counts = rng.poisson(1.2, (n, len(raw_genes))).astype(np.float32)
    raw = ad.AnnData(X=sp.csr_matrix(raw_counts), obs=obs_frame(n, rng, full=False),
                     var=var_frame(raw_genes, full=False))
    lib = raw_counts.sum(1, keepdims=True)
    lib[lib == 0] = 1
    norm = np.log1p(raw_counts / lib * 1e4).astype(np.float32)
    a = ad.AnnData(X=sp.csr_matrix(norm[:, : len(genes)]), obs=raw.obs.copy(),
                   var=var_frame(genes, full=False))
    a.raw = raw
    write(a, "gzip_raw.h5ad", expected, slim=True, compression="gzip")
    with h5py.File(OUT / "gzip_raw.h5ad", "r") as f:
        if f["X/data"].compression != "gzip":
            sys.exit("gzip_raw.h5ad: X/data is not gzip-compressed")

    # (4) CSC X.
    n = 5
    c = rng.poisson(1.0, (n, len(genes))).astype(np.float32)
    a = ad.AnnData(X=sp.csc_matrix(c), obs=obs_frame(n, rng, full=False),
                   var=var_frame(genes, full=False))
    write(a, "csc.h5ad", expected, slim=True)

    # (5) No X at all.
    a = ad.AnnData(X=None, obs=obs_frame(3, rng, full=False), var=var_frame(genes[:3], full=False))
    write(a, "no_x.h5ad", None, slim=True)

    # (6) Zero cells.
    a = ad.AnnData(X=np.zeros((0, 3), dtype=np.float32),
                   obs=pd.DataFrame(index=pd.Index([], dtype=str)),
                   var=var_frame(genes[:3], full=False))
    write(a, "empty.h5ad", None, slim=True)

    # (7) X whose shape disagrees with obs (broken by hand: 5 rows, 3 cells).
    slim_copy(OUT / "no_x.h5ad", OUT / "bad_shape.h5ad")
    with h5py.File(OUT / "bad_shape.h5ad", "r+") as f:
        f.create_dataset("X", data=np.ones((5, 3), dtype=np.float32))

    # (8) X with an encoding this reader does not know.
    slim_copy(OUT / "no_x.h5ad", OUT / "bad_encoding.h5ad")
    with h5py.File(OUT / "bad_encoding.h5ad", "r+") as f:
        g = f.create_group("X")
        g.attrs["encoding-type"] = "coo_matrix"
        g.attrs["encoding-version"] = "0.1.0"
        g.attrs["shape"] = np.array([3, 3], dtype=np.int64)


def make_anndata07(expected: dict) -> None:
    """An anndata-0.7-style file, written with h5py directly: dataframe
    groups whose categorical columns are integer datasets with a
    `categories` attribute referring to `__categories/<column>`. Written in
    the newest HDF5 format (libver="latest"), which also keeps it small."""
    path = OUT / "anndata07.h5ad"
    x = np.array([[0, 1.5, 0], [2, 0, 0], [0, 0, 3.25], [1, 1, 1]], dtype=np.float32)
    obs_names = ["c0", "c1", "c2", "c3"]
    var_names = ["g0", "g1", "g2"]
    labels = ["B", "T", "T", "NK"]
    cats = ["B", "NK", "T"]
    codes = np.array([cats.index(v) for v in labels], dtype=np.int8)
    str_dt = h5py.special_dtype(vlen=str)
    with h5py.File(path, "w", libver="latest") as f:
        f.attrs["encoding-type"] = "anndata"
        f.attrs["encoding-version"] = "0.1.0"
        f.create_dataset("X", data=x)
        obs = f.create_group("obs")
        obs.attrs["encoding-type"] = "dataframe"
        obs.attrs["encoding-version"] = "0.1.0"
        obs.attrs["_index"] = "_index"
        obs.attrs["column-order"] = np.array(["label", "score"], dtype=object)
        obs.create_dataset("_index", data=np.array(obs_names, dtype=object), dtype=str_dt)
        cat = obs.create_group("__categories")
        cat_ds = cat.create_dataset("label", data=np.array(cats, dtype=object), dtype=str_dt)
        col = obs.create_dataset("label", data=codes)
        col.attrs["categories"] = cat_ds.ref
        obs.create_dataset("score", data=np.array([0.5, 1.0, 1.5, 2.0]))
        var = f.create_group("var")
        var.attrs["encoding-type"] = "dataframe"
        var.attrs["encoding-version"] = "0.1.0"
        var.attrs["_index"] = "_index"
        var.attrs["column-order"] = np.array([], dtype=np.float64)
        var.create_dataset("_index", data=np.array(var_names, dtype=object), dtype=str_dt)
    expected["anndata07.h5ad"] = {
        "n_obs": 4,
        "n_vars": 3,
        "obs_names": obs_names,
        "var_names": var_names,
        "obs": {
            "label": {"kind": "categorical", "categories": cats,
                      "codes": [int(c) for c in codes]},
            "score": {"kind": "f64", "values": [0.5, 1.0, 1.5, 2.0]},
        },
        "var": {},
        "x_rows": x.astype(np.float64).tolist(),
        "x_stats": stats(x),
        "raw": None,
    }


def slim_copy(src: Path, dst: Path) -> None:
    """Copies only the root attributes, X, obs, var and raw of `src` to `dst`.

    anndata writes empty obsm/varm/obsp/varp/layers/uns groups that cost a few
    KiB each; the reader ignores them, and the fixtures must stay small. The
    copied objects keep their datatypes, attributes, chunking and filters.
    """
    tmp = dst.with_suffix(".tmp")
    with h5py.File(src, "r") as fi, h5py.File(tmp, "w") as fo:
        for k, v in fi.attrs.items():
            fo.attrs[k] = v
        for key in ("X", "obs", "var", "raw"):
            if key in fi:
                fi.copy(fi[key], fo, name=key)
    tmp.replace(dst)


def write(a: ad.AnnData, name: str, expected: dict | None, slim: bool = False, **kw) -> None:
    path = OUT / name
    if path.exists():
        path.unlink()
    a.write_h5ad(path, **kw)
    if slim:
        slim_copy(path, path)
    if expected is not None:
        expected[name] = describe(ad.read_h5ad(path))


def pbmc_facts() -> dict:
    a = ad.read_h5ad(PBMC)
    x = np.asarray(a.X)
    raw = a.raw.X.tocsr()
    bulk = a.obs["bulk_labels"]
    counts = bulk.value_counts(sort=False)
    return {
        "n_obs": a.n_obs,
        "n_vars": a.n_vars,
        "raw_n_vars": a.raw.n_vars,
        "obs_names_head": [str(s) for s in a.obs_names[:5]],
        "obs_names_tail": str(a.obs_names[-1]),
        "var_names_head": [str(s) for s in a.var_names[:5]],
        "raw_var_names_head": [str(s) for s in a.raw.var_names[:5]],
        "raw_var_names_tail": str(a.raw.var_names[-1]),
        "obs_columns": [str(c) for c in a.obs.columns],
        "var_columns": [str(c) for c in a.var.columns],
        "x_row0_head": x[0, :5].astype(np.float64).tolist(),
        "x_row699_head": x[699, :5].astype(np.float64).tolist(),
        "x_stats": stats(x),
        "raw_row_sums_head": [float(v) for v in np.asarray(raw[:5].sum(1)).ravel()],
        "raw_row_nnz_head": [int(v) for v in np.diff(raw.indptr)[:5]],
        "raw_stats": stats(raw),
        "raw_nnz_stored": int(raw.nnz),
        "bulk_labels_categories": [str(c) for c in bulk.cat.categories],
        "bulk_labels_counts": [int(counts[c]) for c in bulk.cat.categories],
        "bulk_labels_head": [str(v) for v in bulk[:5]],
        "phase_categories": [str(c) for c in a.obs["phase"].cat.categories],
        "louvain_categories": [str(c) for c in a.obs["louvain"].cat.categories],
        "n_genes_head": [int(v) for v in a.obs["n_genes"][:5]],
        "percent_mito_head": [float(v) for v in a.obs["percent_mito"][:5]],
        "highly_variable_count": int(a.var["highly_variable"].sum()),
    }


def main() -> None:
    OUT.mkdir(parents=True, exist_ok=True)
    expected: dict = {}
    make_current(expected)
    make_anndata07(expected)
    if PBMC.exists():
        expected["pbmc68k_reduced"] = pbmc_facts()
    else:
        print(f"warning: {PBMC} missing (run scripts/setup.sh); PBMC facts not written",
              file=sys.stderr)
    (OUT / "expected.json").write_text(json.dumps(expected, indent=1) + "\n")
    total = sum(p.stat().st_size for p in OUT.iterdir())
    print(f"wrote {OUT} ({total / 1024:.1f} KiB)")


if __name__ == "__main__":
    main()
