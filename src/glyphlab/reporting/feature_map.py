"""The report's feature map: which model's features to draw, and their 2-D t-SNE, cached beside the model.

The only slow part of a report (t-SNE of up to 2,000 feature vectors), so it is cached as
models/NAME/tsne.npz, keyed by a hash of the features: a rebuilt report takes seconds.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import Any

import numpy as np

from glyphlab.fileio import atomic_open
from glyphlab.runfolder import (
    FEATURES,
    HISTORY,
    TSNE_CACHE,
    ModelFolder,
    RunFolder,
    read_npz,
)

TSNE_MAX_POINTS = 2000
TSNE_PCA_DIMS = 50
TSNE_ITERATIONS = 750


def feature_map_model(run_dir: Path, rows: list[dict[str, Any]]) -> str | None:
    """The best network (a model with history.csv) if the run has one, else the best model; it needs features.npz."""
    run = RunFolder(run_dir)
    with_features = [r["model"] for r in rows if run.model(r["model"]).file(FEATURES).is_file()]
    nets = [m for m in with_features if run.model(m).file(HISTORY).is_file()]
    return (nets or with_features or [None])[0]


def tsne_embedding(model_dir: Path, seed: int = 0) -> dict[str, Any] | None:
    """2-D t-SNE of models/NAME/features.npz (PCA to 50 dims first), cached in models/NAME/tsne.npz."""
    feats = ModelFolder(model_dir).read_features()
    if feats is None or "features" not in feats or len(feats["features"]) < 5:
        return None
    x = np.asarray(feats["features"], dtype=np.float32).reshape(len(feats["features"]), -1)
    labels = np.asarray(feats.get("labels", np.zeros(len(x), dtype=np.int64)))
    if len(x) > TSNE_MAX_POINTS:
        keep = np.sort(np.random.default_rng(seed).permutation(len(x))[:TSNE_MAX_POINTS])
        x, labels = x[keep], labels[keep]
    key = hashlib.sha1(x.tobytes() + labels.astype(np.int64).tobytes()).hexdigest()
    cache = model_dir / TSNE_CACHE
    cached = read_npz(cache)
    if cached is not None and "key" in cached and str(cached["key"]) == key:
        return {
            "xy": cached["xy"],
            "labels": cached["labels"],
            "dims": int(cached["dims"]),
            "pca": int(cached["pca"]),
            "cached": True,
        }
    from sklearn.decomposition import PCA
    from sklearn.manifold import TSNE

    dims = x.shape[1]
    x = x - x.mean(axis=0)
    pca = 0
    if dims > TSNE_PCA_DIMS and len(x) > TSNE_PCA_DIMS:
        x = PCA(n_components=TSNE_PCA_DIMS, random_state=seed).fit_transform(x)
        pca = TSNE_PCA_DIMS
    perplexity = float(min(30.0, max(2.0, (len(x) - 1) / 3)))
    from threadpoolctl import threadpool_limits

    # Barnes-Hut t-SNE's OpenMP threads slow it down badly on a busy or small machine: a few threads at most
    with threadpool_limits(limits=max(1, min(4, (os.cpu_count() or 2) // 2))):
        xy = (
            TSNE(
                n_components=2,
                perplexity=perplexity,
                init="pca",
                learning_rate="auto",
                max_iter=TSNE_ITERATIONS,
                random_state=seed,
                n_jobs=1,
            )
            .fit_transform(x)
            .astype(np.float32)
        )
    try:
        with atomic_open(cache, "wb") as fh:
            np.savez_compressed(fh, xy=xy, labels=labels, key=np.array(key), dims=dims, pca=pca)
    except OSError:  # a read-only run folder still gets its report
        pass
    return {"xy": xy, "labels": labels, "dims": dims, "pca": pca, "cached": False}
