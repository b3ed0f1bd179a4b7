"""``h2scope demo`` with the UI: the demo origin, proxy and client, shown live.

``proxy/commands/demo.py`` builds the demo (a local h2 origin with the
h2scope CA, the proxy, a client making interleaved traffic) and calls
:func:`launch_demo`. As with ``h2scope run``, all of it runs in the proxy's
child process (:mod:`proxy.child`) and the UI follows the capture it writes.
The demo's traffic runs until the user quits.
"""

from __future__ import annotations

from typing import Any

from ui.launch import live_app, prepare_logging, run_app
from ui.terminal import TerminationGuard


def launch_demo(config: Any, store: Any, rounds: int | None, interval: float) -> int:
    """Run the demo with the UI until the user quits; the exit status.

    (``store``, the CA the demo's origin uses, is the one under
    ``config.confdir``, which the child opens again.)"""
    log_file = prepare_logging(config)
    guard = TerminationGuard()  # noted, not fatal, until the app handles them
    guard.arm()
    try:
        app = live_app(config, log_file=log_file, demo=(rounds, interval))
        return run_app(app, guard)
    finally:
        guard.disarm()
