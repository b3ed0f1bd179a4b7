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


def test_the_firefox_steps_trust_the_ca_in_every_profile_where_firefox_keeps_them(
        shared_store: CertStore, tmp_path: object) -> None:
    """Run as printed (bash, NSS certutil): a profile under ~/.mozilla and one under
    ~/.config/mozilla (where Firefox 153 puts new ones) both get the CA; with no
    profile at all the steps say so instead of doing nothing silently."""
    import json
    import os
    import subprocess
    from pathlib import Path

    from tests.helpers import procs

    certutil = procs.require("certutil")
    ca = shared_store.ca
    (hint,) = [h for h in install_hints(ca) if h.title.startswith("Firefox (NSS")]
    home = Path(str(tmp_path)) / "home"
    profiles = [home / ".mozilla/firefox/a.default", home / ".config/mozilla/firefox/b.esr"]
    for p in profiles:
        p.mkdir(parents=True)
        subprocess.run([certutil, "-N", "-d", f"sql:{p}", "--empty-password"], check=True)
    env = {**os.environ, "HOME": str(home)}
    done = subprocess.run(["bash", "-c", hint.steps], env=env, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    for p in profiles:
        listed = subprocess.run([certutil, "-L", "-d", f"sql:{p}"], capture_output=True,
                                text=True, check=True).stdout
        assert "h2scope CA" in listed, (p, listed)
    empty = Path(str(tmp_path)) / "empty"
    empty.mkdir()
    said = subprocess.run(["bash", "-c", hint.steps], env={**env, "HOME": str(empty)},
                          capture_output=True, text=True)
    assert "no Firefox profile found" in said.stdout
    (policy,) = [h for h in install_hints(ca) if "enterprise policy" in h.title]
    line = next(ln for ln in policy.steps.splitlines() if ln.startswith("{"))
    assert json.loads(line) == {"policies": {"Certificates": {"Install": [str(ca.cert_path)]}}}


def test_the_python_in_code_lines_load_this_ca(tmp_path: object) -> None:
    """The Python hint's in-code lines are Python: the context line, run as printed
    (a path with a quote and a space in it), trusts exactly this CA."""
    import ssl
    from pathlib import Path

    store = CertStore(Path(str(tmp_path)) / "it's here")
    [python] = [h for h in install_hints(store.ca) if h.title.startswith("Python")]
    [line] = [ln.removeprefix("#").strip() for ln in python.steps.splitlines()
              if "ssl.create_default_context(cafile=" in ln]
    scope: dict[str, object] = {"ssl": ssl}
    exec(line, scope)
    ctx = scope["ctx"]
    assert isinstance(ctx, ssl.SSLContext)
    assert ctx.cert_store_stats()["x509_ca"] == 1
    assert "proxy='http://127.0.0.1:8080'" in python.steps
