"""Parsing a TLS ClientHello from the bytes a client sent first.

The proxy reads the ClientHello *before* answering it (architecture principle 2):
the SNI picks the leaf certificate and the upstream name, the ALPN list is
offered upstream unchanged. Everything else (versions, cipher suites, groups,
extensions in order, GREASE values) is kept for display, so a user can see
what the client really offered.

Pure functions over bytes: no sockets, no :mod:`ssl`. :func:`parse_client_hello`
returns ``None`` while more bytes are needed and raises
:class:`ClientHelloError` for bytes that are not a ClientHello.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from enum import IntEnum
from typing import Any

RECORD_HEADER = 5
#: RFC 8446 §5.1: a record fragment is at most 2^14 bytes (+ slack for old stacks).
MAX_RECORD = 2**14 + 2048
#: A ClientHello larger than this is refused (real ones are 0.5-2 KiB; with
#: post-quantum key shares still under 4 KiB).
MAX_CLIENT_HELLO = 64 * 1024


class ContentType(IntEnum):
    """TLS record content types (RFC 8446 §5.1)."""

    CHANGE_CIPHER_SPEC = 20
    ALERT = 21
    HANDSHAKE = 22
    APPLICATION_DATA = 23


class ExtensionType(IntEnum):
    """The extensions h2scope names (IANA TLS ExtensionType registry)."""

    SERVER_NAME = 0  # RFC 6066 §3
    STATUS_REQUEST = 5
    SUPPORTED_GROUPS = 10  # RFC 8446 §4.2.7
    EC_POINT_FORMATS = 11
    SIGNATURE_ALGORITHMS = 13  # RFC 8446 §4.2.3
    ALPN = 16  # RFC 7301 §3.1
    SIGNED_CERTIFICATE_TIMESTAMP = 18
    PADDING = 21
    ENCRYPT_THEN_MAC = 22
    EXTENDED_MASTER_SECRET = 23
    COMPRESS_CERTIFICATE = 27
    RECORD_SIZE_LIMIT = 28  # RFC 8449
    DELEGATED_CREDENTIALS = 34  # RFC 9345 (Firefox sends it)
    SESSION_TICKET = 35
    PRE_SHARED_KEY = 41
    EARLY_DATA = 42
    SUPPORTED_VERSIONS = 43  # RFC 8446 §4.2.1
    PSK_KEY_EXCHANGE_MODES = 45
    POST_HANDSHAKE_AUTH = 49
    SIGNATURE_ALGORITHMS_CERT = 50
    KEY_SHARE = 51  # RFC 8446 §4.2.8
    APPLICATION_SETTINGS_OLD = 17513  # ALPS as Chrome sent it first (Wireshark's name)
    APPLICATION_SETTINGS = 17613  # ALPS, Chrome's codepoint since 2024 (0x44cd)
    ENCRYPTED_CLIENT_HELLO = 65037
    RENEGOTIATION_INFO = 65281


_VERSION_NAMES = {0x0300: "SSL 3.0", 0x0301: "TLS 1.0", 0x0302: "TLS 1.1",
                  0x0303: "TLS 1.2", 0x0304: "TLS 1.3"}

_CIPHER_NAMES = {
    0x1301: "TLS_AES_128_GCM_SHA256",
    0x1302: "TLS_AES_256_GCM_SHA384",
    0x1303: "TLS_CHACHA20_POLY1305_SHA256",
    0xC02B: "TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256",
    0xC02F: "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256",
    0xC02C: "TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384",
    0xC030: "TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384",
    0xCCA9: "TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256",
    0xCCA8: "TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256",
    0xC013: "TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA",
    0xC014: "TLS_ECDHE_RSA_WITH_AES_256_CBC_SHA",
    0x009C: "TLS_RSA_WITH_AES_128_GCM_SHA256",
    0x009D: "TLS_RSA_WITH_AES_256_GCM_SHA384",
    0x002F: "TLS_RSA_WITH_AES_128_CBC_SHA",
    0x009E: "TLS_DHE_RSA_WITH_AES_128_GCM_SHA256",
    0x009F: "TLS_DHE_RSA_WITH_AES_256_GCM_SHA384",
    0xCCAA: "TLS_DHE_RSA_WITH_CHACHA20_POLY1305_SHA256",
    0xC023: "TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA256",
    0xC024: "TLS_ECDHE_ECDSA_WITH_AES_256_CBC_SHA384",
    0xC027: "TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA256",
    0xC028: "TLS_ECDHE_RSA_WITH_AES_256_CBC_SHA384",
    0xC009: "TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA",
    0xC00A: "TLS_ECDHE_ECDSA_WITH_AES_256_CBC_SHA",
    0x0033: "TLS_DHE_RSA_WITH_AES_128_CBC_SHA",
    0x0039: "TLS_DHE_RSA_WITH_AES_256_CBC_SHA",
    0x0067: "TLS_DHE_RSA_WITH_AES_128_CBC_SHA256",
    0x006B: "TLS_DHE_RSA_WITH_AES_256_CBC_SHA256",
    0x003C: "TLS_RSA_WITH_AES_128_CBC_SHA256",
    0x003D: "TLS_RSA_WITH_AES_256_CBC_SHA256",
    0x0035: "TLS_RSA_WITH_AES_256_CBC_SHA",
    0x00FF: "TLS_EMPTY_RENEGOTIATION_INFO_SCSV",
}

_GROUP_NAMES = {23: "secp256r1", 24: "secp384r1", 25: "secp521r1", 29: "x25519", 30: "x448",
                256: "ffdhe2048", 257: "ffdhe3072", 258: "ffdhe4096", 259: "ffdhe6144",
                260: "ffdhe8192", 4587: "SecP256r1MLKEM768", 4588: "X25519MLKEM768",
                4589: "SecP384r1MLKEM1024",
                25497: "X25519Kyber768Draft00"}


class ClientHelloError(ValueError):
    """The bytes are not a TLS ClientHello (or one h2scope refuses to parse)."""


def is_grease(value: int) -> bool:
    """RFC 8701 §2: GREASE values are 0x?A?A with both bytes equal."""
    return (value & 0x0F0F) == 0x0A0A and (value >> 8) == (value & 0xFF)


def version_name(value: int) -> str:
    if is_grease(value):
        return f"GREASE(0x{value:04x})"
    return _VERSION_NAMES.get(value, f"0x{value:04x}")


def cipher_name(value: int) -> str:
    if is_grease(value):
        return f"GREASE(0x{value:04x})"
    return _CIPHER_NAMES.get(value, f"0x{value:04x}")


_PER_CONNECTION = frozenset({21, 41, 42})
"""padding, pre_shared_key, early_data: present or not by connection, not by client."""

_IANA_BY_OPENSSL: dict[str, str] | None = None


def iana_cipher(openssl_name: str) -> str:
    """The IANA name of a negotiated suite that ``SSLObject.cipher()`` gives by its
    OpenSSL name (``ECDHE-RSA-AES128-GCM-SHA256`` → ``TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256``),
    as TLS 1.3's suites, the ClientHello lists, Wireshark and Chrome name them; a
    suite not in :data:`_CIPHER_NAMES` keeps its OpenSSL name."""
    global _IANA_BY_OPENSSL
    if _IANA_BY_OPENSSL is None:
        import ssl

        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        try:
            ctx.set_ciphers("ALL:COMPLEMENTOFALL:@SECLEVEL=0")
        except ssl.SSLError:  # (an OpenSSL without those keywords: its defaults)
            pass
        _IANA_BY_OPENSSL = {c["name"]: _CIPHER_NAMES[c["id"] & 0xFFFF]
                            for c in ctx.get_ciphers() if c["id"] & 0xFFFF in _CIPHER_NAMES}
    return _IANA_BY_OPENSSL.get(openssl_name, openssl_name)


def group_name(value: int) -> str:
    if is_grease(value):
        return f"GREASE(0x{value:04x})"
    return _GROUP_NAMES.get(value, f"0x{value:04x}")


_SIGNATURE_NAMES = {
    0x0201: "rsa_pkcs1_sha1", 0x0203: "ecdsa_sha1",
    0x0401: "rsa_pkcs1_sha256", 0x0501: "rsa_pkcs1_sha384", 0x0601: "rsa_pkcs1_sha512",
    0x0403: "ecdsa_secp256r1_sha256", 0x0503: "ecdsa_secp384r1_sha384",
    0x0603: "ecdsa_secp521r1_sha512",
    0x0804: "rsa_pss_rsae_sha256", 0x0805: "rsa_pss_rsae_sha384", 0x0806: "rsa_pss_rsae_sha512",
    0x0807: "ed25519", 0x0808: "ed448",
    0x0809: "rsa_pss_pss_sha256", 0x080A: "rsa_pss_pss_sha384", 0x080B: "rsa_pss_pss_sha512",
    # TLS 1.2's hash/signature pairs that have no TLS 1.3 name (RFC 5246 §7.4.1.4.1)
    0x0202: "dsa_sha1", 0x0301: "rsa_sha224", 0x0302: "dsa_sha224", 0x0303: "ecdsa_sha224",
    0x0402: "dsa_sha256", 0x0502: "dsa_sha384", 0x0602: "dsa_sha512",
    # ML-DSA (draft-ietf-tls-mldsa), which Chrome offers
    0x0904: "mldsa44", 0x0905: "mldsa65", 0x0906: "mldsa87",
}
"""RFC 8446 §4.2.3 SignatureScheme names."""


def signature_name(value: int) -> str:
    if is_grease(value):
        return f"GREASE(0x{value:04x})"
    return _SIGNATURE_NAMES.get(value, f"0x{value:04x}")


def extension_name(value: int) -> str:
    if is_grease(value):
        return f"GREASE(0x{value:04x})"
    try:
        return ExtensionType(value).name.lower()
    except ValueError:
        return f"0x{value:04x}"


@dataclass(frozen=True, slots=True, kw_only=True)
class Extension:
    type: int
    """The extension type number; unknown and GREASE values kept as they are."""
    data: bytes
    """The extension body, undecoded."""

    @property
    def name(self) -> str:
        return extension_name(self.type)


@dataclass(frozen=True, slots=True, kw_only=True)
class ClientHello:
    """What a TLS client offered in its first handshake message (RFC 8446 §4.1.2)."""

    legacy_version: int
    """``ClientHello.legacy_version`` (0x0303 for TLS 1.2 and 1.3)."""
    random: bytes
    session_id: bytes
    cipher_suites: tuple[int, ...]
    """In the client's order, GREASE values included."""
    compression_methods: bytes
    extensions: tuple[Extension, ...]
    """Every extension, in the client's order."""
    sni: str | None
    """The host_name from server_name (RFC 6066 §3), or None if absent."""
    alpn: tuple[str, ...]
    """The ALPN protocol names offered, in order (RFC 7301 §3.1); () if absent."""
    supported_versions: tuple[int, ...]
    """From supported_versions (RFC 8446 §4.2.1); () if absent (TLS 1.2 and older)."""
    supported_groups: tuple[int, ...]
    signature_algorithms: tuple[int, ...]
    key_share_groups: tuple[int, ...]
    """The groups the client sent key shares for."""
    length: int
    """Bytes of records the ClientHello occupied (all its handshake records)."""

    @property
    def max_version(self) -> int:
        real = [v for v in self.supported_versions if not is_grease(v)]
        return max(real) if real else self.legacy_version

    @property
    def grease(self) -> bool:
        """True if the client sends GREASE values (Chromium does, OpenSSL does not)."""
        return any(is_grease(v) for v in self.cipher_suites) or any(
            is_grease(e.type) for e in self.extensions)

    @property
    def stack(self) -> tuple[object, ...]:
        """What tells one TLS client library apart from another, and not one connection
        of it from the next: its suites, groups and signature algorithms in order, its
        ALPN list and the set of its extensions (Chromium shuffles their order), all
        without GREASE values and without the extensions that come and go with
        resumption or the hello's length (padding, pre_shared_key, early_data)."""
        return (tuple(c for c in self.cipher_suites if not is_grease(c)),
                frozenset(e.type for e in self.extensions
                          if not is_grease(e.type) and e.type not in _PER_CONNECTION),
                tuple(g for g in self.supported_groups if not is_grease(g)),
                tuple(a for a in self.signature_algorithms if not is_grease(a)), self.alpn)

    def as_json(self) -> dict[str, object]:
        """What a capture keeps of it (``client_tls.client_hello``): every list in the
        client's order with names resolved, GREASE values marked as such."""
        return {
            "legacy_version": version_name(self.legacy_version),
            "versions": [version_name(v) for v in self.supported_versions],
            "cipher_suites": [cipher_name(c) for c in self.cipher_suites],
            "extensions": [e.name for e in self.extensions],
            "supported_groups": [group_name(g) for g in self.supported_groups],
            "key_share_groups": [group_name(g) for g in self.key_share_groups],
            "signature_algorithms": [signature_name(a) for a in self.signature_algorithms],
            "alpn": list(self.alpn),
            "sni": self.sni,
            "grease": self.grease,
            "length": self.length,
        }

    def summary(self) -> str:
        """One line: ``sni=example.com alpn=h2,http/1.1 versions=TLS 1.3,TLS 1.2 ...``."""
        return hello_summary(self.as_json())


