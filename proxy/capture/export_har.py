"""HAR 1.2 export (http://www.softwareishard.com/blog/har-12-spec/).

One entry per stream that carried a request, and one per request of an
HTTP/1.x connection (``httpVersion`` says which). HTTP/2 specifics that HAR
has no field for go in a custom ``_h2scope`` object per entry (custom fields
must start with an underscore, HAR 1.2 "Custom Fields"): the connection,
stream id, frame counts, resets, findings and push origin; for HTTP/1.x the
connection, the request's number on it and its informational responses.
"""

from __future__ import annotations

import base64
import contextlib
import email.utils
import json
import re
from collections.abc import Iterable, Iterator
from datetime import UTC, datetime
from typing import Any, TextIO
from urllib.parse import parse_qsl, urlsplit

from proxy import __version__
from proxy.capture.exchanges import Exchange, Exchanges, Headers, collect
from proxy.capture.replay import Replayed
from proxy.content import decode_content
from proxy.observe.describe import escape_undecoded, shown_field, shown_headers, shown_name
from proxy.observe.enums import error_name
from proxy.observe.jsonview import finding_dict, raw_bytes
from proxy.websocket import Deflate, is_websocket
from proxy.websocket import messages as ws_messages

_BINARY_TYPES = ("application/grpc", "application/octet-stream", "application/x-protobuf",
                 "application/protobuf", "image/", "audio/", "video/")
"""Request bodies of these types go in a HAR base64 even when their bytes happen to be
UTF-8 (a gRPC message often is): as text they would read as control characters."""


def _binary(mime: str) -> bool:
    mime = mime.lower()
    return mime.startswith(_BINARY_TYPES) and not mime.startswith("application/grpc-web-text")


_TEXT_TYPES = ("text/", "application/json", "application/javascript", "application/xml",
               "application/x-www-form-urlencoded", "image/svg+xml")


def _iso(wall: float | None) -> str:
    # (a damaged or foreign capture's time may be NaN, infinite or out of range)
    w = wall or 0.0
    moment = datetime.fromtimestamp(w if 0 <= w < 253402300799 else 0.0, tz=UTC)
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _timings(ex: Exchange) -> tuple[float, float, float]:
    """HAR's send, wait and receive (ms), one after the other so that they add up
    to the exchange's duration: while the request was still being sent when the
    response began (a bidirectional gRPC stream, a WebSocket), send ends and
    receive begins there, and wait is 0."""
    t0 = ex.started
    if t0 is None:  # (a push: it starts with its PUSH_PROMISE, see Exchanges)
        t0 = ex.response_start
    sent = ex.request_end if ex.request_end is not None else t0
    # (no response: the wait lasts until a reset ended the stream — a cancelled call)
    began = ex.response_start if ex.response_start is not None else \
        ex.reset_at if ex.reset_at is not None else sent
    t1 = min(sent, began) if sent is not None and began is not None else sent
    # A reset after the whole response came (a browser cancelling what it no longer
    # needs) is no part of receiving it.
    reset = None if ex.response_ended and ex.reset_at is not None and \
        ex.response_end is not None and ex.reset_at >= ex.response_end else ex.reset_at
    t3 = max(x for x in (ex.response_end, ex.request_end, reset, t1) if x is not None) \
        if t1 is not None else None
    return _ms(t0, t1), _ms(t1, began), _ms(began, t3)


def _ms(a: float | None, b: float | None) -> float:
    if a is None or b is None:
        return 0.0
    return round(max(b - a, 0.0) * 1000, 3)


