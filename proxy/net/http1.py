"""HTTP/1.x message heads and body framing (RFC 9112), as pure functions.

The HTTP/1.1 relay forwards bytes as they are; it only needs to know where
each message ends (to log it, to find the next one, and to notice an
``Upgrade``). These functions parse a head and say how its body is framed;
they raise :class:`Http1Error` with a sentence naming the problem.
"""

from __future__ import annotations

import base64
import binascii
import re
import socket
from dataclasses import dataclass
from enum import IntEnum

_TOKEN = re.compile(rb"^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$")
_VERSION = re.compile(rb"^HTTP/\d\.\d$")
_REQUEST_LINE = re.compile(rb"^([^ ]+) ([^ ]+) (HTTP/\d\.\d)$")
_CONTROL = re.compile(rb"[\x00-\x1f\x7f]")
_HOST = re.compile(r"[A-Za-z0-9\-._~!$&'()*+,;=%]+")
"""RFC 3986 §3.2.2 reg-name (and IPv4): unreserved, sub-delims, percent-encoding."""
_IPV6 = re.compile(r"[0-9A-Fa-f:.]+(%[A-Za-z0-9\-._~]+)?")


def text(raw: bytes) -> str:
    """HTTP/1.x bytes as text: UTF-8 (what clients send beyond ASCII today), a byte
    that is not UTF-8 kept as a lone surrogate, so :func:`wire` gives the bytes back
    exactly (and the views write it ``\\xNN``)."""
    return raw.decode("utf-8", "surrogateescape")


def wire(value: str) -> bytes:
    """The bytes a :func:`text` string came from."""
    return value.encode("utf-8", "surrogateescape")


class Http1Error(ValueError):
    """The bytes are not a valid HTTP/1.x message head or framing."""


class Framing(IntEnum):
    NONE = 0
    LENGTH = 1
    CHUNKED = 2
    UNTIL_CLOSE = 3
    """RFC 9112 §6.3 rule 8: a response without length ends when the server closes."""


@dataclass(frozen=True, slots=True, kw_only=True)
class Head:
    raw: bytes
    """The head as received, up to and including the empty line."""
    start_line: str
    version: str
    headers: tuple[tuple[str, str], ...]
    """Names in their original case, values stripped of surrounding whitespace."""

    def get(self, name: str) -> str | None:
        lower = name.lower()
        for n, v in self.headers:
            if n.lower() == lower:
                return v
        return None

    def get_all(self, name: str) -> list[str]:
        lower = name.lower()
        return [v for n, v in self.headers if n.lower() == lower]

    def tokens(self, name: str) -> set[str]:
        """Comma-separated tokens of every *name* header, lower-cased."""
        return {t.strip().lower() for v in self.get_all(name) for t in v.split(",") if t.strip()}


@dataclass(frozen=True, slots=True, kw_only=True)
class RequestHead(Head):
    method: str
    target: str


@dataclass(frozen=True, slots=True, kw_only=True)
class ResponseHead(Head):
    status: int
    reason: str


def _lines(raw: bytes) -> tuple[bytes, list[bytes]]:
    if not raw.endswith(b"\r\n\r\n") and not raw.endswith(b"\n\n"):
        raise Http1Error("the message head does not end with an empty line")
    lines = raw.replace(b"\r\n", b"\n").split(b"\n")[:-2]
    # RFC 9112 §2.2: a server SHOULD ignore at least one empty line before the request.
    while lines and not lines[0]:
        lines.pop(0)
    if not lines:
        raise Http1Error("empty message head")
    return lines[0], lines[1:]


def _quoted_name(name: bytes, sep: bytes) -> bytes:
    """What an error may quote of a header line it refuses: the name, not the value
    (``Cookie : session=...`` — the error goes to the log, the capture and the 400
    page, where no redaction reaches)."""
    return name[:60] + (b": ..." if sep else b"")


def _without_query(target: bytes) -> bytes:
    """A request line or target with its query replaced by ``?...`` (tokens ride there)."""
    head, q, rest = target.partition(b"?")
    if not q:
        return target
    tail = rest.rpartition(b" ")[1:] if b" HTTP/" in rest else (b"", b"")
    return head + b"?..." + b"".join(tail)


def _headers(lines: list[bytes]) -> tuple[tuple[str, str], ...]:
    out = []
    for line in lines:
        if line[:1] in (b" ", b"\t"):
            # RFC 9112 §5.2: obsolete line folding is rejected.
            raise Http1Error("obsolete header line folding (a line starting with whitespace)")
        name, sep, value = line.partition(b":")
        if not sep or not _TOKEN.match(name):
            raise Http1Error(f"invalid header line {_quoted_name(name, sep)!r}")
        if b"\x00" in value:  # RFC 9110 §5.5: a recipient must reject it (or replace it)
            raise Http1Error(f"NUL in the value of header {name.decode('ascii')}")
        out.append((name.decode("ascii"), text(value.strip(b" \t"))))
    return tuple(out)


