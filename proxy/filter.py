"""The filter language: which frames to show, shared by ``--filter`` and the UI.

A filter is a line of terms. Terms separated by spaces must all match (AND);
the keyword ``or`` between terms separates alternatives, and AND binds tighter
(``a b or c`` is ``(a and b) or c``). Inside one term's value, ``,`` separates
alternatives (``type:DATA,HEADERS``). A ``!`` or ``-`` prefix negates a term
and is written against it (``!type:DATA``). ``and`` and ``or`` need a term on
each side; there are no parentheses.

Terms (keys are case-insensitive)::

    type:DATA,HEADERS   type:0x1    frame type by RFC name or number
    stream:5  stream:1-9            stream id, or an inclusive range
    conn:3    conn:2-4              connection id
    dir:c2s   dir:s2c               also client/server and the arrows → ←
    host:*.example.com              glob on the connection's target host (SNI)
    finding:any                     frames with at least one finding
    finding:error,warning,info      ... of that severity
    finding:flow-control-exceeded   ... with that code (glob: finding:stream-*)
    len>1000  len<10  len=0         payload length (also >=, <=, len:10-20)
    flags:END_STREAM,ACK            any of these flags set (or a mask: flags:0x20)
    header:content-type=json        header name (glob), optional case-insensitive
                                    substring of its value
    status:404  status:5xx          response status, exact or with x wildcards
    method:POST                     request method (case-insensitive)
    path:/api*                      request :path, glob (case-sensitive)
    grpc:5  grpc:NOT_FOUND,14       a gRPC call's grpc-status by code or name; also
    grpc:1-16  grpc:failed          a range, failed (1-16, or answered by something
                                    else: a load balancer's 503 page) or any
    word  "two words"               case-insensitive substring of a decoded header
                                    name or value, the frame type or its summary

``header:`` and bare words look at the frame's own header block. ``status:``,
``method:``, ``path:`` and ``grpc:`` look at the frame's own block first and then
at ``stream_headers`` (the request and response headers of the frame's stream,
and its trailers) when the caller passes them, so ``status:404`` can select a
stream's DATA frames too.

Compiling turns the text into nested closures once; matching is a plain
function call per frame with no parsing and no allocation on the common
paths. Everything here is pure: no I/O, no state between calls.
"""

from __future__ import annotations

import fnmatch
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass

from proxy.filter_context import ConnMeta, StreamHeaders
from proxy.observe.describe import GRPC_STATUS, frame_summary
from proxy.observe.enums import FLAGS_BY_TYPE, Direction, FrameType
from proxy.observe.events import FrameObserved
from proxy.observe.findings import Severity
from proxy.observe.frames import PushPromiseFrame
from proxy.observe.header_rules import grpc_call_type

__all__ = [
    "KEYS",
    "Filter",
    "FilterError",
    "compile_filter",
    "no_match_hint",
    "term_keys",
    "unknown_finding_codes",
]


Predicate = Callable[[FrameObserved, "ConnMeta | None", "StreamHeaders | None"], bool]

#: Filter keys, in the order error messages and help list them.
KEYS = ("type", "stream", "conn", "dir", "host", "finding", "len", "flags", "header",
        "status", "method", "path", "grpc", "stall")

_TYPE_NAMES = {t.name: int(t) for t in FrameType}
_FLAG_NAMES = sorted({name for flags in FLAGS_BY_TYPE.values() for _, name in flags})
_DIRECTIONS = {
    "c2s": Direction.C2S, "client": Direction.C2S, "→": Direction.C2S,
    "s2c": Direction.S2C, "server": Direction.S2C, "←": Direction.S2C,
}
_SEVERITIES = {s.name.lower(): s for s in Severity}
_LEN_TERM = re.compile(r"len(>=|<=|>|<|=|:)", re.IGNORECASE)
_KEY_TERM = re.compile(r"([A-Za-z][A-Za-z0-9_-]*):")
_DIGITS = re.compile(r"[0-9]+")
_COMPARED = re.compile(r"([A-Za-z]+)(!=|>=|<=|>|<)([0-9]+)")
_HOST_PORT = re.compile(r"([^\[\]]+):([0-9]+)")
_NUMBER = re.compile(r"0[xX][0-9a-fA-F]+|[0-9]+")
_RANGE = re.compile(r"([0-9]+)(?:-([0-9]+))?")
_STATUS = re.compile(r"[1-5][0-9xX]{2}")
_METHOD = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+")  # RFC 9110 §5.6.2 token
_CODE = re.compile(r"[a-z0-9*?\[\]-]+")

