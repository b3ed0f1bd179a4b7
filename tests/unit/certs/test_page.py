"""The http://h2scope/ page: routes, content types and bodies."""

from __future__ import annotations

from cryptography import x509

from certs.page import DER_TYPE, HTML_TYPE, PEM_TYPE, download_filename, respond
from certs.store import CertStore


def test_index_is_html_with_links_fingerprint_spki_and_hints(shared_store: CertStore) -> None:
    ca = shared_store.ca
    status, content_type, body = respond("/", ca=ca)
    page = body.decode("utf-8")
    assert (status, content_type) == (200, HTML_TYPE)
    assert page.startswith("<!DOCTYPE html>")
    assert 'href="/cert/pem"' in page and 'href="/cert/der"' in page
    assert ca.fingerprint in page
    assert ca.spki_hash in page
    for tool in ("update-ca-certificates", "certutil", "keytool", "NODE_EXTRA_CA_CERTS"):
        assert tool in page
    assert f"--ignore-certificate-errors-spki-list={ca.spki_hash}" in page


def test_index_reveals_no_local_path(shared_store: CertStore) -> None:
    page = respond("/", ca=shared_store.ca).body.decode()
    assert str(shared_store.confdir) not in page
    assert "h2scope-ca-key.pem" not in page


def test_index_escapes_html(shared_store: CertStore) -> None:
    page = respond("/", ca=shared_store.ca, proxy_url="http://<b>:1").body.decode()
    assert "<b>" not in page and "&lt;b&gt;" in page


def test_pem_download_is_the_ca_certificate(shared_store: CertStore) -> None:
    status, content_type, body = respond("/cert/pem", ca=shared_store.ca)
    assert (status, content_type) == (200, PEM_TYPE)
    assert x509.load_pem_x509_certificate(body) == shared_store.ca.cert
    assert body == shared_store.ca_cert_path.read_bytes()


def test_der_download_is_the_ca_certificate(shared_store: CertStore) -> None:
    status, content_type, body = respond("/cert/der", ca=shared_store.ca)
    assert (status, content_type) == (200, DER_TYPE)
    assert x509.load_der_x509_certificate(body) == shared_store.ca.cert


def test_query_string_is_ignored(shared_store: CertStore) -> None:
    assert respond("/cert/der?x=1", ca=shared_store.ca).status == 200
    assert respond("", ca=shared_store.ca).status == 200


def test_unknown_paths_are_404_and_never_the_key(shared_store: CertStore) -> None:
    for path in ("/cert/key", "/cert", "/../h2scope-ca-key.pem", "/cert/pem/", "/favicon.ico"):
        status, content_type, body = respond(path, ca=shared_store.ca)
        assert status == 404 and content_type.startswith("text/plain")
        assert b"PRIVATE" not in body


def test_downloads_have_file_names() -> None:
    assert download_filename("/cert/pem") == "h2scope-ca-cert.pem"
    assert download_filename("/cert/der?dl=1") == "h2scope-ca-cert.cer"
    assert download_filename("/") is None
