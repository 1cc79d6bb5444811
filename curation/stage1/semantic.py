"""Cosine-similarity search over L2-normalised embeddings: faiss when installed, else blocks.

Every pair with cosine >= a threshold is wanted (a range search, not k nearest neighbours),
so near-duplicate piles of any size are found. faiss's exact inner-product index answers it
directly; without faiss, row blocks of the embedding matrix are multiplied with the whole
matrix on the device (torch), keeping memory at block x n similarities.
"""

from __future__ import annotations

import numpy as np


def cosine_pairs(
    vectors: np.ndarray, min_cosine: float, device: str = "cpu", block: int = 4096,
    use_faiss: bool | None = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """All pairs (i < j) with vectors[i] . vectors[j] >= min_cosine, as (i, j, cosine)."""
    vectors = np.ascontiguousarray(vectors, dtype=np.float32)
    n = len(vectors)
    if n < 2:
        empty = np.empty(0, np.int64)
        return empty, empty, np.empty(0, np.float32)
    if use_faiss is None:
        use_faiss = faiss_available()
    if use_faiss:
        return _faiss_pairs(vectors, min_cosine)
    return _blocked_pairs(vectors, min_cosine, device, block)


def faiss_available() -> bool:
    try:
        import faiss  # noqa: F401
    except ImportError:
        return False
    return True


def _faiss_pairs(vectors: np.ndarray, min_cosine: float):
    import faiss

    index = faiss.IndexFlatIP(vectors.shape[1])
    index.add(vectors)
    # range_search keeps scores > radius; a hair below the threshold keeps equality in.
    lims, scores, found = index.range_search(vectors, float(np.nextafter(min_cosine, -1)))
    rows = np.repeat(np.arange(len(vectors)), np.diff(lims.astype(np.int64)))
    keep = (found > rows) & (scores >= min_cosine)
    return rows[keep].astype(np.int64), found[keep].astype(np.int64), scores[keep]


def _blocked_pairs(vectors: np.ndarray, min_cosine: float, device: str, block: int):
    import torch

    matrix = torch.from_numpy(vectors).to(device)
    found_i, found_j, found_s = [], [], []
    for start in range(0, len(vectors), block):
        rows = matrix[start : start + block]
        # Only columns after each row's own index: every pair once, never an image with itself.
        sims = rows @ matrix[start:].T
        sims = torch.triu(sims, diagonal=1)
        a, b = torch.nonzero(sims >= min_cosine, as_tuple=True)
        found_s.append(sims[a, b].cpu().numpy())
        found_i.append((a + start).cpu().numpy())
        found_j.append((b + start).cpu().numpy())
    return (
        np.concatenate(found_i).astype(np.int64),
        np.concatenate(found_j).astype(np.int64),
        np.concatenate(found_s).astype(np.float32),
    )