# Cheap terms run first inside an AND: they read one attribute of the frame.
_COST = {"type": 0, "stream": 0, "dir": 0, "len": 0, "flags": 0, "conn": 1, "finding": 1,
         "stall": 1,
         "host": 2, "header": 3, "status": 3, "method": 3, "path": 3, "grpc": 3, "word": 4}


class FilterError(ValueError):
    """The filter text is invalid; the message says what and where (1-based column)."""

    def __init__(self, message: str, *, column: int) -> None:
        super().__init__(message)
        self.message = message
        self.column = column


@dataclass(frozen=True, slots=True)
class Filter:
    """A compiled filter. ``matches`` is the whole API; ``predicate`` is the same
    function without the method call, for loops over millions of frames."""

    text: str
    predicate: Predicate
    needs_stream_headers: bool
    """True when a ``status:``/``method:``/``path:``/``grpc:`` term could use
    ``stream_headers``."""

    @property
    def matches_everything(self) -> bool:
        return not self.text.strip()

    def matches(self, ev: FrameObserved, conn: ConnMeta | None = None,
                stream_headers: StreamHeaders | None = None) -> bool:
        """Whether the frame passes; ``conn`` and ``stream_headers`` are optional context."""
        return self.predicate(ev, conn, stream_headers)

    def __str__(self) -> str:
        return self.text


# ------------------------------------------------------------------ lexing

@dataclass(frozen=True, slots=True)
class _Token:
    text: str
    """The token with quotes removed."""
    cols: tuple[int, ...]
    """1-based column in the filter text of each character of ``text``."""
    column: int
    """Column where the token starts (its first quote, if quoted)."""
    raw: str
    """The token as typed."""
    quoted_from: int
    """Index in ``text`` of the first character that came from inside quotes."""
    inside: frozenset[int] = frozenset()
    """Indexes in ``text`` of every character that came from inside quotes (a comma
    there is part of a value, not a separator)."""

    @property
    def quoted(self) -> bool:
        return self.quoted_from < len(self.text) or self.raw[-1] in "\"'"

    def col(self, index: int) -> int:
        return self.cols[index] if index < len(self.cols) else self.column + len(self.raw)


def term_keys(text: str) -> list[tuple[str | None, str]]:
    """``(key, term)`` for each term of a filter: the lowercased key (``type``,
    ``len``, ...) or None for a bare word, and the term without its negation.

    For callers that plan around a filter (which terms need decoded frames)
    without compiling it; raises :class:`FilterError` like the compiler."""
    out: list[tuple[str | None, str]] = []
    for _, tok in _terms(text):
        body = tok.text
        if _negated(tok):
            body = body[1:]
        if _LEN_TERM.match(body):
            out.append(("len", body))
            continue
        m = _KEY_TERM.match(body)
        out.append((m.group(1).lower() if m else None, body))
    return out


def unknown_finding_codes(text: str) -> str:
    """What to add to "no frame matches" when a ``finding:`` term names a code no
    finding has (a typo matches nothing, silently): ``(no finding has the code
    X; did you mean Y?)``, or "" when every code is known (a glob: when it
    matches one). Raises :class:`FilterError` like the compiler."""
    import difflib

    from proxy.finding_codes import FINDING_CODES

    notes = []
    for key, body in term_keys(text):
        if key != "finding":
            continue
        for value in body.split(":", 1)[1].split(","):
            code = value.lower()
            if not code or code == "any" or code in _SEVERITIES or code in FINDING_CODES:
                continue
            if any(ch in code for ch in "*?[") and fnmatch.filter(FINDING_CODES, code):
                continue
            close = difflib.get_close_matches(code, sorted(FINDING_CODES), n=1)
            notes.append(f"no finding has the code {code}"
                         + (f"; did you mean {close[0]}?" if close else
                            " (docs/findings.md lists the codes)"))
    return f" ({'; '.join(notes)})" if notes else ""