def _binary_value(name: str, value: str) -> tuple[str, bytes, str] | None:
    """A value HAR text cannot hold as it is: bytes that are not UTF-8 (a broken
    value), or a ``-bin`` value sent raw (gRPC's true binary metadata: NULs and
    control bytes that happen to be UTF-8). Its text with ``\\xNN`` escapes, its
    exact bytes and which of the two it is; None for a value that is text."""
    raw = raw_bytes(value)
    if name.endswith("-bin") and not value.isprintable():
        return (shown_field(name, value)[len(shown_name(name)) + 2:],
                value.encode("utf-8", "surrogateescape"),
                "binary (sent raw)" if raw is None else "not UTF-8")
    return None if raw is None else (escape_undecoded(value), raw, "not UTF-8")


def _header(name: str, value: str) -> dict[str, str]:
    d = {"name": name, "value": value}
    binary = _binary_value(name, value)
    if binary is not None:
        # (the exact bytes go in a custom field)
        d["value"] = binary[0]
        d["_valueBase64"] = base64.b64encode(binary[1]).decode("ascii")
        d["comment"] = f"{binary[2]}: bytes written \\xNN; exactly in _valueBase64"
    return d


def _pairs(headers: Headers | None) -> list[list[str]]:
    """Trailers as ``[name, value]``; a value that is binary (gRPC's binary trailers
    sent raw) gets its exact bytes as a third item, base64."""
    out = []
    for n, v in headers or ():
        binary = _binary_value(n, v)
        out.append([n, v] if binary is None else
                   [n, binary[0], base64.b64encode(binary[1]).decode("ascii")])
    return out


def _headers(headers: Headers | None) -> list[dict[str, str]]:
    # (the pseudo-header fields are in the URL, the method and the status, but for an
    # extended CONNECT's :protocol, RFC 8441 §4, which says what the stream carries)
    return [_header(n, v) for n, v in _bounded(headers)[0]
            if not n.startswith(":") or n == ":protocol"]


def _bounded(headers: Headers | None) -> tuple[Headers, str | None]:
    """At most describe.SHOWN_LIST_SIZE of a header list (an HPACK bomb decodes to
    megabytes), and the comment that says what was left out, or None."""
    if not headers:
        return (), None
    shown, omitted, size = shown_headers(tuple(headers))
    if not omitted:
        return headers, None
    return shown, (f"{omitted:,} more header fields ({size:,} bytes by RFC 7541's count) not "
                   "shown: the list is an HPACK amplification (header-list-amplified)")


def _omitted(part: dict[str, Any], headers: Headers | None) -> None:
    comment = _bounded(headers)[1]
    if comment:
        part["comment"] = comment


def _head_size(ex: Exchange, which: int, rebuilt: bool) -> int:
    # HAR's headersSize is the bytes of the message's head as sent: HTTP/2 sends the
    # HPACK block (HEADERS and CONTINUATION payloads, padding and priority aside). A
    # connection rebuilt from a net log without bytes has blocks h2scope encoded
    # itself: their size would be made up, so it is unknown (-1), as HAR has it.
    if rebuilt and ex.http_version == "h2":
        return -1
    return ex.head_sizes[which]


_STRIPPED = re.compile(r"\[\d+ bytes were stripped\]")
"""What a Chrome net log in its default mode writes for a cookie's value: the
header list keeps it, but it is no cookie."""


def _cookies(headers: Headers | None, name: str) -> list[dict[str, Any]]:
    cookies: list[dict[str, Any]] = []
    for n, v in _bounded(headers)[0]:
        if n != name or _STRIPPED.fullmatch(v.strip()):
            continue
        if name == "cookie":
            for part in v.split(";"):
                key, _, value = part.strip().partition("=")
                if key:
                    cookies.append({"name": key, "value": value})
        else:
            cookies.append(_set_cookie(v))
    return cookies


