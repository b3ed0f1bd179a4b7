"""Decrypting a captured TLS connection with its key log, for ``h2scope import``.

Clients write their TLS secrets to the file ``SSLKEYLOGFILE`` names (curl,
Chromium, Firefox, Go, Python, h2scope itself with ``--sslkeylogfile``); the
NSS key log format has one line per secret: a label, the ClientHello's random
(hex) and the secret (hex). With it, the TLS records of a packet capture can
be read as Wireshark reads them:

* **TLS 1.3** (RFC 8446): each direction's records are decrypted with the
  handshake traffic secret until that side's Finished, then with its
  application traffic secret (``CLIENT_TRAFFIC_SECRET_0``/``SERVER_...``),
  following KeyUpdate. Key and IV come from HKDF-Expand-Label (§7.1, §7.3);
  the nonce is the IV xor the record number (§5.3); the inner plaintext ends
  with its real content type and padding (§5.2).
* **TLS 1.2** (RFC 5246, AEAD suites only — the only ones HTTP/2 allows, RFC
  9113 §9.2.2): the key block comes from the master secret (``CLIENT_RANDOM``
  lines) with the TLS PRF; AES-GCM records carry an explicit nonce (RFC 5288),
  ChaCha20-Poly1305 ones do not (RFC 7905).

:class:`TlsDecryptor` is fed each direction's reassembled TCP bytes and returns
the application data. When it cannot go on (no secret for this connection in
the key log, a suite it does not know, a record that does not decrypt) it says
why in :attr:`TlsDecryptor.problem` and returns nothing more for that side.
"""

from __future__ import annotations

import hashlib
import hmac
import struct
from collections.abc import Callable
from pathlib import Path
from typing import Any

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM, ChaCha20Poly1305
from cryptography.hazmat.primitives.kdf.hkdf import HKDFExpand

from proxy.net.clienthello import (
    ClientHello,
    ClientHelloError,
    ExtensionType,
    alpn_protocols,
    parse_client_hello,
    read_extensions,
)

_HANDSHAKE, _CCS, _ALERT, _APP = 22, 20, 21, 23
_HRR_RANDOM = hashlib.sha256(b"HelloRetryRequest").digest()
"""A ServerHello with this random is a HelloRetryRequest (RFC 8446 §4.1.3)."""

# suite -> (AEAD, key length, hash); TLS 1.3 (RFC 8446 §B.4)
_SUITES_13: dict[int, tuple[Callable[[bytes], Any], int, Any]] = {
    0x1301: (AESGCM, 16, hashes.SHA256), 0x1302: (AESGCM, 32, hashes.SHA384),
    0x1303: (ChaCha20Poly1305, 32, hashes.SHA256),
}
# TLS 1.2 AEAD suites: suite -> (AEAD, key length, fixed IV length, PRF hash)
_SUITES_12: dict[int, tuple[Callable[[bytes], Any], int, int, str]] = {
    0x009C: (AESGCM, 16, 4, "sha256"), 0x009D: (AESGCM, 32, 4, "sha384"),
    0x009E: (AESGCM, 16, 4, "sha256"), 0x009F: (AESGCM, 32, 4, "sha384"),
    0xC02B: (AESGCM, 16, 4, "sha256"), 0xC02C: (AESGCM, 32, 4, "sha384"),
    0xC02F: (AESGCM, 16, 4, "sha256"), 0xC030: (AESGCM, 32, 4, "sha384"),
    0xCCA8: (ChaCha20Poly1305, 32, 12, "sha256"), 0xCCA9: (ChaCha20Poly1305, 32, 12, "sha256"),
    0xCCAA: (ChaCha20Poly1305, 32, 12, "sha256"),
}