def no_match_hint(text: str) -> str:
    """What to add to "no frame matches" ``text``: finding codes no finding has
    (:func:`unknown_finding_codes`), and a word that reads like a key with ``=``
    for ``:`` (``status=404`` is a search for those characters; ``status:404``
    was meant); "" when neither. Never raises: the filter compiled already."""
    try:
        hint = unknown_finding_codes(text)
        words = [body for key, body in term_keys(text) if key is None]
    except FilterError:
        return ""
    meant = []
    for word in words:
        said = f"{word!r} is a search for those characters: "
        compared = _COMPARED.fullmatch(word)
        if compared and compared.group(1).lower() in KEYS:
            key, op, value = compared.group(1).lower(), compared.group(2), compared.group(3)
            if key == "len" and op == "!=":
                meant.append(f"{said}did you mean -len:{value}?")
            elif key != "len":
                meant.append(f"{said}only len compares with < and >; {key}: takes values "
                             f"and ranges ({key}:1-9)")
            continue
        name, eq, value = word.partition("=")
        if eq and value and name.lower() in KEYS:
            meant.append(f"{said}did you mean {name.lower()}:{value}?")
    if meant:
        hint += f" ({'; '.join(meant)})"
    return hint


def _tokens(text: str) -> list[_Token]:
    out: list[_Token] = []
    i, n = 0, len(text)
    while i < n:
        if text[i].isspace():
            i += 1
            continue
        start = i
        chars: list[str] = []
        cols: list[int] = []
        inside: list[int] = []
        quoted_from = -1
        while i < n and not text[i].isspace():
            ch = text[i]
            if ch in "\"'":
                end = text.find(ch, i + 1)
                if end < 0:
                    raise FilterError(f"unclosed quote {ch} (column {i + 1})", column=i + 1)
                if quoted_from < 0:
                    quoted_from = len(chars)
                inside.extend(range(len(chars), len(chars) + end - i - 1))
                chars.extend(text[i + 1:end])
                cols.extend(range(i + 2, end + 1))
                i = end + 1
                continue
            chars.append(ch)
            cols.append(i + 1)
            i += 1
        out.append(_Token("".join(chars), tuple(cols), start + 1, text[start:i],
                          len(chars) if quoted_from < 0 else quoted_from, frozenset(inside)))
    return out


# ----------------------------------------------------------------- parsing

def compile_filter(text: str) -> Filter:
    """Compile ``text``; an empty or blank text matches every frame.

    Raises :class:`FilterError` naming the offending term and its column.
    """
    groups: list[list[tuple[str, Predicate]]] = [[]]
    uses_stream = False
    for after_or, tok in _terms(text):
        if after_or:
            groups.append([])
        kind, pred = _term(tok)
        uses_stream = uses_stream or kind in ("status", "method", "path", "grpc")
        groups[-1].append((kind, pred))
    alternatives = [_all([p for _, p in sorted(g, key=lambda kp: _COST[kp[0]])])
                    for g in groups]
    return Filter(text, _any(alternatives), uses_stream)


def _keyword(tok: _Token) -> str | None:
    """``or`` or ``and`` when the token is that keyword (typed without quotes)."""
    low = tok.text.lower()
    return low if not tok.quoted and low in ("or", "and") else None


def _negated(tok: _Token) -> bool:
    """Whether the token is a term with a ``!`` or ``-`` prefix typed outside quotes."""
    return len(tok.text) > 1 and tok.text[0] in "!-" and tok.quoted_from > 0


def _terms(text: str) -> Iterator[tuple[bool, _Token]]:
    """The terms of a filter, left to right, each with whether an ``or`` comes
    just before it; raises :class:`FilterError` where keywords, negations,
    quotes or parentheses are misplaced (as they come, so the first error in
    the text is the one reported, whether it is here or in a term)."""
    tokens = _tokens(text)
    keyword: _Token | None = None  # the keyword just seen, waiting for its term
    after_or = False
    for i, tok in enumerate(tokens):
        word = _keyword(tok)
        if word is not None:
            if i == 0 or keyword is not None:
                raise FilterError(f"'{word}' needs a term before it (column {tok.column})",
                                  column=tok.column)
            keyword = tok
            after_or = word == "or"
            continue
        if tok.quoted and not tok.text:
            raise FilterError(f"empty quotes (column {tok.column})", column=tok.column)
        if tok.text in ("!", "-") and tok.quoted_from > 0:
            _lone_negation(tok, tokens[i + 1] if i + 1 < len(tokens) else None)
        if not tok.quoted and (tok.text in _MITMPROXY or tok.text.lstrip("!-") in _MITMPROXY):
            _mitmproxy_syntax(tok)
        _check_parentheses(tok)
        if i + 1 < len(tokens):
            _spaced_operator(tok, tokens[i + 1], tokens[i + 2] if i + 2 < len(tokens) else None)
        yield after_or, tok
        keyword, after_or = None, False
    if keyword is not None:
        word = keyword.text.lower()
        raise FilterError(f"'{word}' needs a term after it (column {keyword.column})",
                          column=keyword.column)


