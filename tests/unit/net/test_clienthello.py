"""ClientHello parsing against real hellos: Python's ssl, curl 7.88 and Chromium 156."""

from __future__ import annotations

import ssl
from pathlib import Path

import pytest

from proxy.net.clienthello import (
    ClientHelloError,
    cipher_name,
    extension_name,
    is_grease,
    looks_like_tls,
    parse_client_hello,
)

DATA = Path(__file__).parent / "data"


def python_client_hello(server_hostname: str | None, alpn: list[str] | None) -> bytes:
    ctx = ssl.create_default_context()
    if alpn:
        ctx.set_alpn_protocols(alpn)
    if server_hostname is None:
        ctx.check_hostname = False
    out = ssl.MemoryBIO()
    obj = ctx.wrap_bio(ssl.MemoryBIO(), out, server_hostname=server_hostname)
    with pytest.raises(ssl.SSLWantReadError):
        obj.do_handshake()
    return out.read()


def fixture(name: str) -> bytes:
    return bytes.fromhex((DATA / name).read_text().strip())


def test_python_hello_gives_sni_alpn_and_tls13() -> None:
    hello = parse_client_hello(python_client_hello("example.com", ["h2", "http/1.1"]))
    assert hello is not None
    assert hello.sni == "example.com"
    assert hello.alpn == ("h2", "http/1.1")
    assert 0x0304 in hello.supported_versions
    assert hello.max_version == 0x0304
    assert 0x1301 in hello.cipher_suites
    assert not hello.grease


def test_python_hello_without_sni_or_alpn_reports_none() -> None:
    hello = parse_client_hello(python_client_hello(None, None))
    assert hello is not None
    assert hello.sni is None
    assert hello.alpn == ()


def test_curl_hello_offers_h2_then_http11() -> None:
    data = fixture("clienthello-curl-7.88.hex")
    hello = parse_client_hello(data)
    assert hello is not None
    assert hello.sni == "localhost"
    assert hello.alpn == ("h2", "http/1.1")
    assert hello.length == len(data)
    assert "TLS_AES_256_GCM_SHA384" in [cipher_name(c) for c in hello.cipher_suites]


def test_chromium_hello_keeps_grease_values_and_extension_order() -> None:
    hello = parse_client_hello(fixture("clienthello-chromium-156.hex"))
    assert hello is not None
    assert hello.sni == "localhost"
    assert hello.alpn == ("h2", "http/1.1")
    assert hello.grease
    assert is_grease(hello.cipher_suites[0])
    names = [e.name for e in hello.extensions]
    assert names[0].startswith("GREASE(") and names[-1].startswith("GREASE(")
    assert "key_share" in names and "supported_versions" in names
    assert any(is_grease(g) for g in hello.supported_groups)
    assert hello.max_version == 0x0304
    assert "grease" in hello.summary()


def test_every_prefix_of_a_hello_asks_for_more_bytes() -> None:
    data = fixture("clienthello-curl-7.88.hex")
    for cut in (0, 1, 4, 5, 6, 100, len(data) - 1):
        assert parse_client_hello(data[:cut]) is None


def test_hello_fragmented_over_several_records_parses_the_same() -> None:
    data = fixture("clienthello-chromium-156.hex")
    body = data[5:]
    records = b"".join(
        b"\x16\x03\x01" + len(chunk).to_bytes(2, "big") + chunk
        for chunk in (body[i:i + 300] for i in range(0, len(body), 300)))
    whole, split = parse_client_hello(data), parse_client_hello(records)
    assert whole is not None and split is not None
    assert split.extensions == whole.extensions
    assert split.length == len(records)


def test_http_request_is_not_a_client_hello() -> None:
    data = b"GET / HTTP/1.1\r\nHost: x\r\n\r\n"
    assert not looks_like_tls(data)
    with pytest.raises(ClientHelloError, match="not a TLS handshake"):
        parse_client_hello(data)


def test_truncated_extension_inside_a_complete_record_is_an_error() -> None:
    data = bytearray(fixture("clienthello-curl-7.88.hex"))
    # Claim a longer extensions block than the message holds.
    body = python_client_hello("a.example", ["h2"])
    hello = bytearray(body)
    # handshake body starts at 9; extensions length sits after the fixed fields.
    sid_len = hello[9 + 2 + 32]
    pos = 9 + 2 + 32 + 1 + sid_len
    pos += 2 + int.from_bytes(hello[pos:pos + 2], "big")
    pos += 1 + hello[pos]
    hello[pos:pos + 2] = (int.from_bytes(hello[pos:pos + 2], "big") + 50).to_bytes(2, "big")
    with pytest.raises(ClientHelloError, match="truncated"):
        parse_client_hello(bytes(hello))
    assert parse_client_hello(bytes(data)) is not None


