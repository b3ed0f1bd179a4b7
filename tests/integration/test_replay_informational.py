"""1xx informational responses: a server (or a CDN in front of it) that stops sending
its 103 Early Hints is a difference for replay and diff alike; a 100 Continue is not
compared (whether one comes depends on the client's Expect); the hints' values are
compared with --values."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from proxy.cli import main
from tests.helpers.proxy_thread import ProxyThread
from tests.integration.replay_peers import Origin, answer, fetch, record_through_proxy, request

HINTS = [(":status", "103"), ("link", "</style.css>; rel=preload; as=style"),
         ("link", "</app.js>; rel=preload; as=script")]
OTHER_HINTS = [(":status", "103"), ("link", "</style2.css>; rel=preload; as=style"),
               ("link", "</app.js>; rel=preload; as=script")]
CONTINUE = [(":status", "100")]
PAGE = b"<html>hinted</html>"


def _origin(hints: list[tuple[str, str]] | None, *, cont: bool) -> Origin:
    informational = [hints] if hints else []
    return Origin({
        "/page": answer("200", PAGE, ("content-type", "text/html"),
                        informational=informational),
        "/upload": answer("201", b"", informational=[CONTINUE] if cont else []),
    })


def _client(port: int) -> None:
    fetch(port, [(request("GET", "/page"), b""),
                 (request("POST", "/upload", ("expect", "100-continue")), b"data")])


def _record(make_proxy: Callable[..., ProxyThread], path: Path,
            hints: list[tuple[str, str]] | None, *, cont: bool) -> Path:
    with _origin(hints, cont=cont) as origin:
        return record_through_proxy(make_proxy, origin.port, path, _client)


def test_a_server_that_stops_sending_early_hints_differs_in_replay_and_diff(
        make_proxy: Callable[..., ProxyThread], tmp_path: Path,
        capsys: pytest.CaptureFixture[str]) -> None:
    hinted = _record(make_proxy, tmp_path / "hinted.h2scope", HINTS, cont=True)
    stripped = _record(make_proxy, tmp_path / "stripped.h2scope", None, cont=False)

    with _origin(None, cont=False) as origin:
        code = main(["replay", str(hinted), "--target", f"http://127.0.0.1:{origin.port}",
                     "--speed", "0", "--timeout", "5"])
    out = capsys.readouterr().out
    assert code == 3, out
    assert "DIFFERS  stream 1 (GET /page):\n             informational: 103 (2 link) → " \
        "none\n" in out
    # (a 100 Continue coming or not is the client's Expect and the server's choice)
    assert "same     stream 3 (POST /upload): 201" in out

    with _origin(HINTS, cont=False) as origin:
        code = main(["replay", str(hinted), "--target", f"http://127.0.0.1:{origin.port}",
                     "--speed", "0", "--timeout", "5"])
    assert code == 0, capsys.readouterr().out

    assert main(["diff", str(hinted), str(stripped)]) == 3
    out = capsys.readouterr().out
    assert "             informational: 103 (2 link) → none\n" in out
    assert out.splitlines()[-1].startswith("1 same, 1 differ (left out: ")
    assert main(["diff", str(stripped), str(hinted)]) == 3
    assert "informational: none → 103 (2 link)" in capsys.readouterr().out


def test_early_hints_values_are_compared_with_values(
        make_proxy: Callable[..., ProxyThread], tmp_path: Path,
        capsys: pytest.CaptureFixture[str]) -> None:
    a = _record(make_proxy, tmp_path / "a.h2scope", HINTS, cont=False)
    b = _record(make_proxy, tmp_path / "b.h2scope", OTHER_HINTS, cont=False)
    assert main(["diff", str(a), str(b)]) == 0  # the same names
    capsys.readouterr()
    assert main(["diff", str(a), str(b), "--values"]) == 3
    out = capsys.readouterr().out
    assert ("informational 103 link: ['</style.css>; rel=preload; as=style', '</app.js>; "
            "rel=preload; as=script'] → ['</style2.css>; rel=preload; as=style', "
            "'</app.js>; rel=preload; as=script']") in out