class KeyLog:
    """The secrets of an NSS key log file, by (label, client random)."""

    def __init__(self, secrets: dict[tuple[str, bytes], bytes], path: str = "") -> None:
        self.secrets = secrets
        self.path = path

    @classmethod
    def load(cls, path: str | Path) -> KeyLog:
        """Read ``path``; lines that are not ``LABEL <hex> <hex>`` are ignored (comments,
        blank lines). Raises OSError."""
        with open(path, encoding="ascii", errors="replace") as f:
            return cls.parse(f.read(), str(path))

    @classmethod
    def parse(cls, text: str, path: str = "") -> KeyLog:
        """The key log in ``text`` (a file's, or a pcapng's Decryption Secrets Block)."""
        secrets: dict[tuple[str, bytes], bytes] = {}
        for line in text.splitlines():
            parts = line.split()
            if len(parts) != 3 or line.startswith("#"):
                continue
            try:
                secrets[(parts[0], bytes.fromhex(parts[1]))] = bytes.fromhex(parts[2])
            except ValueError:
                continue
        return cls(secrets, path)

    def merged(self, other: KeyLog) -> KeyLog:
        return KeyLog({**other.secrets, **self.secrets}, self.path or other.path)

    def get(self, label: str, client_random: bytes) -> bytes | None:
        return self.secrets.get((label, client_random))

    def __len__(self) -> int:
        return len(self.secrets)


def hkdf_expand_label(secret: bytes, label: bytes, context: bytes, length: int,
                      hash_cls: Any) -> bytes:
    """RFC 8446 §7.1."""
    full = b"tls13 " + label
    info = struct.pack(">HB", length, len(full)) + full + bytes([len(context)]) + context
    return HKDFExpand(hash_cls(), length, info).derive(secret)


def tls12_prf(secret: bytes, label: bytes, seed: bytes, length: int, hash_name: str) -> bytes:
    """RFC 5246 §5: P_hash(secret, label + seed)."""
    seed = label + seed
    out = b""
    a = seed
    while len(out) < length:
        a = hmac.new(secret, a, hash_name).digest()
        out += hmac.new(secret, a + seed, hash_name).digest()
    return out[:length]


class _Keys:
    """One direction's record protection: an AEAD, its IV and the record number."""

    def __init__(self, aead: Any, iv: bytes, *, tls13: bool, explicit_nonce: bool = False,
                 secret: bytes = b"", hash_cls: Any = None, key_len: int = 0) -> None:
        self.aead = aead
        self.iv = iv
        self.seq = 0
        self.tls13 = tls13
        self.explicit_nonce = explicit_nonce
        self.secret = secret
        self.hash_cls = hash_cls
        self.key_len = key_len

    @classmethod
    def tls13_from(cls, secret: bytes, suite: tuple[Any, int, Any]) -> _Keys:
        make, key_len, hash_cls = suite
        key = hkdf_expand_label(secret, b"key", b"", key_len, hash_cls)
        iv = hkdf_expand_label(secret, b"iv", b"", 12, hash_cls)
        return cls(make(key), iv, tls13=True, secret=secret, hash_cls=hash_cls,
                   key_len=key_len)

    def updated(self, suite: tuple[Any, int, Any]) -> _Keys:
        """After a KeyUpdate (RFC 8446 §7.2)."""
        size = self.hash_cls.digest_size
        return _Keys.tls13_from(hkdf_expand_label(self.secret, b"traffic upd", b"", size,
                                                  self.hash_cls), suite)

    def decrypt(self, header: bytes, fragment: bytes) -> bytes:
        """The plaintext of one record; raises InvalidTag."""
        seq = self.seq
        self.seq += 1
        if self.tls13:
            nonce = bytes(a ^ b for a, b in zip(self.iv, seq.to_bytes(12, "big"), strict=True))
            return self.aead.decrypt(nonce, fragment, header)
        if self.explicit_nonce:  # AES-GCM (RFC 5288 §3)
            nonce, fragment = self.iv + fragment[:8], fragment[8:]
        else:  # ChaCha20-Poly1305 (RFC 7905 §2)
            nonce = bytes(a ^ b for a, b in zip(self.iv, seq.to_bytes(12, "big"), strict=True))
        aad = seq.to_bytes(8, "big") + header[:3] + (len(fragment) - 16).to_bytes(2, "big")
        return self.aead.decrypt(nonce, fragment, aad)


