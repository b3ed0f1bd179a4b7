"""Proxy benchmark: h2load → nghttpd directly, through h2scope and through mitmproxy.

A plain script (not collected by pytest)::

    python tests/bench/bench_proxy.py [--quick] [--profile FILE] [--json FILE]
                                      [--mitmdump PATH] [--duration S] [--no-reference]

Everything runs in one go on this machine, side by side, TLS on both legs:

* ``direct``: h2load → nghttpd (TLS, h2);
* ``h2scope``: h2load → ``h2scope run --headless --mode reverse:https://…``
  (a subprocess, stdout to /dev/null: every frame observed, decoded and
  formatted as a line) → nghttpd, the upstream verified against the
  test certificate (``--upstream-ca``);
* ``h2scope+rec``: the same with ``--record`` (a capture of every frame);
* ``UI``: ``h2scope run`` with its Textual UI, in a pseudo-terminal of
  160 × 48 nobody looks at: the proxy runs as the UI's child process and the
  UI follows the capture it writes (its CPU time and RSS are the proxy
  process's; the UI process's are printed below the table);
* ``mitmproxy``: ``mitmdump --mode reverse:https://…`` when a ``mitmdump`` is
  found (``--mitmdump``, ``$MITMDUMP`` or ``$PATH``; never a project
  dependency — install it into a separate virtualenv to compare);
* ``py relay``: ``reference_relay.py`` beside this file, a bare asyncio TLS
  byte relay (no decoding) in reverse-proxy style — the reference the
  issue's targets were calibrated against;
* ``py relay+hpack``: the same relay splitting both directions into frames
  and decoding every header block with ``hpack.Decoder`` (``--hpack``).

The two reference relays run unless ``--no-reference``; like the proxies,
their CPU time and peak RSS are measured.

Workloads (h2load, timed with ``-D`` after a warm-up):

* W1: 1 KiB responses, 10 connections × 10 concurrent streams — requests/s;
* W2: 100 KiB responses, 10 × 10 — MiB/s;
* W3: 10 MiB downloads, 1 connection, one at a time — MiB/s;
* W4: 1 KiB responses, one stream at a time — mean latency (ms).

The table gives each figure with its ratio to direct (W4: the latency
added), h2scope against mitmproxy, recording against not recording, and the
proxies' peak RSS (``VmHWM``) after all workloads, then the issue's targets.
A second table sets h2scope (headless) beside the reference relays: each
figure × direct (W4: the latency added) and h2scope ÷ ``py relay+hpack``
(W4: h2scope's mean latency minus the relay's).
``--profile FILE`` adds a py-spy profile of the headless proxy under W1 (a
separate run, so sampling does not slow the measured one) and summarizes it
(``--profile-workload``, ``--profile-target`` choose another).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from tests.bench import h2load  # noqa: E402
from tests.bench.proxyproc import (  # noqa: E402
    ProxyProcess,
    ProxyStartFailed,
    UiProcess,
    cpu_seconds,
    peak_rss_mib,
)
from tests.bench.pyspy_summary import summarize  # noqa: E402
from tests.helpers.procs import free_port, wait_for_port  # noqa: E402
from tests.helpers.tls_files import CertFiles, make_self_signed  # noqa: E402

RELAY = Path(__file__).with_name("reference_relay.py")
REFERENCES = {"py relay": False, "py relay+hpack": True}
"""The reference relays' columns, and whether each decodes header blocks."""

FILES = {"1k": 1024, "100k": 100 * 1024, "10m": 10 * 1024 * 1024}


@dataclass(frozen=True, slots=True, kw_only=True)
class Workload:
    name: str
    title: str
    path: str
    clients: int
    streams: int
    metric: str
    """``req/s``, ``MiB/s`` or ``ms`` (mean latency: lower is better)."""

    def value(self, r: h2load.H2loadResult) -> float:
        return {"req/s": r.req_per_s, "MiB/s": r.mib_per_s, "ms": r.mean_ms}[self.metric]

    @property
    def higher_is_better(self) -> bool:
        return self.metric != "ms"