def _set_cookie(value: str) -> dict[str, Any]:
    """A ``Set-Cookie`` value as HAR's cookie object: its name and value, and the
    attributes HAR has fields for (RFC 6265 §5.2), ``Expires`` in ISO 8601 when it
    parses; ``SameSite`` and ``Max-Age`` as custom fields, as DevTools shows them."""
    pair, *attributes = value.split(";")
    name, _, text = pair.partition("=")
    cookie: dict[str, Any] = {"name": name.strip(), "value": text.strip()}
    for attribute in attributes:
        key, _, arg = attribute.partition("=")
        key, arg = key.strip().lower(), arg.strip()
        if key in ("path", "domain"):
            cookie[key] = arg
        elif key == "expires":
            try:
                cookie["expires"] = email.utils.parsedate_to_datetime(arg).isoformat().replace(
                    "+00:00", "Z")
            except (TypeError, ValueError, IndexError, OverflowError):
                cookie["expires"] = arg  # (as sent: not a date h2scope can read)
        elif key == "httponly":
            cookie["httpOnly"] = True
        elif key == "secure":
            cookie["secure"] = True
        elif key == "samesite":
            cookie["_sameSite"] = arg
        elif key == "max-age":
            cookie["_maxAge"] = arg
    return cookie


def _content(body: bytes, mime: str, truncated: bool, sent: int,
             encoding: str | None = None) -> dict[str, Any]:
    """HAR ``content``: the body as the page sees it — decoded from its
    content-encoding (``size`` decoded, ``compression`` the bytes saved), as
    Chromium's DevTools export it; as received when it cannot be decoded."""
    note = ""
    if encoding and encoding.strip().lower() != "identity" and body and not truncated:
        decoded, note = decode_content(body, encoding)
        if note.endswith("decoded"):
            shown = _content(decoded, mime, False, len(decoded))
            shown["compression"] = len(decoded) - len(body)
            return shown
    content: dict[str, Any] = {"size": max(len(body), sent if truncated else 0),
                               "mimeType": mime}
    if note:
        content["comment"] = f"as received: {note}"
    textual = mime.startswith(_TEXT_TYPES) or mime.endswith(("+json", "+xml"))
    try:
        text = body.decode("utf-8") if textual else None
    except UnicodeDecodeError:
        text = None
    if text is not None:
        content["text"] = text
    elif body:
        content["text"] = base64.b64encode(body).decode("ascii")
        content["encoding"] = "base64"
    if truncated:
        content["comment"] = _kept(len(body), sent) + (f"; {encoding}-encoded, so not decoded"
                                                        if encoding else "")
    return content


def _kept(kept: int, sent: int) -> str:
    return (f"only {kept} of the body's {sent} bytes were kept when recorded "
            "(record.max_data_bytes, or imported without the bytes)")


_CHROME_WEIGHTS = {256: "VeryHigh", 220: "High", 183: "Medium", 147: "Low", 110: "VeryLow",
                   74: "VeryLow"}
"""The HEADERS weights Chromium gives its request priorities (HIGHEST, MEDIUM, LOW,
LOWEST, IDLE, THROTTLED), by the names DevTools shows for them."""
_URGENCY = ("VeryHigh", "High", "Medium", "Low")
"""RFC 9218 urgency 0–3 by the same names (Chromium sends HIGHEST as u=0, MEDIUM as
u=1, …); 4 to 7 are VeryLow."""


def _priority(ex: Exchange, initial: bool = False) -> str | None:
    """DevTools' name for the request's priority: from a weight only Chromium sends
    (it can be raised after the request's ``priority`` header was written: the weight
    is the later word) — the last a PRIORITY frame gave it, as DevTools' Priority
    column shows, or with ``initial`` its HEADERS' —, else from an RFC 9218
    ``priority`` header's urgency; None when the request says neither (curl's and
    h2load's default weight 16 says nothing)."""
    weight = ex.request_weight if initial or ex.weight_now is None else ex.weight_now
    if weight in _CHROME_WEIGHTS:
        return _CHROME_WEIGHTS[weight]
    value = ex.header("priority")
    if value is None:
        return None
    m = re.search(r"(?:^|,)\s*u\s*=\s*(\d+)\s*(?:[;,]|$)", value)
    u = int(m.group(1)) if m else 3  # (RFC 9218 §4.1: urgency 3 when not said)
    return _URGENCY[u] if u < len(_URGENCY) else "VeryLow"


