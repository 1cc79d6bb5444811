"""Near-duplicate search over 64-bit perceptual hashes: multi-index hashing, then groups.

Pigeonhole principle (Norouzi et al., "Fast search in Hamming space with multi-index
hashing"): split each 64-bit hash into m chunks; two hashes within Hamming distance k have
at least one chunk within distance floor(k / m). Each chunk gets a bucket table (counting
sort); a query probes every chunk value within that radius of its own, and only the
candidates found there are compared on all 64 bits. m is picked from a cost model so a
million hashes take seconds, not the hours of an all-pairs comparison. The loops run in
numba (compiled, parallel over queries) because they are branchy integer work numpy cannot
vectorise without materialising billions of candidates.
"""

from __future__ import annotations

from itertools import combinations
from math import comb

import numba
import numpy as np
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components

MAX_CHUNK_BITS = 22  # bucket offset tables of 2**22 entries (32 MiB) at most


def near_duplicate_pairs(hashes: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """All pairs (i < j) with popcount(hashes[i] ^ hashes[j]) <= k, as (i, j, distance) arrays."""
    if not 0 <= k < 32:
        raise ValueError(f"Hamming radius must be in [0, 31], got {k}")
    hashes = np.ascontiguousarray(hashes, dtype=np.uint64)
    n = len(hashes)
    if n < 2:
        empty = np.empty(0, np.int64)
        return empty, empty, empty.astype(np.int8)
    # Identical hashes are joined first (cheap) so a pile of blank images cannot blow up the
    # candidate lists; the search then runs on distinct values only.
    uniq, inverse = np.unique(hashes, return_inverse=True)
    same_i, same_j = _pairs_within_equal_values(inverse)
    bits = _chunk_bits(len(uniq), k)
    starts = np.concatenate([[0], np.cumsum(bits)[:-1]]).astype(np.int64)
    radius = k // len(bits)
    keys = np.stack([_chunk(uniq, s, b) for s, b in zip(starts, bits, strict=True)])
    offsets, order = _bucket_tables(keys, bits)
    masks = [_flip_masks(b, radius) for b in bits]
    mask_len = max(len(m) for m in masks)
    mask_table = np.zeros((len(bits), mask_len), np.int64)
    mask_count = np.array([len(m) for m in masks], np.int64)
    mask_low = np.zeros((len(bits), mask_len), np.int64)
    for c, m in enumerate(masks):
        mask_table[c, : len(m)] = m
        # Lowest flipped bit: a pair differing there is probed only by the side holding a 0.
        mask_low[c, 1 : len(m)] = [(int(x) & -int(x)).bit_length() - 1 for x in m[1:]]
    sorted_vals = np.stack([uniq[o] for o in order])
    widths = np.array(bits, np.int64)
    counts = _count(uniq, keys, offsets, sorted_vals, mask_table, mask_low, mask_count, k)
    # Matches are rare: the filling pass re-runs only the queries that found something.
    hits = np.flatnonzero(counts).astype(np.int64)
    fill_at = np.concatenate([[0], np.cumsum(counts[hits])]).astype(np.int64)
    total = int(fill_at[-1])  # an upper bound: a pair can be counted from several chunks
    ui, uj = np.empty(total, np.int64), np.empty(total, np.int64)
    ud = np.empty(total, np.int8)
    filled = _search(
        uniq,
        keys,
        offsets,
        sorted_vals,
        order,
        starts,
        widths,
        mask_table,
        mask_low,
        mask_count,
        radius,
        k,
        ui,
        uj,
        ud,
        fill_at,
        hits,
        True,
    )
    keep = np.zeros(total, bool)
    for qi in np.flatnonzero(filled):
        keep[fill_at[qi] : fill_at[qi] + filled[qi]] = True
    ui, uj, ud = ui[keep], uj[keep], ud[keep]
    # Expand distinct-value pairs back to every original index holding those values.
    members = np.argsort(inverse, kind="stable")
    member_start = np.searchsorted(inverse[members], np.arange(len(uniq)))
    member_count = np.bincount(inverse, minlength=len(uniq))
    li, lj, ld = _expand(ui, uj, ud, members, member_start, member_count)
    i = np.concatenate([same_i, li])
    j = np.concatenate([same_j, lj])
    d = np.concatenate([np.zeros(len(same_i), np.int8), ld])
    lo, hi = np.minimum(i, j), np.maximum(i, j)
    return lo, hi, d


def popcount64(values: np.ndarray) -> np.ndarray:
    """Set bits per uint64 (numpy >= 2 has it built in; older numpy unpacks bytes)."""
    values = np.ascontiguousarray(values, dtype=np.uint64)
    if hasattr(np, "bitwise_count"):
        return np.bitwise_count(values).astype(np.int64)
    bits = np.unpackbits(values.view(np.uint8).reshape(-1, 8), axis=1)
    return bits.sum(axis=1).astype(np.int64)


def group_labels(n: int, i: np.ndarray, j: np.ndarray) -> np.ndarray:
    """Connected components of the near-duplicate graph: one label per item (singletons too)."""
    if n == 0:
        return np.empty(0, np.int64)
    graph = coo_matrix((np.ones(len(i), np.int8), (i, j)), shape=(n, n))
    _, labels = connected_components(graph, directed=False)
    return labels.astype(np.int64)


def brute_force_pairs(
    hashes: np.ndarray, k: int, block: int = 2048
) -> tuple[np.ndarray, np.ndarray]:
    """All-pairs reference (numpy, blockwise): for tests and the benchmark's baseline."""
    hashes = np.asarray(hashes, dtype=np.uint64)
    found_i, found_j = [], []
    for start in range(0, len(hashes), block):
        rows = hashes[start : start + block]
        dist = popcount64((rows[:, None] ^ hashes[None, :]).ravel()).reshape(len(rows), -1)
        a, b = np.nonzero(dist <= k)
        a = a + start
        keep = b > a
        found_i.append(a[keep])
        found_j.append(b[keep])
    if not found_i:
        return np.empty(0, np.int64), np.empty(0, np.int64)
    return np.concatenate(found_i).astype(np.int64), np.concatenate(found_j).astype(np.int64)


def _chunk_bits(n: int, k: int) -> list[int]:
    """Chunk widths minimising probes x expected bucket size (uniform-hash cost model)."""
    best, best_cost = None, None
    for m in range(3, max(k + 2, 8)):
        base, extra = divmod(64, m)
        widths = [base + 1] * extra + [base] * (m - extra)
        if max(widths) > MAX_CHUNK_BITS:
            continue
        r = k // m
        # A probe is a random read into the bucket table (dearer once it outgrows the cache);
        # a candidate is one step of a sequential scan.
        probe_cost = 1.0 if max(widths) <= 16 else 8.0
        # Building a table costs its size once, shared by the n queries.
        cost = sum(
            sum(comb(b, x) for x in range(r + 1)) * (probe_cost + n / 2.0**b) + 2.0**b / n
            for b in widths
        )
        if best_cost is None or cost < best_cost:
            best, best_cost = widths, cost
    assert best is not None
    return best


def _chunk(values: np.ndarray, start: int, bits: int) -> np.ndarray:
    return ((values >> np.uint64(start)) & np.uint64((1 << bits) - 1)).astype(np.int64)


def _bucket_tables(keys: np.ndarray, bits: list[int]) -> tuple[np.ndarray, np.ndarray]:
    """Per chunk: offsets into a value-sorted index list (a counting sort, CSR layout)."""
    width = (1 << max(bits)) + 1
    offsets = np.zeros((len(bits), width), np.int64)
    order = np.empty_like(keys)
    for c, b in enumerate(bits):
        counts = np.bincount(keys[c], minlength=1 << b)
        offsets[c, 1 : (1 << b) + 1] = np.cumsum(counts)
        offsets[c, (1 << b) + 1 :] = offsets[c, 1 << b]
        order[c] = np.argsort(keys[c], kind="stable")
    return offsets, order


def _flip_masks(bits: int, radius: int) -> np.ndarray:
    masks = [0]
    for r in range(1, radius + 1):
        for positions in combinations(range(bits), r):
            masks.append(sum(1 << p for p in positions))
    return np.array(masks, np.int64)


def _pairs_within_equal_values(inverse: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    repeated = np.flatnonzero(np.bincount(inverse) > 1)
    left, right = [], []
    if len(repeated):
        holders = np.flatnonzero(np.isin(inverse, repeated))
        holders = holders[np.argsort(inverse[holders], kind="stable")]
        boundaries = np.flatnonzero(np.diff(inverse[holders])) + 1
        for run in np.split(holders, boundaries):
            a, b = np.triu_indices(len(run), 1)
            left.append(run[a])
            right.append(run[b])
    if not left:
        return np.empty(0, np.int64), np.empty(0, np.int64)
    return np.concatenate(left).astype(np.int64), np.concatenate(right).astype(np.int64)


@numba.njit(inline="always", cache=True)
def _popcount(x):  # pragma: no cover - compiled; SWAR popcount, branch-free
    x = x - ((x >> np.uint64(1)) & np.uint64(0x5555555555555555))
    x = (x & np.uint64(0x3333333333333333)) + ((x >> np.uint64(2)) & np.uint64(0x3333333333333333))
    x = (x + (x >> np.uint64(4))) & np.uint64(0x0F0F0F0F0F0F0F0F)
    return (x * np.uint64(0x0101010101010101)) >> np.uint64(56)


@numba.njit(parallel=True, cache=True)
def _count(
    uniq, keys, offsets, sorted_vals, mask_table, mask_low, mask_count, k
):  # pragma: no cover
    """Per query, matches counted from every chunk (branch-free scans; duplicates included)."""
    n = uniq.shape[0]
    counts = np.zeros(n, np.int64)
    for q in numba.prange(n):
        hq = uniq[q]
        found = 0
        for c in range(keys.shape[0]):
            kq = keys[c, q]
            # Own bucket: both sides see the pair, so only the smaller hash counts it.
            for t in range(offsets[c, kq], offsets[c, kq + 1]):
                hj = sorted_vals[c, t]
                found += (hj > hq) & (_popcount(hq ^ hj) <= k)
            for v in range(1, mask_count[c]):
                if (kq >> mask_low[c, v]) & 1:
                    continue  # the partner (0 at that bit) probes this pair
                probe = kq ^ mask_table[c, v]
                for t in range(offsets[c, probe], offsets[c, probe + 1]):
                    found += _popcount(hq ^ sorted_vals[c, t]) <= k
        counts[q] = found
    return counts


@numba.njit(parallel=True, cache=True)
def _search(
    uniq,
    keys,
    offsets,
    sorted_vals,
    sorted_idx,
    starts,
    widths,
    mask_table,
    mask_low,
    mask_count,
    radius,
    k,
    out_i,
    out_j,
    out_d,
    fill_at,
    queries,
    fill,
):  # pragma: no cover - compiled
    m = keys.shape[0]
    counts = np.zeros(queries.shape[0], np.int64)
    for qi in numba.prange(queries.shape[0]):
        q = queries[qi]
        found = 0
        pos = fill_at[qi]
        hq = uniq[q]
        for c in range(m):
            kq = keys[c, q]
            for v in range(mask_count[c]):
                if v > 0 and (kq >> mask_low[c, v]) & 1:
                    continue  # the partner (0 at the lowest flipped bit) probes this pair
                probe = kq ^ mask_table[c, v]
                for t in range(offsets[c, probe], offsets[c, probe + 1]):
                    hj = sorted_vals[c, t]  # contiguous per bucket: a sequential scan
                    if v == 0 and hj <= hq:  # own bucket: counted by the smaller hash only
                        continue
                    d = _popcount(hq ^ hj)
                    if d > k:
                        continue
                    # Report the pair only from the first chunk within the radius.
                    first = True
                    for c2 in range(c):
                        mask = (np.uint64(1) << np.uint64(widths[c2])) - np.uint64(1)
                        x = ((hq ^ hj) >> np.uint64(starts[c2])) & mask
                        if _popcount(x) <= radius:
                            first = False
                            break
                    if not first:
                        continue
                    if fill:
                        out_i[pos] = q
                        out_j[pos] = sorted_idx[c, t]
                        out_d[pos] = d
                        pos += 1
                    found += 1
        counts[qi] = found
    return counts


@numba.njit(cache=True)
def _expand(ui, uj, ud, members, member_start, member_count):  # pragma: no cover - compiled
    total = 0
    for p in range(ui.shape[0]):
        total += member_count[ui[p]] * member_count[uj[p]]
    li = np.empty(total, np.int64)
    lj = np.empty(total, np.int64)
    ld = np.empty(total, np.int8)
    pos = 0
    for p in range(ui.shape[0]):
        a0, na = member_start[ui[p]], member_count[ui[p]]
        b0, nb = member_start[uj[p]], member_count[uj[p]]
        for a in range(na):
            for b in range(nb):
                li[pos] = members[a0 + a]
                lj[pos] = members[b0 + b]
                ld[pos] = ud[p]
                pos += 1
    return li, lj, ld
