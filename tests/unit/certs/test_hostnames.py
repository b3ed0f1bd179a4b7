"""validate_host / validate_san: what may enter a certificate, and the messages for the rest."""

from __future__ import annotations

import ipaddress
import re

import pytest
from hypothesis import given
from hypothesis import strategies as st

from certs.hostnames import InvalidHostname, validate_host, validate_san


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("example.com", "example.com"),
        ("WWW.Example.COM", "www.example.com"),
        ("example.com.", "example.com"),
        ("localhost", "localhost"),
        ("bücher.example", "xn--bcher-kva.example"),
        ("xn--bcher-kva.example", "xn--bcher-kva.example"),
        ("XN--BCHER-KVA.example", "xn--bcher-kva.example"),
        # fullwidth letters fold to ASCII (nameprep, RFC 3491)
        ("\uff45\uff58\uff41\uff4d\uff50\uff4c\uff45.com", "example.com"),
        ("my_bucket.s3.example", "my_bucket.s3.example"),
        ("r3---sn-abc.googlevideo.com", "r3---sn-abc.googlevideo.com"),
        ("a" * 63 + ".com", "a" * 63 + ".com"),
        ("host1", "host1"),
        ("deadbeef", "deadbeef"),
    ],
)
def test_valid_names_are_normalised(raw: str, expected: str) -> None:
    assert validate_host(raw) == expected


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("127.0.0.1", ipaddress.IPv4Address("127.0.0.1")),
        ("::1", ipaddress.IPv6Address("::1")),
        ("[::1]", ipaddress.IPv6Address("::1")),
        ("2001:DB8::1", ipaddress.IPv6Address("2001:db8::1")),
        ("fe80::1%eth0", ipaddress.IPv6Address("fe80::1")),
    ],
)
def test_ip_literals_become_addresses(raw: str, expected: object) -> None:
    assert validate_host(raw) == expected


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ("", "empty hostname"),
        (".", "no labels"),
        ("a..b", "empty label"),
        (".example.com", "empty label"),
        ("a" * 64 + ".com", "label of 64 characters"),
        (".".join(["abcdefghi"] * 26), "at most 253"),
        ("-bad.example", "starting or ending with '-'"),
        ("bad-.example", "starting or ending with '-'"),
        ("bad host.example", "invalid characters: ' '"),
        ("*.example.com", "invalid characters: '*'"),
        ("evil\x00.example.com", "invalid characters: '\\x00'"),
        ("a/b.example", "invalid characters: '/'"),
        ("example.com:443", "invalid characters: ':'"),
        ("127.1", "numeric label"),
        ("01.2.3.4", "numeric label"),
        ("1.2.3.4.5", "numeric label"),
        ("[1.2.3.4]", "invalid IPv6 address literal"),
        ("[example.com]", "invalid characters"),
        ("xn--zzzz.example", "invalid A-label"),
        ("ü" * 64 + ".example", "not a valid IDN"),
    ],
)
def test_invalid_names_raise_with_a_message_naming_the_problem(raw: str, message: str) -> None:
    with pytest.raises(InvalidHostname, match=re.escape(message)):
        validate_host(raw)


def test_non_text_is_rejected_with_invalid_hostname() -> None:
    with pytest.raises(InvalidHostname, match="must be text"):
        validate_host(b"example.com")  # type: ignore[arg-type]


def test_invalid_hostname_is_a_value_error() -> None:
    assert issubclass(InvalidHostname, ValueError)


def test_messages_escape_control_characters() -> None:
    with pytest.raises(InvalidHostname) as info:
        validate_host("evil\r\nInjected: header")
    assert "\r" not in str(info.value) and "\n" not in str(info.value)


@given(st.text(max_size=300))
def test_any_text_is_either_accepted_or_refused_with_invalid_hostname(raw: str) -> None:
    try:
        result = validate_host(raw)
    except InvalidHostname:
        return
    if isinstance(result, str):
        assert result.isascii() and result == result.lower()
        assert 0 < len(result) <= 253
        assert all(0 < len(label) <= 63 for label in result.split("."))
        assert validate_host(result) == result  # normalisation is idempotent


@given(st.from_regex(r"[a-z0-9]([a-z0-9-]{0,20}[a-z0-9])?(\.[a-z]{2,10}){1,3}", fullmatch=True))
def test_ordinary_dns_names_are_accepted_unchanged(name: str) -> None:
    assert validate_host(name) == name


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("*.example.com", "*.example.com"),
        ("*.Bücher.example", "*.xn--bcher-kva.example"),
        ("www.example.com", "www.example.com"),
        ("10.0.0.1", ipaddress.IPv4Address("10.0.0.1")),
    ],
)
def test_san_accepts_a_leftmost_wildcard_label(raw: str, expected: object) -> None:
    assert validate_san(raw) == expected


@pytest.mark.parametrize(
    "raw", ["*.com", "f*.example.com", "www.*.example.com", "*", "*.", "**.a.b"]
)
def test_san_refuses_partial_or_too_broad_wildcards(raw: str) -> None:
    with pytest.raises(InvalidHostname):
        validate_san(raw)