_OPERATOR_START = re.compile(r"(!=|>=|<=|>|<|=|:)(.*)")


def _spaced_operator(tok: _Token, following: _Token, then: _Token | None) -> None:
    """Raise for a key and its operator typed apart (``len >100``, ``len > 100``,
    ``status :200``): as words they would search every summary for ``len``."""
    if tok.quoted or following.quoted:
        return
    key = tok.text[1:] if _negated(tok) else tok.text
    op = _OPERATOR_START.fullmatch(following.text)
    if key.lower() not in KEYS or op is None:
        return
    sign = op.group(1)
    if sign == "=" and key.lower() != "len":
        sign = ":"  # (status=404 is a word; status:404 is the term)
    joined = tok.text + sign + op.group(2)
    typed = f"{tok.raw} {following.raw}"
    if not op.group(2) and then is not None and not then.quoted and _keyword(then) is None:
        joined += then.text
        typed += f" {then.raw}"
    raise FilterError(
        f"'{typed}' would search for {len(typed.split())} words; the term is written "
        f"'{joined}', without spaces (column {tok.column}); to search for the words, put "
        f"them in quotes", column=tok.column)


_MITMPROXY = {
    "~d": "host:GLOB", "~u": "path:GLOB (the path only, a glob, not a regex over the URL)",
    "~c": "status:CODE", "~m": "method:NAME", "~h": "header:NAME or header:NAME=VALUE",
    "~hq": "header:NAME=VALUE dir:c2s", "~hs": "header:NAME=VALUE dir:s2c",
    "~t": "header:content-type=VALUE", "~q": "dir:c2s", "~s": "dir:s2c",
    "~b": "nothing: bodies are not searched (the stream view, s, shows them)",
    "~bq": "nothing: bodies are not searched", "~bs": "nothing: bodies are not searched",
    "~a": "nothing", "~e": "finding:error", "~all": "an empty filter",
    "~tq": "header:content-type=VALUE dir:c2s", "~ts": "header:content-type=VALUE dir:s2c",
    "~websocket": "header:upgrade=websocket, or header::protocol=websocket",
    "~src": "nothing (the connections pane shows each client)", "~dst": "host:GLOB",
    "~marked": "nothing: frames are not marked",
    "&": "a space (terms side by side must all match)", "|": "or",
}
"""mitmproxy's filter operators, and what this language has for them."""


def _mitmproxy_syntax(tok: _Token) -> None:
    """Raise for a mitmproxy filter operator (``~d``, ``&``): as words they would
    search every frame's summary for '~d', and match nothing."""
    op = tok.text.lstrip("!-") or tok.text
    raise FilterError(
        f"'{tok.text}' is mitmproxy's filter syntax (column {tok.column}); in h2scope: "
        f"{_MITMPROXY[op]} (docs/filters.md lists the terms); to search for '{tok.text}', put "
        "it in quotes", column=tok.column)


def _lone_negation(tok: _Token, following: _Token | None) -> None:
    """Raise for a ``!`` or ``-`` that is not written against a term."""
    sign = tok.text
    if tok.raw != sign:  # !"" : the quotes hold the (empty) term
        raise FilterError(f"empty quotes (column {tok.column + 1})", column=tok.column + 1)
    if (following is not None and _keyword(following) is None
            and following.text not in ("!", "-")):
        raise FilterError(
            f"'{sign}' needs its term right after it, without a space: write "
            f"'{sign}{following.raw}' (column {tok.column})", column=tok.column)
    raise FilterError(f"'{sign}' needs a term after it (column {tok.column}); to search for "
                      f"'{sign}', put it in quotes", column=tok.column)


def _check_parentheses(tok: _Token) -> None:
    """Raise for a term that opens with ``(`` or closes with an unmatched ``)``
    (typed outside quotes): the language has no grouping."""
    start = 1 if _negated(tok) else 0
    if tok.raw[start:start + 1] == "(":
        paren, column = "(", tok.column + start
    elif tok.raw.endswith(")") and "(" not in tok.raw:
        paren, column = ")", tok.column + len(tok.raw) - 1
    else:
        return
    raise FilterError(
        f"parentheses are not supported: '{paren}' in '{tok.raw}' (column {column}); "
        f"terms are combined with 'and' (or a space) and 'or', and 'a b or c' means "
        f"(a and b) or c; to search for '{paren}', put it in quotes", column=column)


