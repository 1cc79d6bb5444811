"""Stage 1 `hfaid dedup`: group near-duplicates of clean images (pHash or embeddings), keep one.

Representative rule (documented in docs/CONFIG.md): the largest resolution (width x height),
then the sharpest (highest Laplacian variance), then the smallest image_id so reruns agree.
Groups are connected components of the "within max_distance" graph, so a chain A~B~C is one
group even when A and C are further apart; the reject detail gives each image's own distance
to the representative.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa

from curation.stage1.neardup import group_labels, near_duplicate_pairs, popcount64
from curation.stage1.semantic import cosine_pairs


def plan_dedup(
    candidates: pa.Table, max_distance: int
) -> tuple[pa.Table, pa.Table, dict[str, int]]:
    """From (image_id, phash, pixels, laplacian_var): group rows and dedup outcomes, plus counts."""
    hashes = candidates.column("phash").to_numpy().astype(np.uint64)
    i, j, _ = near_duplicate_pairs(hashes, max_distance)
    plan = _plan(candidates, i, j)
    distance = popcount64(hashes ^ hashes[plan.rep]) if plan.n else plan.rep
    return plan.tables(
        "phash",
        lambda k: f"pHash distance {distance[k]}",
        distance=distance,
        max_distance=max_distance,
    )


def plan_embedding_dedup(
    candidates: pa.Table, vectors: np.ndarray, min_cosine: float, device: str = "cpu"
) -> tuple[pa.Table, pa.Table, dict[str, int]]:
    """As plan_dedup, grouping images whose L2-normalised embeddings have cosine >= min_cosine."""
    i, j, _ = cosine_pairs(vectors, min_cosine, device)
    plan = _plan(candidates, i, j)
    similarity = (
        np.einsum("ij,ij->i", vectors, vectors[plan.rep]) if plan.n else np.empty(0, np.float32)
    )
    return plan.tables(
        "embedding", lambda k: f"embedding cosine {similarity[k]:.4f}", similarity=similarity
    )


class _Plan:
    """Groups (connected components of the pairs) and each image's representative."""

    def __init__(self, ids: np.ndarray, labels: np.ndarray, rep: np.ndarray, pairs: int) -> None:
        self.ids, self.labels, self.rep, self.pairs = ids, labels, rep, pairs
        self.n = len(ids)
        self.size = np.bincount(labels)[labels] if self.n else np.empty(0, np.int64)

    def tables(
        self,
        method: str,
        describe,
        distance: np.ndarray | None = None,
        max_distance: int | None = None,
        similarity: np.ndarray | None = None,
    ) -> tuple[pa.Table, pa.Table, dict[str, int]]:
        ids, rep, size, n = self.ids, self.rep, self.size, self.n
        grouped = size > 1
        outcomes = pa.table(
            {
                "image_id": ids.tolist(),
                "status": ["pass" if r == k else "reject" for k, r in enumerate(rep)],
                "reason": [None if r == k else "near_duplicate" for k, r in enumerate(rep)],
                "detail": [
                    (f"kept; {size[k] - 1} near-duplicate(s) rejected" if size[k] > 1 else "unique")
                    if r == k
                    else f"duplicate of {ids[r]} ({describe(k)})"
                    for k, r in enumerate(rep)
                ],
            },
            schema=_OUTCOME_SCHEMA,
        )
        count = int(grouped.sum())
        groups = pa.table(
            {
                "image_id": ids[grouped].tolist(),
                "representative": ids[rep[grouped]].tolist(),
                "group_size": size[grouped].astype(np.int32),
                "distance": pa.array(
                    distance[grouped].astype(np.int32) if distance is not None else [None] * count,
                    pa.int32(),
                ),
                "max_distance": pa.array([max_distance] * count, pa.int32()),
                "method": [method] * count,
                "similarity": pa.array(
                    similarity[grouped].astype(np.float64)
                    if similarity is not None
                    else [None] * count,
                    pa.float64(),
                ),
            },
            schema=_GROUP_SCHEMA,
        )
        counts = {
            "images": n,
            "pairs_within_k": self.pairs,
            "groups": int(len(np.unique(self.labels[grouped]))) if n else 0,
            "kept": int((rep == np.arange(n)).sum()) if n else 0,
            "rejected": int((rep != np.arange(n)).sum()) if n else 0,
        }
        return groups, outcomes, counts


def _plan(candidates: pa.Table, i: np.ndarray, j: np.ndarray) -> _Plan:
    ids = np.array(candidates.column("image_id").to_pylist(), dtype=object)
    pixels = candidates.column("pixels").to_numpy(zero_copy_only=False).astype(np.int64)
    sharp = candidates.column("laplacian_var").to_numpy(zero_copy_only=False).astype(np.float64)
    n = len(ids)
    labels = group_labels(n, i, j)
    # Best first within each group: sort by (group, -pixels, -sharpness, image_id).
    order = np.lexsort((ids.astype(str), -sharp, -pixels, labels)) if n else np.empty(0, np.int64)
    first_of_group = np.ones(n, bool)
    if n:
        first_of_group[1:] = labels[order][1:] != labels[order][:-1]
    rep_of_label = np.empty(labels.max() + 1 if n else 0, np.int64)
    rep_of_label[labels[order][first_of_group]] = order[first_of_group]
    rep = rep_of_label[labels] if n else np.empty(0, np.int64)
    return _Plan(ids, labels, rep, int(len(i)))


_OUTCOME_SCHEMA = pa.schema(
    [
        ("image_id", pa.string()),
        ("status", pa.string()),
        ("reason", pa.string()),
        ("detail", pa.string()),
    ]
)
_GROUP_SCHEMA = pa.schema(
    [
        ("image_id", pa.string()),
        ("representative", pa.string()),
        ("group_size", pa.int32()),
        ("distance", pa.int32()),
        ("max_distance", pa.int32()),
        ("method", pa.string()),
        ("similarity", pa.float64()),
    ]
)