WORKLOADS = (
    Workload(name="W1", title="1 KiB responses, 10 conn × 10 streams", path="/1k",
             clients=10, streams=10, metric="req/s"),
    Workload(name="W2", title="100 KiB responses, 10 conn × 10 streams", path="/100k",
             clients=10, streams=10, metric="MiB/s"),
    Workload(name="W3", title="10 MiB downloads, 1 conn × 1 stream", path="/10m",
             clients=1, streams=1, metric="MiB/s"),
    Workload(name="W4", title="1 KiB, one stream at a time", path="/1k",
             clients=1, streams=1, metric="ms"),
)

#: The issue's targets, on ratios measured in the same run.
TARGET_RATIO = {"W1": 0.15, "W2": 0.40, "W3": 0.40}
TARGET_ADDED_MS = 0.35
TARGET_RSS_MIB = 120.0
TARGET_RECORDING = 0.85
TARGET_UI = 0.70


@dataclass(slots=True)
class Target:
    name: str
    port: int = 0
    pid: int | None = None
    """The proxy's process (None for direct)."""
    ui_pid: int | None = None
    """With the UI: the UI's process (the proxy's parent)."""
    ui_cpu: float = 0.0
    unavailable: str | None = None
    """Why this column has no figures."""
    results: dict[str, h2load.H2loadResult] = field(default_factory=dict)
    errors: dict[str, str] = field(default_factory=dict)
    peak_rss: float | None = None
    cpu: float = 0.0
    check: Callable[[], str | None] | None = None
    """Returns a problem the proxy reported (a failed sink, a traceback), if any."""
    stderr: list[str] = field(default_factory=list)
    """The proxy's last lines on stderr, kept when it reported a problem."""


# ------------------------------------------------------------------ peers


def need(program: str, package: str) -> str:
    path = shutil.which(program)
    if path is None:
        sys.exit(f"bench_proxy: {program} is not installed (apt-get install {package})")
    return path


@contextlib.contextmanager
def nghttpd(docroot: Path, cert: Path, key: Path) -> Iterator[int]:
    exe = need("nghttpd", "nghttp2-server")
    for _attempt in range(3):
        port = free_port()
        proc = subprocess.Popen([exe, "-d", str(docroot), "--address=127.0.0.1", str(port),
                                 str(key), str(cert)], stdout=subprocess.DEVNULL,
                                stderr=subprocess.STDOUT)
        try:
            wait_for_port(port, timeout=10)
        except (RuntimeError, TimeoutError):
            proc.kill()
            proc.wait(5)
            continue
        try:
            yield port
        finally:
            proc.kill()
            proc.wait(5)
        return
    sys.exit("bench_proxy: nghttpd did not start")