_DESTINATIONS = {"document": "document", "iframe": "document", "frame": "document",
                 "embed": "document", "object": "document",
                 "style": "stylesheet", "script": "script", "worker": "script",
                 "sharedworker": "script", "serviceworker": "script",
                 "audioworklet": "script", "paintworklet": "script",
                 "image": "image", "font": "font", "audio": "media", "video": "media",
                 "track": "texttrack", "manifest": "manifest", "report": "csp-violation-report"}
"""``sec-fetch-dest`` (Fetch Metadata) → DevTools' resource type."""
_MIME_TYPES = (("text/html", "document"), ("application/xhtml", "document"),
               ("text/css", "stylesheet"), ("javascript", "script"), ("ecmascript", "script"),
               ("image/", "image"), ("font/", "font"), ("woff", "font"), ("audio/", "media"),
               ("video/", "media"), ("text/vtt", "texttrack"), ("json", "fetch"),
               ("xml", "fetch"), ("text/event-stream", "eventsource"),
               ("application/grpc", "fetch"))
"""Response ``content-type`` → resource type, for a request without Fetch Metadata."""


def _resource_type(ex: Exchange, resp_mime: str) -> str:
    """DevTools' type column (``_resourceType``): what the browser said it fetched
    (``sec-fetch-dest``; ``empty`` is ``fetch()`` or XMLHttpRequest — the request does
    not say which: ``fetch``; an OPTIONS with ``access-control-request-method``,
    ``preflight``), else what the response's ``content-type`` is, else ``other``."""
    if ex.header(":method") == "OPTIONS" and ex.header("access-control-request-method"):
        return "preflight"
    dest = (ex.header("sec-fetch-dest") or "").strip().lower()
    if dest == "empty":
        return "eventsource" if "text/event-stream" in (ex.header("accept") or "") \
            else "fetch"
    if dest in _DESTINATIONS:
        return _DESTINATIONS[dest]
    mime = resp_mime.lower()
    return next((kind for part, kind in _MIME_TYPES if part in mime), "other")


def _url(ex: Exchange, meta: dict[str, Any]) -> str:
    """The request's URL; a request with neither ``:authority`` nor ``host`` (RFC 9113
    §8.3.1 lets a client leave them out) gets the host it was sent to."""
    scheme = ex.header(":scheme") or "https"
    authority = ex.authority() or _target(meta, scheme)
    path = ex.header(":path") or ("" if ex.header(":method") == "CONNECT" else "/")
    if is_websocket(ex.request_headers):
        # (a WebSocket by its ws or wss URL, as DevTools names one, RFC 8441 §5)
        return f"{'ws' if scheme == 'http' else 'wss'}://{authority}{path}"
    return f"{scheme}://{authority}{path}"


def _target(meta: dict[str, Any], scheme: str) -> str:
    server = meta.get("server") or {}
    host = server.get("host") or server.get("ip")
    if not isinstance(host, str) or not host:
        target = meta.get("target")
        return target if isinstance(target, str) else ""
    if ":" in host:
        host = f"[{host}]"  # an IPv6 address
    port = server.get("port")
    default = 80 if scheme == "http" else 443
    return host if port in (None, default) else f"{host}:{port}"


def _setup(ex: Exchange, meta: dict[str, Any]) -> tuple[float, float, float] | None:
    """(opened, blocked ms, connect ms) of the connection an exchange opened first: its
    client's TLS handshake as h2scope saw it — from accepting the connection to the
    handshake's end, which takes in h2scope's own connection to the server (it
    answers the ClientHello once the server has chosen the protocol) —, then the wait
    until the request's first frame. None without those times (h2c, an import)."""
    opened = meta.get("opened")
    tls = meta.get("client_tls")
    done = tls.get("at") if isinstance(tls, dict) else None
    started = ex.started
    if not all(isinstance(x, (int, float)) for x in (opened, done, started)):
        return None
    assert isinstance(opened, (int, float)) and isinstance(done, (int, float))
    assert started is not None
    if not opened <= done <= started:
        return None
    return float(opened), _ms(done, started), _ms(opened, done)


