"""Hostname validation: the gate every name passes before it reaches a certificate.

Names arrive from untrusted places — a client's SNI, a CONNECT target, the
subjectAltNames of an upstream certificate — so nothing is put into a leaf
certificate until it has been checked and normalised here:

* IP addresses (``127.0.0.1``, ``::1``, ``[::1]``) become :mod:`ipaddress`
  objects; an IPv6 zone (``fe80::1%eth0``) is dropped because a certificate
  cannot carry one (RFC 5280 §4.2.1.6 stores the bare 4 or 16 octets).
* Everything else becomes a lowercase ASCII DNS name. Internationalised names
  are converted to A-labels with Python's built-in ``idna`` codec (IDNA 2003,
  RFC 3490) — the same conversion :mod:`ssl` applies to ``server_hostname``,
  so a Python client and our certificate always agree on the spelling.
  A-labels that arrive already encoded (``xn--...``, as SNI always is) must
  decode, RFC 5891 §5.4.
* One trailing dot (an absolute name from a CONNECT line) is removed: SNI
  never carries it (RFC 6066 §3) and certificates never contain it.
* Limits: at most 253 characters in total and 63 per label (RFC 1035 §2.3.4,
  RFC 1123 §2.1); no empty labels; a label neither starts nor ends with a
  hyphen (RFC 1123 §2.1, RFC 5891 §4.2.3.1).
* Characters: letters, digits, hyphen — and underscore. RFC 952 forbids the
  underscore in host names, but DNS itself allows any octet (RFC 2181 §11) and
  real SNI values contain it (``my_bucket.s3.amazonaws.com``, service
  labels); browsers and OpenSSL's name matching accept it, so a debugging
  proxy must too. Every other character (spaces, ``*``, ``/``, control
  characters, ...) is rejected.
* A name whose last label is all digits is rejected: it is a malformed IPv4
  address (``127.1``, ``01.2.3.4``), not a DNS name — top-level domains are
  never numeric (RFC 3696 §2), and the WHATWG URL standard parses such hosts
  as IPv4.

Wildcards are not host names; :func:`validate_san` additionally accepts a
``*.`` leftmost label for names copied from an upstream certificate.
"""

from __future__ import annotations

import functools
import ipaddress
import re

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
Host = str | IPAddress

MAX_NAME_LENGTH = 253
MAX_LABEL_LENGTH = 63

# An already-normalised label; checked on the ASCII form after IDNA.
_LABEL = re.compile(r"[a-z0-9_](?:[a-z0-9_-]{0,61}[a-z0-9_])?")
# Characters of an IPv4 or bracketed IPv6 literal; only names made of these
# (or containing ':') are handed to :mod:`ipaddress`, so the common case skips it.
_IP_CHARS = frozenset("0123456789abcdefABCDEF.:%[]")


class InvalidHostname(ValueError):
    """A name that cannot be put into a certificate; the message says why."""


def validate_host(name: str) -> Host:
    """Normalise a host name or IP address for use in a certificate.

    Returns an :class:`ipaddress.IPv4Address` / :class:`ipaddress.IPv6Address`
    for IP literals, else the lowercase A-label DNS name.

    Raises :class:`InvalidHostname` — and nothing else, whatever the input —
    with a message naming the problem.
    """
    if not isinstance(name, str):
        raise InvalidHostname(f"hostname must be text, not {type(name).__name__}")
    if not name:
        raise InvalidHostname("empty hostname")
    if ":" in name or set(name) <= _IP_CHARS:
        address = _parse_ip(name)
        if address is not None:
            return address
        if name.startswith("["):
            raise InvalidHostname(f"invalid IPv6 address literal {name!r}")
    return _validate_dns_name(name)


def validate_san(name: str) -> Host:
    """Like :func:`validate_host`, but also accepts a wildcard ``*.example.com``.

    The wildcard must be the whole leftmost label and be followed by at least
    two labels (RFC 6125 §6.4.3 and §7.2: partial wildcards such as
    ``f*.example.com`` and wildcards over a bare top-level domain are
    refused by clients, so they are refused here too).
    """
    if isinstance(name, str) and name.startswith("*."):
        rest = _validate_dns_name(name[2:])
        if rest.count(".") < 1:
            raise InvalidHostname(f"wildcard {name!r} must cover at least two labels")
        if len("*." + rest) > MAX_NAME_LENGTH:
            raise InvalidHostname(f"hostname {name!r} is longer than {MAX_NAME_LENGTH}")
        return "*." + rest
    return validate_host(name)


def _parse_ip(name: str) -> IPAddress | None:
    literal = name[1:-1] if name.startswith("[") and name.endswith("]") else name
    try:
        address = ipaddress.ip_address(literal)
    except ValueError:
        return None
    if name.startswith("[") and address.version != 6:
        return None
    if isinstance(address, ipaddress.IPv6Address) and address.scope_id is not None:
        # A zone identifier is local to this machine; certificates hold octets.
        address = ipaddress.IPv6Address(address.packed)
    return address


# Cached: IDNA conversion and A-label checks cost tens of microseconds, and the
# same few names arrive on every connection. Failures (exceptions) are not cached.
@functools.lru_cache(maxsize=4096)
def _validate_dns_name(name: str) -> str:
    shown = _shorten(name)
    text = name[:-1] if name.endswith(".") else name
    if not text:
        raise InvalidHostname(f"hostname {shown} has no labels")
    if text.isascii():
        ascii_name = text.lower()
    else:
        try:
            ascii_name = _idna_to_ascii(text)
        except UnicodeError as exc:
            raise InvalidHostname(f"hostname {shown} is not a valid IDN: {exc}") from None
    if len(ascii_name) > MAX_NAME_LENGTH:
        raise InvalidHostname(
            f"hostname {shown} is {len(ascii_name)} characters long (at most "
            f"{MAX_NAME_LENGTH} allowed)"
        )
    labels = ascii_name.split(".")
    for label in labels:
        _check_label(label, shown)
    if labels[-1].isdigit():
        raise InvalidHostname(
            f"hostname {shown} ends in a numeric label: not a valid IP address nor DNS name"
        )
    return ascii_name


def _idna_to_ascii(text: str) -> str:
    # RFC 3490 ToASCII per label (nameprep + punycode), as ssl does it.
    return text.encode("idna").decode("ascii").lower()


def _check_label(label: str, shown: str) -> None:
    if not label:
        raise InvalidHostname(f"hostname {shown} has an empty label")
    if len(label) > MAX_LABEL_LENGTH:
        raise InvalidHostname(
            f"hostname {shown} has a label of {len(label)} characters (at most "
            f"{MAX_LABEL_LENGTH} allowed)"
        )
    if _LABEL.fullmatch(label) is None:
        bad = sorted({c for c in label if not (c.isascii() and (c.isalnum() or c in "-_"))})
        if bad:
            raise InvalidHostname(
                f"hostname {shown} contains invalid characters: "
                + " ".join(repr(c) for c in bad)
            )
        raise InvalidHostname(f"hostname {shown} has a label starting or ending with '-'")
    if label.startswith("xn--"):
        try:
            label.encode("ascii").decode("idna")
        except UnicodeError:
            raise InvalidHostname(f"hostname {shown} has an invalid A-label {label!r}") from None


def _shorten(name: str) -> str:
    """The name as shown in messages: repr() escapes control characters."""
    return repr(name if len(name) <= 80 else name[:77] + "...")