def _term(tok: _Token) -> tuple[str, Predicate]:
    if _negated(tok) and tok.text[1:2] in ("!", "-") and tok.quoted_from > 2 \
            and _KEY_TERM.match(tok.text[2:]):
        # (a second sign: the term became a word that can never match, and its
        # negation matched every frame, silently)
        rest = tok.text[2:]
        raise FilterError(f"one ! or - per term: '{tok.raw}' (column {tok.column}); write "
                          f"-{rest} to leave those frames out, {rest} to keep them",
                          column=tok.column)
    if _negated(tok):
        kind, inner = _positive_term(tok, tok.text[1:], 1)
        return kind, lambda ev, c, sh: not inner(ev, c, sh)
    return _positive_term(tok, tok.text, 0)


def _positive_term(tok: _Token, body: str, offset: int) -> tuple[str, Predicate]:
    unquoted = tok.quoted_from - offset  # chars of body typed outside quotes
    m = _LEN_TERM.match(body)
    if m and unquoted >= m.end():
        return "len", _len_term(tok, body[m.end():], m.group(1), offset + m.end())
    m = _KEY_TERM.match(body)
    if m and unquoted >= m.end():
        key = m.group(1).lower()
        if key not in _BUILDERS:
            what = f"unknown filter key '{m.group(1)}' in '{tok.raw}' (column {tok.col(offset)})"
            meant = _key_meant(m.group(1), body[m.end():])
            raise FilterError(
                f"{what}: did you mean {meant}? (known keys: {', '.join(KEYS)}; text "
                "containing ':' goes in quotes)" if meant else
                f"{what}; known: {', '.join(KEYS)}; to search for text containing ':', "
                "put it in quotes", column=tok.col(offset))
        start = offset + m.end()
        if start >= len(tok.text):
            raise FilterError(f"'{tok.raw}' needs a value after ':' (column {tok.col(start)})",
                              column=tok.col(start))
        return key, _BUILDERS[key](tok, _alternatives(tok, start))
    return "word", _word(body)


def _key_meant(key: str, value: str) -> str:
    """The term meant by an unknown key, or "": a key it is a typo of (``tpye:``),
    or for a header's name (``content-type:json``) the ``header:`` term."""
    import difflib

    close = difflib.get_close_matches(key.lower(), KEYS, n=1, cutoff=0.7)
    if close:
        return f"{close[0]}:{value}"
    if "-" in key or "_" in key:
        return f"header:{key.lower()}={value}" if value else f"header:{key.lower()}"
    return ""


def _alternatives(tok: _Token, start: int) -> list[tuple[str, int]]:
    """The comma-separated values from ``tok.text[start:]`` with their columns (a
    comma typed inside quotes is part of its value)."""
    out = []
    pos = begin = start
    text = tok.text
    for i in range(start, len(text) + 1):
        if i < len(text) and (text[i] != "," or i in tok.inside):
            continue
        part = text[begin:i]
        if not part:
            raise FilterError(f"empty value in '{tok.raw}' (column {tok.col(pos)})",
                              column=tok.col(pos))
        out.append((part, tok.col(pos)))
        pos = begin = i + 1
    return out


def _bad(what: str, value: str, tok: _Token, column: int, known: str = "") -> FilterError:
    tail = f"; {known}" if known else ""
    return FilterError(f"{what} '{value}' in '{tok.raw}' (column {column}){tail}", column=column)


# --------------------------------------------------------------- the terms

Values = list[tuple[str, int]]


def _type_term(tok: _Token, values: Values) -> Predicate:
    types: set[int] = set()
    for value, col in values:
        name = value.upper().replace("-", "_")
        if name in _TYPE_NAMES:
            types.add(_TYPE_NAMES[name])
        elif _NUMBER.fullmatch(value) and int(value, 0) <= 0xFF:
            types.add(int(value, 0))
        else:
            raise _bad("unknown frame type", value, tok, col,
                       "known: " + ", ".join(_TYPE_NAMES) + ", or a number 0x0-0xff")
    only = frozenset(types)
    return lambda ev, c, sh: ev.frame.type in only