def parse_request_head(raw: bytes) -> RequestHead:
    first, rest = _lines(raw)
    m = _REQUEST_LINE.match(first)
    if m is None or not _TOKEN.match(m.group(1)):
        raise Http1Error(f"invalid request line {_without_query(first)[:80]!r}")
    if _CONTROL.search(m.group(2)):  # RFC 3986: a URI has no control characters
        raise Http1Error(f"control character in the request target "
                         f"{_without_query(m.group(2))[:80]!r}")
    return RequestHead(raw=raw, start_line=text(first),
                       method=m.group(1).decode("ascii"), target=text(m.group(2)),
                       version=m.group(3).decode("ascii"), headers=_headers(rest))


def parse_response_head(raw: bytes) -> ResponseHead:
    first, rest = _lines(raw)
    parts = first.split(b" ", 2)
    if len(parts) < 2 or not _VERSION.match(parts[0]) or not re.fullmatch(rb"\d{3}", parts[1]):
        raise Http1Error(f"invalid status line {first[:80]!r}")
    return ResponseHead(raw=raw, start_line=text(first),
                        version=parts[0].decode("ascii"), status=int(parts[1]),
                        reason=text(parts[2]) if len(parts) > 2 else "",
                        headers=_headers(rest))


def h2c_upgrade(request: RequestHead, scheme: str = "http"
                ) -> tuple[bytes | None, tuple[tuple[str, str], ...]]:
    """What an ``Upgrade: h2c`` request hands to HTTP/2 (RFC 7540 §3.2): the decoded
    ``HTTP2-Settings`` payload (None when it is not base64url, RFC 7540 §3.2.1:
    token68, no padding) and the request as stream 1's header list
    (pseudo-headers first, ``Host`` as ``:authority``)."""
    value = (request.get("http2-settings") or "").strip()
    settings: bytes | None
    try:
        settings = base64.urlsafe_b64decode(value + "=" * (-len(value) % 4))
    except (binascii.Error, ValueError):
        settings = None
    pseudo = [(":method", request.method), (":scheme", scheme),
              (":authority", request.get("host") or ""), (":path", request.target)]
    headers = tuple(pseudo + [(n.lower(), v) for n, v in request.headers
                              if n.lower() != "host"])
    return settings, headers


def looks_like_http1_request(data: bytes) -> bool:
    """True if *data* starts like an HTTP/1 request line (a method token and a space)."""
    m = re.match(rb"^(\r?\n)?([A-Z][A-Z\-_]{1,19}) ", data[:24])
    return m is not None


def _content_length(head: Head) -> int | None:
    values = {v.strip(" \t") for v in head.get_all("content-length") for v in v.split(",")}
    if not values:
        return None
    if len(values) > 1:
        raise Http1Error(f"conflicting Content-Length values {sorted(values)}")
    value = values.pop()
    if not value.isdigit() or len(value) > 18:
        raise Http1Error(f"invalid Content-Length {value!r}")
    return int(value)


def _chunked(head: Head) -> bool:
    # (only SP and HTAB are whitespace in a field, RFC 9110 §5.6.3: "\x0bchunked" is
    # not chunked to a strict server, so it must not be to h2scope either)
    codings = [t.strip(" \t").lower() for v in head.get_all("transfer-encoding")
               for t in v.split(",")]
    if not codings:
        return False
    return codings[-1] == "chunked"


def request_framing(head: RequestHead) -> tuple[Framing, int]:
    """How the request body is delimited (RFC 9112 §6.3), and its length if known."""
    te = head.get_all("transfer-encoding")
    cl = _content_length(head)
    if te:
        if cl is not None:
            # RFC 9112 §6.3 rule 3: both present is a request smuggling sign.
            raise Http1Error("both Transfer-Encoding and Content-Length")
        if not _chunked(head):
            raise Http1Error("a request Transfer-Encoding must end with chunked")
        return Framing.CHUNKED, 0
    if cl:
        return Framing.LENGTH, cl
    return Framing.NONE, 0


def response_framing(head: ResponseHead, method: str) -> tuple[Framing, int]:
    """How the response body is delimited, given the request's *method* (RFC 9112 §6.3)."""
    if method == "HEAD" or head.status < 200 or head.status in (204, 304):
        return Framing.NONE, 0
    if method == "CONNECT" and 200 <= head.status < 300:
        return Framing.NONE, 0
    if head.get_all("transfer-encoding"):
        return (Framing.CHUNKED, 0) if _chunked(head) else (Framing.UNTIL_CLOSE, 0)
    cl = _content_length(head)
    if cl is not None:
        return (Framing.LENGTH, cl) if cl else (Framing.NONE, 0)
    return Framing.UNTIL_CLOSE, 0


