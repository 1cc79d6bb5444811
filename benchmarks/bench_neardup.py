"""Near-duplicate search over 64-bit hashes: multi-index hashing vs brute force, side by side.

Run: .venv/bin/python benchmarks/bench_neardup.py [--small]
Plants near-duplicate pairs (distance 0..k) among uniform random hashes, checks that every
planted pair is found, and times the index at 1,000,000 hashes, and against brute force
(numpy blockwise, and compiled numba all-pairs) at 50,000.
"""

from __future__ import annotations

import argparse
import json
import os
import time

import numba
import numpy as np

from curation.stage1.neardup import brute_force_pairs, near_duplicate_pairs


@numba.njit(parallel=True)
def _count_all_pairs(hashes, k):  # a compiled brute force: the strongest simple baseline
    n = hashes.shape[0]
    counts = np.zeros(n, np.int64)
    for i in numba.prange(n):
        c = 0
        for j in range(i + 1, n):
            x = hashes[i] ^ hashes[j]
            d = 0
            while x:
                x &= x - np.uint64(1)
                d += 1
            c += d <= k
        counts[i] = c
    return counts.sum()


def planted_hashes(n: int, planted: int, k: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """n hashes, the last `planted` of which are copies of earlier ones with 0..k bits flipped."""
    rng = np.random.default_rng(seed)
    base = rng.integers(0, 2**64 - 1, size=n - planted, dtype=np.uint64, endpoint=True)
    sources = rng.choice(n - planted, planted, replace=False)
    copies = base[sources].copy()
    flips = rng.integers(0, k + 1, size=planted)
    for t in range(planted):
        for bit in rng.choice(64, flips[t], replace=False):
            copies[t] ^= np.uint64(1) << np.uint64(int(bit))
    pairs = np.stack([sources, np.arange(n - planted, n)], axis=1)
    return np.concatenate([base, copies]), pairs


def recall(i: np.ndarray, j: np.ndarray, pairs: np.ndarray) -> float:
    found = set(zip(i.tolist(), j.tolist(), strict=True))
    return sum((int(a), int(b)) in found for a, b in pairs) / len(pairs)


def timed(fn, *args):
    start = time.perf_counter()
    result = fn(*args)
    return result, time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--small", action="store_true", help="100k instead of 1M, 10k baseline")
    parser.add_argument("--k", type=int, default=6, help="Hamming radius ([dedup] max_distance)")
    args = parser.parse_args()
    big, small = (100_000, 10_000) if args.small else (1_000_000, 50_000)
    near_duplicate_pairs(np.arange(64, dtype=np.uint64), args.k)  # compile once, not timed
    report: dict = {"k": args.k, "cpus": os.cpu_count()}

    hashes, pairs = planted_hashes(big, big // 100, args.k)
    (i, j, _), seconds = timed(near_duplicate_pairs, hashes, args.k)
    report[f"index_{big}"] = {
        "seconds": round(seconds, 2),
        "pairs": int(len(i)),
        "planted": int(len(pairs)),
        "recall": recall(i, j, pairs),
    }
    print(json.dumps(report), flush=True)

    hashes, pairs = planted_hashes(small, small // 100, args.k, seed=1)
    (i, j, _), t_index = timed(near_duplicate_pairs, hashes, args.k)
    (bi, bj), t_brute = timed(brute_force_pairs, hashes, args.k, 256)
    _count_all_pairs(hashes[:10], args.k)  # compile, not timed
    brute_pairs, t_numba = timed(_count_all_pairs, hashes, args.k)
    same = set(zip(i.tolist(), j.tolist(), strict=True)) == set(
        zip(bi.tolist(), bj.tolist(), strict=True)
    )
    report[f"side_by_side_{small}"] = {
        "index_s": round(t_index, 3),
        "brute_force_s": round(t_brute, 2),
        "speedup": round(t_brute / t_index, 1),
        "same_pairs": same,
        "brute_force_numba_s": round(t_numba, 2),
        "speedup_vs_numba": round(t_numba / t_index, 1),
        "numba_pair_count_matches": int(brute_pairs) == len(i),
        "recall": recall(i, j, pairs),
    }
    print(json.dumps(report), flush=True)

    for k in (8, 10):  # wider radii cost more probes; measured at a tenth of the size
        hashes, pairs = planted_hashes(big // 10, big // 1000, k, seed=2)
        (i, j, _), seconds = timed(near_duplicate_pairs, hashes, k)
        report[f"index_{big // 10}_k{k}"] = {
            "seconds": round(seconds, 2),
            "recall": recall(i, j, pairs),
        }
        print(json.dumps(report), flush=True)


if __name__ == "__main__":
    main()
