"""HTTP semantics checks on decoded header lists (RFC 9113 §8.2, §8.3).

:func:`check_fields` returns findings for one header block. What a block must
contain depends on its role, which the connection model knows: a request, a
pushed request (PUSH_PROMISE), a response (informational or final), or
trailers.
"""

from __future__ import annotations

from enum import Enum

from proxy.observe.findings import Finding, Severity

REQUEST_PSEUDO = frozenset({":method", ":scheme", ":authority", ":path", ":protocol"})
RESPONSE_PSEUDO = frozenset({":status"})
# RFC 9113 §8.2.2: connection-specific fields MUST NOT appear in HTTP/2.
CONNECTION_SPECIFIC = frozenset(
    {"connection", "proxy-connection", "keep-alive", "transfer-encoding", "upgrade"}
)
_NAME_OK = frozenset(b"!#$%&'*+-.^_`|~0123456789abcdefghijklmnopqrstuvwxyz")


class BlockRole(Enum):
    REQUEST = "request"
    PUSH_REQUEST = "pushed request"
    RESPONSE = "response"
    TRAILERS = "trailers"


def _finding(code: str, sev: Severity, rfc: str, msg: str, seq: int | None,
             sid: int) -> Finding:
    return Finding(code=code, severity=sev, rfc=rfc, message=msg, seq=seq, stream_id=sid)


def _bad_name(name: str) -> str | None:
    raw = name.encode("utf-8", "surrogateescape")
    body = raw[1:] if raw.startswith(b":") else raw
    if not body:
        return "is empty"
    if any(c in b"ABCDEFGHIJKLMNOPQRSTUVWXYZ" for c in body):
        return "contains uppercase characters"
    if not all(c in _NAME_OK for c in body):
        return "contains characters not allowed in a field name"
    return None


def _bad_value(value: str) -> str | None:
    raw = value.encode("utf-8", "surrogateescape")
    if b"\x00" in raw or b"\r" in raw or b"\n" in raw:
        return "contains NUL, CR or LF"
    if raw[:1] in (b" ", b"\t") or raw[-1:] in (b" ", b"\t"):
        return "starts or ends with whitespace"
    return None


def check_fields(headers: tuple[tuple[str, str], ...], role: BlockRole, *, seq: int | None,
                 stream_id: int) -> list[Finding]:
    """Findings for one decoded header block in its role. Never raises."""
    out: list[Finding] = []
    seen_regular = False
    pseudo: dict[str, str] = {}
    allowed = RESPONSE_PSEUDO if role is BlockRole.RESPONSE else REQUEST_PSEUDO
    for name, value in headers:
        if name.startswith(":"):
            if role is BlockRole.TRAILERS:
                out.append(_finding("pseudo-header-in-trailers", Severity.ERROR, "RFC 9113 §8.1",
                                    f"trailers carry the pseudo-header {name}", seq, stream_id))
            elif name not in allowed:
                kind = "unknown" if name not in REQUEST_PSEUDO | RESPONSE_PSEUDO else "misplaced"
                out.append(_finding("pseudo-header-invalid", Severity.ERROR, "RFC 9113 §8.3",
                                    f"{kind} pseudo-header {name} in a {role.value}",
                                    seq, stream_id))
            elif name in pseudo:
                out.append(_finding("pseudo-header-duplicated", Severity.ERROR, "RFC 9113 §8.3",
                                    f"pseudo-header {name} appears more than once",
                                    seq, stream_id))
            if seen_regular:
                out.append(_finding("pseudo-header-after-regular", Severity.ERROR,
                                    "RFC 9113 §8.3",
                                    f"pseudo-header {name} follows regular fields", seq, stream_id))
            pseudo.setdefault(name, value)
        else:
            seen_regular = True
            if name in CONNECTION_SPECIFIC:
                out.append(_finding("connection-specific-header", Severity.ERROR,
                                    "RFC 9113 §8.2.2",
                                    f"connection-specific field {name!r} is not allowed in HTTP/2",
                                    seq, stream_id))
            elif name == "te" and value.strip().lower() != "trailers":
                out.append(_finding("connection-specific-header", Severity.ERROR,
                                    "RFC 9113 §8.2.2",
                                    f"te: {value!r} — only 'trailers' is allowed in HTTP/2",
                                    seq, stream_id))
        problem = _bad_name(name)
        if problem:
            sev_code = "header-name-uppercase" if "uppercase" in problem else "header-name-invalid"
            out.append(_finding(sev_code, Severity.ERROR, "RFC 9113 §8.2.1",
                                f"field name {name!r} {problem}", seq, stream_id))
        vproblem = _bad_value(value)
        if vproblem:
            sev = Severity.ERROR if "NUL" in vproblem else Severity.WARNING
            out.append(_finding("header-value-invalid", sev, "RFC 9113 §8.2.1",
                                f"value of {name!r} {vproblem}", seq, stream_id))
    if role in (BlockRole.REQUEST, BlockRole.PUSH_REQUEST):
        method = pseudo.get(":method")
        if method == "CONNECT" and ":protocol" not in pseudo:
            # RFC 9113 §8.5: CONNECT carries :authority only.
            if ":authority" not in pseudo:
                out.append(_finding("pseudo-header-missing", Severity.ERROR, "RFC 9113 §8.5",
                                    "CONNECT request without :authority", seq, stream_id))
            for extra in (":scheme", ":path"):
                if extra in pseudo:
                    out.append(_finding("pseudo-header-invalid", Severity.ERROR, "RFC 9113 §8.5",
                                        f"CONNECT request carries {extra}", seq, stream_id))
        else:
            missing = [p for p in (":method", ":scheme", ":path") if p not in pseudo]
            if missing:
                out.append(_finding("pseudo-header-missing", Severity.ERROR, "RFC 9113 §8.3.1",
                                    f"request without {', '.join(missing)}", seq, stream_id))
            if pseudo.get(":path") == "" :
                out.append(_finding("pseudo-header-invalid", Severity.ERROR, "RFC 9113 §8.3.1",
                                    "empty :path", seq, stream_id))
    elif role is BlockRole.RESPONSE:
        status = pseudo.get(":status")
        if status is None:
            out.append(_finding("pseudo-header-missing", Severity.ERROR, "RFC 9113 §8.3.2",
                                "response without :status", seq, stream_id))
        elif not (len(status) == 3 and status.isdigit()):
            out.append(_finding("pseudo-header-invalid", Severity.ERROR, "RFC 9110 §15",
                                f":status {status!r} is not a three-digit code", seq, stream_id))
    return out


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
