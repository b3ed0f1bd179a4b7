"""HTTP semantics checks on decoded header lists (RFC 9113 §8.2, §8.3).

:func:`check_fields` returns findings for one header block. What a block must
contain depends on its role, which the connection model knows: a request, a
pushed request (PUSH_PROMISE), a response (informational or final), or
trailers.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from enum import Enum

from proxy.observe.describe import grpc_code_name
from proxy.observe.findings import Finding, Severity

REQUEST_PSEUDO = frozenset({":method", ":scheme", ":authority", ":path", ":protocol"})
RESPONSE_PSEUDO = frozenset({":status"})
# RFC 9113 §8.2.2: connection-specific fields MUST NOT appear in HTTP/2.
CONNECTION_SPECIFIC = frozenset(
    {"connection", "proxy-connection", "keep-alive", "transfer-encoding", "upgrade"}
)


class BlockRole(Enum):
    REQUEST = "request"
    PUSH_REQUEST = "pushed request"
    RESPONSE = "response"
    TRAILERS = "trailers"


# Module constants: looking a member up on an Enum class costs ~90 ns in 3.11.
_REQUEST, _PUSH_REQUEST = BlockRole.REQUEST, BlockRole.PUSH_REQUEST
_RESPONSE, _TRAILERS = BlockRole.RESPONSE, BlockRole.TRAILERS


def _finding(code: str, sev: Severity, rfc: str, msg: str, seq: int | None,
             sid: int) -> Finding:
    return Finding(code=code, severity=sev, rfc=rfc, message=msg, seq=seq, stream_id=sid)


_GOOD_NAME = re.compile(r":?[!#$%&'*+\-.^_`|~0-9a-z]+")
_BAD_VALUE = re.compile(r"[\x00\r\n]|^[ \t]|[ \t]$")
_name_cache: dict[str, str | None] = {}
_known: dict[tuple[str, str], bool | str] = {}
"""Fields seen before and found clean: True for a regular field that passed
every check, False for a pseudo-header field whose value passed the value
check. Repeated fields (most of them: indexed from the HPACK tables) cost one
lookup."""
_KNOWN_MAX = 8192
"""The cache starts over when it reaches this size: memory stays bounded and a
long run of one-off values cannot crowd out the repeated ones for good."""


def _bad_name(name: str) -> str | None:
    # Names repeat on every request: remember the verdict (bounded).
    try:
        return _name_cache[name]
    except KeyError:
        pass
    verdict: str | None = None
    if not _GOOD_NAME.fullmatch(name):
        body = name[1:] if name.startswith(":") else name
        if not body:
            verdict = "is empty"
        elif body.lower() != body:
            verdict = "contains uppercase characters"
        else:
            verdict = "contains characters not allowed in a field name"
    if len(_name_cache) < 4096:
        _name_cache[name] = verdict
    return verdict


def _bad_value(value: str) -> str | None:
    if not value or not _BAD_VALUE.search(value):
        return None
    if "\x00" in value or "\r" in value or "\n" in value:
        return "contains NUL, CR or LF"
    return "starts or ends with whitespace"


def check_fields(headers: tuple[tuple[str, str], ...], role: BlockRole, *, seq: int | None,
                 stream_id: int, connect_protocol: bool = True,
                 true_binary: bool = False) -> list[Finding]:
    """Findings for one decoded header block in its role. Never raises.

    ``connect_protocol``: the server has sent SETTINGS_ENABLE_CONNECT_PROTOCOL = 1,
    so a request may be an extended CONNECT (RFC 8441 §4). ``true_binary``: the
    block's receiver allowed gRPC's true binary metadata, so a ``-bin`` value may
    hold any byte."""
    out: list[Finding] = []
    allowed = RESPONSE_PSEUDO if role is _RESPONSE else REQUEST_PSEUDO
    pseudo = _quick_scan(headers, allowed, role)
    if pseudo is None:
        pseudo = _full_scan(headers, role, allowed, seq, stream_id, out, true_binary)
    if not connect_protocol and ":protocol" in pseudo and role is _REQUEST and \
            pseudo.get(":method") == "CONNECT":  # (elsewhere: pseudo-header-invalid)
        out.append(_finding("extended-connect-not-enabled", Severity.ERROR, "RFC 8441 §4",
                            f"an extended CONNECT (:protocol) on stream {stream_id}, but the "
                            "server has not sent SETTINGS_ENABLE_CONNECT_PROTOCOL = 1",
                            seq, stream_id))
    authority = pseudo.get(":authority")
    if authority is not None and role is _REQUEST:
        host = pseudo.get("host")  # (the scans note it beside the pseudo-headers)
        if host is not None and _origin(host, pseudo.get(":scheme")) != _origin(
                authority, pseudo.get(":scheme")):
            out.append(_finding("host-authority-mismatch", Severity.ERROR, "RFC 9113 §8.3.1",
                                f"host {host!r} differs from :authority {authority!r}; a client "
                                "must not send a Host that differs, and a server should treat "
                                "the request as malformed", seq, stream_id))
    return _check_pseudo(pseudo, role, seq, stream_id, out)


_DEFAULT_PORT = {"https": "443", "http": "80"}


def _origin(authority: str, scheme: str | None) -> tuple[str, str]:
    """Host and port an authority names (RFC 3986 §6.2.3: case-insensitive host,
    an empty or the scheme's default port is the same as none)."""
    value = authority.strip().lower()
    host, port = value, ""
    if value.startswith("["):
        end = value.find("]")
        if end > 0:
            host, rest = value[:end + 1], value[end + 1:]
            port = rest[1:] if rest.startswith(":") else ""
    else:
        name, colon, digits = value.rpartition(":")
        if colon and (digits.isdigit() or not digits):
            host, port = name, digits
    if port == "" or port == _DEFAULT_PORT.get(scheme or ""):
        port = ""
    return host, port


def _quick_scan(headers: tuple[tuple[str, str], ...], allowed: frozenset[str],
                role: BlockRole) -> dict[str, str] | None:
    """The pseudo-header map of a block with nothing wrong in its fields, or
    None when something needs the full scan. The common case, made cheap:
    leading unique allowed pseudo-headers, then regular fields, each field
    checked once and then known clean by one dict lookup."""
    pseudo: dict[str, str] = {}
    known = _known
    regular = False
    for field in headers:
        kind = known.get(field)
        if kind is True:
            regular = True
            continue
        if kind is _HOST:
            regular = True
            pseudo.setdefault("host", field[1])
            continue
        name = field[0]
        if kind is None:
            if name[:1] != ":":
                if not _clean_regular(field):
                    return None
                regular = True
                if name == "host":
                    pseudo.setdefault("host", field[1])
                continue
            value = field[1]
            if value and _BAD_VALUE.search(value):
                return None
            _remember(field, False)
        if regular or name in pseudo or name not in allowed or role is _TRAILERS:
            return None
        pseudo[name] = field[1]
    return pseudo


_HOST = "host"
"""The ``_known`` mark of a clean ``host`` field: regular, and noted by the scans so
that Host can be compared with :authority without another pass."""


def _remember(field: tuple[str, str], regular: bool) -> None:
    if len(_known) >= _KNOWN_MAX:
        _known.clear()
    _known[field] = _HOST if regular and field[0] == "host" else regular


def _clean_regular(field: tuple[str, str]) -> bool:
    """Whether a regular field passes every check :func:`_full_scan` makes of it
    (and so raises no finding); a clean one is remembered."""
    name, value = field
    if name in CONNECTION_SPECIFIC or name == "te" or _bad_name(name) is not None \
            or _bad_value(value) is not None:
        return False
    _remember(field, True)
    return True


def _full_scan(headers: tuple[tuple[str, str], ...], role: BlockRole, allowed: frozenset[str],
               seq: int | None, stream_id: int, out: list[Finding],
               true_binary: bool = False) -> dict[str, str]:
    """The pseudo-header map of a block, and its fields' findings in ``out``: one
    per rule and kind of problem, naming every field it concerns. A block is one
    message, malformed once however many of its fields break a rule (a receiver
    resets the stream once): four pseudo-headers after a regular field are one
    finding, not four, and the summary counts it once."""
    seen_regular = False
    pseudo: dict[str, str] = {}
    known = _known
    found: dict[tuple[str, str], dict[str, None]] = {}
    """The fields concerned, in order, by (rule, kind of problem)."""
    for field in headers:
        if known.get(field) is True:
            seen_regular = True
            continue  # this exact regular field passed every check before
        name, value = field
        if name[:1] == ":":
            if role is _TRAILERS:
                found.setdefault(("in-trailers", ""), {})[name] = None
            elif name not in allowed:
                kind = "unknown" if name not in REQUEST_PSEUDO | RESPONSE_PSEUDO else "misplaced"
                found.setdefault(("pseudo-invalid", kind), {})[name] = None
            elif name in pseudo:
                found.setdefault(("duplicated", ""), {})[name] = None
            if seen_regular:
                found.setdefault(("after-regular", ""), {})[name] = None
            pseudo.setdefault(name, value)
        else:
            seen_regular = True
            if name == "host":
                pseudo.setdefault("host", value)
            if name in CONNECTION_SPECIFIC:
                found.setdefault(("connection-specific", ""), {})[repr(name)] = None
            elif name == "te" and value.strip().lower() != "trailers":
                found.setdefault(("te", ""), {})[repr(value)] = None
        problem = _bad_name(name)
        if problem:
            found.setdefault(("name", problem), {})[repr(name)] = None
        vproblem = _bad_value(value)
        if vproblem and not (true_binary and name.endswith("-bin")):
            found.setdefault(("value", vproblem), {})[repr(name)] = None
        # (raw bytes in a -bin value, as gRPC's true binary metadata allows, are fine
        # on this connection only: not remembered as a good field)
        if not problem and not vproblem and name[:1] != ":" and name not in CONNECTION_SPECIFIC \
                and name != "te":
            _remember(field, True)
    for (rule, kind), names in found.items():
        out.append(_field_finding(rule, kind, list(names), role, seq, stream_id))
    return pseudo


_NAMED = 8
"""Fields a finding names, at most (then how many in all)."""


def _field_finding(rule: str, kind: str, names: list[str], role: BlockRole, seq: int | None,
                   sid: int) -> Finding:
    """The finding of one rule (and kind of problem) for the fields ``names``."""
    listed = ", ".join(names[:_NAMED]) + (f", … ({len(names)} in all)"
                                          if len(names) > _NAMED else "")
    one = len(names) == 1
    s, verb_s = ("", "s") if one else ("s", "")
    error = Severity.ERROR
    match rule:
        case "in-trailers":
            return _finding("pseudo-header-in-trailers", error, "RFC 9113 §8.1",
                            f"trailers carry the pseudo-header{s} {listed}", seq, sid)
        case "pseudo-invalid":
            return _finding("pseudo-header-invalid", error, "RFC 9113 §8.3",
                            f"{kind} pseudo-header{s} {listed} in a {role.value}", seq, sid)
        case "duplicated":
            return _finding("pseudo-header-duplicated", error, "RFC 9113 §8.3",
                            f"pseudo-header{s} {listed} appear{verb_s} more than once", seq, sid)
        case "after-regular":
            return _finding("pseudo-header-after-regular", error, "RFC 9113 §8.3",
                            f"pseudo-header{s} {listed} follow{verb_s} regular fields "
                            "(pseudo-header fields must come first)", seq, sid)
        case "connection-specific":
            return _finding("connection-specific-header", error, "RFC 9113 §8.2.2",
                            f"connection-specific field{s} {listed} "
                            f"{'is' if one else 'are'} not allowed in HTTP/2", seq, sid)
        case "te":
            return _finding("connection-specific-header", error, "RFC 9113 §8.2.2",
                            f"te: {listed} — only 'trailers' is allowed in HTTP/2", seq, sid)
        case "name":
            code = "header-name-uppercase" if "uppercase" in kind else "header-name-invalid"
            return _finding(code, error, "RFC 9113 §8.2.1",
                            f"field name{s} {listed} {_plural(kind, one)}", seq, sid)
    # RFC 9113 §8.2.1: NUL, CR, LF, and SP or HTAB at either end, are all forbidden;
    # §8.1.1 makes the message malformed (nghttpx resets the stream with
    # PROTOCOL_ERROR). Only HTTP/1.x strips the whitespace (RFC 9112 §5.1).
    return _finding("header-value-invalid", error, "RFC 9113 §8.2.1",
                    f"value{s} of {listed} {_plural(kind, one)}", seq, sid)


_PLURAL = {"is empty": "are empty", "contains": "contain", "starts or ends": "start or end"}


def _plural(problem: str, one: bool) -> str:
    """``contains uppercase characters`` said of several fields: ``contain …``."""
    if one:
        return problem
    for singular, plural in _PLURAL.items():
        if problem.startswith(singular):
            return plural + problem[len(singular):]
    return problem


def _check_pseudo(pseudo: dict[str, str], role: BlockRole, seq: int | None, stream_id: int,
                  out: list[Finding]) -> list[Finding]:
    """What a block in this role must carry (RFC 9113 §8.3.1, §8.3.2, §8.5)."""
    if role is _REQUEST or role is _PUSH_REQUEST:
        method = pseudo.get(":method")
        if ":protocol" in pseudo and method != "CONNECT":
            out.append(_finding("pseudo-header-invalid", Severity.ERROR, "RFC 8441 §4",
                                f":protocol in a {method} request; it belongs to an extended "
                                "CONNECT only", seq, stream_id))
        if method == "CONNECT" and ":protocol" not in pseudo:
            # RFC 9113 §8.5: CONNECT carries :authority only.
            if ":authority" not in pseudo:
                out.append(_finding("pseudo-header-missing", Severity.ERROR, "RFC 9113 §8.5",
                                    "CONNECT request without :authority", seq, stream_id))
            extra = [p for p in (":scheme", ":path") if p in pseudo]
            if extra:  # (one finding for the block, as for its fields)
                out.append(_finding("pseudo-header-invalid", Severity.ERROR, "RFC 9113 §8.5",
                                    f"CONNECT request carries {', '.join(extra)}", seq,
                                    stream_id))
        else:
            if ":method" in pseudo and ":scheme" in pseudo and ":path" in pseudo:
                missing = None
            else:
                missing = [p for p in (":method", ":scheme", ":path") if p not in pseudo]
            if missing and method == "CONNECT":  # (with :protocol: RFC 8441 §4 asks for both)
                out.append(_finding("pseudo-header-missing", Severity.ERROR, "RFC 8441 §4",
                                    f"extended CONNECT (:protocol) without "
                                    f"{', '.join(missing)}: unlike a plain CONNECT, it must "
                                    "carry :scheme and :path", seq, stream_id))
            elif missing:
                out.append(_finding("pseudo-header-missing", Severity.ERROR, "RFC 9113 §8.3.1",
                                    f"request without {', '.join(missing)}", seq, stream_id))
            if ":authority" not in pseudo and "host" not in pseudo and \
                    pseudo.get(":scheme") in ("http", "https") and role is _REQUEST:
                # (a promised request without :authority is push-request-invalid, below)
                # (§8.3.1 lets :authority be left out; that an http(s) target has an
                # authority, so one of the two must carry it, is RFC 9110's)
                out.append(_finding("pseudo-header-missing", Severity.ERROR,
                                    "RFC 9113 §8.3.1, RFC 9110 §4.2.1, §4.2.2, §7.2",
                                    f"{pseudo[':scheme']} request with neither :authority nor "
                                    "host: a request whose scheme has an authority must carry "
                                    "one (servers reset it: PROTOCOL_ERROR)", seq, stream_id))
            path = pseudo.get(":path")
            if path == "":
                out.append(_finding("pseudo-header-invalid", Severity.ERROR, "RFC 9113 §8.3.1",
                                    "empty :path", seq, stream_id))
            elif path is not None and path[0] != "/" and not (path == "*" and method == "OPTIONS") \
                    and pseudo.get(":scheme") in ("http", "https"):
                out.append(_finding("pseudo-header-invalid", Severity.ERROR, "RFC 9113 §8.3.1",
                                    f":path {path[:80]!r} is neither origin-form (starting with "
                                    "'/') nor '*' for OPTIONS", seq, stream_id))
        if role is _PUSH_REQUEST:
            # RFC 9113 §8.4: a promised request is cacheable and safe (GET or HEAD, in
            # practice) and names its authority; a client treats anything else as a
            # stream error (PROTOCOL_ERROR).
            if method is not None and method not in ("GET", "HEAD"):
                out.append(_finding("push-request-invalid", Severity.ERROR, "RFC 9113 §8.4",
                                    f"a promised {method} request: promised requests must be "
                                    "cacheable and safe (GET, HEAD)", seq, stream_id))
            if ":authority" not in pseudo:
                out.append(_finding("push-request-invalid", Severity.ERROR, "RFC 9113 §8.4",
                                    "a promised request without :authority (the server must "
                                    "name the origin it is authoritative for)", seq,
                                    stream_id))
        authority = pseudo.get(":authority")
        if authority is not None and "@" in authority and pseudo.get(":scheme", "https") in (
                "http", "https"):
            out.append(_finding("pseudo-header-invalid", Severity.ERROR, "RFC 9113 §8.3.1",
                                f":authority {authority!r} carries userinfo (user@host), which "
                                "http and https URIs must not send", seq, stream_id))
    elif role is _RESPONSE:
        status = pseudo.get(":status")
        if status is None:
            out.append(_finding("pseudo-header-missing", Severity.ERROR, "RFC 9113 §8.3.2",
                                "response without :status", seq, stream_id))
        elif not (len(status) == 3 and status.isdigit() and status.isascii()):
            out.append(_finding("pseudo-header-invalid", Severity.ERROR, "RFC 9110 §15",
                                f":status {status!r} is not a three-digit code", seq, stream_id))
        elif not "100" <= status <= "599":
            out.append(_finding("pseudo-header-invalid", Severity.ERROR, "RFC 9110 §15",
                                f":status {status} is outside 100..599 (\"All valid status "
                                "codes are within the range of 100 to 599, inclusive.\")", seq,
                                stream_id))
    return out


_HTTP_TO_GRPC = {400: "INTERNAL", 401: "UNAUTHENTICATED", 403: "PERMISSION_DENIED",
                 404: "UNIMPLEMENTED", 429: "UNAVAILABLE", 502: "UNAVAILABLE",
                 503: "UNAVAILABLE", 504: "UNAVAILABLE"}
"""The gRPC code a client gives a call whose response has this HTTP status and no
grpc-status (gRPC's http-grpc-status-mapping.md; any other: UNKNOWN)."""


def grpc_call_type(content_type: str | None) -> bool:
    """Whether a content-type is a gRPC call's (``application/grpc``, ``+proto`` …),
    gRPC-Web excepted: it carries its status in the body, not in trailers."""
    return content_type is not None and content_type.startswith("application/grpc") \
        and not content_type.startswith("application/grpc-web")


def grpc_status_missing(stream_id: int, how: str, seq: int, *, http_status: int | None = None,
                        early: bool = False, content_type: str | None = None) -> Finding:
    """A gRPC response that ended without grpc-status (gRPC's PROTOCOL-HTTP2.md:
    Status is in the trailers, or in a Trailers-Only response). ``early``: the
    response HEADERS carried one, but did not end the stream (so it does not
    count); ``http_status``: the response's :status, when not 200;
    ``content_type``: the response's, which may not be gRPC's (a load balancer's
    page answering the call)."""
    if http_status is not None and http_status != 200:
        code = _HTTP_TO_GRPC.get(http_status, "UNKNOWN")
        fails = (f"so the client fails the call with the code gRPC maps HTTP {http_status} "
                 f"to ({code}) — a proxy or load balancer answering for the server does this")
    else:
        fails = ("so the client fails the call (grpc-go: INTERNAL, server closed the stream "
                 "without sending trailers; C-core: UNKNOWN, Stream removed) — a proxy that "
                 "drops trailers does this")
    note = (" (the grpc-status of its response HEADERS does not count: those did not end "
            "the stream, as a Trailers-Only response's do)") if early else ""
    answer = "gRPC response"
    if content_type is None or not content_type.startswith("application/grpc"):
        answer = (f"answer to the gRPC call ({content_type or 'no content-type'}, not "
                  "application/grpc)")
    return _finding("grpc-status-missing", Severity.ERROR, "gRPC PROTOCOL-HTTP2",
                    f"the {answer} on stream {stream_id} ended {how}: no "
                    f"grpc-status{note}, {fails}", seq, stream_id)


def grpc_status_invalid(stream_id: int, value: str, seq: int) -> Finding | None:
    """A grpc-status that is not a code 0-16 (gRPC's statuscodes.md): clients fail
    the call with INTERNAL ("Error parsing 'grpc-status' metadata")."""
    if grpc_code_name(value) is not None:
        return None
    return _finding("grpc-status-invalid", Severity.ERROR, "gRPC PROTOCOL-HTTP2",
                    f"grpc-status {value!r} on stream {stream_id} is not a status code "
                    "(0-16): the client fails the call with INTERNAL (it cannot parse it)",
                    seq, stream_id)


def status_of(headers: tuple[tuple[str, str], ...]) -> int | None:
    """The numeric :status of a response block, or None."""
    for name, value in headers:
        if name == ":status":
            return int(value) if len(value) == 3 and value.isdigit() else None
        if not name.startswith(":"):
            break
    return None


def header_value(headers: tuple[tuple[str, str], ...], wanted: str) -> str | None:
    for name, value in headers:
        if name == wanted:
            return value
    return None


def content_length_of(headers: tuple[tuple[str, str], ...]) -> int:
    """The body length a message's ``content-length`` declares; -1 if it has none
    or its value is not one decimal number (RFC 9110 §8.6 allows a list of the
    same number repeated: ``42, 42``)."""
    return length_of(header_value(headers, "content-length"))


def length_conflict(headers: tuple[tuple[str, str], ...]) -> str | None:
    """The content-length values of a message, when they are not all one number
    (RFC 9110 §8.6 allows ``42, 42`` and the field repeated with 42)."""
    said = [v for n, v in headers if n == "content-length"]
    numbers = {part.strip() for v in said for part in v.split(",")}
    return ", ".join(said) if len(numbers) > 1 else None


def length_of(value: str | None) -> int:
    """:func:`content_length_of` for the field's value (None: no such field).

    With the same name twice a ``dict`` of the block keeps the last value; a
    message whose content-length fields disagree is then checked against the
    last one (RFC 9110 §8.6 makes such a message invalid either way)."""
    if value is None:
        return -1
    if value.isdigit() and value.isascii():
        return int(value)
    numbers = {part.strip() for part in value.split(",")}
    if len(numbers) != 1:
        return -1
    (number,) = numbers
    return int(number) if number.isdigit() and number.isascii() else -1


HOP_BY_HOP = CONNECTION_SPECIFIC
"""HTTP/1.x fields that HTTP/2 has no place for (RFC 9113 §8.2.2): an HTTP/1.1 origin's
response compared with an HTTP/2 edge's differs by them whatever the edge does. ``te``
and ``trailer`` are not among them: HTTP/2 carries both (``te`` with ``trailers`` only)."""


def connection_specific(fields: Iterable[tuple[str, str]]) -> frozenset[str]:
    """The names among an HTTP/1.x message's ``fields`` (lower case) that belong to its
    connection, which an intermediary forwarding it over HTTP/2 must remove (RFC 9113
    §8.2.2): :data:`HOP_BY_HOP`, those its ``Connection`` header names (RFC 9110
    §7.6.1), and ``te`` when it says more than ``trailers``."""
    names = set()
    for n, v in fields:
        if n in HOP_BY_HOP:
            names.add(n)
        if n == "connection":
            names.update(connection_named([(n, v)]))
        elif n == "te" and v.strip().lower() != "trailers":
            names.add(n)
    return frozenset(names)


def connection_named(fields: Iterable[tuple[str, str]]) -> frozenset[str]:
    """The field names a message's ``Connection`` header fields nominate (RFC 9110
    §7.6.1: they are for the next hop only), lower case."""
    return frozenset(token.strip().lower() for n, v in fields if n.lower() == "connection"
                     for token in v.split(",") if token.strip())
