"""``h2scope demo`` with the UI: the demo origin, proxy and client, shown live.

``proxy/commands/demo.py`` builds the demo (a local h2 origin with the
h2scope CA, the proxy, a client making interleaved traffic) and calls
:func:`launch_demo`. As with ``h2scope run``, all of it runs in the proxy's
child process (:mod:`proxy.child`) and the UI follows the capture it writes.
The demo's traffic runs until the user quits.
"""

from __future__ import annotations

from typing import Any

from ui.app import H2ScopeApp
from ui.launch import prepare_logging, run_app
from ui.model.backing import CaptureFrames
from ui.model.follow import ChildProxy
from ui.model.live import LiveFeed, addresses_text
from ui.model.session import Session
from ui.terminal import TerminationGuard


def launch_demo(config: Any, store: Any, rounds: int | None, interval: float) -> int:
    """Run the demo with the UI until the user quits; the exit status.

    (``store``, the CA the demo's origin uses, is the one under
    ``config.confdir``, which the child opens again.)"""
    log_file = prepare_logging(config)
    guard = TerminationGuard()  # noted, not fatal, until the app handles them
    guard.arm()
    try:
        feed = LiveFeed()
        live = ChildProxy(config, feed=feed, record=config.record.file,
                          max_data_bytes=config.record.max_data_bytes, log_file=log_file,
                          demo=(rounds, interval))
        try:
            addresses = live.start()
        except BaseException:
            live.stop()
            raise
        assert live.backing is not None
        frames = CaptureFrames(live.backing)  # rows refer to their records in the capture
        session = Session(frames, title="demo")
        app = H2ScopeApp(session, live=live, feed=feed, frames=frames,
                         keys=dict(config.ui.keymap), listen=addresses_text(addresses),
                         theme_name=config.ui.theme, confirm_quit=False)  # nothing to keep
        return run_app(app, guard)
    finally:
        guard.disarm()
