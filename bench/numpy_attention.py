"""numpy baselines for bench/cpu_flash.ts: float32 materialized attention and float32 matmul.

Prints one JSON object: {"numpy": version, "attention": [{n, causal, ms}], "matmulGflops": x}.
Times are the best of several runs, as bench/cpu_flash.ts takes its own.
"""
import json
import sys
import time

import numpy as np


def best_ms(fn, reps):
    fn()
    best = float("inf")
    for _ in range(reps):
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    return best * 1000


def attention(q, k, v, causal):
    scores = np.matmul(q, k.transpose(0, 1, 3, 2)) * np.float32(1 / np.sqrt(q.shape[-1]))
    if causal:
        n = q.shape[2]
        scores = np.where(np.tril(np.ones((n, n), dtype=bool)), scores, np.float32(-np.inf))
    scores = np.exp(scores - scores.max(axis=-1, keepdims=True))
    scores /= scores.sum(axis=-1, keepdims=True)
    return np.matmul(scores, v)


def main():
    heads, dim = 8, 64
    sizes = [int(n) for n in sys.argv[1:]] or [1024, 4096]
    rng = np.random.default_rng(0)
    rows = []
    for n in sizes:
        q, k, v = (rng.standard_normal((1, heads, n, dim), dtype=np.float32) for _ in range(3))
        for causal in (False, True):
            ms = best_ms(lambda: attention(q, k, v, causal), 5 if n <= 1024 else 2)
            rows.append({"n": n, "causal": causal, "ms": ms})
    a = rng.standard_normal((2048, 2048), dtype=np.float32)
    b = rng.standard_normal((2048, 2048), dtype=np.float32)
    ms = best_ms(lambda: a @ b, 5)
    print(json.dumps({
        "numpy": np.__version__,
        "attention": rows,
        "matmulGflops": 2 * 2048 ** 3 / ms / 1e6,
    }))


main()
