"""Certificate minting and cache benchmark: ``python tests/bench/bench_certs.py``.

Measures, in a temporary configuration directory:

* cold ``leaf()`` — a new host name each time: one CA signature plus writing
  the chain file (target <= 5 ms);
* cold ``server_context()`` — a new host: the above plus building an
  ``ssl.SSLContext`` and loading the chain;
* cached ``leaf()`` and ``server_context()`` — the per-connection cost once a
  host has been seen (target <= 20 us).

Exits 1 if a median misses its target.
"""

from __future__ import annotations

import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from certs.store import CertStore

COLD_ROUNDS = 300
HOT_ROUNDS = 100_000
COLD_TARGET_S = 5e-3
HOT_TARGET_S = 20e-6


def time_each(fn: Callable[[int], object], rounds: int) -> list[float]:
    samples = []
    for i in range(rounds):
        start = time.perf_counter()
        fn(i)
        samples.append(time.perf_counter() - start)
    return samples


def time_batch(fn: Callable[[], object], rounds: int) -> list[float]:
    # Per-call timers would dominate a microsecond operation: time batches.
    batch = 1000
    samples = []
    for _ in range(rounds // batch):
        start = time.perf_counter()
        for _ in range(batch):
            fn()
        samples.append((time.perf_counter() - start) / batch)
    return samples


def fmt(seconds: float) -> str:
    return f"{seconds * 1e3:8.3f} ms" if seconds >= 1e-3 else f"{seconds * 1e6:8.2f} us"


def main() -> int:
    with tempfile.TemporaryDirectory() as tmp:
        start = time.perf_counter()
        store = CertStore(Path(tmp) / "conf", cache_size=4096)
        first_open = time.perf_counter() - start
        alpn = ("h2", "http/1.1")
        store.leaf("warmup.example.com")

        rows = [
            ("leaf() cold, new host", time_each(
                lambda i: store.leaf(f"cold{i}.bench.example"), COLD_ROUNDS), COLD_TARGET_S),
            ("server_context() cold, new host", time_each(
                lambda i: store.server_context(f"ctx{i}.bench.example", alpn), COLD_ROUNDS),
             COLD_TARGET_S),
            ("leaf() cached", time_batch(
                lambda: store.leaf("cold1.bench.example"), HOT_ROUNDS), HOT_TARGET_S),
            ("leaf() cached, IDN host", time_batch(
                lambda: store.leaf("bücher.example"), HOT_ROUNDS), HOT_TARGET_S),
            ("server_context() cached", time_batch(
                lambda: store.server_context("ctx1.bench.example", alpn), HOT_ROUNDS),
             HOT_TARGET_S),
        ]  # fmt: skip

    print(f"first use (creates RSA-2048 CA + P-256 leaf key): {fmt(first_open)}")
    print()
    header = f"{'operation':<34} {'n':>7} {'mean':>11} {'median':>11} {'p95':>11}  target"
    print(header)
    print("-" * len(header))
    failed = False
    for name, samples, target in rows:
        samples.sort()
        mean = statistics.fmean(samples)
        p50 = samples[len(samples) // 2]
        p95 = samples[int(len(samples) * 0.95)]
        verdict = ""
        if target is not None:
            ok = p50 <= target
            failed |= not ok
            verdict = f"<= {fmt(target).strip()} {'ok' if ok else 'MISSED'}"
        n = len(samples) if samples[0] > 1e-4 else len(samples) * 1000
        print(f"{name:<34} {n:>7} {fmt(mean)} {fmt(p50)} {fmt(p95)}  {verdict}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