def stop(proc: subprocess.Popen[bytes]) -> None:
    """SIGTERM, then SIGKILL if it has not exited within 10 s."""
    proc.terminate()
    try:
        proc.wait(10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(5)


def find_mitmdump(given: str | None) -> str | None:
    for candidate in (given, os.environ.get("MITMDUMP"), shutil.which("mitmdump")):
        if candidate and Path(candidate).is_file():
            return candidate
    return None


@contextlib.contextmanager
def mitmdump(exe: str, upstream: int, ca: Path, confdir: Path) -> Iterator[tuple[int, int]]:
    """mitmdump in reverse mode (one line per flow to /dev/null); yields (port, pid)."""
    port = free_port()
    proc = subprocess.Popen(
        [exe, "--mode", f"reverse:https://127.0.0.1:{upstream}", "--listen-host", "127.0.0.1",
         "-p", str(port), "--set", f"confdir={confdir}",
         "--set", f"ssl_verify_upstream_trusted_ca={ca}"],
        stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_for_port(port, timeout=30)
        yield port, proc.pid
    finally:
        stop(proc)


@contextlib.contextmanager
def reference_relay(upstream: int, cert: CertFiles, log: Path, *,
                    decode: bool) -> Iterator[tuple[int, subprocess.Popen[bytes]]]:
    """``reference_relay.py`` in front of *upstream* (stderr to *log*); yields (port, process)."""
    args = [sys.executable, str(RELAY), "--upstream-port", str(upstream), "--cert",
            str(cert.cert), "--key", str(cert.key), "--upstream-ca", str(cert.cert)]
    if decode:
        args.append("--hpack")
    for _attempt in range(3):
        port = free_port()
        with log.open("ab") as err:
            proc = subprocess.Popen([*args, "--listen-port", str(port)],
                                    stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                    stderr=err)
        try:
            wait_for_port(port, proc, timeout=10)
        except (RuntimeError, TimeoutError):
            proc.kill()
            proc.wait(5)
            continue
        try:
            yield port, proc
        finally:
            stop(proc)
        return
    raise ProxyStartFailed(f"{RELAY.name} did not start; its stderr is in {log}")


def relay_problem(proc: subprocess.Popen[bytes], log: Path) -> Callable[[], str | None]:
    def check() -> str | None:
        if proc.poll() is not None:
            return f"the relay exited with {proc.returncode}"
        for line in tail(log):
            if "Traceback" in line or "ERROR" in line:
                return line.strip()
        return None
    return check


def tail(log: Path, lines: int = 40) -> list[str]:
    """The last *lines* of a log file (none if it cannot be read)."""
    try:
        return log.read_text(errors="replace").splitlines()[-lines:]
    except OSError:
        return []


def ui_unavailable() -> str | None:
    """Why there can be no "with the UI" column, or None if ``h2scope run`` has a UI."""
    try:
        import ui.launch
    except Exception:
        return "n/a (UI not built)"
    if not hasattr(ui.launch, "run_live"):
        return "n/a (the UI cannot run live yet)"
    return None


def proxy_problem(proxy: ProxyProcess | UiProcess) -> Callable[[], str | None]:
    def check() -> str | None:
        if not proxy.alive():
            return "the proxy exited"
        lines = proxy.problems() if isinstance(proxy, UiProcess) else proxy.stderr_lines
        for line in lines:
            if "Traceback" in line or " ERROR " in line or " CRITICAL " in line:
                return line.strip()
        return None
    return check


# ------------------------------------------------------------------- runs


def better(wl: Workload, a: h2load.H2loadResult, b: h2load.H2loadResult) -> bool:
    """True if *a* is the better figure of the two (clean runs first)."""
    if a.clean != b.clean:
        return a.clean
    va, vb = wl.value(a), wl.value(b)
    return va > vb if wl.higher_is_better else va < vb


def measure(exe: str, target: Target, wl: Workload, duration: float, warmup: float) -> None:
    """One h2load run of *wl* against *target*; keeps the best of the runs so far."""
    if target.unavailable:
        return
    url = f"https://127.0.0.1:{target.port}{wl.path}"
    # The recording proxy's capture grows by gigabytes over the workloads: write
    # back what is dirty now, so that no run pays for the kernel flushing an
    # earlier run's data (the recording's own writes still count in its run).
    os.sync()
    before = cpu_seconds(target.pid) if target.pid else 0.0
    ui_before = cpu_seconds(target.ui_pid) if target.ui_pid else 0.0
    try:
        result = h2load.run(exe, url, clients=wl.clients, streams=wl.streams,
                            duration=duration, warmup=warmup, timeout=duration + warmup + 60)
    except h2load.H2loadError as exc:
        target.errors[wl.name] = str(exc).splitlines()[0]
        return
    if target.pid:
        target.cpu += cpu_seconds(target.pid) - before
    if target.ui_pid:
        target.ui_cpu += cpu_seconds(target.ui_pid) - ui_before
    best = target.results.get(wl.name)
    if best is None or better(wl, result, best):
        target.results[wl.name] = result
    if not result.clean:
        target.errors[wl.name] = (f"{result.failed} failed, {result.errored} errored of "
                                  f"{result.done}")
    problem = target.check() if target.check else None
    if problem:
        target.errors.setdefault(wl.name, f"proxy: {problem}")


def profile(exe: str, target: Target, wl: Workload, duration: float, out: Path) -> str:
    """py-spy over the proxy while h2load runs *wl* against it; the summary."""
    spy = shutil.which("py-spy")
    if spy is None:
        return "py-spy is not installed (pip install py-spy): no profile"
    if target.pid is None:
        return f"{target.name} is not running: no profile"
    load = subprocess.Popen([exe, "-c", str(wl.clients), "-m", str(wl.streams),
                             "-D", f"{round(duration * 1000) + 1000}ms",
                             f"https://127.0.0.1:{target.port}{wl.path}"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        time.sleep(0.5)  # connections up; then sample the steady state
        subprocess.run([spy, "record", "-f", "raw", "-o", str(out), "--pid", str(target.pid),
                        "-d", f"{max(1, math.ceil(duration))}"], capture_output=True,
                       timeout=duration + 60, check=False)
    finally:
        try:
            load.wait(duration + 30)
        except subprocess.TimeoutExpired:
            load.kill()
            load.wait(5)
    if not out.exists():
        return "py-spy wrote no profile (ptrace not permitted?)"
    return summarize(out)


# ------------------------------------------------------------------ table


def fmt(value: float, metric: str) -> str:
    if math.isnan(value):
        return "—"
    if metric == "ms":
        return f"{value:.3f} ms"
    if metric == "req/s":
        return f"{value:,.0f} req/s"
    return f"{value:,.1f} MiB/s"


def table(targets: dict[str, Target]) -> tuple[list[str], list[str]]:
    """Markdown table lines, and the target checks."""
    direct, h2s, rec, ui, mitm = (targets[k] for k in ("direct", "h2scope", "h2scope+rec",
                                                       "UI", "mitmproxy"))
    head = ["workload", "direct", "h2scope headless", "× direct", "h2scope + recording",
            "rec ÷ headless", "h2scope with UI", "UI ÷ headless", "mitmproxy", "× direct",
            "h2scope ÷ mitmproxy"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    checks: list[str] = []

    def val(t: Target, wl: Workload) -> float:
        r = t.results.get(wl.name)
        return wl.value(r) if r is not None else float("nan")

    def cell(t: Target, wl: Workload) -> str:
        if t.unavailable:
            return t.unavailable
        text = fmt(val(t, wl), wl.metric)
        return text + (" (!)" if wl.name in t.errors else "")

    def met(ok: bool) -> str:
        return "met" if ok else "NOT met"

    for wl in WORKLOADS:
        d, h, r, u, m = (val(t, wl) for t in (direct, h2s, rec, ui, mitm))
        if wl.higher_is_better:
            h_ratio, m_ratio = f"{h / d:.3f}", f"{m / d:.4f}"
            rec_ratio, ui_ratio = f"{r / h:.2f}", f"{u / h:.2f}"
            vs_mitm = f"{h / m:.0f}×" if m > 0 else "—"
        else:
            h_ratio = f"{h - d:+.3f} ms"
            m_ratio = f"{m - d:+.3f} ms"
            rec_ratio, ui_ratio = f"{r - h:+.3f} ms", f"{u - h:+.3f} ms"
            vs_mitm = f"{m / h:.1f}× lower" if h > 0 else "—"
        if mitm.unavailable:
            m_ratio = vs_mitm = "—"
        if ui.unavailable:
            ui_ratio = "—"
        lines.append(f"| {wl.name} {wl.title} | {cell(direct, wl)} | {cell(h2s, wl)} | "
                     f"{h_ratio} | {cell(rec, wl)} | {rec_ratio} | {cell(ui, wl)} | "
                     f"{ui_ratio} | {cell(mitm, wl)} | {m_ratio} | {vs_mitm} |")
        if wl.name in TARGET_RATIO:
            goal = TARGET_RATIO[wl.name]
            checks.append(f"{wl.name} h2scope ≥ {goal} × direct: {h / d:.3f} "
                          f"{met(h / d >= goal)}")
            checks.append(f"{wl.name} recording ≥ {TARGET_RECORDING} × headless: {r / h:.2f} "
                          f"{met(r / h >= TARGET_RECORDING)}")
            if not ui.unavailable:
                checks.append(f"{wl.name} with the UI ≥ {TARGET_UI} × headless: {u / h:.2f} "
                              f"{met(u / h >= TARGET_UI)}")
        else:
            checks.append(f"{wl.name} latency added ≤ {TARGET_ADDED_MS} ms: {h - d:.3f} ms "
                          f"{met(h - d <= TARGET_ADDED_MS)}")
    shown = (h2s, rec, ui, mitm)
    rss = [f"{t.peak_rss:.0f} MiB" if t.peak_rss is not None else (t.unavailable or "—")
           for t in shown]
    lines.append(f"| peak RSS (VmHWM) after all workloads | — | {rss[0]} | | {rss[1]} | | "
                 f"{rss[2]} | | {rss[3]} | | |")
    cpu = [f"{t.cpu:.1f} s" if not t.unavailable else "—" for t in shown]
    lines.append(f"| proxy CPU time during the workloads | — | {cpu[0]} | | {cpu[1]} | | "
                 f"{cpu[2]} | | {cpu[3]} | | |")
    if h2s.peak_rss is not None:
        checks.append(f"peak RSS ≤ {TARGET_RSS_MIB:.0f} MiB: {h2s.peak_rss:.0f} MiB "
                      f"{met(h2s.peak_rss <= TARGET_RSS_MIB)}")
    if ui.unavailable:
        checks.append(f"with the UI ≥ {TARGET_UI} × headless: {ui.unavailable}")
    return lines, checks


def reference_table(targets: dict[str, Target]) -> list[str]:
    """h2scope (headless) beside the reference relays; no lines if they did not run."""
    direct, h2s = targets["direct"], targets["h2scope"]
    relay, decoding = targets["py relay"], targets["py relay+hpack"]
    if relay.unavailable and decoding.unavailable:
        return []
    head = ["workload", "direct", "py relay (× direct)", "py relay+hpack (× direct)",
            "h2scope headless (× direct)", "h2scope ÷ py relay+hpack"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]

    def val(t: Target, wl: Workload) -> float:
        r = t.results.get(wl.name)
        return wl.value(r) if r is not None else float("nan")

    def cell(t: Target, wl: Workload) -> str:
        if t.unavailable:
            return t.unavailable
        v, d = val(t, wl), val(direct, wl)
        vs = f"{v / d:.3f}×" if wl.higher_is_better else f"{v - d:+.3f} ms"
        text = f"{fmt(v, wl.metric)} ({vs})"
        return text + (" (!)" if wl.name in t.errors else "")

    for wl in WORKLOADS:
        h, rh = val(h2s, wl), val(decoding, wl)
        if decoding.unavailable:
            vs_relay = "—"
        elif wl.higher_is_better:
            vs_relay = f"{h / rh:.2f}"
        else:
            vs_relay = f"{h - rh:+.3f} ms"
        lines.append(f"| {wl.name} | {fmt(val(direct, wl), wl.metric)} | {cell(relay, wl)} | "
                     f"{cell(decoding, wl)} | {cell(h2s, wl)} | {vs_relay} |")
    shown = (relay, decoding, h2s)
    rss = [f"{t.peak_rss:.0f} MiB" if t.peak_rss is not None else (t.unavailable or "—")
           for t in shown]
    lines.append(f"| peak RSS (VmHWM) | — | {rss[0]} | {rss[1]} | {rss[2]} | |")
    cpu = [f"{t.cpu:.1f} s" if not t.unavailable else "—" for t in shown]
    lines.append(f"| CPU time during the workloads | — | {cpu[0]} | {cpu[1]} | {cpu[2]} | |")
    return lines


# ------------------------------------------------------------------- main


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--quick", action="store_true",
                   help="short runs (about 40 s in all) instead of about 3 minutes")
    p.add_argument("--duration", type=float,
                   help="seconds each h2load run measures (default 2.5, --quick 1.2)")
    p.add_argument("--repeat", type=int,
                   help="runs of each workload per target, the best kept (default 2, "
                   "--quick 1); the targets take turns, so a noisy moment hits one run")
    p.add_argument("--no-ui", action="store_true", help="leave out the run with the UI")
    p.add_argument("--no-reference", action="store_true",
                   help="leave out the reference relays (py relay, py relay+hpack)")
    p.add_argument("--mitmdump", help="mitmdump executable to compare with "
                   "(default: $MITMDUMP, then $PATH)")
    p.add_argument("--profile", type=Path, metavar="FILE",
                   help="also profile the headless proxy under W1 with py-spy (raw "
                   "collapsed stacks to FILE) and print a summary")
    p.add_argument("--profile-workload", choices=[w.name for w in WORKLOADS], default="W1",
                   help="the workload to profile under (default W1)")
    p.add_argument("--profile-target", choices=["h2scope", "h2scope+rec", "UI"],
                   default="h2scope",
                   help="the proxy to profile (default: h2scope, headless); with UI, the "
                        "proxy process the UI runs")
    p.add_argument("--json", type=Path, metavar="FILE", help="write the figures as JSON")
    return p.parse_args()


def main() -> int:
    args = parse_args()
    duration = args.duration or (1.2 if args.quick else 2.5)
    warmup = 0.4 if args.quick else 0.5
    repeat = args.repeat or (1 if args.quick else 2)
    exe = need("h2load", "nghttp2-client")
    mitm_exe = find_mitmdump(args.mitmdump)
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="h2scope-bench-") as tmp:
        work = Path(tmp)
        cert = make_self_signed(work / "cert")
        docroot = work / "www"
        docroot.mkdir()
        for name, size in FILES.items():
            (docroot / name).write_bytes(os.urandom(size))
        targets = {name: Target(name) for name in ("direct", "h2scope", "h2scope+rec", "UI",
                                                   "mitmproxy", *REFERENCES)}
        with contextlib.ExitStack() as stack:
            upstream = stack.enter_context(nghttpd(docroot, cert.cert, cert.key))
            targets["direct"].port = upstream
            mode = f"reverse:https://127.0.0.1:{upstream}"
            proxies: list[ProxyProcess | UiProcess] = []
            for name, record in (("h2scope", None), ("h2scope+rec", work / "bench.h2scope")):
                proxy = stack.enter_context(ProxyProcess(
                    confdir=work / "conf", mode=mode, upstream_ca=cert.cert, record=record))
                proxy.name = name
                proxies.append(proxy)
                t = targets[name]
                t.port, t.pid, t.check = proxy.port, proxy.pid, proxy_problem(proxy)
            ui_target = targets["UI"]
            ui_target.unavailable = ui_unavailable() if not args.no_ui else "n/a (--no-ui)"
            if ui_target.unavailable is None:
                try:
                    ui_proc = stack.enter_context(UiProcess(
                        confdir=work / "conf", mode=mode, port=free_port(),
                        log_file=work / "ui.log", upstream_ca=cert.cert))
                except ProxyStartFailed as exc:
                    ui_target.unavailable = f"n/a (the UI did not start: {exc})"
                else:
                    proxies.append(ui_proc)
                    ui_target.port, ui_target.pid = ui_proc.port, ui_proc.proxy_pid
                    ui_target.ui_pid = ui_proc.pid
                    ui_target.check = proxy_problem(ui_proc)
            if mitm_exe is None:
                targets["mitmproxy"].unavailable = "n/a (mitmdump not found)"
            else:
                port, pid = stack.enter_context(mitmdump(mitm_exe, upstream, cert.cert,
                                                         work / "mitmconf"))
                targets["mitmproxy"].port, targets["mitmproxy"].pid = port, pid
            relay_logs: dict[str, Path] = {}
            for name, decode in REFERENCES.items():
                t = targets[name]
                if args.no_reference:
                    t.unavailable = "n/a (--no-reference)"
                    continue
                relay_logs[name] = work / f"{name.replace(' ', '-')}.log"
                try:
                    port, relay = stack.enter_context(reference_relay(
                        upstream, cert, relay_logs[name], decode=decode))
                except ProxyStartFailed as exc:
                    t.unavailable = f"n/a (did not start: {exc})"
                    continue
                t.port, t.pid = port, relay.pid
                t.check = relay_problem(relay, relay_logs[name])
            print(f"set-up {time.monotonic() - started:.1f} s; each run {warmup:g} s warm-up "
                  f"+ {duration:g} s, best of {repeat}", flush=True)
            for wl in WORKLOADS:
                for _ in range(repeat):
                    for t in targets.values():
                        measure(exe, t, wl, duration, warmup)
                for t in targets.values():
                    r = t.results.get(wl.name)
                    shown = fmt(wl.value(r), wl.metric) if r else t.unavailable or "failed"
                    err = f"  [{t.errors[wl.name]}]" if wl.name in t.errors else ""
                    print(f"  {wl.name} {t.name:<14} {shown}{err}", flush=True)
            for t in targets.values():
                if t.pid is not None:
                    t.peak_rss = peak_rss_mib(t.pid)
            ui_rss = peak_rss_mib(ui_target.ui_pid) if ui_target.ui_pid else None
            for running in proxies:
                t = targets[running.name]
                if t.errors:
                    t.stderr = list(running.stderr_lines)[-40:]
            for name, log in relay_logs.items():
                if targets[name].errors:
                    targets[name].stderr = tail(log)
            profile_text = None
            if args.profile is not None:
                wl = next(w for w in WORKLOADS if w.name == args.profile_workload)
                profile_text = profile(exe, targets[args.profile_target], wl, duration,
                                       args.profile)
            capture = work / "bench.h2scope"
            capture_mib = capture.stat().st_size / 1024**2 if capture.exists() else 0.0
    lines, checks = table(targets)
    print()
    print("\n".join(lines))
    print()
    reference = reference_table(targets)
    if reference:
        print("\n".join(reference))
        print()
    print(f"capture written by h2scope+rec: {capture_mib:,.0f} MiB")
    if ui_rss is not None:
        print(f"the UI's own process (beside its proxy): {ui_target.ui_cpu:.1f} s CPU during "
              f"the workloads, peak RSS {ui_rss:.0f} MiB")
    for t in targets.values():
        for wl_name, err in t.errors.items():
            print(f"(!) {t.name} {wl_name}: {err}")
        if t.stderr:
            print(f"--- {t.name}: the proxy's last lines on stderr")
            print("\n".join(t.stderr))
    print("targets:")
    print("\n".join(f"  {c}" for c in checks))
    if profile_text is not None:
        print(f"\npy-spy profile of {args.profile_target} under {args.profile_workload} "
              f"({args.profile}):")
        print(profile_text)
    print(f"\ntotal {time.monotonic() - started:.0f} s")
    if args.json is not None:
        args.json.write_text(json.dumps({
            name: {"results": {k: {"req_per_s": r.req_per_s, "mib_per_s": r.mib_per_s,
                                   "mean_ms": r.mean_ms, "succeeded": r.succeeded,
                                   "failed": r.failed, "errored": r.errored}
                               for k, r in t.results.items()},
                   "errors": t.errors, "peak_rss_mib": t.peak_rss, "cpu_s": t.cpu,
                   "unavailable": t.unavailable}
            for name, t in targets.items()}, indent=2))
    failed = any(t.errors for t in targets.values() if t.name.startswith("h2scope"))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
