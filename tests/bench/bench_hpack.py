"""Header blocks per second: ``hpack.Decoder`` vs :class:`AnnotatedDecoder`.

A plain script, not a pytest test: ``python tests/bench/bench_hpack.py``.

The workload is browser-like: a page load's worth of requests and responses,
each ~15 fields, encoded by ``hpack.Encoder`` with Huffman and a warm dynamic
table, with a different ``:path`` in every request (so the table keeps
inserting and evicting, as it does in real traffic). Both decoders decode the
same block sequences in the same run, each from a fresh context per pass.
"""

from __future__ import annotations

import argparse
import gc
import random
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import hpack

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from proxy.observe.hpack_annotated import AnnotatedDecoder, clear_huffman_cache

_USER_AGENT = (
    "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/126.0.0.0 Safari/537.36"
)
_ACCEPTS = (
    "text/html,application/xhtml+xml,application/xml;q=0.9,image/avif,image/webp,*/*;q=0.8",
    "image/avif,image/webp,image/apng,image/svg+xml,image/*,*/*;q=0.8",
    "text/css,*/*;q=0.1",
    "*/*",
)
_TYPES = ("text/html; charset=utf-8", "image/webp", "text/css", "application/javascript")


def _requests(count: int, rng: random.Random) -> list[list[tuple[str, str]]]:
    lists = []
    for n in range(count):
        kind = rng.randrange(len(_ACCEPTS))
        lists.append(
            [
                (":method", "GET"),
                (":authority", "www.example.com"),
                (":scheme", "https"),
                (
                    ":path",
                    f"/static/{rng.getrandbits(48):012x}/asset-{n}.js?v={rng.randrange(10**6)}",
                ),
                ("sec-ch-ua", '"Chromium";v="126", "Not.A/Brand";v="24"'),
                ("sec-ch-ua-mobile", "?0"),
                ("sec-ch-ua-platform", '"Linux"'),
                ("user-agent", _USER_AGENT),
                ("accept", _ACCEPTS[kind]),
                ("sec-fetch-site", "same-origin"),
                ("sec-fetch-mode", "no-cors" if kind else "navigate"),
                ("sec-fetch-dest", ("document", "image", "style", "script")[kind]),
                ("referer", "https://www.example.com/"),
                ("accept-encoding", "gzip, deflate, br, zstd"),
                ("accept-language", "en-US,en;q=0.9"),
                ("cookie", "session=4f6c2a9e1b7d3c5a8e0f; theme=dark; consent=1"),
            ]
        )
    return lists


def _responses(count: int, rng: random.Random) -> list[list[tuple[str, str]]]:
    lists = []
    for n in range(count):
        kind = rng.randrange(len(_TYPES))
        lists.append(
            [
                (":status", "200"),
                ("date", f"Mon, 01 Jul 2024 12:00:{n // 20 % 60:02d} GMT"),
                ("content-type", _TYPES[kind]),
                ("content-length", str(rng.randrange(200, 200_000))),
                ("cache-control", "public, max-age=31536000, immutable"),
                ("etag", f'"{rng.getrandbits(64):016x}"'),
                ("last-modified", "Fri, 28 Jun 2024 09:14:07 GMT"),
                ("server", "nginx"),
                ("vary", "Accept-Encoding"),
                ("content-encoding", "br"),
                ("accept-ranges", "bytes"),
                ("x-content-type-options", "nosniff"),
                ("strict-transport-security", "max-age=63072000; includeSubDomains"),
                ("access-control-allow-origin", "*"),
                ("alt-svc", 'h3=":443"; ma=86400'),
            ]
        )
    return lists


def _encode(lists: list[list[tuple[str, str]]]) -> list[bytes]:
    encoder = hpack.Encoder()
    return [encoder.encode(headers, huffman=True) for headers in lists]


def _hpack_pass(blocks: Sequence[bytes]) -> None:
    decode = hpack.Decoder().decode
    for block in blocks:
        decode(block, raw=True)


def _annotated_pass(blocks: Sequence[bytes]) -> None:
    decode = AnnotatedDecoder().decode
    for block in blocks:
        decode(block)


def _annotated_read_pass(blocks: Sequence[bytes]) -> None:
    """Decode and also build every FieldAnnotation object (the worst case)."""
    decode = AnnotatedDecoder().decode
    for block in blocks:
        tuple(decode(block).fields)


def _rate(run: Callable[[Sequence[bytes]], None], blocks: Sequence[bytes], repeat: int) -> float:
    """Best of ``repeat`` passes, in blocks per second."""
    best = float("inf")
    for _ in range(repeat):
        # Every pass starts cold: the Huffman cache outlives decoders, and a
        # warm one would decode every :path of the previous pass for free.
        clear_huffman_cache()
        gc.collect()
        began = time.perf_counter()
        run(blocks)
        best = min(best, time.perf_counter() - began)
    return len(blocks) / best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--blocks", type=int, default=2000, help="blocks per direction")
    parser.add_argument("--repeat", type=int, default=7, help="passes; the best counts")
    args = parser.parse_args()

    rng = random.Random(7541)
    workloads = {
        "requests": _encode(_requests(args.blocks, rng)),
        "responses": _encode(_responses(args.blocks, rng)),
    }
    for blocks in workloads.values():  # both must agree before timing means anything
        reference = hpack.Decoder()
        annotated = AnnotatedDecoder()
        for block in blocks:
            want = [(bytes(n), bytes(v)) for n, v in reference.decode(block, raw=True)]
            got = [
                (n.encode("utf-8", "surrogateescape"), v.encode("utf-8", "surrogateescape"))
                for n, v in annotated.decode(block).headers
            ]
            assert got == want, "decoders disagree"

    print(
        f"{'workload':<10} {'blocks':>6} {'hpack.Decoder':>15} {'AnnotatedDecoder':>17} "
        f"{'ratio':>6} {'+ read .fields':>15} {'ratio':>6}"
    )
    for name, blocks in workloads.items():
        theirs = _rate(_hpack_pass, blocks, args.repeat)
        ours = _rate(_annotated_pass, blocks, args.repeat)
        ours_read = _rate(_annotated_read_pass, blocks, args.repeat)
        print(
            f"{name:<10} {len(blocks):>6} {theirs:>13,.0f}/s {ours:>15,.0f}/s "
            f"{ours / theirs:>5.2f}x {ours_read:>13,.0f}/s {ours_read / theirs:>5.2f}x"
        )


if __name__ == "__main__":
    main()