def entry(ex: Exchange, meta: dict[str, Any], *, first: bool = False) -> dict[str, Any]:
    """The HAR entry of ``ex``; ``first``: the connection's first request, whose
    timings include setting the connection up (``connect``, ``ssl``)."""
    url = _url(ex, meta)
    req_mime = ex.header("content-type") or ""
    resp_mime = ex.header("content-type", response=True) or ""
    status_text = ex.header(":status", response=True)
    status = int(status_text) if status_text and status_text.isdigit() else 0
    send, wait, receive = _timings(ex)
    setup = _setup(ex, meta) if first else None
    h1 = ex.http_version != "h2"
    rebuilt = bool(meta.get("rebuilt"))
    request: dict[str, Any] = {
        "method": ex.header(":method") or "",
        "url": url,
        "httpVersion": ex.upgraded_from or ex.http_version,
        "cookies": _cookies(ex.request_headers, "cookie"),
        "headers": _headers(ex.request_headers),
        "queryString": [{"name": k, "value": v}
                        for k, v in parse_qsl(urlsplit(url).query, keep_blank_values=True)],
        "headersSize": _head_size(ex, 0, rebuilt),
        "bodySize": max(len(ex.request_body), ex.request_sent),
    }
    if ex.request_body or ex.header("content-type"):
        body = bytes(ex.request_body)
        post: dict[str, Any] = {"mimeType": req_mime}
        binary = _binary(req_mime)
        text = None
        if not binary:
            with contextlib.suppress(UnicodeDecodeError):
                text = body.decode("utf-8")
        if text is not None:
            post["text"] = text
        else:
            # (HAR 1.2's postData has no encoding field: _encoding and the comment say it)
            post["text"] = base64.b64encode(body).decode("ascii")
            post["_encoding"] = "base64"
            post["comment"] = "base64: " + (f"{req_mime.split(';')[0]} bodies are binary"
                                            if binary else "the request body is not UTF-8")
        sent = max(len(body), ex.request_sent)
        if ex.request_body_truncated and len(body) < sent:
            cut = _kept(len(body), sent)
            post["comment"] = f"{post['comment']}; {cut}" if "comment" in post else cut
        request["postData"] = post
    _omitted(request, ex.request_headers)
    response: dict[str, Any] = {
        "status": status,
        "statusText": ex.status_text,
        "httpVersion": ex.http_version,
        "cookies": _cookies(ex.response_headers, "set-cookie"),
        "headers": _headers(ex.response_headers),
        "content": _content(bytes(ex.response_body), resp_mime, ex.response_body_truncated,
                            ex.response_sent, ex.header("content-encoding", response=True)),
        "redirectURL": ex.header("location", response=True) or "",
        "headersSize": _head_size(ex, 1, rebuilt),
        "bodySize": max(len(ex.response_body), ex.response_sent),
    }
    _omitted(response, ex.response_headers)
    server = meta.get("server") or {}
    h2: dict[str, Any] = {"connection": ex.conn_id, "protocol": ex.http_version,
                          "request_number": ex.stream_id,
                          "informational": [[list(h) for h in hs] for hs in ex.informational],
                          "request_trailers": _pairs(ex.request_trailers),
                          "response_trailers": _pairs(ex.response_trailers),
                          "request_body_truncated": ex.request_body_truncated,
                          "response_body_truncated": ex.response_body_truncated} if h1 else {
        "connection": ex.conn_id,
        "stream_id": ex.stream_id,
        "frames": dict(ex.frames),
        "frame_count": ex.frame_count,
        "resets": ex.resets,
        "findings": [finding_dict(f) for f in ex.findings],
        "stalls": [{"blocked": st["blocked"], "started": _iso(st["started"]),
                    "seconds": st["seconds"]} for st in ex.stalls],
        "pushed": ex.pushed,
        "promised_by": ex.promised_by,
        "informational": [[list(h) for h in hs] for hs in ex.informational],
        "request_trailers": _pairs(ex.request_trailers),
        "response_trailers": _pairs(ex.response_trailers),
        "request_body_truncated": ex.request_body_truncated,
        "response_body_truncated": ex.response_body_truncated,
    }
    out: dict[str, Any] = {
        "pageref": None,
        "startedDateTime": _iso(setup[0] if setup else
                                ex.started if ex.started is not None else ex.response_start),
        "time": round(send + wait + receive + (setup[1] + setup[2] if setup else 0), 3),
        "request": request,
        "response": response,
        "cache": {},
        # (HAR 1.2: ssl is part of connect; h2scope sees no TCP handshake of its own)
        "timings": {"blocked": setup[1] if setup else -1, "dns": -1,
                    "connect": setup[2] if setup else -1, "ssl": setup[2] if setup else -1,
                    "send": send, "wait": wait, "receive": receive},
        "connection": str(ex.conn_id),
        "_resourceType": _resource_type(ex, resp_mime),
        "_h2scope": h2,
    }
    priority = _priority(ex)
    if priority is not None:
        out["_priority"] = priority
        initial = _priority(ex, initial=True)
        if initial != priority:  # (raised or lowered by a PRIORITY frame)
            h2["initialPriority"] = initial
    del out["pageref"]
    if ex.websocket:
        _websocket(out, ex)
    ip = server.get("ip")
    if ip:
        out["serverIPAddress"] = str(ip)
    comments = [f"server push, promised on stream {ex.promised_by}"] if ex.pushed else []
    if ex.upgraded_from:
        comments.append(f"h2c upgrade (RFC 7540 §3.2): the request went as {ex.upgraded_from} "
                        "with Upgrade: h2c; after the server's 101 its response came as HTTP/2 "
                        "on stream 1")
    if not h1 and not ex.response_ended:
        cut = _cut(ex)
        h2["incomplete"] = cut
        comments.append(f"INCOMPLETE: {cut}")
    elif not h1 and ex.missing:
        # (it ended, but records of it were lost on the way: the body has a hole)
        cut = ("part of the stream is not in the capture (lost or damaged records while it "
               f"was open): of its body, {ex.response_sent} bytes are here")
        h2["incomplete"] = cut
        comments.append(f"INCOMPLETE: {cut}")
    elif not h1:
        late = _reset_after_response(ex)
        if late:
            comments.append(late)
    if comments:
        out["comment"] = "; ".join(comments)
    return out


