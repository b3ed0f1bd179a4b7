"""The certificate store the proxy uses: the CA, minted leaves, and TLS server contexts.

Layout of the configuration directory (0700)::

    h2scope-ca-cert.pem     CA certificate              0644
    h2scope-ca-key.pem      CA private key              0600
    leaves/                 private cache               0700
        leaf-key.pem        the shared leaf key         0600
        <serial>.pem        leaf + CA certificate chain 0600

Python's :mod:`ssl` loads certificates only from files, hence ``leaves/``.
Every leaf shares one ECDSA P-256 key (generated once, kept across runs): key
generation is then never on the minting path, and a leaf costs one CA
signature. Leaves and contexts are kept in bounded LRU caches that mint each
missing entry once, however many threads ask at the same moment.

A chain file is deleted when its leaf leaves the cache, and chain files older
than a day are removed when a store opens; a context that later needs a
deleted file writes it again from memory.
"""

from __future__ import annotations

import contextlib
import datetime
import logging
import ssl
import time
from collections.abc import Sequence
from pathlib import Path

from cryptography import x509
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from certs.ca import CertificateAuthority, load_or_create_ca
from certs.files import PRIVATE_DIR_MODE, SECRET_FILE_MODE, ensure_private_dir, write_atomic
from certs.hostnames import Host, validate_host
from certs.leaf import Leaf, build_leaf_certificate, normalise_sans
from certs.lru import OnceLRU

log = logging.getLogger("h2scope.certs")

LEAF_DIR = "leaves"
LEAF_KEY_FILE = "leaf-key.pem"
#: Chain files older than this are removed when a store opens.
STALE_CHAIN_AGE = datetime.timedelta(days=1)

_LeafKey = tuple[Host, frozenset[Host]]


class LeafWriteError(Exception):
    """A leaf's chain file could not be written under ``leaves/`` (a full disk, a
    confdir made read-only): its host cannot be intercepted until it can. The
    message names the host, the directory and the reason; :attr:`hint` what to do."""

    def __init__(self, host: str, leaf_dir: Path, exc: OSError) -> None:
        super().__init__(f"cannot write the certificate for {host} to {leaf_dir}: "
                         f"{exc.strerror or exc}")
        self.errno = exc.errno
        self.hint = ("Python's ssl module loads a certificate only from a file: free some "
                     "space there, or start h2scope with --confdir (H2SCOPE_HOME) on a disk "
                     "with room; hosts already intercepted go on working")
_ContextKey = tuple[str, tuple[str, ...], tuple[str, ...]]


