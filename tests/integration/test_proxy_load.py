"""Load and back-pressure: the proxy in its own process, measured through /proc.

* 500 concurrent client connections (h2load through reverse mode) all
  complete, three rounds in a row, and the proxy's RSS after the third round
  is within 10 % of what it was after the first: nothing grows per connection.
  Once idle, the proxy gives the burst's buffers back: its RSS after each
  round is within 40 MiB of its idle RSS.
* A client that stops reading a 200 MB download for a while keeps the
  proxy's memory within +50 MB of idle (back-pressure reaches the server,
  architecture principle 5), and the download then completes intact (SHA-256),
  over HTTP/2 and over HTTP/1.1.
* During both, other connections through the same proxy are served.

The proxy is ``h2scope run --headless`` (frames printed to /dev/null) via
:class:`tests.bench.proxyproc.ProxyProcess`, so the memory figures are the
proxy's own.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import os
import random
import re
import selectors
import signal
import socket
import ssl
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import h2.config
import h2.connection
import h2.events
import h2.settings
import pytest

from tests.bench.proxyproc import ProxyProcess
from tests.helpers import procs
from tests.helpers.tls_files import CertFiles

pytestmark = pytest.mark.peer

BIG = 200 * 1024 * 1024
ROUNDS = 3
CONNECTIONS = 500
REQUESTS = 1000
IDLE_MARGIN_MIB = 40.0
"""After a round, the proxy's RSS within this of its idle RSS (the burst's peak
is about 130 MiB above it)."""


@dataclass(frozen=True, slots=True)
class Payload:
    path: Path
    sha256: str
    size: int


@pytest.fixture(scope="module")
def big_docroot(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Payload]:
    """A docroot with a small page and a 200 MB file of pseudo-random bytes."""
    root = tmp_path_factory.mktemp("load-www")
    (root / "index.html").write_text("<html><body>hello under load</body></html>\n")
    data = random.Random(4).randbytes(BIG)
    path = root / "big.bin"
    path.write_bytes(data)
    return root, Payload(path, hashlib.sha256(data).hexdigest(), BIG)


@pytest.fixture
def proxy_for(tmp_path: Path, confdir: Path, origin_cert: CertFiles
              ) -> Iterator[Callable[[str], ProxyProcess]]:
    """Starts ``h2scope run --headless`` in reverse mode to a URL; stopped after the test."""
    started: list[ProxyProcess] = []

    def start(upstream: str) -> ProxyProcess:
        proxy = ProxyProcess(confdir=confdir, mode=f"reverse:{upstream}",
                             upstream_ca=origin_cert.cert, cwd=tmp_path).start()
        started.append(proxy)
        return proxy

    try:
        yield start
    finally:
        for proxy in started:
            proxy.stop()


@dataclass
class Bystander:
    """Small requests through the proxy, one after another, while something else runs."""

    url: str
    results: list[tuple[int, float, bytes]] = field(default_factory=list)
    """(curl exit status, seconds, body) per request."""
    stop: threading.Event = field(default_factory=threading.Event)
    thread: threading.Thread | None = None

    def _run(self) -> None:
        curl = procs.require("curl")
        while not self.stop.is_set() and len(self.results) < 500:
            start = time.monotonic()
            r = procs.run([curl, "-sk", "--max-time", "10", self.url], timeout=20)
            self.results.append((r.returncode, time.monotonic() - start, r.stdout))
            self.stop.wait(0.05)

    def __enter__(self) -> Bystander:
        self.thread = threading.Thread(target=self._run, daemon=True, name="bystander")
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        if self.thread is not None:
            self.thread.join(30)

    def check(self, expected: bytes) -> None:
        assert self.results, "no request of another client completed meanwhile"
        for status, seconds, body in self.results:
            assert status == 0, f"curl exit {status} for a bystander request"
            assert body == expected
            assert seconds < 10


def count(pattern: str, text: str) -> int:
    m = re.search(pattern, text)
    assert m, text
    return int(m[1])


def test_500_concurrent_connections_complete_and_rss_does_not_grow_over_three_rounds(
        proxy_for: Callable[[str], ProxyProcess], big_docroot: tuple[Path, Payload],
        origin_cert: CertFiles) -> None:
    docroot, _ = big_docroot
    h2load = procs.require("h2load")
    with procs.nghttpd(docroot, cert=origin_cert.cert, key=origin_cert.key) as sport:
        proxy = proxy_for(f"https://localhost:{sport}")
        url = f"https://127.0.0.1:{proxy.port}/index.html"
        idle_fds = proxy.fd_count()
        idle_rss = proxy.settled_rss_mib()
        rss_after: list[float] = []
        for round_no in range(1, ROUNDS + 1):
            with Bystander(url) as bystander:
                r = procs.run([h2load, "-c", str(CONNECTIONS), "-n", str(REQUESTS), url],
                              timeout=60)
            out = r.stdout.decode(errors="replace")
            assert r.returncode == 0, out + r.stderr.decode(errors="replace")
            assert count(r"(\d+) succeeded", out) == REQUESTS, out
            assert count(r"requests: (\d+) total", out) == REQUESTS, out
            # A connection that failed would leave its requests failed or errored.
            assert f"status codes: {REQUESTS} 2xx" in out, out
            bystander.check(b"<html><body>hello under load</body></html>\n")
            fds = proxy.wait_fds_at_most(idle_fds + 4, timeout=20)
            assert fds <= idle_fds + 4, f"round {round_no}: {fds} descriptors still open " \
                                        f"(idle: {idle_fds})"
            # The proxy gives freed memory back once idle (proxy/memory.py): measure
            # what it holds then, not the burst's high-water mark.
            rss_after.append(proxy.settled_rss_mib())
        assert proxy.alive()
    print(f"RSS idle {idle_rss:.1f} MiB, after each round: "
          f"{', '.join(f'{v:.1f} MiB' for v in rss_after)}")
    # The buffers of 500 busy connections are given back once they are gone.
    assert max(rss_after) <= idle_rss + IDLE_MARGIN_MIB, (
        f"RSS stayed at {max(rss_after):.1f} MiB after a round (idle: {idle_rss:.1f} MiB)")
    assert rss_after[-1] <= rss_after[0] * 1.10, (
        f"RSS grew from {rss_after[0]:.1f} MiB after round 1 to {rss_after[-1]:.1f} MiB "
        f"after round {ROUNDS}")


def test_a_burst_of_500_connection_attempts_is_queued_while_the_proxy_is_busy(
        proxy_for: Callable[[str], ProxyProcess]) -> None:
    # The kernel completes handshakes into the listener's accept queue even while the
    # proxy's loop is busy; past the backlog it drops SYNs, and each dropped client
    # waits a whole second for its retransmission. A stopped proxy is the busiest.
    proxy = proxy_for("https://localhost:9")  # never contacted: nothing is sent
    socks: list[socket.socket] = []
    connected = 0
    os.kill(proxy.pid, signal.SIGSTOP)
    try:
        with selectors.DefaultSelector() as sel:
            for _ in range(CONNECTIONS):
                s = socket.socket()
                socks.append(s)
                s.setblocking(False)
                assert s.connect_ex(("127.0.0.1", proxy.port)) in (0, errno.EINPROGRESS)
                sel.register(s, selectors.EVENT_WRITE)
            deadline = time.monotonic() + 0.8  # under the first SYN retransmission (1 s)
            while connected < CONNECTIONS and time.monotonic() < deadline:
                for key, _ in sel.select(max(0.0, deadline - time.monotonic())):
                    sock = key.fileobj
                    assert isinstance(sock, socket.socket)
                    sel.unregister(sock)
                    if sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR) == 0:
                        connected += 1
    finally:
        os.kill(proxy.pid, signal.SIGCONT)
        for s in socks:
            s.close()
    assert connected == CONNECTIONS, (
        f"only {connected} of {CONNECTIONS} connection attempts completed while the proxy "
        "was busy: the listen backlog is too small")
    assert proxy.alive()


# ------------------------------------------------------------------ back-pressure


def client_context(alpn: str) -> ssl.SSLContext:
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE  # h2scope's leaf: its CA is not what this test checks
    ctx.set_alpn_protocols([alpn])
    return ctx


@dataclass
class SlowReader:
    """Reads a download, stops reading for ``pause`` seconds after ``pause_after`` bytes."""

    pause_after: int
    pause: float
    during_pause: Callable[[], None]
    """Called once the reading stopped; returns when the pause may end (bounded by it)."""
    received: int = 0
    digest: hashlib._Hash = field(default_factory=hashlib.sha256)
    paused: bool = False

    def take(self, data: bytes) -> None:
        self.digest.update(data)
        self.received += len(data)

    def maybe_pause(self) -> None:
        if not self.paused and self.received >= self.pause_after:
            self.paused = True
            deadline = time.monotonic() + self.pause
            self.during_pause()
            time.sleep(max(0.0, deadline - time.monotonic()))


def h2_download(port: int, path: str, reader: SlowReader, timeout: float = 60.0) -> int:
    """GET *path* over h2 with windows so large that only TCP can slow the server
    down; returns the status."""
    sock = socket.create_connection(("127.0.0.1", port), timeout=10)
    with contextlib.closing(sock), client_context("h2").wrap_socket(
            sock, server_hostname="localhost") as tls:
        assert tls.selected_alpn_protocol() == "h2"
        conn = h2.connection.H2Connection(h2.config.H2Configuration(client_side=True))
        conn.initiate_connection()
        # RFC 9113 §6.9.2: the largest windows there are, for the stream and the connection.
        conn.update_settings({h2.settings.SettingCodes.INITIAL_WINDOW_SIZE: 2**31 - 1})
        conn.increment_flow_control_window(2**31 - 1 - 65535)
        conn.send_headers(1, [(":method", "GET"), (":scheme", "https"),
                              (":authority", "localhost"), (":path", path)], end_stream=True)
        tls.sendall(conn.data_to_send())
        status = 0
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            reader.maybe_pause()
            data = tls.recv(65536)
            if not data:
                raise AssertionError(f"connection closed after {reader.received} bytes")
            for ev in conn.receive_data(data):
                if isinstance(ev, h2.events.ResponseReceived):
                    status = int(dict(ev.headers)[b":status"])
                elif isinstance(ev, h2.events.DataReceived):
                    reader.take(ev.data)
                elif isinstance(ev, h2.events.StreamEnded):
                    return status
                elif isinstance(ev, (h2.events.StreamReset, h2.events.ConnectionTerminated)):
                    raise AssertionError(f"{ev} after {reader.received} bytes")
            out = conn.data_to_send()
            if out:
                tls.sendall(out)
        raise AssertionError(f"download not done after {timeout} s ({reader.received} bytes)")


def http1_download(port: int, path: str, reader: SlowReader, timeout: float = 60.0) -> int:
    """GET *path* over HTTP/1.1 (Content-Length body); returns the status."""
    sock = socket.create_connection(("127.0.0.1", port), timeout=10)
    with contextlib.closing(sock), client_context("http/1.1").wrap_socket(
            sock, server_hostname="localhost") as tls:
        tls.sendall(f"GET {path} HTTP/1.1\r\nHost: localhost\r\n\r\n".encode())
        buf = b""
        while b"\r\n\r\n" not in buf:
            chunk = tls.recv(65536)
            assert chunk, f"closed before the response head: {buf!r}"
            buf += chunk
        head, _, body = buf.partition(b"\r\n\r\n")
        status = int(head.split()[1])
        length = count(r"(?i)content-length:\s*(\d+)", head.decode("latin-1"))
        reader.take(body)
        deadline = time.monotonic() + timeout
        while reader.received < length and time.monotonic() < deadline:
            reader.maybe_pause()
            chunk = tls.recv(min(65536, length - reader.received))
            if not chunk:
                raise AssertionError(f"connection closed after {reader.received} bytes")
            reader.take(chunk)
        assert reader.received == length, f"{reader.received} of {length} bytes"
        return status


class Http1Origin:
    """A TLS HTTP/1.1 server: ``/big.bin`` is the payload, sent as fast as TCP allows;
    anything else a short page. One thread per connection."""

    PAGE = b"hello from the HTTP/1.1 origin\n"

    def __init__(self, cert: CertFiles, payload: Payload) -> None:
        self.data = payload.path.read_bytes()
        self.ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        self.ctx.load_cert_chain(cert.cert, cert.key)
        self.ctx.set_alpn_protocols(["http/1.1"])
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(64)
        self.sock.settimeout(0.2)
        self.port = int(self.sock.getsockname()[1])
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._serve, daemon=True, name="h1-origin")
        self.thread.start()

    def _serve(self) -> None:
        while not self.stop.is_set():
            try:
                conn, _ = self.sock.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            threading.Thread(target=self._client, args=(conn,), daemon=True).start()

    def _client(self, raw: socket.socket) -> None:
        with contextlib.suppress(OSError), raw:
            raw.settimeout(30)
            with self.ctx.wrap_socket(raw, server_side=True) as tls:
                while not self.stop.is_set():
                    head = b""
                    while b"\r\n\r\n" not in head:
                        chunk = tls.recv(4096)
                        if not chunk:
                            return
                        head += chunk
                    target = head.split(b" ", 2)[1]
                    body = memoryview(self.data) if target == b"/big.bin" else self.PAGE
                    tls.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % len(body))
                    for off in range(0, len(body), 1 << 20):
                        tls.sendall(body[off:off + (1 << 20)])

    def close(self) -> None:
        self.stop.set()
        self.sock.close()
        self.thread.join(5)


@contextlib.contextmanager
def h2_origin(big_docroot: tuple[Path, Payload], cert: CertFiles) -> Iterator[str]:
    with procs.nghttpd(big_docroot[0], cert=cert.cert, key=cert.key) as sport:
        yield f"https://localhost:{sport}"


@contextlib.contextmanager
def h1_origin(big_docroot: tuple[Path, Payload], cert: CertFiles) -> Iterator[str]:
    origin = Http1Origin(cert, big_docroot[1])
    try:
        yield f"https://localhost:{origin.port}"
    finally:
        origin.close()


PAUSE = 4.0
"""Seconds the client stops reading: long enough for every buffer on the way to fill."""
RSS_ALLOWANCE = 50.0


@pytest.mark.parametrize(("origin", "download", "small_path", "small_body"), [
    pytest.param(h2_origin, h2_download, "/index.html",
                 b"<html><body>hello under load</body></html>\n", id="h2"),
    pytest.param(h1_origin, http1_download, "/small", Http1Origin.PAGE, id="http1.1"),
])
def test_slow_reader_of_200_mb_keeps_proxy_memory_bounded_and_gets_every_byte(
        proxy_for: Callable[[str], ProxyProcess], big_docroot: tuple[Path, Payload],
        origin_cert: CertFiles, origin: Callable[..., contextlib.AbstractContextManager[str]],
        download: Callable[[int, str, SlowReader], int], small_path: str,
        small_body: bytes) -> None:
    payload = big_docroot[1]
    curl = procs.require("curl")
    with origin(big_docroot, origin_cert) as upstream:
        proxy = proxy_for(upstream)
        small_url = f"https://127.0.0.1:{proxy.port}{small_path}"
        warm = procs.run([curl, "-sk", "--max-time", "10", small_url])
        assert warm.returncode == 0 and warm.stdout == small_body, warm.stderr
        idle = proxy.rss_mib()
        samples: list[float] = []
        bystanders: list[tuple[int, float]] = []

        def during_pause() -> None:
            # The proxy has filled every buffer it is allowed to; others still get served.
            end = time.monotonic() + PAUSE - 0.3
            while time.monotonic() < end:
                samples.append(proxy.rss_mib())
                if len(bystanders) < 3:
                    start = time.monotonic()
                    r = procs.run([curl, "-sk", "--max-time", "5", small_url], timeout=10)
                    assert r.stdout == small_body, r.stderr
                    bystanders.append((r.returncode, time.monotonic() - start))
                time.sleep(0.1)

        reader = SlowReader(pause_after=8 << 20, pause=PAUSE, during_pause=during_pause)
        started = time.monotonic()
        status = download(proxy.port, "/big.bin", reader)
        elapsed = time.monotonic() - started
        peak = proxy.peak_rss_mib()
        assert proxy.alive()
    print(f"idle {idle:.1f} MiB, during the pause up to {max(samples):.1f} MiB, "
          f"peak {peak:.1f} MiB; {payload.size / 2**20 / elapsed:.0f} MiB/s overall")
    assert status == 200
    assert reader.received == payload.size
    assert reader.digest.hexdigest() == payload.sha256
    assert reader.paused
    assert [code for code, _ in bystanders] == [0, 0, 0]
    assert peak <= idle + RSS_ALLOWANCE, (
        f"proxy RSS peaked at {peak:.1f} MiB, idle was {idle:.1f} MiB: more than "
        f"+{RSS_ALLOWANCE:.0f} MiB while the client was slow")