def _reset_after_response(ex: Exchange) -> str | None:
    """What a client's reset of a stream whose whole response had reached h2scope
    says: an error code (PROTOCOL_ERROR: the client rejected what it got, as Chrome
    does a malformed response) means it never used the response; CANCEL, that it no
    longer wanted it — the response may have been in flight to it, and the entry's
    success is h2scope's view, not the client's."""
    for r in ex.resets:
        if r.get("by") != "client" or r.get("error_code") == 0:
            continue
        name = error_name(r["error_code"])
        if r["error_code"] == 8:  # CANCEL
            return (f"CANCELLED: the client reset the stream ({name}) after the whole "
                    "response had reached h2scope; the client may not have had it all")
        return (f"REJECTED: the client reset the stream ({name}) after the response "
                "came: it refused the response rather than use it (h2scope's findings "
                "on the stream say why)")
    return None


def _cut(ex: Exchange) -> str:
    """Why a stream's response has no end, in the entry's own words."""
    got = f"after {ex.response_sent} body bytes" if ex.response_start is not None else \
        "before any response"
    if ex.resets:
        r = ex.resets[0]
        return f"the stream was reset ({error_name(r['error_code'])} by {r['by']}) {got}"
    if ex.missing:
        return (f"part of the stream is not in the capture (lost, damaged, or the capture "
                f"stops short) {got}")
    return f"the connection ended {got}"


