"""All pairs of hashes within a Hamming threshold, without a Python loop over pairs.

Multi-index hashing (Norouzi et al.): split the bits into at least threshold+1 disjoint
chunks; by the pigeonhole principle two hashes within the threshold agree exactly on at
least one chunk. Sorting each chunk's keys turns "agree on a chunk" into ranges found by
`searchsorted`, the candidates in those ranges are verified with XOR + `bitwise_count`,
and everything is array operations in bounded batches. For 64-bit hashes at threshold 4
that is 5 chunks of 12-13 bits: on 300,000 random hashes a few tens of millions of
candidates instead of 45 billion pairs. When the chunks would be narrower than 8 bits
(a large threshold) the buckets get too full to help and a blockwise brute-force XOR
over all pairs is used instead.
"""

from __future__ import annotations

import numpy as np

MIN_CHUNK_BITS = 8
BATCH_CANDIDATES = 8_000_000
BRUTE_BLOCK_CELLS = 16_000_000


def as_words(hashes: np.ndarray) -> np.ndarray:
    """Accept uint64[N] (64-bit hashes) or uint64[N, W] and return a contiguous [N, W] view."""
    hashes = np.asarray(hashes, dtype=np.uint64)
    if hashes.ndim == 1:
        hashes = hashes[:, None]
    if hashes.ndim != 2:
        raise ValueError(f"expected hashes as uint64 [N] or [N, W], got shape {hashes.shape}")
    return np.ascontiguousarray(hashes)


def chunk_layout(bits: int, words: int, threshold: int) -> list[tuple[int, int, int]]:
    """(word, shift, width) of each chunk; at least threshold+1 chunks over the meaningful bits.

    Bits are big-endian: word w holds bits [64w, 64w+64) from its most significant end, and
    only the first `bits` overall are meaningful (the rest is zero padding).
    """
    layout = []
    for w in range(words):
        in_word = min(64, bits - 64 * w)
        if in_word <= 0:
            break
        parts = max(1, -(-in_word * (threshold + 1) // bits))
        start = 0
        for p in range(parts):
            width = in_word // parts + (1 if p < in_word % parts else 0)
            layout.append((w, 64 - start - width, width))
            start += width
    return layout


def _distance(hashes: np.ndarray, i: np.ndarray, j: np.ndarray) -> np.ndarray:
    return np.bitwise_count(hashes[i] ^ hashes[j]).sum(axis=1, dtype=np.int64)


def near_pairs(
    hashes: np.ndarray, threshold: int, bits: int = 64, query: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Every unordered pair (i, j), i < j, at Hamming distance <= threshold, with at least one
    of i, j in `query` (all indices when None). Returns (i, j, distance) sorted by (i, j).

    `query` is how a re-run compares only the new hashes against the whole corpus.
    """
    hashes = as_words(hashes)
    n, words = hashes.shape
    if not 0 < bits <= 64 * words:
        raise ValueError(f"bits={bits} does not fit {words} words")
    query = np.arange(n, dtype=np.int64) if query is None else np.unique(np.asarray(query, dtype=np.int64))
    empty = np.zeros(0, dtype=np.int64)
    if n < 2 or query.size == 0:
        return empty, empty, empty
    is_query = np.zeros(n, dtype=bool)
    is_query[query] = True
    layout = chunk_layout(bits, words, threshold)
    if min(width for _, _, width in layout) < MIN_CHUNK_BITS:
        found = _brute_force(hashes, threshold, query, is_query)
    else:
        found = _multi_index(hashes, threshold, query, is_query, layout)
    if not found:
        return empty, empty, empty
    codes = np.unique(np.concatenate(found))
    i, j = np.divmod(codes, n)
    return i, j, _distance(hashes, i, j)


def _keep(
    i: np.ndarray, j: np.ndarray, is_query: np.ndarray, n: int, dist: np.ndarray, threshold: int
) -> np.ndarray:
    """Pair codes min*n+max of verified pairs, each unordered pair once (i is always a query)."""
    ok = (dist <= threshold) & (i != j) & ((i < j) | ~is_query[j])
    lo, hi = np.minimum(i[ok], j[ok]), np.maximum(i[ok], j[ok])
    return lo * n + hi


def _multi_index(
    hashes: np.ndarray,
    threshold: int,
    query: np.ndarray,
    is_query: np.ndarray,
    layout: list[tuple[int, int, int]],
) -> list[np.ndarray]:
    n = hashes.shape[0]
    found = []
    for word, shift, width in layout:
        mask = np.uint64((1 << width) - 1)
        keys = (hashes[:, word] >> np.uint64(shift)) & mask
        order = np.argsort(keys, kind="stable")
        sorted_keys = keys[order]
        qkeys = keys[query]
        lo = np.searchsorted(sorted_keys, qkeys, side="left")
        counts = np.searchsorted(sorted_keys, qkeys, side="right") - lo
        # Batches of queries whose candidate count stays bounded, so memory does too.
        cumulative = np.cumsum(counts)
        start = 0
        while start < query.size:
            base = cumulative[start - 1] if start else 0
            stop = int(np.searchsorted(cumulative, base + BATCH_CANDIDATES, side="right"))
            stop = max(stop, start + 1)
            c = counts[start:stop]
            total = int(c.sum())
            if total:
                qi = np.repeat(query[start:stop], c)
                offsets = np.arange(total, dtype=np.int64) - np.repeat(np.cumsum(c) - c, c)
                dj = order[np.repeat(lo[start:stop], c) + offsets]
                found.append(_keep(qi, dj, is_query, n, _distance(hashes, qi, dj), threshold))
            start = stop
    return found


def _brute_force(
    hashes: np.ndarray, threshold: int, query: np.ndarray, is_query: np.ndarray
) -> list[np.ndarray]:
    n = hashes.shape[0]
    block = max(1, BRUTE_BLOCK_CELLS // (n * hashes.shape[1]))
    found = []
    for start in range(0, query.size, block):
        q = query[start : start + block]
        dist = np.bitwise_count(hashes[q][:, None, :] ^ hashes[None, :, :]).sum(axis=2, dtype=np.int16)
        qi, dj = np.nonzero(dist <= threshold)
        qi = q[qi]
        found.append(_keep(qi, dj.astype(np.int64), is_query, n, _distance(hashes, qi, dj), threshold))
    return found