def _ranges(tok: _Token, values: Values, what: str) -> list[tuple[int, int]]:
    out = []
    for value, col in values:
        m = _RANGE.fullmatch(value)
        if not m:
            raise _bad(f"bad {what}", value, tok, col, "expected a number or a range like 1-9")
        lo = int(m.group(1))
        hi = int(m.group(2)) if m.group(2) is not None else lo
        if hi < lo:
            raise _bad(f"empty {what} range", value, tok, col, "write the smaller number first")
        out.append((lo, hi))
    return out


def _in_ranges(ranges: list[tuple[int, int]]) -> Callable[[int], bool]:
    if len(ranges) == 1:
        lo, hi = ranges[0]
        return lambda x: lo <= x <= hi
    return lambda x: any(lo <= x <= hi for lo, hi in ranges)


def _stream_term(tok: _Token, values: Values) -> Predicate:
    inside = _in_ranges(_ranges(tok, values, "stream id"))

    def pred(ev: FrameObserved, c: ConnMeta | None, sh: StreamHeaders | None) -> bool:
        # A PUSH_PROMISE (and the CONTINUATION ending its block) belongs to the
        # stream it promises as well: that stream's request is in it.
        f = ev.frame
        if inside(f.stream_id):
            return True
        if ev.block_stream_id is not None:
            return inside(ev.block_stream_id)
        return type(f) is PushPromiseFrame and inside(f.promised_stream_id)
    return pred


def _conn_term(tok: _Token, values: Values) -> Predicate:
    inside = _in_ranges(_ranges(tok, values, "connection id"))
    return lambda ev, c, sh: c is not None and inside(c.conn_id)


def _dir_term(tok: _Token, values: Values) -> Predicate:
    dirs = set()
    for value, col in values:
        d = _DIRECTIONS.get(value.lower())
        if d is None:
            raise _bad("unknown direction", value, tok, col, "known: " + ", ".join(_DIRECTIONS))
        dirs.add(d)
    if len(dirs) == 2:
        return lambda ev, c, sh: True
    (only,) = dirs
    return lambda ev, c, sh: ev.direction is only


def _glob(values: Values, *, ignore_case: bool) -> re.Pattern[str]:
    parts = "|".join(fnmatch.translate(v) for v, _ in values)
    return re.compile(parts, re.IGNORECASE if ignore_case else 0)


def _host_term(tok: _Token, values: Values) -> Predicate:
    for value, col in values:
        port = _HOST_PORT.fullmatch(value)
        if port:
            raise _bad("bad host", value, tok, col,
                       f"host: matches the host name without its port: write "
                       f"host:{port.group(1)}")
    match = _glob(values, ignore_case=True).match

    def pred(ev: FrameObserved, c: ConnMeta | None, sh: StreamHeaders | None) -> bool:
        host = c.host if c is not None else None
        return host is not None and match(host) is not None
    return pred


def _finding_term(tok: _Token, values: Values) -> Predicate:
    severities: set[Severity] = set()
    codes: Values = []
    for value, col in values:
        low = value.lower()
        if low == "any":
            return lambda ev, c, sh: bool(ev.findings)
        if low in _SEVERITIES:
            severities.add(_SEVERITIES[low])
        elif _CODE.fullmatch(low):
            codes.append((low, col))
        else:
            raise _bad("bad finding", value, tok, col,
                       "expected any, error, warning, info or a finding code like "
                       "flow-control-exceeded")
    code_match = _glob(codes, ignore_case=True).match if codes else None
    sevs = frozenset(severities)

    def pred(ev: FrameObserved, c: ConnMeta | None, sh: StreamHeaders | None) -> bool:
        for f in ev.findings:
            if f.severity in sevs or (code_match is not None and code_match(f.code)):
                return True
        return False
    return pred


def _stall_term(tok: _Token, values: Values) -> Predicate:
    """``stall:start`` the DATA frames after which their sender must wait (a window
    at 0 or below, the stream not ended), ``stall:end`` the WINDOW_UPDATEs that
    took a window from 0 or below above it, ``stall:any`` both: read from the
    windows each frame carries."""
    starts = ends = False
    for value, col in values:
        low = value.lower()
        if low in ("any", "start"):
            starts = True
        if low in ("any", "end"):
            ends = True
        if low not in ("any", "start", "end"):
            raise _bad("bad stall", value, tok, col, "expected any, start or end")

    def pred(ev: FrameObserved, c: ConnMeta | None, sh: StreamHeaders | None) -> bool:
        windows = ev.windows
        if windows is None:
            return False
        f = ev.frame
        if f.type == 0:  # (DATA that ends its stream leaves nothing waiting)
            return starts and not f.flags & 1 and (
                windows[0] <= 0 or (windows[1] is not None and windows[1] <= 0))
        if f.type == 8 and ends:
            after = windows[1] if f.stream_id else windows[0]
            return after is not None and after > 0 >= after - f.increment  # type: ignore[attr-defined]
        return False
    return pred


