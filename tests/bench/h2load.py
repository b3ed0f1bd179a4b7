"""Running ``h2load`` and reading its report.

``h2load`` (nghttp2-client) prints, among other lines::

    finished in 5.00s, 159142.50 req/s, 159.81MB/s
    requests: 636570 total, 636570 started, 636570 done, 636570 succeeded, 0 failed, ...
    time for request:       45us     20.12ms       608us       677us    95.99%

Sizes use binary units (``KB`` = 1024 bytes); with ``-D`` the rates cover
the main duration only, not the warm-up.
"""

from __future__ import annotations

import re
import subprocess
from collections.abc import Sequence
from dataclasses import dataclass

_FINISHED = re.compile(r"finished in [\d.]+m?s, ([\d.]+) req/s, ([\d.]+)([KMG]?B)/s")
_REQUESTS = re.compile(r"requests: (\d+) total, (\d+) started, (\d+) done, (\d+) succeeded, "
                       r"(\d+) failed, (\d+) errored, (\d+) timeout")
_TIME_FOR_REQUEST = re.compile(r"time for request:\s+([\d.]+)(us|ms|s)\s+([\d.]+)(us|ms|s)"
                               r"\s+([\d.]+)(us|ms|s)")
_BYTE_UNITS = {"B": 1, "KB": 1024, "MB": 1024**2, "GB": 1024**3}
_TIME_UNITS = {"us": 1e-3, "ms": 1.0, "s": 1e3}


class H2loadError(RuntimeError):
    """h2load failed or printed no report."""


@dataclass(frozen=True, slots=True, kw_only=True)
class H2loadResult:
    req_per_s: float
    mib_per_s: float
    """Bytes received per second (headers and DATA), MiB."""
    mean_ms: float
    """Mean time for a request, milliseconds."""
    done: int
    succeeded: int
    failed: int
    errored: int
    output: str

    @property
    def clean(self) -> bool:
        """Every request that finished succeeded."""
        return self.succeeded > 0 and self.failed == 0 and self.errored == 0


def parse(output: str) -> H2loadResult:
    """The figures of an h2load report; raises :class:`H2loadError` if one is missing."""
    fin = _FINISHED.search(output)
    req = _REQUESTS.search(output)
    tfr = _TIME_FOR_REQUEST.search(output)
    if fin is None or req is None:
        raise H2loadError(f"no h2load report in:\n{output[-2000:]}")
    mean_ms = float(tfr[5]) * _TIME_UNITS[tfr[6]] if tfr else float("nan")
    return H2loadResult(req_per_s=float(fin[1]),
                        mib_per_s=float(fin[2]) * _BYTE_UNITS[fin[3]] / 1024**2,
                        mean_ms=mean_ms, done=int(req[3]), succeeded=int(req[4]),
                        failed=int(req[5]), errored=int(req[6]), output=output)


def run(exe: str, url: str, *, clients: int, streams: int, duration: float | None = None,
        warmup: float = 0.0, requests: int | None = None, extra: Sequence[str] = (),
        timeout: float = 120.0) -> H2loadResult:
    """Run h2load against *url*: timed (``duration``) or a number of ``requests``."""
    args = [exe, "-c", str(clients), "-m", str(streams), *extra]
    if duration is not None:
        # h2load takes whole numbers with a unit: "1200ms", not "1.2".
        args += ["-D", f"{round(duration * 1000)}ms"]
        if warmup:
            args += [f"--warm-up-time={round(warmup * 1000)}ms"]
    else:
        args += ["-n", str(requests or clients * streams)]
    try:
        proc = subprocess.run([*args, url], capture_output=True, timeout=timeout, check=False)
    except subprocess.TimeoutExpired as exc:
        raise H2loadError(f"h2load did not finish within {timeout} s: {' '.join(args)}") from exc
    out = proc.stdout.decode(errors="replace") + proc.stderr.decode(errors="replace")
    try:
        return parse(out)
    except H2loadError:
        last = out.strip().splitlines()[-1:] or ["no output"]
        raise H2loadError(f"h2load exited with {proc.returncode} without a report: "
                          f"{last[0]}") from None
