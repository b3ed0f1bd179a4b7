"""install-hints: every platform covered, with this CA's path and SPKI hash filled in."""

from __future__ import annotations

import shlex

from certs.hints import install_hints, render_hints
from certs.store import CertStore


def test_every_required_platform_has_steps(shared_store: CertStore) -> None:
    text = render_hints(shared_store.ca)
    for needle in (
        "update-ca-certificates",  # Debian/Ubuntu
        "update-ca-trust",  # Fedora/RHEL
        "certutil -A -d",  # NSS: Firefox and Chromium
        ".mozilla/firefox",
        ".pki/nssdb",
        "security add-trusted-cert",  # macOS
        "certutil -addstore -f Root",  # Windows
        "keytool -importcert",  # Java
        "curl --cacert",
        "SSL_CERT_FILE",
        "REQUESTS_CA_BUNDLE",
        "NODE_EXTRA_CA_CERTS",
        "Go (crypto/x509)",
        "--ignore-certificate-errors-spki-list=",
    ):
        assert needle in text, needle


def test_hints_use_this_cas_path_and_spki_hash(shared_store: CertStore) -> None:
    ca = shared_store.ca
    text = render_hints(ca)
    assert shlex.quote(str(ca.cert_path)) in text
    assert f"--ignore-certificate-errors-spki-list={ca.spki_hash}" in text
    assert ca.fingerprint in text


def test_paths_with_spaces_are_shell_quoted(tmp_path: object) -> None:
    from pathlib import Path

    store = CertStore(Path(str(tmp_path)) / "with space")
    text = render_hints(store.ca)
    assert f"'{store.ca_cert_path}'" in text


def test_proxy_url_is_used_in_examples(shared_store: CertStore) -> None:
    text = render_hints(shared_store.ca, proxy_url="http://10.0.0.5:9999")
    assert "--proxy-server=http://10.0.0.5:9999" in text
    assert "--proxy http://10.0.0.5:9999" in text


def test_each_hint_has_a_title_and_steps(shared_store: CertStore) -> None:
    hints = install_hints(shared_store.ca)
    assert len(hints) >= 12
    assert all(h.title and h.steps.strip() for h in hints)