def test_server_hello_type_is_rejected() -> None:
    record = b"\x16\x03\x03\x00\x06" + b"\x02\x00\x00\x02\x03\x03"
    with pytest.raises(ClientHelloError, match="not ClientHello"):
        parse_client_hello(record)


def test_grease_values_are_recognised() -> None:
    assert is_grease(0x0A0A) and is_grease(0xFAFA)
    assert not is_grease(0x0A1A) and not is_grease(0x1301)
    assert extension_name(0) == "server_name"
    assert extension_name(0xBABA) == "GREASE(0xbaba)"


def test_a_hello_as_a_capture_keeps_it_names_everything_in_order() -> None:
    hello = parse_client_hello(fixture("clienthello-chromium-156.hex"))
    assert hello is not None
    kept = hello.as_json()
    assert kept["sni"] == "localhost" and kept["alpn"] == ["h2", "http/1.1"]
    assert kept["grease"] is True and kept["length"] == hello.length
    ciphers = kept["cipher_suites"]
    assert isinstance(ciphers, list) and len(ciphers) == len(hello.cipher_suites)
    assert ciphers[0].startswith("GREASE(0x") and "TLS_AES_128_GCM_SHA256" in ciphers
    assert kept["extensions"] == [e.name for e in hello.extensions]
    assert "TLS 1.3" in kept["versions"]  # type: ignore[operator]
    assert "x25519" in kept["supported_groups"]  # type: ignore[operator]
    assert "ecdsa_secp256r1_sha256" in kept["signature_algorithms"]  # type: ignore[operator]
    import json
    assert json.loads(json.dumps(kept)) == kept  # what the capture's JSON holds


def test_chromes_newer_codepoints_have_names() -> None:
    """What Chromium 156 offers: ALPS at its new codepoint, ML-DSA signatures and
    the hybrid ML-KEM groups (they showed as bare hex in the connection tab)."""
    from proxy.net.clienthello import extension_name, group_name, signature_name

    assert extension_name(0x44CD) == "application_settings"
    assert extension_name(34) == "delegated_credentials"  # (RFC 9345: Firefox sends it)
    assert extension_name(0x4469) == "application_settings_old"
    assert [signature_name(v) for v in (0x0904, 0x0905, 0x0906)] == [
        "mldsa44", "mldsa65", "mldsa87"]
    assert group_name(4587) == "SecP256r1MLKEM768" and group_name(4588) == "X25519MLKEM768"


def test_a_capture_made_before_a_name_was_known_reads_with_it() -> None:
    """A capture keeps the names as they were when recorded: one made before ALPS's
    new codepoint had a name showed 0x44cd, a new one application_settings."""
    from proxy.net.clienthello import named_again

    assert named_again("extensions", ["server_name", "0x44cd", "GREASE(0x0a0a)"]) == [
        "server_name", "application_settings", "GREASE(0x0a0a)"]
    assert named_again("signature_algorithms", ["0x0904", "0xca34"]) == ["mldsa44",
                                                                         "0xca34"]
    assert named_again("alpn", ["0x44cd"]) == ["0x44cd"]  # (no numbers there)


def test_a_tls_stack_is_the_same_whatever_chromium_randomises_per_connection() -> None:
    """Chromium varies GREASE values (in the suites, groups, extensions and its
    signature algorithms) and shuffles its extensions per connection: its raced
    connections to one host are one stack; curl's is another."""
    import dataclasses
    import random

    hello = parse_client_hello(fixture("clienthello-chromium-156.hex"))
    assert hello is not None

    def regrease(values: tuple[int, ...], g: int) -> tuple[int, ...]:
        return tuple(g if is_grease(v) else v for v in values)

    g = 0x3A3A
    extensions = [dataclasses.replace(e, type=g) if is_grease(e.type) else e
                  for e in hello.extensions]
    random.Random(1).shuffle(extensions)
    other = dataclasses.replace(
        hello, cipher_suites=regrease(hello.cipher_suites, g),
        supported_groups=regrease(hello.supported_groups, g),
        signature_algorithms=(g, *hello.signature_algorithms), extensions=tuple(extensions))
    assert other.stack == hello.stack
    curl = parse_client_hello(fixture("clienthello-curl-7.88.hex"))
    assert curl is not None and curl.stack != hello.stack
