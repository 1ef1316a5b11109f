"""Product-key top-k: exact against brute force, and how much faster at a million slots."""

from __future__ import annotations

import statistics
import time

import torch

from sparse_memory.memory import brute_force_topk, product_key_topk


def random_tables(n_keys: int, heads: int, key_dim: int, n_queries: int, generator: torch.Generator):
    query = torch.randn(n_queries, heads, key_dim, generator=generator)
    keys_1 = torch.rand(heads, n_keys, key_dim // 2, generator=generator) * 2 - 1
    keys_2 = torch.rand(heads, n_keys, key_dim // 2, generator=generator) * 2 - 1
    return query, keys_1, keys_2


def same_topk(n_keys: int, heads: int, key_dim: int, k: int, n_queries: int, generator: torch.Generator) -> bool:
    """Product-key and brute-force top-k pick the same slots with the same scores."""
    query, keys_1, keys_2 = random_tables(n_keys, heads, key_dim, n_queries, generator)
    fast = product_key_topk(query, keys_1, keys_2, k)
    slow = brute_force_topk(query, keys_1, keys_2, k)
    same_slots = torch.equal(fast.indices.sort(-1).values, slow.indices.sort(-1).values)
    return same_slots and torch.allclose(fast.scores, slow.scores, atol=1e-5)


def _median_ms(fn, repeats: int) -> float:
    fn()  # warm-up
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        fn()
        times.append((time.perf_counter() - started) * 1000)
    return statistics.median(times)


def bench_lookup(quick: bool = False) -> dict:
    generator = torch.Generator().manual_seed(0)
    heads, key_dim, k = 4, 256, 32
    sizes = [32, 64, 256] if quick else [32, 64, 256, 1024]
    exact = {n * n: same_topk(n, heads, key_dim, k, 64, generator) for n in sizes}
    print(f"exact top-k at N = {list(exact)}: {list(exact.values())}")

    n_keys = sizes[-1]
    n_queries = 64 if quick else 256
    query, keys_1, keys_2 = random_tables(n_keys, heads, key_dim, n_queries, generator)
    product_ms = _median_ms(lambda: product_key_topk(query, keys_1, keys_2, k), repeats=20)
    brute_ms = _median_ms(lambda: brute_force_topk(query, keys_1, keys_2, k), repeats=3)
    result = {
        "exact": all(exact.values()),
        "sizes_checked": list(exact),
        "n_slots": n_keys * n_keys,
        "heads": heads,
        "k": k,
        "queries": n_queries,
        "product_key_ms": round(product_ms, 3),
        "brute_force_ms": round(brute_ms, 3),
        "speedup": round(brute_ms / product_ms, 1),
    }
    print(f"N = {n_keys * n_keys}, {n_queries} queries: product keys {product_ms:.2f} ms, brute {brute_ms:.1f} ms")
    return result