_NAMERS: dict[str, Callable[[int], str]] = {}
"""Per list of :meth:`ClientHello.as_json`, how a number is named (filled below)."""


def named_again(key: str, items: list[Any]) -> list[Any]:
    """A stored list of ``key`` (``extensions``, ``signature_algorithms``, …) with the
    values a capture kept as bare numbers (``0x44cd``: unknown when it was recorded)
    named by today's tables, so an older capture reads as a new one."""
    namer = _NAMERS.get(key)
    if namer is None:
        return items
    return [namer(int(v, 16)) if isinstance(v, str) and re.fullmatch(r"0x[0-9a-fA-F]{1,4}", v)
            else v for v in items]


def hello_summary(hello: dict[str, Any]) -> str:
    """:meth:`ClientHello.summary` from what a capture keeps of the hello
    (:meth:`ClientHello.as_json`), so the text export says what the live log said."""
    versions = ",".join(map(str, hello.get("versions") or ())) or str(
        hello.get("legacy_version") or "?")
    return (f"sni={hello.get('sni') or '-'} alpn={','.join(hello.get('alpn') or ()) or '-'} "
            f"versions={versions} ciphers={len(hello.get('cipher_suites') or ())} "
            f"extensions={len(hello.get('extensions') or ())}"
            f"{' grease' if hello.get('grease') else ''}")