def parse_chunk_size(line: bytes) -> int:
    """The size from a chunk-size line (extensions ignored); raises Http1Error."""
    size = line.split(b";", 1)[0].strip()
    if not size or len(size) > 15 or not re.fullmatch(rb"[0-9a-fA-F]+", size):
        raise Http1Error(f"invalid chunk size line {line[:40]!r}: not a hexadecimal size "
                         "(RFC 9112 §7.1; a body sent as it is, with Transfer-Encoding: "
                         "chunked in its head?)")
    return int(size, 16)


def keeps_alive(head: Head) -> bool:
    """RFC 9112 §9.3: persistence unless ``close``; HTTP/1.0 needs ``keep-alive``."""
    tokens = head.tokens("connection")
    if "close" in tokens:
        return False
    if head.version == "HTTP/1.0":
        return "keep-alive" in tokens
    return True


def split_authority(authority: str, default_port: int) -> tuple[str, int]:
    """``host:port`` (brackets around IPv6) → (host, port); raises Http1Error."""
    host, port = authority, default_port
    if authority.startswith("["):
        end = authority.find("]")
        if end < 0:
            raise Http1Error(f"invalid authority {authority!r}")
        host, rest = authority[1:end], authority[end + 1:]
        if "%25" in host:  # RFC 6874: a zone id in a URI is percent-encoded
            host = host.replace("%25", "%", 1)
        if not _IPV6.fullmatch(host) or ":" not in host:
            raise Http1Error(f"invalid IPv6 address in {authority!r}"
                             + (" (an IPv4 address goes without brackets)"
                                if ":" not in host else ""))
        if rest:
            if not rest.startswith(":"):
                raise Http1Error(f"invalid authority {authority!r}")
            port = _port(rest[1:], authority)
    elif authority.count(":") == 1:
        host, _, p = authority.partition(":")
        port = _port(p, authority)
    if host and not authority.startswith("[") and host[0].isdigit():
        host = _canonical_ipv4(host)
    if not host or not (authority.startswith("[") or _HOST.fullmatch(host)):
        bare_ipv6 = authority.count(":") > 1 and authority.rsplit(":", 1)[1].isdigit() and \
            _IPV6.fullmatch(authority.rsplit(":", 1)[0])
        raise Http1Error(f"invalid authority {authority!r}" + (
            f": an IPv6 address needs brackets, as in [{authority.rsplit(':', 1)[0]}]:"
            f"{authority.rsplit(':', 1)[1]}" if bare_ipv6 else ""))
    return host, port


def _canonical_ipv4(host: str) -> str:
    """An IPv4 address in a shorthand form browsers and curl read as one (``127.1``,
    ``0x7f.1``, ``2130706433``: WHATWG URL, inet_aton) as the dotted quad they mean,
    so the connection, the certificate and the SNI agree on it; anything else as is."""
    try:
        return socket.inet_ntoa(socket.inet_aton(host))
    except OSError:
        return host


def _port(text: str, authority: str) -> int:
    if not text.isdigit() or not 0 < int(text) < 65536:
        raise Http1Error(f"invalid port in {authority!r}")
    return int(text)


def absolute_target(target: str) -> tuple[str, str, int, str]:
    """``http://host:port/path`` → (scheme, host, port, origin-form path); raises Http1Error."""
    m = re.match(r"^([a-zA-Z][a-zA-Z0-9+.\-]*)://([^/?#]*)(.*)$", target)
    if m is None:
        raise Http1Error(f"not an absolute URI: {target[:80]!r}")
    scheme = m.group(1).lower()
    if scheme not in ("http", "https"):
        raise Http1Error(f"unsupported scheme {scheme!r}")
    authority = m.group(2).rsplit("@", 1)[-1]
    host, port = split_authority(authority, 80 if scheme == "http" else 443)
    path = m.group(3).split("#", 1)[0] or "/"
    if path.startswith("?"):
        path = "/" + path
    return scheme, host, port, path


def simple_response(status: int, reason: str, body: str | bytes, *,
                    extra: tuple[tuple[str, str], ...] = (),
                    content_type: str = "text/plain; charset=utf-8") -> bytes:
    """A complete HTTP/1.1 response h2scope itself sends (errors, the CA page)."""
    data = body.encode("utf-8") if isinstance(body, str) else body
    lines = [f"HTTP/1.1 {status} {reason}", f"Content-Type: {content_type}",
             f"Content-Length: {len(data)}", *(f"{k}: {v}" for k, v in extra)]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + data