class TlsDecryptor:
    """Both directions of one TLS connection, decrypted with a key log.

    :meth:`feed` takes a direction (0 client, 1 server) and the next bytes of its
    TCP stream and returns the application data they complete. Everything about
    the handshake that a capture's connection metadata wants is kept:
    :attr:`client_hello`, :attr:`version`, :attr:`cipher`, :attr:`alpn`.
    """

    def __init__(self, keylog: KeyLog) -> None:
        self.keylog = keylog
        self.buffers = (bytearray(), bytearray())
        self.client_hello: ClientHello | None = None
        self._hello_bytes = bytearray()
        self.server_random = b""
        self.version = 0
        """0x0304 (TLS 1.3) or 0x0303 (TLS 1.2) once the ServerHello is read."""
        self.cipher = 0
        self.alpn: str | None = None
        self.keys: list[_Keys | None] = [None, None]
        self._next: list[_Keys | None] = [None, None]
        """TLS 1.2: the keys a ChangeCipherSpec turns on."""
        self._app_secret: list[bytes | None] = [None, None]
        self._handshake = (bytearray(), bytearray())
        self.problem: str | None = None
        self.failed = [False, False]

    def feed(self, direction: int, data: bytes) -> list[bytes]:
        buf = self.buffers[direction]
        buf += data
        out: list[bytes] = []
        while len(buf) >= 5 and not self.failed[direction]:
            length = int.from_bytes(buf[3:5], "big")
            if len(buf) < 5 + length:
                break
            header, fragment = bytes(buf[:5]), bytes(buf[5:5 + length])
            del buf[:5 + length]
            try:
                self._record(direction, header, fragment, out)
            except (IndexError, ValueError) as exc:  # never raise on traffic
                self._fail(direction, f"an unreadable TLS record ({exc})")
        return out

    def _fail_both(self, why: str) -> None:
        self._fail(0, why)
        self._fail(1, why)

    def _fail(self, direction: int, why: str) -> None:
        self.failed[direction] = True
        if self.problem is None:
            self.problem = why

    def _record(self, d: int, header: bytes, fragment: bytes, out: list[bytes]) -> None:
        ctype = header[0]
        keys = self.keys[d]
        if ctype == _CCS:
            if self.version == 0x0303:
                self.keys[d] = self._next[d]
            return
        if keys is None:
            if ctype == _HANDSHAKE:
                self._plain_handshake(d, header, fragment)
            elif ctype == _APP:
                self._fail(d, "application data before the keys are known (a handshake "
                           "the capture does not hold?)")
            return
        try:
            plain = keys.decrypt(header, fragment)
        except InvalidTag:
            side = "client" if d == 0 else "server"
            self._fail(d, f"a {side} record does not decrypt with the key log's secrets "
                       f"(record {keys.seq - 1} of this key)")
            return
        if keys.tls13:
            end = len(plain)
            while end and plain[end - 1] == 0:
                end -= 1
            if not end:
                return
            ctype, plain = plain[end - 1], plain[:end - 1]
        if ctype == _APP:
            out.append(plain)
        elif ctype == _HANDSHAKE:
            self._encrypted_handshake(d, plain)

    # ------------------------------------------------------------- handshake

    def _plain_handshake(self, d: int, header: bytes, fragment: bytes) -> None:
        if d == 0:
            if self.client_hello is not None:
                return  # the rest of the client's flight (or a second ClientHello after
                # a HelloRetryRequest: same random) says nothing the keys need
            self._hello_bytes += header + fragment
            try:
                hello = parse_client_hello(bytes(self._hello_bytes))
            except ClientHelloError as exc:
                self._fail(0, f"the client's first bytes are not a ClientHello: {exc}")
                return
            if hello is not None:
                self.client_hello = hello
                self._hello_bytes.clear()
            return
        for mtype, body in self._messages(1, fragment):
            if mtype == 2:
                self._server_hello(body)

    def _messages(self, d: int, data: bytes) -> list[tuple[int, bytes]]:
        """The handshake messages ``data`` completes for direction ``d`` (a message
        may span records, RFC 8446 §5.1): (type, body) pairs."""
        msgs = self._handshake[d]
        msgs += data
        out = []
        while len(msgs) >= 4:
            mlen = int.from_bytes(msgs[1:4], "big")
            if len(msgs) < 4 + mlen:
                break
            out.append((msgs[0], bytes(msgs[4:4 + mlen])))
            del msgs[:4 + mlen]
        return out

    def _server_hello(self, body: bytes) -> None:
        if len(body) < 38 or len(body) < 38 + body[34]:
            self._fail_both("a malformed ServerHello")
            return
        random = body[2:34]
        if random == _HRR_RANDOM:
            return  # a HelloRetryRequest: the real ServerHello follows the second ClientHello
        pos = 35 + body[34]  # after the legacy session id
        self.cipher = int.from_bytes(body[pos:pos + 2], "big")
        self.server_random = random
        self.version = 0x0303
        pos += 3  # cipher suite, legacy compression method
        for ext in read_extensions(body[pos + 2:pos + 2 + int.from_bytes(body[pos:pos + 2],
                                                                          "big")]):
            if ext.type == ExtensionType.SUPPORTED_VERSIONS and len(ext.data) == 2:
                self.version = int.from_bytes(ext.data, "big")  # (RFC 8446 §4.2.1)
            elif ext.type == ExtensionType.ALPN:
                self.alpn = alpn_protocols(ext.data)[0]
        if self.client_hello is None:
            self._fail_both("the ClientHello is not in the capture")
            return
        if self.version == 0x0304:
            self._tls13_keys()
        else:
            self._tls12_keys()

    def _secret(self, label: str) -> bytes | None:
        assert self.client_hello is not None
        secret = self.keylog.get(label, self.client_hello.random)
        if secret is None:
            why = (f"the key log has no {label} for this connection (client random "
                   f"{self.client_hello.random.hex()[:16]}…)")
            self._fail_both(why)
        return secret

    def _tls13_keys(self) -> None:
        suite = _SUITES_13.get(self.cipher)
        if suite is None:
            self._fail_both(f"TLS 1.3 cipher suite 0x{self.cipher:04x} is not known")
            return
        for d, label in ((0, "CLIENT"), (1, "SERVER")):
            hs = self._secret(f"{label}_HANDSHAKE_TRAFFIC_SECRET")
            self._app_secret[d] = self._secret(f"{label}_TRAFFIC_SECRET_0")
            if hs is None or self._app_secret[d] is None:
                return
            self.keys[d] = _Keys.tls13_from(hs, suite)

    def _tls12_keys(self) -> None:
        suite = _SUITES_12.get(self.cipher)
        if suite is None:
            why = (f"TLS 1.2 cipher suite 0x{self.cipher:04x} is not an AEAD suite h2scope "
                   "decrypts (HTTP/2 needs one, RFC 9113 §9.2.2)")
            self._fail_both(why)
            return
        master = self._secret("CLIENT_RANDOM")
        if master is None:
            return
        assert self.client_hello is not None
        make, key_len, iv_len, hash_name = suite
        block = tls12_prf(master, b"key expansion", self.server_random
                          + self.client_hello.random, 2 * (key_len + iv_len), hash_name)
        ck, sk = block[:key_len], block[key_len:2 * key_len]
        civ, siv = block[2 * key_len:2 * key_len + iv_len], block[2 * key_len + iv_len:]
        gcm = iv_len == 4
        self._next = [_Keys(make(ck), civ, tls13=False, explicit_nonce=gcm),
                      _Keys(make(sk), siv, tls13=False, explicit_nonce=gcm)]

    def _encrypted_handshake(self, d: int, plain: bytes) -> None:
        for mtype, body in self._messages(d, plain):
            keys = self.keys[d]
            if not (keys is not None and keys.tls13):
                continue
            suite = _SUITES_13[self.cipher]
            if mtype == 20 and self._app_secret[d] is not None:  # Finished: application keys
                secret = self._app_secret[d]
                assert secret is not None
                self.keys[d] = _Keys.tls13_from(secret, suite)
                self._app_secret[d] = None
            elif mtype == 24:  # KeyUpdate
                self.keys[d] = keys.updated(suite)
            elif mtype == 8 and d == 1:  # EncryptedExtensions: the ALPN chosen
                self._alpn_from_extensions(body)

    def _alpn_from_extensions(self, body: bytes) -> None:
        for ext in read_extensions(body[2:2 + int.from_bytes(body[:2], "big")]):
            if ext.type == ExtensionType.ALPN:
                self.alpn = alpn_protocols(ext.data)[0]

    def tls_meta(self) -> dict[str, Any]:
        """What a capture's connection metadata says of the client's TLS leg."""
        from proxy.net.clienthello import cipher_name

        hello = self.client_hello
        # Named as the proxy's own captures name them (ssl's SSLObject.version()).
        version = {0x0304: "TLSv1.3", 0x0303: "TLSv1.2"}.get(self.version)
        meta: dict[str, Any] = {"version": version,
                                "cipher": cipher_name(self.cipher) if self.cipher else None,
                                "alpn": self.alpn, "decrypted_with": "key log"}
        if hello is not None:
            meta.update(sni=hello.sni, alpn_offered=list(hello.alpn),
                        client_hello=hello.as_json())
        return meta