def looks_like_tls(data: bytes) -> bool:
    """True if *data* starts like a TLS handshake record (enough to decide: 3 bytes)."""
    return len(data) >= 3 and data[0] == ContentType.HANDSHAKE and data[1] == 3 \
        and data[2] <= 4


def parse_client_hello(data: bytes | bytearray) -> ClientHello | None:
    """The ClientHello at the start of *data*, or None if more bytes are needed.

    The handshake message may span several records (RFC 8446 §5.1 allows
    fragmenting it). Raises :class:`ClientHelloError` if the bytes are not a
    TLS handshake starting with a ClientHello, or it is malformed or too large.
    """
    fragments = bytearray()
    pos = 0
    need: int | None = None
    while need is None or len(fragments) < need:
        if len(data) - pos < RECORD_HEADER:
            if pos == 0 and data and data[0] != ContentType.HANDSHAKE:
                raise ClientHelloError(f"not a TLS handshake record (first byte 0x{data[0]:02x})")
            return None
        ctype, major = data[pos], data[pos + 1]
        rlen = int.from_bytes(data[pos + 3:pos + 5], "big")
        if ctype != ContentType.HANDSHAKE or major != 3:
            raise ClientHelloError(
                f"not a TLS handshake record (bytes {bytes(data[pos:pos + 5]).hex()})")
        if rlen == 0 or rlen > MAX_RECORD:
            raise ClientHelloError(f"TLS record length {rlen} is invalid")
        if len(data) - pos - RECORD_HEADER < rlen:
            return None
        fragments += data[pos + RECORD_HEADER:pos + RECORD_HEADER + rlen]
        pos += RECORD_HEADER + rlen
        if need is None and len(fragments) >= 4:
            if fragments[0] != 1:
                raise ClientHelloError(f"handshake message type {fragments[0]} is not "
                                       "ClientHello (1)")
            need = 4 + int.from_bytes(fragments[1:4], "big")
            if need > MAX_CLIENT_HELLO:
                raise ClientHelloError(f"ClientHello of {need} bytes is too large")
    return _parse_body(bytes(fragments[4:need]), pos)


