"""Entry points of the UI: :func:`run_view` (``h2scope view FILE``) and
:func:`run_live` (``h2scope run`` with the UI: the proxy in a child process,
the UI in the foreground following its capture); :func:`view_app` and
:func:`live_app` build the app without running it (tests, screenshots)."""

from __future__ import annotations

import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from ui.app import H2ScopeApp
from ui.model.backing import CaptureFrames
from ui.model.capture import CaptureFile
from ui.model.follow import ChildProxy, FileFollow
from ui.model.live import LiveFeed, addresses_text
from ui.model.session import Session
from ui.terminal import TerminationGuard


def view_app(path: str | Path, *, keys: Mapping[str, str] | None = None,
             theme_name: str = "auto", initial_filter: str = "",
             label: str | None = None) -> H2ScopeApp:
    """An app on the capture at ``path`` (raises CaptureFormatError / OSError);
    ``label``: the file the user opened, when ``path`` is its import."""
    from proxy.capture.reader import CaptureReader

    CaptureReader(path).close()  # validates the header: a clear error, not a blank UI
    capture = CaptureFile(path)
    session = Session(capture, title=Path(label or path).name)
    return H2ScopeApp(session, capture=capture, keys=keys, theme_name=theme_name,
                      initial_filter=initial_filter)


def follow_app(path: str | Path, *, keys: Mapping[str, str] | None = None,
               theme_name: str = "auto", initial_filter: str = "",
               label: str | None = None) -> H2ScopeApp:
    """An app following the capture at ``path`` as another program writes it
    (``h2scope view --follow``; raises CaptureFormatError / OSError)."""
    from proxy.capture.format import GZIP_MAGIC
    from proxy.capture.reader import CaptureFormatError, CaptureReader

    CaptureReader(path).close()  # validates the header: a clear error, not a blank UI
    with open(path, "rb") as f:
        if f.read(len(GZIP_MAGIC)) == GZIP_MAGIC:
            raise CaptureFormatError("a gzip capture cannot be followed (it is not being "
                                     "written any more): open it without --follow")
    feed = LiveFeed()
    live = FileFollow(Path(path), feed=feed)
    addresses = live.start()
    assert live.backing is not None
    frames = CaptureFrames(live.backing)  # rows refer to their records in the capture
    session = Session(frames, title=Path(label or path).name)
    return H2ScopeApp(session, live=live, feed=feed, frames=frames, keys=keys,
                      listen=f"following {label or addresses[0][1]}", theme_name=theme_name,
                      initial_filter=initial_filter, confirm_quit=False)


class NotATerminal(Exception):
    """The UI was asked for where there is no terminal to draw it on."""


def _status(app: H2ScopeApp, value: int | None) -> int:
    """The exit status of a UI that ended: its own, or 1 when it crashed (Textual
    printed the traceback; the shell and scripts must not hear 0)."""
    return value or app.return_code or 0


def _need_terminal() -> None:
    if not (sys.stdin.isatty() and sys.stdout.isatty()):
        raise NotATerminal("the viewer needs a terminal, and its "
                           f"{'output' if not sys.stdout.isatty() else 'input'} is not one")


def run_view(path: str | Path, *, keys: Mapping[str, str] | None = None,
             theme_name: str = "auto", initial_filter: str = "", follow: bool = False,
             label: str | None = None) -> int:
    """The UI on the capture at ``path`` (``follow``: as it grows). ``label`` names
    what the user opened when ``path`` is its import (a pcap, a net log)."""
    if follow:
        live_view = follow_app(path, keys=keys, theme_name=theme_name,
                               initial_filter=initial_filter, label=label)
        try:
            _need_terminal()
            return _status(live_view, live_view.run())
        finally:
            if live_view.live is not None:
                live_view.live.stop()
    app = view_app(path, keys=keys, theme_name=theme_name, initial_filter=initial_filter,
                   label=label)
    try:
        _need_terminal()
        return _status(app, app.run())
    finally:
        if app.capture is not None:
            app.capture.close()


