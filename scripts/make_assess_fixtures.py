#!/usr/bin/env python3
"""Regenerate the scikit-learn reference values of forge-core's `assess` module.

Writes JSON files to forge-core/tests/fixtures/assess/:

- clustering.json: label pairs with sklearn's normalized_mutual_info_score
  (arithmetic, the default) and adjusted_rand_score, special cases included;
- silhouette.json: small embeddings with silhouette_samples / silhouette_score
  and, where batches are given, scIB's batch ASW (`silhouette_batch` with
  scale=True) computed from silhouette_samples exactly as scIB does;
- f1.json: accuracy_score and f1_score (macro, weighted) cases, including a
  class that is only predicted and one that is never predicted;
- pca.json: a small matrix with sklearn PCA (full SVD) components and
  explained variances.

Run from the repository root with the project's Python plus scikit-learn
(`.venv/bin/pip install scikit-learn`):

    .venv/bin/python scripts/make_assess_fixtures.py

The outputs are committed, so the Rust tests never need Python. Seeded, so
reruns give the same files.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from sklearn.decomposition import PCA
from sklearn.metrics import (
    accuracy_score,
    adjusted_rand_score,
    f1_score,
    normalized_mutual_info_score,
    silhouette_samples,
    silhouette_score,
)

OUT = Path(__file__).resolve().parent.parent / "forge-core" / "tests" / "fixtures" / "assess"


def write(name: str, payload: dict) -> None:
    OUT.mkdir(parents=True, exist_ok=True)
    path = OUT / name
    path.write_text(json.dumps(payload) + "\n")
    print(f"wrote {path.relative_to(OUT.parent.parent.parent.parent)}")


def clustering(rng: np.random.Generator) -> None:
    cases = []

    def add(name: str, a, b) -> None:
        a = [int(v) for v in a]
        b = [int(v) for v in b]
        cases.append(
            {
                "name": name,
                "a": a,
                "b": b,
                "nmi": float(normalized_mutual_info_score(a, b)),
                "ari": float(adjusted_rand_score(a, b)),
            }
        )

    add("identical", [0, 0, 1, 1, 2, 2], [0, 0, 1, 1, 2, 2])
    add("relabelled", [0, 0, 1, 1, 2, 2], [7, 7, 3, 3, 1, 1])
    add("split cluster", [0, 0, 0, 0, 1, 1, 1, 1], [0, 0, 1, 1, 2, 2, 3, 3])
    add("both single cluster", [0, 0, 0, 0], [5, 5, 5, 5])
    add("one single cluster", [0, 0, 0, 0], [0, 1, 2, 3])
    add("all singletons", [0, 1, 2, 3, 4], [4, 3, 2, 1, 0])
    add("anti-correlated", [0, 0, 1, 1], [0, 1, 0, 1])
    a = rng.integers(0, 5, 300)
    add("random 5 vs 7", a, rng.integers(0, 7, 300))
    noisy = a.copy()
    flip = rng.random(300) < 0.3
    noisy[flip] = rng.integers(0, 5, int(flip.sum()))
    add("30% relabelled", a, noisy)
    big = rng.integers(0, 12, 5000)
    add("random 12 vs 12, n=5000", big, (big + (rng.random(5000) < 0.5)) % 12)
    write("clustering.json", {"cases": cases})


def scib_batch_asw(x: np.ndarray, labels: np.ndarray, batches: np.ndarray):
    """scib.metrics.silhouette_batch(..., scale=True), without pandas."""
    means = []
    for group in np.unique(labels):
        mask = labels == group
        n_batches = len(np.unique(batches[mask]))
        if n_batches == 1 or n_batches == mask.sum():
            continue
        sil = silhouette_samples(x[mask], batches[mask])
        means.append(float(np.mean(1.0 - np.abs(sil))))
    return float(np.mean(means)) if means else None


def silhouette(rng: np.random.Generator) -> None:
    cases = []

    def add(name: str, x: np.ndarray, labels, batches=None) -> None:
        labels = np.asarray([str(v) for v in labels])
        case = {
            "name": name,
            "x": x.tolist(),
            "labels": labels.tolist(),
            "samples": silhouette_samples(x, labels).tolist(),
            "score": float(silhouette_score(x, labels)),
        }
        if batches is not None:
            batches = np.asarray([str(v) for v in batches])
            case["batches"] = batches.tolist()
            case["batch_asw"] = scib_batch_asw(x, labels, batches)
        cases.append(case)

    centres = rng.normal(0, 4, (4, 5))
    labels = rng.integers(0, 4, 80)
    x = (centres[labels] + rng.normal(0, 1, (80, 5))).astype(np.float32).astype(np.float64)
    batches = rng.integers(0, 3, 80)
    x_b = x + batches[:, None] * np.array([0.0, 0.0, 0.0, 0.0, 1.5])
    x_b = x_b.astype(np.float32).astype(np.float64)
    add("4 blobs in 5-D, 3 batches", x_b, labels, [f"batch{b}" for b in batches])
    # A singleton class (silhouette 0) and a type with a single batch
    # (skipped by batch ASW).
    y = rng.normal(0, 1, (12, 3)).astype(np.float32).astype(np.float64)
    add(
        "singleton class",
        y,
        ["a"] * 5 + ["b"] * 6 + ["c"],
        ["x", "y", "x", "y", "x"] + ["x"] * 6 + ["y"],
    )
    z = rng.normal(0, 1, (50, 2)).astype(np.float32).astype(np.float64)
    add("overlapping, 2-D", z, rng.integers(0, 3, 50))
    write("silhouette.json", {"cases": cases})


def f1(rng: np.random.Generator) -> None:
    cases = []

    def add(name: str, y_true, y_pred) -> None:
        y_true = [int(v) for v in y_true]
        y_pred = [int(v) for v in y_pred]
        cases.append(
            {
                "name": name,
                "y_true": y_true,
                "y_pred": y_pred,
                "accuracy": float(accuracy_score(y_true, y_pred)),
                "f1_macro": float(f1_score(y_true, y_pred, average="macro")),
                "f1_weighted": float(f1_score(y_true, y_pred, average="weighted")),
            }
        )

    add("perfect", [0, 1, 2, 2], [0, 1, 2, 2])
    add("class only predicted", [0, 0, 1, 1], [0, 3, 1, 1])
    add("class never predicted", [0, 1, 2, 2, 2], [0, 0, 2, 2, 0])
    y = rng.integers(0, 6, 200)
    p = y.copy()
    wrong = rng.random(200) < 0.35
    p[wrong] = rng.integers(0, 7, int(wrong.sum()))
    add("random 35% errors", y, p)
    write("f1.json", {"cases": cases})


def pca(rng: np.random.Generator) -> None:
    # Distinct variances along a few hidden directions plus noise.
    n, p, k = 60, 14, 4
    basis = np.linalg.qr(rng.normal(size=(p, p)))[0][:, :5]
    scores = rng.normal(size=(n, 5)) * np.array([9.0, 6.0, 4.0, 2.5, 1.5])
    x = scores @ basis.T + rng.normal(0, 0.3, (n, p)) + rng.normal(0, 5, p)
    x = x.astype(np.float32).astype(np.float64)
    fitted = PCA(n_components=k, svd_solver="full").fit(x)
    comps = fitted.components_.copy()
    # forge's sign convention: the largest-magnitude loading is positive.
    for row in comps:
        if row[np.argmax(np.abs(row))] < 0:
            row *= -1
    write(
        "pca.json",
        {
            "x": x.tolist(),
            "n_components": k,
            "components": comps.tolist(),
            "explained_variance": fitted.explained_variance_.tolist(),
            "explained_variance_ratio": fitted.explained_variance_ratio_.tolist(),
        },
    )


def main() -> None:
    rng = np.random.default_rng(20240607)
    clustering(rng)
    silhouette(rng)
    f1(rng)
    pca(rng)


if __name__ == "__main__":
    main()