class _Reader:
    __slots__ = ("data", "pos")

    def __init__(self, data: bytes) -> None:
        self.data = data
        self.pos = 0

    def take(self, n: int, what: str) -> bytes:
        if self.pos + n > len(self.data):
            raise ClientHelloError(f"ClientHello truncated in {what}")
        out = self.data[self.pos:self.pos + n]
        self.pos += n
        return out

    def uint(self, n: int, what: str) -> int:
        return int.from_bytes(self.take(n, what), "big")

    def vector(self, len_bytes: int, what: str) -> bytes:
        return self.take(self.uint(len_bytes, what), what)

    def done(self) -> bool:
        return self.pos >= len(self.data)


def _u16s(data: bytes) -> tuple[int, ...]:
    return tuple(int.from_bytes(data[i:i + 2], "big") for i in range(0, len(data) - 1, 2))


def _parse_body(body: bytes, length: int) -> ClientHello:
    r = _Reader(body)
    legacy_version = r.uint(2, "legacy_version")
    random = r.take(32, "random")
    session_id = r.vector(1, "legacy_session_id")
    suites = r.vector(2, "cipher_suites")
    if len(suites) % 2:
        raise ClientHelloError("cipher_suites has an odd length")
    compression = r.vector(1, "legacy_compression_methods")
    extensions = read_extensions(r.vector(2, "extensions")) if not r.done() else ()
    sni: str | None = None
    alpn: tuple[str, ...] = ()
    versions: tuple[int, ...] = ()
    groups: tuple[int, ...] = ()
    sigalgs: tuple[int, ...] = ()
    shares: tuple[int, ...] = ()
    for e in extensions:
        match e.type:
            case ExtensionType.SERVER_NAME:
                sni = _server_name(e.data)
            case ExtensionType.ALPN:
                alpn = alpn_protocols(e.data)
            case ExtensionType.SUPPORTED_VERSIONS:
                versions = _u16s(_Reader(e.data).vector(1, "supported_versions"))
            case ExtensionType.SUPPORTED_GROUPS:
                groups = _u16s(_Reader(e.data).vector(2, "supported_groups"))
            case ExtensionType.SIGNATURE_ALGORITHMS:
                sigalgs = _u16s(_Reader(e.data).vector(2, "signature_algorithms"))
            case ExtensionType.KEY_SHARE:
                shares = _key_share_groups(e.data)
    return ClientHello(
        legacy_version=legacy_version, random=random, session_id=session_id,
        cipher_suites=_u16s(suites), compression_methods=compression,
        extensions=tuple(extensions), sni=sni, alpn=alpn, supported_versions=versions,
        supported_groups=groups, signature_algorithms=sigalgs, key_share_groups=shares,
        length=length)


