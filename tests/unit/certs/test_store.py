"""CertStore: caching, files on disk, thread safety and the server contexts it builds."""

from __future__ import annotations

import asyncio
import ssl
import stat
import threading
from collections.abc import Callable
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding

from certs.hostnames import InvalidHostname
from certs.store import LEAF_DIR, LEAF_KEY_FILE, CertStore, discard_leaves

Handshake = Callable[[ssl.SSLContext, ssl.SSLContext, str], ssl.SSLObject]
StrictClient = Callable[..., ssl.SSLContext]


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_store_creates_the_ca_and_exposes_its_path(confdir: Path) -> None:
    store = CertStore(confdir)
    assert store.ca_cert_path == confdir / "h2scope-ca-cert.pem"
    assert store.ca_cert_path.read_bytes() == store.ca.cert_pem
    assert store.ca.created


def test_the_confdir_may_be_given_as_a_string(confdir: Path) -> None:
    store = CertStore(str(confdir))  # (as the documented snippet does)
    assert store.confdir == confdir and store.ca_cert_path.parent == confdir


def test_leaf_cache_directory_is_0700_and_its_files_0600(store: CertStore) -> None:
    leaf = store.leaf("files.example.com")
    assert leaf.chain_path.parent == store.confdir / LEAF_DIR
    assert mode(store.confdir / LEAF_DIR) == 0o700
    assert mode(leaf.chain_path) == 0o600
    assert mode(leaf.key_path) == 0o600
    assert leaf.key_path == store.confdir / LEAF_DIR / LEAF_KEY_FILE


def test_chain_file_holds_the_leaf_then_the_ca(store: CertStore) -> None:
    leaf = store.leaf("chain.example.com")
    chain = x509.load_pem_x509_certificates(leaf.chain_path.read_bytes())
    assert chain == [leaf.cert, store.ca.cert]


def test_shared_leaf_key_is_written_once_and_reused_by_later_stores(confdir: Path) -> None:
    first = CertStore(confdir)
    key_bytes = first.leaf_key_path.read_bytes()
    second = CertStore(confdir)
    assert second.leaf_key_path.read_bytes() == key_bytes
    assert first.leaf("a.example").cert.public_key() == second.leaf("b.example").cert.public_key()


def test_corrupt_leaf_key_is_replaced_because_nobody_trusts_it(confdir: Path) -> None:
    CertStore(confdir)
    key_path = confdir / LEAF_DIR / LEAF_KEY_FILE
    key_path.write_bytes(b"junk")
    store = CertStore(confdir)
    assert b"PRIVATE KEY" in key_path.read_bytes()
    assert mode(key_path) == 0o600
    store.server_context("after.example", ["h2"])  # the key loads and matches


def test_cache_hit_returns_the_same_leaf_without_minting(store: CertStore) -> None:
    first = store.leaf("hit.example.com")
    misses = store.leaf_cache.misses
    again = store.leaf("HIT.example.com.")  # same name after normalisation
    assert again is first
    assert store.leaf_cache.misses == misses
    assert store.leaf_cache.hits >= 1


def test_different_extra_sans_make_different_leaves_order_does_not(store: CertStore) -> None:
    plain = store.leaf("multi.example.com")
    wide = store.leaf("multi.example.com", ["*.example.com", "example.com"])
    same = store.leaf("multi.example.com", ["example.com", "*.example.com"])
    assert wide is not plain
    assert same is wide


def test_lru_evicts_the_oldest_leaf_and_deletes_its_file(confdir: Path) -> None:
    store = CertStore(confdir, cache_size=2)
    a = store.leaf("a.example")
    b = store.leaf("b.example")
    store.leaf("a.example")  # a is now the most recent
    store.leaf("c.example")  # evicts b
    assert not b.chain_path.exists()
    assert a.chain_path.exists()
    assert store.leaf("a.example") is a
    assert store.leaf("b.example") is not b
    assert len(store.leaf_cache) == 2


