"""HTTP/1 head parsing and body framing (RFC 9112), and mode specs."""

from __future__ import annotations

import pytest

from proxy.net.http1 import (
    Framing,
    Http1Error,
    absolute_target,
    keeps_alive,
    parse_chunk_size,
    parse_request_head,
    parse_response_head,
    request_framing,
    response_framing,
)
from proxy.net.modes import ModeError, ModeKind, parse_mode


def test_request_head_keeps_header_case_and_order() -> None:
    head = parse_request_head(b"POST /x HTTP/1.1\r\nHost: a\r\nX-Thing:  v \r\n\r\n")
    assert (head.method, head.target, head.version) == ("POST", "/x", "HTTP/1.1")
    assert head.headers == (("Host", "a"), ("X-Thing", "v"))


def test_request_with_both_length_and_chunked_is_refused() -> None:
    head = parse_request_head(b"POST / HTTP/1.1\r\nContent-Length: 3\r\n"
                              b"Transfer-Encoding: chunked\r\n\r\n")
    with pytest.raises(Http1Error, match="both"):
        request_framing(head)


def test_response_framing_follows_rfc9112_section_6_3() -> None:
    ok = parse_response_head(b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n")
    assert response_framing(ok, "GET") == (Framing.LENGTH, 5)
    assert response_framing(ok, "HEAD") == (Framing.NONE, 0)
    bare = parse_response_head(b"HTTP/1.1 200 OK\r\n\r\n")
    assert response_framing(bare, "GET") == (Framing.UNTIL_CLOSE, 0)
    assert response_framing(parse_response_head(b"HTTP/1.1 304 Not Modified\r\n\r\n"),
                            "GET") == (Framing.NONE, 0)
    assert response_framing(bare, "CONNECT") == (Framing.NONE, 0)


def test_invalid_heads_and_chunks_raise_with_the_reason() -> None:
    with pytest.raises(Http1Error, match="request line"):
        parse_request_head(b"\x00\x01garbage\r\n\r\n")
    with pytest.raises(Http1Error, match="folding"):
        parse_request_head(b"GET / HTTP/1.1\r\nA: b\r\n c\r\n\r\n")
    with pytest.raises(Http1Error, match="chunk size"):
        parse_chunk_size(b"zz\r\n")
    assert parse_chunk_size(b"1a;ext=1\r\n") == 26


def test_keep_alive_defaults_by_version() -> None:
    assert keeps_alive(parse_request_head(b"GET / HTTP/1.1\r\n\r\n"))
    assert not keeps_alive(parse_request_head(b"GET / HTTP/1.0\r\n\r\n"))
    assert not keeps_alive(parse_request_head(b"GET / HTTP/1.1\r\nConnection: close\r\n\r\n"))


def test_absolute_target_gives_origin_form() -> None:
    assert absolute_target("http://h:81/p?q") == ("http", "h", 81, "/p?q")
    assert absolute_target("http://[::1]/") == ("http", "::1", 80, "/")
    assert absolute_target("http://h?x") == ("http", "h", 80, "/?x")


def test_authorities_with_ipv6_say_what_is_wrong() -> None:
    from proxy.net.http1 import split_authority

    # openssl s_client -proxy sends CONNECT ::1:PORT: say where the brackets go
    with pytest.raises(Http1Error, match=r"an IPv6 address needs brackets, as in \[::1\]:8443"):
        split_authority("::1:8443", 443)
    with pytest.raises(Http1Error, match="an IPv4 address goes without brackets"):
        split_authority("[127.0.0.1]:80", 443)
    # RFC 6874: a zone id in a URI is written %25
    assert split_authority("[fe80::1%25eth0]:80", 443) == ("fe80::1%eth0", 80)
    assert split_authority("[::1]", 443) == ("::1", 443)


def test_a_shorthand_ipv4_address_is_read_as_the_address_it_means() -> None:
    """CONNECT 127.1:443 reached 127.0.0.1, then '127.1' went upstream as the SNI
    (RFC 6066 §3 forbids an address there) and got no certificate."""
    from proxy.net.http1 import split_authority

    for shorthand in ("127.1", "0x7f.1", "2130706433", "017700000001", "127.0.0.1"):
        assert split_authority(f"{shorthand}:443", -1) == ("127.0.0.1", 443), shorthand
    assert split_authority("1.example.com:443", -1) == ("1.example.com", 443)


def test_mode_specs_with_listen_ports() -> None:
    assert parse_mode("regular").kind is ModeKind.REGULAR
    socks = parse_mode("socks5@1080")
    assert (socks.kind, socks.listen_port) == (ModeKind.SOCKS5, 1080)
    rev = parse_mode("reverse:https://example.com@8443")
    assert (rev.scheme, rev.host, rev.port, rev.listen_port) == ("https", "example.com", 443, 8443)
    assert rev.target == "example.com:443"
    assert parse_mode("reverse:http://127.0.0.1:9000").port == 9000
    with pytest.raises(ModeError, match="unknown mode"):
        parse_mode("transparent")
    with pytest.raises(ModeError, match="no path"):
        parse_mode("reverse:https://example.com/x")


def test_upstream_mode_names_the_proxy_not_a_target() -> None:
    up = parse_mode("upstream:http://proxy.corp.example:3128@8081")
    assert (up.kind, up.host, up.port, up.listen_port) == (
        ModeKind.UPSTREAM, "proxy.corp.example", 3128, 8081)
    assert up.target is None  # clients say where (CONNECT, absolute form)
    assert up.address == "proxy.corp.example:3128"
    assert parse_mode("upstream:http://10.0.0.1").port == 80
    with pytest.raises(ModeError, match="plain HTTP"):
        parse_mode("upstream:https://proxy.corp.example:3128")
    with pytest.raises(ModeError, match="upstream:http://proxyhost:port"):
        parse_mode("upstream:")


def test_upstream_credentials_replace_the_clients_in_the_forwarded_request() -> None:
    from proxy.net.http1 import parse_request_head
    from proxy.net.relay_http1 import _proxy_form

    head = parse_request_head(b"GET http://example.test/x HTTP/1.1\r\nHost: example.test\r\n"
                              b"Proxy-Authorization: Basic Y2xpZW50OmZvcmg2c2NvcGU=\r\n\r\n")
    out = _proxy_form(head, auth="alice:secret")
    assert out.startswith(b"GET http://example.test/x HTTP/1.1\r\n")
    assert out.count(b"Proxy-Authorization") == 1
    assert b"Proxy-Authorization: Basic YWxpY2U6c2VjcmV0\r\n" in out
    # (without upstream.auth, the client's are not passed on either)
    assert _proxy_form(head, auth=None) == \
        b"GET http://example.test/x HTTP/1.1\r\nHost: example.test\r\n\r\n"


@pytest.mark.parametrize(("raw", "said", "secret"), [
    (b"GET http://a/cb?access_token=SECRET123 HTTP/1.1 x\r\nHost: a\r\n\r\n",
     "invalid request line b'GET http://a/cb?... x'", b"SECRET123"),
    (b"GET http://a/c HTTP/1.1\r\nHost: a\r\nCookie : session=SECRET123\r\n\r\n",
     "invalid header line b'Cookie : ...'", b"SECRET123"),
    (b"GET http://a/\x1bx?token=SECRET123 HTTP/1.1\r\nHost: a\r\n\r\n",
     "control character in the request target b'http://a/\\x1bx?...'", b"SECRET123"),
])
def test_a_refused_head_is_quoted_without_what_credentials_ride_in(
        raw: bytes, said: str, secret: bytes) -> None:
    """The error goes to the log, the capture's close record and the 400 page, where
    export --redact does not reach: query strings and header values stay out."""
    from proxy.net.http1 import Http1Error, parse_request_head

    with pytest.raises(Http1Error) as raised:
        parse_request_head(raw)
    assert str(raised.value) == said
    assert secret.decode() not in str(raised.value)


@pytest.mark.parametrize("value", [b"\x0bchunked", b"chunked\x0c", b"\x0bchunked, gzip"])
def test_a_transfer_encoding_padded_with_other_whitespace_is_not_chunked(value: bytes) -> None:
    """Only SP and HTAB are whitespace in a field (RFC 9110 §5.6.3): read as chunked
    here and not by a strict server, the body would be framed two ways."""
    from proxy.net.http1 import Http1Error, parse_request_head, request_framing

    head = parse_request_head(b"POST /x HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: " + value
                              + b"\r\n\r\n")
    with pytest.raises(Http1Error, match="must end with chunked"):
        request_framing(head)