def _len_term(tok: _Token, value: str, op: str, start: int) -> Predicate:
    col = tok.col(start)
    if op == ":":
        inside = _in_ranges(_ranges(tok, [(value, col)], "length"))
        return lambda ev, c, sh: inside(ev.frame.length)
    if not _DIGITS.fullmatch(value):  # (str.isdigit takes '²', which int() refuses)
        raise _bad("bad length", value, tok, col, f"expected a number after 'len{op}'")
    n = int(value)
    match op:
        case ">":
            return lambda ev, c, sh: ev.frame.length > n
        case "<":
            return lambda ev, c, sh: ev.frame.length < n
        case ">=":
            return lambda ev, c, sh: ev.frame.length >= n
        case "<=":
            return lambda ev, c, sh: ev.frame.length <= n
    return lambda ev, c, sh: ev.frame.length == n


def _flags_term(tok: _Token, values: Values) -> Predicate:
    # A flag's bit depends on the frame type (0x1 is END_STREAM or ACK), so the
    # mask to test is looked up per type; a numeric mask applies to every type.
    masks: dict[int, int] = {}
    raw = 0
    for value, col in values:
        name = value.upper().replace("-", "_")
        if name in _FLAG_NAMES:
            for ftype, flags in FLAGS_BY_TYPE.items():
                for bit, flag in flags:
                    if flag == name:
                        masks[ftype] = masks.get(ftype, 0) | bit
        elif _NUMBER.fullmatch(value) and 0 < int(value, 0) <= 0xFF:
            raw |= int(value, 0)
        else:
            raise _bad("unknown flag", value, tok, col,
                       "known: " + ", ".join(_FLAG_NAMES) + ", or a mask 0x01-0xff")
    table = tuple(masks.get(t, 0) | raw for t in range(256))
    return lambda ev, c, sh: bool(ev.frame.flags & table[ev.frame.type])


def _header_term(tok: _Token, values: Values) -> Predicate:
    wanted: list[tuple[Callable[[str], object], str | None]] = []
    for value, col in values:
        name, eq, sub = value.partition("=")
        if not name:
            raise _bad("missing header name", value, tok, col, "write header:NAME or "
                       "header:NAME=TEXT")
        name = name.lower()
        is_name: Callable[[str], object]
        if any(ch in name for ch in "*?["):
            is_name = re.compile(fnmatch.translate(name)).match
        else:
            is_name = name.__eq__
        wanted.append((is_name, sub.lower() if eq else None))

    def pred(ev: FrameObserved, c: ConnMeta | None, sh: StreamHeaders | None) -> bool:
        block = ev.block
        if block is None:
            return False
        for n, v in block.headers:
            for is_name, sub in wanted:
                if is_name(n) and (sub is None or sub in v.lower()):
                    return True
        return False
    return pred


def _pseudo_term(name: str, test: Callable[[str], bool]) -> Predicate:
    def pred(ev: FrameObserved, c: ConnMeta | None, sh: StreamHeaders | None) -> bool:
        block = ev.block
        if block is not None:
            for n, v in block.headers:
                if n == name:
                    return test(v)
        if sh is not None:
            for n, v in sh:
                if n == name:
                    return test(v)
        return False
    return pred


def _status_term(tok: _Token, values: Values) -> Predicate:
    for value, col in values:
        if not _STATUS.fullmatch(value):
            raise _bad("bad status", value, tok, col,
                       "expected a code like 404 or a class like 5xx or 40x")
    rx = re.compile("|".join(v.lower().replace("x", "[0-9]") for v, _ in values))
    return _pseudo_term(":status", lambda v: rx.fullmatch(v) is not None)