def _server_name(data: bytes) -> str | None:
    # RFC 6066 §3: ServerNameList of (name_type, HostName); type 0 is host_name.
    r = _Reader(_Reader(data).vector(2, "server_name_list"))
    while not r.done():
        name_type = r.uint(1, "server name type")
        name = r.vector(2, "server name")
        if name_type == 0:
            return name.decode("ascii", errors="replace")
    return None


def read_extensions(data: bytes) -> tuple[Extension, ...]:
    """A hello's extension list (the vector's contents: type, length, data, ...), as
    in a ClientHello, ServerHello or EncryptedExtensions (RFC 8446 §4.2).
    Raises :class:`ClientHelloError` if it is cut short."""
    r = _Reader(data)
    out: list[Extension] = []
    while not r.done():
        etype = r.uint(2, "extension type")
        out.append(Extension(type=etype, data=r.vector(2, "extension data")))
    return tuple(out)


def alpn_protocols(data: bytes) -> tuple[str, ...]:
    """An ALPN extension's protocol names (RFC 7301 §3.1: a ProtocolNameList of
    non-empty opaque<1..2^8-1> names; a server's holds the one it chose)."""
    r = _Reader(_Reader(data).vector(2, "protocol_name_list"))
    names = []
    while not r.done():
        names.append(r.vector(1, "protocol name").decode("ascii", errors="replace"))
    return tuple(names)


def _key_share_groups(data: bytes) -> tuple[int, ...]:
    r = _Reader(_Reader(data).vector(2, "client_shares"))
    groups = []
    while not r.done():
        groups.append(r.uint(2, "key share group"))
        r.vector(2, "key_exchange")
    return tuple(groups)


_NAMERS.update({"versions": version_name, "cipher_suites": cipher_name,
                "extensions": extension_name, "supported_groups": group_name,
                "key_share_groups": group_name, "signature_algorithms": signature_name})
