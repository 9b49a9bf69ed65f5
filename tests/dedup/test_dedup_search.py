"""The pair search against a brute-force reference, including the incremental (query) mode."""

from __future__ import annotations

import numpy as np
import pytest

from dedup.search import chunk_layout, near_pairs
from pipeline.phash import hamming, hash_words, hex_to_words, phash64, words_to_hex


def planted(rng: np.random.Generator, n: int, words: int, bits: int, threshold: int) -> np.ndarray:
    """Random hashes with many planted near copies at distances 0..threshold+1 (both sides of the edge)."""
    hashes = rng.integers(0, 2**64 - 1, size=(n, words), dtype=np.uint64, endpoint=True)
    if bits < 64 * words:
        hashes[:, -1] &= ~np.uint64((1 << (64 * words - bits)) - 1)
    for k in range(0, n, 5):
        target = int(rng.integers(0, n))
        copy = hashes[k].copy()
        for bit in rng.choice(bits, size=int(rng.integers(0, threshold + 2)), replace=False):
            copy[bit // 64] ^= np.uint64(1) << np.uint64(63 - bit % 64)
        hashes[target] = copy
    return hashes


def brute(hashes: np.ndarray, threshold: int) -> set[tuple[int, int]]:
    dist = np.bitwise_count(hashes[:, None, :] ^ hashes[None, :, :]).sum(axis=2)
    i, j = np.nonzero(np.triu(dist <= threshold, 1))
    return set(zip(i.tolist(), j.tolist(), strict=True))


@pytest.mark.parametrize(("bits", "words", "threshold"), [(64, 1, 4), (64, 1, 10), (256, 4, 20), (36, 1, 6)])
def test_search_finds_exactly_the_brute_force_pairs(bits: int, words: int, threshold: int) -> None:
    rng = np.random.default_rng(bits + threshold)
    hashes = planted(rng, 1500, words, bits, threshold)
    expected = brute(hashes, threshold)
    i, j, dist = near_pairs(hashes, threshold, bits)
    assert set(zip(i.tolist(), j.tolist(), strict=True)) == expected
    assert len(expected) > 100
    reference = np.bitwise_count(hashes[i] ^ hashes[j]).sum(axis=1)
    assert np.array_equal(dist, reference)


def test_query_mode_returns_only_pairs_touching_the_new_hashes() -> None:
    rng = np.random.default_rng(7)
    hashes = planted(rng, 2000, 1, 64, 4)
    new = rng.choice(2000, size=300, replace=False)
    expected = {p for p in brute(hashes, 4) if p[0] in set(new.tolist()) or p[1] in set(new.tolist())}
    i, j, _ = near_pairs(hashes, 4, 64, query=new)
    assert set(zip(i.tolist(), j.tolist(), strict=True)) == expected


def test_chunks_partition_the_bits_into_enough_pieces() -> None:
    for bits, words, threshold in [(64, 1, 4), (256, 4, 20), (100, 2, 9)]:
        layout = chunk_layout(bits, words, threshold)
        assert len(layout) >= threshold + 1
        assert sum(width for _, _, width in layout) == bits


def test_hash_words_round_trip_and_match_the_trainer_contract(faces) -> None:
    from PIL import Image

    image = Image.open(faces[0]).convert("RGB")
    words = hash_words(image, "phash", 8)
    assert words[0] == phash64(image)
    assert hamming(words[0], phash64(image)) == 0
    wide = hash_words(image, "phash", 16)
    assert np.array_equal(hex_to_words(words_to_hex(wide, 256), 256), wide)