def _websocket(out: dict[str, Any], ex: Exchange) -> None:
    """An RFC 8441 WebSocket the way Chromium's DevTools export one: its messages in
    ``_webSocketMessages`` (text as text, anything else base64), no body."""
    deflate = Deflate.from_header(ex.header("sec-websocket-extensions", response=True))
    msgs, notes = ws_messages(ex.ws_data, deflate)
    out["_resourceType"] = "websocket"
    out["_webSocketMessages"] = [{
        "type": "send" if m.direction == 0 else "receive",
        "time": m.t,
        "opcode": m.opcode,
        "data": m.payload.decode("utf-8", "replace") if m.opcode == 1
        else base64.b64encode(m.payload).decode("ascii"),
    } for m in msgs]
    out["response"]["content"] = {"size": 0, "mimeType": "",
                                  "comment": "WebSocket: the messages are in _webSocketMessages"}
    problems = [f"{'→' if m.direction == 0 else '←'} {m.kind}: {p}" for m in msgs
                for p in m.problems]
    if problems or notes or ex.response_body_truncated or ex.request_body_truncated:
        out["_h2scope"]["websocket_problems"] = problems + notes + (
            ["some DATA payloads were not kept (max_data_bytes): later messages are missing"]
            if ex.response_body_truncated or ex.request_body_truncated else [])


def _entries(exchanges: Exchanges) -> Iterator[tuple[Exchange, dict[str, Any]]]:
    """Each exchange with its HAR entry, one at a time (each connection's first
    request pays for setting it up)."""
    asked = [ex for ex in exchanges.items if ex.request_headers is not None]
    firsts: dict[int, Exchange] = {}
    for ex in asked:
        if not ex.pushed and ex.started is not None and (
                ex.conn_id not in firsts or ex.started < (firsts[ex.conn_id].started or 0)):
            firsts[ex.conn_id] = ex
    for ex in asked:
        yield ex, entry(ex, exchanges.connections.get(ex.conn_id, {}),
                        first=firsts.get(ex.conn_id) is ex)


def har_document(exchanges: Exchanges) -> dict[str, Any]:
    return {"log": {
        "version": "1.2",
        "creator": {"name": "h2scope", "version": __version__},
        "entries": [item for _, item in _entries(exchanges)],
    }}


def write_har(replayed: Iterable[Replayed], out: TextIO, *, conn: int | None = None,
              stream: int | None = None) -> int:
    """Write the HAR document (``json.dumps(har_document(…), indent=1)`` byte for
    byte) an entry at a time; return the number of entries.

    Each entry's bodies are let go once it is written: the document of a 300 MB
    capture (base64 bodies) took 4.5 times the capture's size in memory when it
    was built whole, then written."""
    exchanges = collect(replayed, conn=conn, stream=stream)
    head = json.dumps({"log": {"version": "1.2",
                               "creator": {"name": "h2scope", "version": __version__},
                               "entries": []}}, ensure_ascii=False, indent=1)
    before, after = head.split('"entries": []', 1)
    out.write(before + '"entries": [')
    count = 0
    for ex, item in _entries(exchanges):
        # Names, paths and cookies not UTF-8 are still lone surrogates here: written
        # as \xNN (their surrogates sit only inside JSON strings: the text stays JSON).
        text = json.dumps(item, ensure_ascii=False, indent=1).replace("\n", "\n   ")
        out.write(("\n   " if not count else ",\n   ") + escape_undecoded(text, "\\\\"))
        count += 1
        ex.request_body = ex.response_body = bytearray()  # (written: not needed again)
    out.write(("\n  ]" if count else "]") + after + "\n")
    return count
