"""``h2scope demo`` with the UI: the demo origin, proxy and client, shown live.

``proxy/commands/demo.py`` builds the demo (a local h2 origin with the
h2scope CA, the proxy, a client making interleaved traffic) and calls
:func:`launch_demo`; this module runs it on the UI's proxy thread and opens
the live UI on it. The demo's traffic runs until the user quits.
"""

from __future__ import annotations

from typing import Any

from ui.app import H2ScopeApp
from ui.launch import prepare_logging, run_app
from ui.model.live import LiveFeed, LiveProxy, addresses_text
from ui.model.session import Session
from ui.model.table import LiveFrames
from ui.terminal import TerminationGuard


def launch_demo(config: Any, store: Any, rounds: int | None, interval: float) -> int:
    """Run the demo with the UI until the user quits; the exit status."""
    from proxy.commands.demo import start_demo

    prepare_logging(config)
    frames = LiveFrames()
    feed = LiveFeed()
    live = LiveProxy(config, feed=feed, record=config.record.file,
                     max_data_bytes=config.record.max_data_bytes)
    parts: dict[str, Any] = {}

    async def starter(sinks: list[Any], lossy: list[Any]) -> Any:
        proxy, origin, client = await start_demo(config, store, sinks, lossy_sinks=lossy)
        parts.update(origin=origin, client=client)
        return proxy

    guard = TerminationGuard()  # noted, not fatal, until the app handles them
    guard.arm()
    try:
        return _run(live, parts, starter, frames, config, rounds, interval, guard)
    finally:
        guard.disarm()


def _run(live: LiveProxy, parts: dict[str, Any], starter: Any, frames: LiveFrames,
         config: Any, rounds: int | None, interval: float, guard: TerminationGuard) -> int:
    from proxy.commands.demo import drive

    try:
        addresses = live.start(starter=starter)
    except BaseException:
        live.stop()
        raise
    frames.backing = live.backing

    async def stop_demo() -> None:
        for name in ("client", "origin"):
            part = parts.get(name)
            close = getattr(part, "close", None) or getattr(part, "stop", None)
            if close is not None:
                result = close()
                if hasattr(result, "__await__"):
                    await result
    live.on_stop(stop_demo)
    live.run_soon(drive(parts["client"], rounds, interval))
    session = Session(frames, title="demo")
    app = H2ScopeApp(session, live=live, feed=live.feed, frames=frames,
                     keys=dict(config.ui.keymap), listen=addresses_text(addresses),
                     theme_name=config.ui.theme, confirm_quit=False)  # a demo: nothing to keep
    return run_app(app, guard)
