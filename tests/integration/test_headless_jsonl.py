"""``h2scope run --headless --format jsonl``: one JSON object per frame, live, the
same objects ``h2scope export --format jsonl`` writes from a recording of the same
traffic (so a script written against one works on the other). Real peers: curl
and nghttp through the proxy to nghttpd."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from proxy.cli import main
from tests.bench.proxyproc import ProxyProcess
from tests.helpers import procs


@pytest.mark.parametrize("filter_text", [None, "type:HEADERS,DATA status:200"])
def test_live_jsonl_equals_the_export_of_its_recording(
        tmp_path: Path, docroot: Path, capsys: pytest.CaptureFixture[str],
        filter_text: str | None) -> None:
    live = tmp_path / "live.jsonl"
    extra = ["--format", "jsonl", "--record", "rec.h2scope"]
    if filter_text:
        extra += ["--filter", filter_text]
    with procs.nghttpd(docroot) as sport:
        proxy = ProxyProcess(confdir=tmp_path / "conf", mode=f"reverse:http://127.0.0.1:{sport}",
                             extra=extra, cwd=tmp_path, stdout=live).start()
        try:
            url = f"http://127.0.0.1:{proxy.port}"
            got = procs.run([procs.require("curl"), "-sS", "--http2-prior-knowledge",
                             f"{url}/index.html", "-o", str(tmp_path / "page")])
            assert got.returncode == 0, got.stderr
            got = procs.run([procs.require("nghttp"), "-n", "-m", "3", f"{url}/big.bin",
                             f"{url}/nothing-here"])
            assert got.returncode == 0, got.stderr
        finally:
            status = proxy.stop()
    assert status == 0, list(proxy.stderr_lines)
    objs = [json.loads(line) for line in live.read_text().splitlines()]
    assert {o["conn"] for o in objs} == {1, 2}
    statuses = {h["value"] for o in objs if o.get("type") == "HEADERS"
                for h in o["block"]["headers"] if h["name"] == ":status"}
    if filter_text is None:
        assert {"SETTINGS", "HEADERS", "DATA"} <= {o.get("type") for o in objs}
        assert statuses == {"200", "404"}
        assert "SettingsAcknowledged" in {o.get("event") for o in objs}
    else:  # the filter ran live: 200 responses' HEADERS and DATA, nothing else
        assert {o.get("type") for o in objs} == {"HEADERS", "DATA"}  # (no events)
        assert statuses == {"200"}
        assert sum(o["length"] for o in objs if o.get("type") == "DATA") \
            == 3 * len((docroot / "big.bin").read_bytes()) + len(
                (docroot / "index.html").read_bytes())
    args = ["export", str(tmp_path / "rec.h2scope"), "--format", "jsonl"]
    assert main(args + (["--filter", filter_text] if filter_text else [])) == 0
    exported = capsys.readouterr().out
    if filter_text is None:
        assert exported == live.read_text()
        return
    # Offline every stream's status is known from the start: the export also keeps
    # the request HEADERS of the 200 streams, which live came before their status.
    lines = live.read_text().splitlines()
    extra = [json.loads(ln) for ln in exported.splitlines() if ln not in lines]
    assert [ln for ln in exported.splitlines() if ln in lines] == lines
    assert extra and {(o["type"], o["direction"]) for o in extra} == {("HEADERS", "c2s")}
    assert {(o["conn"], o["stream_id"]) for o in extra} == {
        (o["conn"], o["stream_id"]) for o in objs}