def _grpc_term(tok: _Token, values: Values) -> Predicate:
    codes: set[int] = set()
    for value, col in values:
        word = value.upper().replace("-", "_")  # (DEADLINE-EXCEEDED, as type: takes names)
        span = _RANGE.fullmatch(value)
        if word in ("ANY", "FAILED"):
            codes.update(range(word == "FAILED", len(GRPC_STATUS)))
        elif word in GRPC_STATUS:
            codes.add(GRPC_STATUS.index(word))
        elif span and int(span.group(1)) <= int(span.group(2) or span.group(1)) < \
                len(GRPC_STATUS):
            codes.update(range(int(span.group(1)), int(span.group(2) or span.group(1)) + 1))
        elif span and int(span.group(2) or span.group(1)) < int(span.group(1)):
            raise _bad("empty gRPC status range", value, tok, col,
                       "write the smaller number first")
        else:
            raise _bad("bad gRPC status", value, tok, col,
                       "expected a code 0-16 or a range like 1-16, a name like NOT_FOUND, "
                       "'failed' (1-16) or 'any'")
    wanted = frozenset(map(str, codes))
    by_status = _pseudo_term("grpc-status", wanted.__contains__)
    if not any(v.upper() == "FAILED" for v, _ in values):
        return by_status

    def failed(ev: FrameObserved, c: ConnMeta | None, sh: StreamHeaders | None) -> bool:
        # (also a call answered by something else — a load balancer's 503 text/plain —
        # which has no grpc-status, and which the client fails all the same)
        return by_status(ev, c, sh) or (sh is not None and _answered_otherwise(sh))
    return failed


def _answered_otherwise(headers: StreamHeaders) -> bool:
    """A gRPC call (its request's content-type) whose response is not gRPC's: a
    :status other than 200, or another content-type."""
    request_type = response_type = status = None
    for name, value in headers:  # (request fields, then the response's from :status)
        if name == ":status":
            status = status or value
        elif name == "content-type":
            if status is None:
                request_type = request_type or value
            else:
                response_type = response_type or value
    return grpc_call_type(request_type) and status is not None \
        and (status != "200" or not (response_type or "").startswith("application/grpc"))


def _method_term(tok: _Token, values: Values) -> Predicate:
    for value, col in values:
        if not _METHOD.fullmatch(value):
            raise _bad("bad method", value, tok, col, "expected a token like GET or POST")
    methods = frozenset(v.upper() for v, _ in values)
    return _pseudo_term(":method", lambda v: v.upper() in methods)


def _path_term(tok: _Token, values: Values) -> Predicate:
    match = _glob(values, ignore_case=False).match
    return _pseudo_term(":path", lambda v: match(v) is not None)


def _word(word: str) -> Predicate:
    needle = word.lower()

    def pred(ev: FrameObserved, c: ConnMeta | None, sh: StreamHeaders | None) -> bool:
        block = ev.block
        if block is not None:
            for n, v in block.headers:
                if needle in n or needle in v.lower():
                    return True
        if needle in ev.frame.type_name.lower():
            return True
        # A stand-in for a frame (the UI's filter over its table) says what its
        # summary holds for the words searched, without formatting it.
        summary = getattr(ev, "summary_lower", None)
        if summary is None:
            summary = frame_summary(ev).lower()
        return needle in summary
    return pred


_BUILDERS: dict[str, Callable[[_Token, Values], Predicate]] = {
    "type": _type_term,
    "stream": _stream_term,
    "conn": _conn_term,
    "dir": _dir_term,
    "host": _host_term,
    "finding": _finding_term,
    "flags": _flags_term,
    "header": _header_term,
    "status": _status_term,
    "method": _method_term,
    "path": _path_term,
    "grpc": _grpc_term,
    "stall": _stall_term,
}


# ------------------------------------------------------------- combinators

def _all(preds: list[Predicate]) -> Predicate:
    if not preds:
        return lambda ev, c, sh: True
    if len(preds) == 1:
        return preds[0]
    if len(preds) == 2:
        a, b = preds
        return lambda ev, c, sh: a(ev, c, sh) and b(ev, c, sh)
    every = tuple(preds)

    # A plain loop: all() over a generator costs a frame object per call.
    def pred(ev: FrameObserved, c: ConnMeta | None, sh: StreamHeaders | None) -> bool:
        for p in every:  # noqa: SIM110
            if not p(ev, c, sh):
                return False
        return True
    return pred


def _any(preds: list[Predicate]) -> Predicate:
    if len(preds) == 1:
        return preds[0]
    some = tuple(preds)

    def pred(ev: FrameObserved, c: ConnMeta | None, sh: StreamHeaders | None) -> bool:
        for p in some:  # noqa: SIM110
            if p(ev, c, sh):
                return True
        return False
    return pred