def live_app(config: Any, *, log_file: Path | None = None,
             demo: tuple[int | None, float] | None = None,
             initial_filter: str = "") -> H2ScopeApp:
    """An app with the proxy for ``config`` started in a child process, the UI
    following its capture (raises ProxyStartError). ``demo``: (rounds, interval)
    of ``h2scope demo``, whose origin and client run in the child too; its
    session has nothing to keep, so quitting does not ask."""
    from ui.model.backing import left_behind

    earlier = left_behind()  # (before this session's own directory exists)
    feed = LiveFeed()
    live = ChildProxy(config, feed=feed, record=config.record.file,
                      max_data_bytes=config.record.max_data_bytes, log_file=log_file,
                      demo=demo)
    try:
        addresses = live.start()
    except BaseException:
        live.stop()
        raise
    assert live.backing is not None
    frames = CaptureFrames(live.backing)  # rows refer to their records in the capture
    session = Session(frames, title="demo" if demo else "live")
    app = H2ScopeApp(session, live=live, feed=feed, frames=frames,
                     keys=dict(config.ui.keymap), listen=addresses_text(addresses),
                     theme_name=config.ui.theme, confirm_quit=demo is None,
                     empty_hint=_empty_hint(config, addresses, live.ca_cert_path),
                     initial_filter=initial_filter)
    app.start_notes = [_left_behind_note(path, size, mtime) for path, size, mtime in earlier]
    app.insecure = bool(config.upstream.insecure)
    return app


def _left_behind_note(path: Path, size: int, mtime: float) -> str:
    import time

    from proxy.textlog import byte_count

    when = time.strftime("%Y-%m-%d %H:%M", time.localtime(mtime))
    return (f"an earlier session's capture was left behind (its UI was killed): {path} "
            f"({byte_count(size)}, {when}). h2scope view {path} opens it; delete "
            f"{path.parent} when done: it holds decrypted traffic")


def _empty_hint(config: Any, addresses: list[tuple[str, str]],
                ca: Path | None) -> list[str]:
    """The live timeline's words before the first frame: the start-up banner's way
    to try the proxy (headless prints it on stderr; the UI covers the terminal)."""
    if ca is None:
        return []
    from proxy.commands.run import banner

    tries = [ln.split("try: ", 1)[1] for ln in banner(config, addresses, ca) if "try: " in ln]
    if not tries:
        return []
    return ["No frames yet. Send traffic through the proxy, for example:", f"  {tries[0]}",
            "A browser, or a client of your own: docs/recipes.md. Its CA: h2scope ca "
            "install-hints."]


def prepare_logging(config: Any) -> Path | None:
    """Log lines on stderr would tear the screen: send them to ``log.file`` or
    ``<confdir>/h2scope.log`` while the UI runs (returns the file, or None if it
    cannot be written)."""
    import logging

    from certs.files import ensure_private_dir, private_append

    log_path = Path(config.log.file or Path(config.confdir) / "h2scope.log")
    try:
        if config.log.file is None:  # (the confdir holds the CA: made 0700, as CertStore does)
            ensure_private_dir(Path(config.confdir))
        else:
            log_path.parent.mkdir(parents=True, exist_ok=True)
        private_append(log_path)  # (it names hosts and errors: 0600, as captures are)
        handler: logging.Handler = logging.FileHandler(log_path, encoding="utf-8")
    except OSError:
        handler = logging.NullHandler()
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    logger = logging.getLogger("h2scope")
    logger.handlers[:] = [handler]
    logger.setLevel(str(config.log.level).upper())
    logger.propagate = False
    return None if isinstance(handler, logging.NullHandler) else log_path


def run_app(app: H2ScopeApp, guard: TerminationGuard) -> int:
    """Run a live app; stop its proxy afterwards (with termination signals noted)."""
    app.termination = guard
    try:
        code = _status(app, app.run())
        live = app.live  # (None once quit with q: the app stopped it and kept why)
        why = (live.problem() or live.unrecorded) if live is not None else app.stopped_why
        import sys

        if why and code == 0:  # (the screen said it; the shell and a script hear it too)
            print(f"h2scope: {why}", file=sys.stderr)
            code = 1
        if app.discarded:
            print(f"h2scope: {app.discarded}", file=sys.stderr)
        return code
    finally:
        guard.arm()  # closing the app's loop reset its signal handlers to the defaults
        if app.live is not None:
            app.live.stop()


def run_live(config: Any, *, initial_filter: str = "") -> int:
    """``h2scope run`` with the UI: the proxy in a child process, the UI here."""
    from proxy.server import ProxyStartError

    log_file = prepare_logging(config)
    guard = TerminationGuard()
    guard.arm()
    try:
        try:
            app = live_app(config, log_file=log_file, initial_filter=initial_filter)
        except ProxyStartError as exc:
            import sys

            print(f"h2scope: {exc}", file=sys.stderr)
            return 1
        return run_app(app, guard)
    finally:
        guard.disarm()
