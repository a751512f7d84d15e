#!/usr/bin/env python3
"""Writes forge-core/tests/fixtures/data/hvg_seurat.json: highly variable
genes by scanpy's default `seurat` flavor with `n_top_genes`, computed here
independently of forge with numpy only (scanpy is not installed), following
scanpy 1.11's `_highly_variable_genes_single_batch` step by step:

  X = expm1(X) (float32); mean, var (ddof=1) per gene in float64;
  mean[mean == 0] = 1e-12; disp = var / mean; disp[disp == 0] = nan;
  disp = log(disp); mean = log1p(mean);
  bins = pandas.cut(mean, 20) (right-closed, lowest edge lowered by 0.1%);
  per bin: avg = nanmean(disp), dev = nanstd(disp, ddof=1); a bin with a
  single dispersion gets dev = avg, avg = 0;
  norm = (disp - avg[bin]) / dev[bin];
  cut-off = n_top-th highest non-nan norm; selected = norm >= cut-off.

Run: .venv/bin/python scripts/make_hvg_fixture.py
"""
import json
import os

import numpy as np


def pandas_cut(x, nbins):
    lo, hi = float(np.min(x)), float(np.max(x))
    if lo == hi:
        pad = 0.001 * abs(lo) if lo != 0 else 0.001
        edges = np.linspace(lo - pad, hi + pad, nbins + 1)
    else:
        edges = np.linspace(lo, hi, nbins + 1)
        edges[0] -= (hi - lo) * 0.001
    # right-closed: x in (edges[i], edges[i+1]]
    return np.clip(np.digitize(x, edges, right=True) - 1, 0, nbins - 1)


def seurat(x, n_top):
    x = np.expm1(x.astype(np.float32))
    mean = x.mean(axis=0, dtype=np.float64)
    var = x.astype(np.float64).var(axis=0, ddof=1)
    mean[mean == 0] = 1e-12
    disp = var / mean
    disp[disp == 0] = np.nan
    with np.errstate(divide="ignore"):
        disp = np.log(disp)
    mean = np.log1p(mean)
    bins = pandas_cut(mean, 20)
    norm = np.full(len(mean), np.nan)
    for b in np.unique(bins):
        members = bins == b
        d = disp[members]
        d = d[~np.isnan(d)]
        if len(d) >= 2:
            avg, dev = d.mean(), d.std(ddof=1)
        elif len(d) == 1:
            avg, dev = 0.0, d[0]
        else:
            avg, dev = 0.0, np.nan
        norm[members] = (disp[members] - avg) / dev
    finite = np.sort(norm[~np.isnan(norm)])[::-1]
    n = min(n_top, finite.size)
    cut = finite[n - 1]
    selected = np.flatnonzero(np.nan_to_num(norm, nan=-np.inf) >= cut)
    return mean, disp, norm, selected


def lognorm_counts(rng, n_cells, n_genes):
    rates = rng.gamma(0.6, 2.0, size=n_genes)
    counts = rng.poisson(rates[None, :] * rng.gamma(2.0, 0.5, size=(n_cells, 1)))
    counts = counts.astype(np.float64)
    totals = counts.sum(axis=1, keepdims=True)
    totals[totals == 0] = 1
    return np.log1p(counts / totals * 1e4).astype(np.float32)


def nan_to_none(v):
    return [None if np.isnan(a) else float(a) for a in v]


def main():
    rng = np.random.default_rng(16)
    cases = []
    a = lognorm_counts(rng, 80, 50)
    a[:, 3] = 0.0  # a gene never expressed: NaN dispersion
    a[:, 7] = 0.0
    a[0, 7] = 9.0  # one cell only: a high mean, alone in its bin
    cases.append(("counts_80x50", a, 10))
    b = lognorm_counts(rng, 40, 30)
    b[:, 10] = b[:, 11]  # identical genes: tied dispersions
    cases.append(("ties_40x30", b, 7))
    cases.append(("more_than_genes", lognorm_counts(rng, 30, 12), 50))
    out = []
    for name, x, n_top in cases:
        mean, disp, norm, selected = seurat(x, n_top)
        out.append({
            "name": name,
            "n_top": n_top,
            "x": [[float(v) for v in row] for row in x],
            "means": nan_to_none(mean),
            "dispersions": nan_to_none(disp),
            "dispersions_norm": nan_to_none(norm),
            "selected": [int(i) for i in selected],
        })
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    path = os.path.join(root, "forge-core/tests/fixtures/data/hvg_seurat.json")
    with open(path, "w") as f:
        json.dump({"generator": "scripts/make_hvg_fixture.py", "cases": out}, f)
    print("wrote", path)


if __name__ == "__main__":
    main()