def test_invalid_host_raises_and_mints_nothing(store: CertStore) -> None:
    before = set((store.confdir / LEAF_DIR).iterdir())
    for bad in ["", "bad host", "a..b", "*.example.com", "x" * 300]:
        with pytest.raises(InvalidHostname):
            store.leaf(bad)
        with pytest.raises(InvalidHostname):
            store.server_context(bad, ["h2"])
    assert set((store.confdir / LEAF_DIR).iterdir()) == before
    assert len(store.leaf_cache) == 0


def test_concurrent_minting_for_one_host_from_many_threads_yields_one_certificate(
    store: CertStore,
) -> None:
    barrier = threading.Barrier(32)
    results: list[int] = []
    lock = threading.Lock()

    def worker() -> None:
        barrier.wait()
        leaf = store.leaf("race.example.com")
        context = store.server_context("race.example.com", ["h2", "http/1.1"])
        with lock:
            results.append(leaf.serial)
            results.append(id(context))

    threads = [threading.Thread(target=worker) for _ in range(32)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    serials, contexts = set(results[::2]), set(results[1::2])
    assert len(serials) == 1 and len(contexts) == 1
    assert store.leaf_cache.misses == 1
    chains = [p for p in (store.confdir / LEAF_DIR).iterdir() if p.name != LEAF_KEY_FILE]
    assert len(chains) == 1


def test_concurrent_minting_from_asyncio_tasks_via_to_thread_yields_one_certificate(
    store: CertStore,
) -> None:
    async def main() -> set[int]:
        leaves = await asyncio.gather(
            *(asyncio.to_thread(store.leaf, "async.example.com") for _ in range(50))
        )
        return {leaf.serial for leaf in leaves}

    assert len(asyncio.run(main())) == 1


def test_server_context_is_cached_per_host_alpn_and_sans(store: CertStore) -> None:
    h2 = store.server_context("ctx.example.com", ["h2", "http/1.1"])
    assert store.server_context("ctx.example.com", ("h2", "http/1.1")) is h2
    assert store.server_context("ctx.example.com", ["http/1.1"]) is not h2
    assert store.server_context("ctx.example.com", ["h2", "http/1.1"], ["*.example.com"]) is not h2
    assert isinstance(h2, ssl.SSLContext)


@pytest.mark.parametrize(
    ("server_alpn", "client_alpn", "selected"),
    [
        (["h2"], ["h2", "http/1.1"], "h2"),
        (["http/1.1"], ["h2", "http/1.1"], "http/1.1"),
        ([], ["h2", "http/1.1"], None),
    ],
)
def test_server_context_offers_exactly_the_given_alpn(
    store: CertStore,
    handshake: Handshake,
    strict_client: StrictClient,
    server_alpn: list[str],
    client_alpn: list[str],
    selected: str | None,
) -> None:
    server = store.server_context("alpn.example.com", server_alpn)
    client = handshake(
        strict_client(store.ca_cert_path, client_alpn), server, "alpn.example.com"
    )
    assert client.selected_alpn_protocol() == selected


def test_server_context_presents_the_cached_leaf(
    store: CertStore, handshake: Handshake, strict_client: StrictClient
) -> None:
    server = store.server_context("sent.example.com", ["h2"])
    client = handshake(strict_client(store.ca_cert_path), server, "sent.example.com")
    leaf = store.leaf("sent.example.com")
    assert client.getpeercert(binary_form=True) == leaf.cert.public_bytes(Encoding.DER)


def test_missing_chain_file_is_rewritten_when_a_context_needs_it(store: CertStore) -> None:
    leaf = store.leaf("heal.example.com")
    leaf.chain_path.unlink()
    store.server_context("heal.example.com", ["h2"])
    assert leaf.chain_path.exists() and mode(leaf.chain_path) == 0o600


def test_discard_leaves_removes_chains_but_keeps_the_key(store: CertStore) -> None:
    store.leaf("one.example")
    store.leaf("two.example")
    assert discard_leaves(store.confdir) == 2
    assert [p.name for p in (store.confdir / LEAF_DIR).iterdir()] == [LEAF_KEY_FILE]


def test_bad_cache_size_is_refused(confdir: Path) -> None:
    with pytest.raises(ValueError, match="at least 1"):
        CertStore(confdir, cache_size=0)
