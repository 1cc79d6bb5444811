"""Stage 1 `hfaid dedup`: group near-duplicate pHashes of clean images, keep one per group.

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


def plan_dedup(
    candidates: pa.Table, max_distance: int
) -> tuple[pa.Table, pa.Table, dict[str, int]]:
    """From (image_id, phash, pixels, laplacian_var): group rows and dedup outcomes, plus counts."""
    ids = np.array(candidates.column("image_id").to_pylist(), dtype=object)
    hashes = candidates.column("phash").to_numpy().astype(np.uint64)
    pixels = candidates.column("pixels").to_numpy(zero_copy_only=False).astype(np.int64)
    sharp = candidates.column("laplacian_var").to_numpy(zero_copy_only=False).astype(np.float64)
    n = len(ids)
    i, j, _ = near_duplicate_pairs(hashes, max_distance)
    labels = group_labels(n, i, j)
    # Best first within each group: sort by (group, -pixels, -sharpness, image_id).
    order = np.lexsort((ids.astype(str), -sharp, -pixels, labels)) if n else np.empty(0, np.int64)
    first_of_group = np.ones(n, bool)
    if n:
        first_of_group[1:] = labels[order][1:] != labels[order][:-1]
    rep_of_label = np.empty(labels.max() + 1 if n else 0, np.int64)
    rep_of_label[labels[order][first_of_group]] = order[first_of_group]
    rep = rep_of_label[labels] if n else np.empty(0, np.int64)
    size = np.bincount(labels)[labels] if n else np.empty(0, np.int64)
    distance = popcount64(hashes ^ hashes[rep]) if n else rep
    grouped = size > 1
    outcomes = pa.table(
        {
            "image_id": ids.tolist(),
            "status": ["pass" if r == k else "reject" for k, r in enumerate(rep)],
            "reason": [None if r == k else "near_duplicate" for k, r in enumerate(rep)],
            "detail": [
                (f"kept; {size[k] - 1} near-duplicate(s) rejected" if size[k] > 1 else "unique")
                if r == k
                else f"duplicate of {ids[r]} (pHash distance {distance[k]})"
                for k, r in enumerate(rep)
            ],
        },
        schema=pa.schema(
            [
                ("image_id", pa.string()),
                ("status", pa.string()),
                ("reason", pa.string()),
                ("detail", pa.string()),
            ]
        ),
    )
    groups = pa.table(
        {
            "image_id": ids[grouped].tolist(),
            "representative": ids[rep[grouped]].tolist(),
            "group_size": size[grouped].astype(np.int32),
            "distance": distance[grouped].astype(np.int32),
            "max_distance": np.full(int(grouped.sum()), max_distance, np.int32),
        },
        schema=pa.schema(
            [
                ("image_id", pa.string()),
                ("representative", pa.string()),
                ("group_size", pa.int32()),
                ("distance", pa.int32()),
                ("max_distance", pa.int32()),
            ]
        ),
    )
    counts = {
        "images": n,
        "pairs_within_k": int(len(i)),
        "groups": int(len(np.unique(labels[grouped]))) if n else 0,
        "kept": int((rep == np.arange(n)).sum()) if n else 0,
        "rejected": int((rep != np.arange(n)).sum()) if n else 0,
    }
    return groups, outcomes, counts
