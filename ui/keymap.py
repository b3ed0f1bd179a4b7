"""Every key of the UI, with an id the user can rebind (``ui.keymap`` in config.yaml).

One table, so the footer, the ``?`` help screen and the command palette list
the same actions with the same words. Ids are stable: they are the config
keys (``ui: keymap: {quit: ctrl+x}``).
"""

from __future__ import annotations

import difflib
from collections.abc import Mapping

from textual.binding import Binding

#: (id, default keys, action, description, shown in the footer)
KEYS: tuple[tuple[str, str, str, str, bool], ...] = (
    ("quit", "q,ctrl+q", "quit", "Quit", True),
    ("help", "question_mark,f1", "help", "Help", True),
    ("filter", "slash", "focus_filter", "Filter", True),
    ("search", "ctrl+f", "search", "Search headers", False),
    ("search_next", "greater_than_sign", "search_next(1)", "Next match", False),
    ("search_prev", "less_than_sign", "search_next(-1)", "Previous match", False),
    ("next_finding", "n", "next_finding(1)", "Next finding", True),
    ("prev_finding", "N", "next_finding(-1)", "Previous finding", False),
    ("findings", "F", "findings", "Findings summary", False),
    ("requests", "R", "requests", "Requests, slowest first", False),
    ("goto", "g", "goto", "Go to frame/stream/conn", False),
    ("stream_view", "s", "stream_view", "Stream view", True),
    ("scope_stream", "S", "scope_stream", "Only this stream", False),
    ("scope_conn", "C", "scope_conn", "Only this connection", False),
    ("scope_all", "a", "scope_all", "All connections", False),
    ("follow", "f", "toggle_follow", "Follow", True),
    ("pause", "space", "toggle_pause", "Pause", True),
    ("lanes", "l", "toggle_lanes", "Lanes", True),
    ("lanes_time", "t", "lanes_time", "Lanes by time/order", False),
    ("detail", "d", "toggle_detail", "Detail pane", False),
    ("tab_decoded", "1", "detail_tab('decoded')", "Decoded tab", False),
    ("tab_hpack", "2", "detail_tab('hpack')", "HPACK tab", False),
    ("tab_hex", "3", "detail_tab('hex')", "Hex tab", False),
    ("tab_findings", "4", "detail_tab('findings')", "Findings tab", False),
    ("hpack_tables", "h", "state('hpack')", "HPACK tables", True),
    ("flow_control", "w", "state('flow')", "Flow control", True),
    ("settings", "e", "state('settings')", "Settings", False),
    ("priority", "p", "state('priority')", "Priority", False),
    ("connection_info", "i", "state('connection')", "Connection and TLS", False),
    ("record", "r", "toggle_record", "Record", True),
    ("export", "x", "export", "Export", True),
    ("save_session", "ctrl+s", "save_session", "Save session", True),
    ("focus_next", "tab", "focus_next", "Next pane", False),
    ("connections", "c", "focus_connections", "Connections pane", False),
)


def bindings(overrides: Mapping[str, str] | None = None) -> list[Binding]:
    """The app's bindings, with ``overrides`` (id → keys) applied."""
    overrides = overrides or {}
    # The filter key is a priority binding: it acts when the app reads it, before
    # keys typed or pasted with it reach the focused widget (they then go into the
    # filter); the app disables it while a text field has the focus.
    return [Binding(overrides.get(bid, keys), action, desc, show=show, id=bid,
                    priority=bid in PRIORITY)
            for bid, keys, action, desc, show in KEYS]


PRIORITY = frozenset({"filter"})

LIVE_ONLY = frozenset({"pause", "record", "save_session"})
"""Keys that act on live capture only: a capture's footer leaves them out (pressed,
they say what they are for)."""


def help_rows(overrides: Mapping[str, str] | None = None) -> list[tuple[str, str, str]]:
    """(keys, description, id) for the help screen."""
    overrides = overrides or {}
    out = []
    for bid, keys, _, desc, _ in KEYS:
        out.append((shown_key(overrides.get(bid, keys)), desc, bid))
    return out


def shown_key(keys: str) -> str:
    """Keys as a person types them: ``?`` for ``question_mark``."""
    return keys.replace("question_mark", "?").replace("slash", "/").replace(
        "greater_than_sign", ">").replace("less_than_sign", "<")


MODIFIERS = frozenset({"ctrl", "shift", "alt", "meta", "super", "hyper"})


def key_problem(keys: str) -> str | None:
    """What is wrong with a keymap value (``"q,ctrl+q"``), or None: each key a name
    the terminal can send — one character, its Textual name (``question_mark``,
    ``slash``), or a named key (``escape``, ``f5``, ``pagedown``) — after any of
    the modifiers ``ctrl+``, ``shift+``, ``alt+``, ``meta+``."""
    from textual.keys import Keys, _character_to_key

    named = {k.value.rsplit("+", 1)[-1] for k in Keys if not k.value.startswith("<")}
    named |= {_character_to_key(chr(c)) for c in range(33, 127)}
    parts = [k.strip() for k in str(keys).split(",")]
    if not any(parts):
        return "no key given"
    for key in parts:
        *mods, base = key.split("+")
        bad = [m for m in mods if m not in MODIFIERS]
        if bad or not base:
            return (f"{key!r}: {bad[0] if bad else 'nothing'} is not a modifier (use "
                    f"{', '.join(sorted(MODIFIERS))})")
        if len(base) != 1 and base not in named:
            close = difflib.get_close_matches(base, sorted(named), n=1)
            hint = f"; did you mean {close[0]!r}?" if close else ""
            return (f"{key!r}: {base!r} is not a key name (one character, or a name such "
                    f"as escape, f5, pagedown, question_mark){hint}")
    return None


def key_clash(overrides: Mapping[str, str]) -> tuple[str, str] | None:
    """(action id, what is wrong) when ``overrides`` give one key to two actions (the
    one listed first wins, so the other could never be pressed: ``quit: "?"`` made
    the help key quit); None when every key has one action."""
    from textual.keys import _character_to_key

    owner: dict[str, str] = {}
    for bid, keys, _, _, _ in KEYS:
        for key in overrides.get(bid, keys).split(","):
            key = key.strip()
            *mods, base = key.split("+")
            name = "+".join([*mods, _character_to_key(base) if len(base) == 1 else base])
            other = owner.setdefault(name, bid)
            if other != bid:
                changed = bid if bid in overrides else other
                rival = other if changed == bid else bid
                return changed, (f"{shown_key(key)!r} is also the key of {rival!r}: give "
                                 f"{'it' if rival in overrides else f'ui.keymap.{rival}'} "
                                 "another key, or choose another here")
    return None