class CertStore:
    """The CA of *confdir* (created if absent) and leaves minted on demand.

    Thread-safe: every method may be called from any thread.
    """

    def __init__(self, confdir: Path | str, *, cache_size: int = 1024) -> None:
        """Load or create the CA; see :func:`certs.ca.load_or_create_ca` for errors."""
        confdir = Path(confdir)
        self.confdir = confdir
        self.ca: CertificateAuthority = load_or_create_ca(confdir)
        self.leaf_dir = ensure_private_dir(confdir / LEAF_DIR)
        # Our own cache directory: tighten it even if something loosened it.
        self.leaf_dir.chmod(PRIVATE_DIR_MODE)
        self.leaf_key_path = self.leaf_dir / LEAF_KEY_FILE
        self._leaf_key = _load_or_create_leaf_key(self.leaf_key_path)
        self._leaf_public_key = self._leaf_key.public_key()
        self._leaf_ski = x509.SubjectKeyIdentifier.from_public_key(self._leaf_public_key)
        self._leaves: OnceLRU[_LeafKey, Leaf] = OnceLRU(cache_size, on_evict=_delete_chain)
        self._contexts: OnceLRU[_ContextKey, ssl.SSLContext] = OnceLRU(cache_size)
        self._write_failed = False
        """A chain file could not be written (said once in the log)."""
        _prune_stale_chains(self.leaf_dir, keep=self.leaf_key_path)

    def ca_replaced(self) -> bool:
        """Whether the CA certificate file now holds another CA than the one this
        store signs with (``h2scope ca regenerate`` or ``ca import`` while it ran:
        clients given the new file reject what this store signs)."""
        try:
            on_disk = x509.load_pem_x509_certificate(self.ca.cert_path.read_bytes())
        except (OSError, ValueError):
            return False
        return on_disk != self.ca.cert

    @property
    def ca_cert_path(self) -> Path:
        """The CA certificate file (PEM) users install in trust stores."""
        return self.ca.cert_path

    @property
    def leaf_cache(self) -> OnceLRU[_LeafKey, Leaf]:
        """The leaf cache, for statistics (``hits``, ``misses``, ``len()``)."""
        return self._leaves

    @property
    def context_cache(self) -> OnceLRU[_ContextKey, ssl.SSLContext]:
        """The server context cache, for statistics."""
        return self._contexts

    def leaf(self, host: str, extra_sans: Sequence[str] = ()) -> Leaf:
        """The leaf for *host* (plus *extra_sans*, e.g. the upstream certificate's names).

        Raises :class:`certs.hostnames.InvalidHostname` if *host* is not a
        valid DNS name or IP address; invalid *extra_sans* are dropped.
        """
        name = validate_host(host)
        sans = normalise_sans(name, extra_sans)
        return self._leaves.get_or_create(
            (name, frozenset(sans[1:])), lambda: self._mint(sans)
        )

    def server_context(
        self, host: str, alpn: Sequence[str], extra_sans: Sequence[str] = ()
    ) -> ssl.SSLContext:
        """A TLS server context presenting the leaf for *host*, offering exactly *alpn*.

        An empty *alpn* disables ALPN. Contexts are cached by
        (host, alpn, extra_sans); raises :class:`~certs.hostnames.InvalidHostname`
        like :meth:`leaf` — the caller then fails the handshake with an
        ``unrecognized_name`` alert (RFC 6066 §3), see :mod:`certs.sni`.
        """
        key = (host, tuple(alpn), tuple(extra_sans))
        return self._contexts.get_or_create(
            key, lambda: self._make_context(host, key[1], key[2])
        )

    def _mint(self, sans: tuple[Host, ...]) -> Leaf:
        now = datetime.datetime.now(datetime.UTC).replace(microsecond=0)
        cert = build_leaf_certificate(
            ca=self.ca,
            sans=sans,
            public_key=self._leaf_public_key,
            subject_key_identifier=self._leaf_ski,
            now=now,
        )
        cert_pem = cert.public_bytes(serialization.Encoding.PEM)
        leaf = Leaf(
            host=sans[0],
            sans=sans,
            cert=cert,
            cert_pem=cert_pem,
            chain_path=self.leaf_dir / f"{cert.serial_number:032x}.pem",
            key_path=self.leaf_key_path,
            serial=cert.serial_number,
            not_before=cert.not_valid_before_utc,
            not_after=cert.not_valid_after_utc,
        )
        self._write_chain(leaf)
        return leaf

    def _write_chain(self, leaf: Leaf) -> None:
        """Raises :class:`LeafWriteError` (logged once per store)."""
        # Serve the CA too: Chromium's --ignore-certificate-errors-spki-list
        # matches the certificates the server sends, not the ones it builds.
        try:
            write_atomic(leaf.chain_path, leaf.cert_pem + self.ca.cert_pem,
                         mode=SECRET_FILE_MODE)
        except OSError as exc:
            error = LeafWriteError(str(leaf.host), self.leaf_dir, exc)
            if not self._write_failed:
                self._write_failed = True
                log.warning("%s (%s)", error, error.hint)
            raise error from exc

    def _make_context(
        self, host: str, alpn: tuple[str, ...], extra_sans: tuple[str, ...]
    ) -> ssl.SSLContext:
        leaf = self.leaf(host, extra_sans)
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        # RFC 9113 §9.2.1: HTTP/2 over TLS 1.2 MUST disable renegotiation.
        context.options |= ssl.OP_NO_RENEGOTIATION
        try:
            context.load_cert_chain(leaf.chain_path, leaf.key_path)
        except FileNotFoundError:
            # Pruned by another process or evicted meanwhile: write it again.
            self._write_chain(leaf)
            if not leaf.key_path.exists():
                _write_leaf_key(leaf.key_path, self._leaf_key, replace=False)
            context.load_cert_chain(leaf.chain_path, leaf.key_path)
        if alpn:
            context.set_alpn_protocols(list(alpn))
        return context


def discard_leaves(confdir: Path) -> int:
    """Delete the cached leaf chains of *confdir* (after the CA changed); returns how many."""
    leaf_dir = confdir / LEAF_DIR
    removed = 0
    if leaf_dir.is_dir():
        for path in leaf_dir.iterdir():
            if path.name != LEAF_KEY_FILE and path.name.endswith(".pem"):
                with contextlib.suppress(OSError):
                    path.unlink()
                    removed += 1
    return removed


def _load_or_create_leaf_key(path: Path) -> ec.EllipticCurvePrivateKey:
    """The shared leaf key: loaded if present and sound, else generated and written once."""
    try:
        key = serialization.load_pem_private_key(path.read_bytes(), password=None)
    except FileNotFoundError:
        pass
    except (OSError, ValueError, TypeError, UnsupportedAlgorithm) as exc:
        # Nobody trusts this key; it is a cache entry, so replace it.
        log.warning("replacing unreadable leaf key %s: %s", path, exc)
        new_key = ec.generate_private_key(ec.SECP256R1())
        _write_leaf_key(path, new_key, replace=True)
        return new_key
    else:
        if isinstance(key, ec.EllipticCurvePrivateKey) and isinstance(key.curve, ec.SECP256R1):
            return key
        log.warning("replacing leaf key %s: not an ECDSA P-256 key", path)
        new_key = ec.generate_private_key(ec.SECP256R1())
        _write_leaf_key(path, new_key, replace=True)
        return new_key
    new_key = ec.generate_private_key(ec.SECP256R1())
    if _write_leaf_key(path, new_key, replace=False):
        return new_key
    # Another process wrote it first: use theirs so both agree.
    return _load_or_create_leaf_key(path)


def _write_leaf_key(path: Path, key: ec.EllipticCurvePrivateKey, *, replace: bool) -> bool:
    pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    return write_atomic(path, pem, mode=SECRET_FILE_MODE, replace=replace)


def _delete_chain(_key: object, leaf: Leaf) -> None:
    with contextlib.suppress(OSError):
        leaf.chain_path.unlink()


def _prune_stale_chains(leaf_dir: Path, *, keep: Path) -> None:
    cutoff = time.time() - STALE_CHAIN_AGE.total_seconds()
    for path in leaf_dir.iterdir():
        if path == keep or not path.name.endswith((".pem", ".tmp")):
            continue
        with contextlib.suppress(OSError):
            if path.stat().st_mtime < cutoff:
                path.unlink()
