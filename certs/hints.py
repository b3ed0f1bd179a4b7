"""Copy-pasteable steps to make clients trust the h2scope CA.

One function, :func:`install_hints`, renders them with this CA's real paths,
name and SPKI hash filled in; ``h2scope ca install-hints`` prints it and the
``http://h2scope/`` page shows it.
"""

from __future__ import annotations

import json
import shlex
from dataclasses import dataclass

from cryptography.x509.oid import NameOID

from certs.ca import CertificateAuthority, serial_hex

DEFAULT_PROXY_URL = "http://127.0.0.1:8080"


@dataclass(frozen=True, slots=True, kw_only=True)
class Hint:
    """The steps for one platform or tool."""

    title: str
    """What the steps are for, e.g. ``Debian / Ubuntu system store``."""
    steps: str
    """Shell commands and short notes, ready to paste."""


def install_hints(
    ca: CertificateAuthority, *, proxy_url: str = DEFAULT_PROXY_URL, cert_file: str | None = None
) -> tuple[Hint, ...]:
    """Every platform's steps, with this CA's paths and hashes filled in.

    *cert_file* replaces the CA certificate's path in the commands — the
    download page uses the name of the downloaded file.
    """
    raw_pem = cert_file if cert_file is not None else str(ca.cert_path)
    pem = shlex.quote(raw_pem)
    name = shlex.quote(_nickname(ca))
    proxy = shlex.quote(proxy_url)
    return (
        Hint(
            title="Debian / Ubuntu system store (OpenSSL, curl, wget, Go, ...; "
                  "not Firefox or Chromium, which use NSS: below)",
            steps=(
                f"sudo cp {pem} /usr/local/share/ca-certificates/h2scope-ca.crt\n"
                "sudo update-ca-certificates\n"
                "# undo: sudo rm /usr/local/share/ca-certificates/h2scope-ca.crt && "
                "sudo update-ca-certificates --fresh"
            ),
        ),
        Hint(
            title="Fedora / RHEL / CentOS system store",
            steps=(
                f"sudo cp {pem} /etc/pki/ca-trust/source/anchors/h2scope-ca.pem\n"
                "sudo update-ca-trust\n"
                "# undo: sudo rm /etc/pki/ca-trust/source/anchors/h2scope-ca.pem && "
                "sudo update-ca-trust"
            ),
        ),
        Hint(
            title="Firefox (NSS certutil: libnss3-tools / nss-tools), every profile",
            steps=(
                "# Firefox reads neither the system store nor Chromium's: its profiles'\n"
                "# own NSS databases. Close Firefox first (it holds them open).\n"
                "found=0; for db in ~/.mozilla/firefox/*/cert9.db "
                "~/.config/mozilla/firefox/*/cert9.db \\\n"
                "    ~/snap/firefox/common/.mozilla/firefox/*/cert9.db; do\n"
                f'  [ -f "$db" ] && certutil -A -d "sql:$(dirname "$db")" -n {name} '
                f"-t C,, -i {pem} && found=1\n"
                "done; [ $found = 1 ] || echo 'no Firefox profile found: start Firefox once'\n"
                "# or: Settings > Privacy & Security > Certificates > View Certificates >\n"
                "#     Authorities > Import..., tick 'Trust this CA to identify websites'\n"
                f"# undo: certutil -D -d sql:PROFILE_DIR -n {name}"
            ),
        ),
        Hint(
            title="Firefox, every profile of an installation (enterprise policy)",
            steps=(
                "# /etc/firefox/policies/policies.json (or the installation's\n"
                "# distribution/policies.json, e.g. /usr/lib/firefox-esr/distribution/):\n"
                + json.dumps({"policies": {"Certificates": {"Install": [raw_pem]}}}) + "\n"
                "# restart Firefox; about:policies lists it. undo: remove that entry"
            ),
        ),
        Hint(
            title="Chromium / Chrome on Linux (NSS certutil, shared database)",
            steps=(
                "mkdir -p ~/.pki/nssdb\n"
                '[ -f ~/.pki/nssdb/cert9.db ] || certutil -N -d "sql:$HOME/.pki/nssdb" '
                "--empty-password\n"
                f'certutil -A -d "sql:$HOME/.pki/nssdb" -n {name} -t C,, -i {pem}\n'
                "# restart the browser; undo: "
                f'certutil -D -d "sql:$HOME/.pki/nssdb" -n {name}'
            ),
        ),
        Hint(
            title="Chromium / Chrome without installing: trust this CA's key for one session",
            steps=(
                "chromium --user-data-dir=\"$(mktemp -d)\" "
                f"--proxy-server={proxy} \\\n"
                "  --proxy-bypass-list='<-loopback>' \\\n"
                f"  --ignore-certificate-errors-spki-list={ca.spki_hash}\n"
                "# the SPKI hash is base64(SHA-256(DER SubjectPublicKeyInfo)) of the h2scope CA;\n"
                "# h2scope sends the CA in every chain so Chromium finds it;\n"
                "# '<-loopback>' sends localhost and 127.0.0.1 through the proxy too\n"
                "# (Chromium goes to them directly otherwise: a local server would not be seen)"
            ),
        ),
        Hint(
            title="macOS keychain (Safari, Chrome, curl, Go, ...)",
            steps=(
                "sudo security add-trusted-cert -d -r trustRoot "
                f"-k /Library/Keychains/System.keychain {pem}\n"
                f"# only for this user: security add-trusted-cert -r trustRoot "
                f"-k ~/Library/Keychains/login.keychain-db {pem}\n"
                f"# undo: sudo security remove-trusted-cert -d {pem}"
            ),
        ),
        Hint(
            title="Windows certificate store (Edge, Chrome, curl with schannel, Go, ...)",
            steps=(
                "h2scope ca export --format der -o h2scope-ca.cer\n"
                "REM in an elevated Command Prompt, for all users:\n"
                "certutil -addstore -f Root h2scope-ca.cer\n"
                "REM or for the current user only:\n"
                "certutil -user -addstore -f Root h2scope-ca.cer\n"
                "REM PowerShell: Import-Certificate -FilePath h2scope-ca.cer "
                "-CertStoreLocation Cert:\\CurrentUser\\Root\n"
                f"REM undo: certutil -delstore Root {serial_hex(ca.cert.serial_number)}"
            ),
        ),
        Hint(
            title="Java (keytool)",
            steps=(
                f"keytool -importcert -noprompt -trustcacerts -alias h2scope-ca -file {pem} "
                "-cacerts -storepass changeit\n"
                "# or a separate trust store for one program:\n"
                f"keytool -importcert -noprompt -alias h2scope-ca -file {pem} "
                "-keystore h2scope-truststore.p12 -storetype PKCS12 -storepass changeit\n"
                "java -Djavax.net.ssl.trustStore=h2scope-truststore.p12 "
                "-Djavax.net.ssl.trustStorePassword=changeit ...\n"
                "# undo: keytool -delete -alias h2scope-ca -cacerts -storepass changeit"
            ),
        ),
        Hint(
            title="curl",
            steps=(
                f"curl --cacert {pem} --proxy {proxy} https://example.com/\n"
                "# --cacert replaces curl's bundle for that command; or export "
                f"CURL_CA_BUNDLE={pem}"
            ),
        ),
        Hint(
            title="Python (ssl, urllib, httpx, aiohttp; requests)",
            steps=(
                f"export SSL_CERT_FILE={pem}          # ssl.create_default_context() and "
                "libraries built on it\n"
                f"export REQUESTS_CA_BUNDLE={pem}     # requests (uses certifi, ignores "
                "SSL_CERT_FILE)\n"
                "# both replace the default roots; to keep them as well:\n"
                f'cat "$(python3 -m certifi)" {pem} > h2scope-bundle.pem  '
                "# and point the variables at h2scope-bundle.pem\n"
                "# in code (a test, one client): the CA and the proxy for that client only\n"
                f"#   ctx = ssl.create_default_context(cafile={raw_pem!r})\n"
                f"#   httpx.Client(verify=ctx, proxy={proxy_url!r})"
                "    # httpx 0.28+: a context, not a path\n"
                f"#   requests.get(url, verify={raw_pem!r}, "
                f"proxies={{'https': {proxy_url!r}}})\n"
                f"#   aiohttp: session.get(url, ssl=ctx, proxy={proxy_url!r})\n"
                "#   (a context each, if httpx has http2=True: it offers h2 on its context)\n"
                f"#   urllib3.ProxyManager({proxy_url!r}, ca_certs={raw_pem!r})\n"
                "# HTTPS_PROXY is read by requests, urllib, httpx (not with trust_env=False,\n"
                "# which ignores SSL_CERT_FILE too) and aiohttp (with trust_env=True only);\n"
                "# NO_PROXY or a bypass for localhost keeps local servers away from h2scope"
            ),
        ),
        Hint(
            title="gRPC (grpc-core: Python grpcio, C++, Ruby, PHP, C#/Grpc.Core)",
            steps=(
                f"export GRPC_DEFAULT_SSL_ROOTS_FILE_PATH={pem}   # replaces grpc's bundled "
                "roots\n"
                "# or in code: grpc.ssl_channel_credentials(root_certificates=open("
                f"'{pem}', 'rb').read())\n"
                "# grpc-core ignores SSL_CERT_FILE and the system store, and closes the\n"
                "# connection without a TLS alert when it does not trust the certificate;\n"
                "# grpc-go and grpc-java use the Go and Java steps"
            ),
        ),
        Hint(
            title="Node.js",
            steps=(
                f"export NODE_EXTRA_CA_CERTS={pem}\n"
                "# added to Node's bundled roots; read once when node starts"
            ),
        ),
        Hint(
            title="Go (crypto/x509)",
            steps=(
                f"export SSL_CERT_FILE={pem}   # Linux/BSD: replaces the system roots file\n"
                "# or install into the system store above (Debian/Fedora); on macOS and\n"
                "# Windows Go uses the platform verifier: use the keychain/Windows steps"
            ),
        ),
    )


def render_hints(
    ca: CertificateAuthority, *, proxy_url: str = DEFAULT_PROXY_URL, cert_file: str | None = None
) -> str:
    """The hints as plain text, introduced by what identifies this CA.

    With *cert_file* (the download page) no local path of this machine appears.
    """
    where = cert_file if cert_file is not None else str(ca.cert_path)
    holder = "its private key" if cert_file is not None else f"its private key ({ca.key_path})"
    lines = [
        f"h2scope CA certificate: {where}",
        f"  subject:          {ca.cert.subject.rfc4514_string()}",
        f"  SHA-256:          {ca.fingerprint}",
        f"  SPKI SHA-256/b64: {ca.spki_hash}",
        "",
        f"Trust it only on machines you debug: whoever holds {holder}",
        "can impersonate any site to them.",
        f"Examples assume h2scope listens at {proxy_url}.",
    ]
    for hint in install_hints(ca, proxy_url=proxy_url, cert_file=cert_file):
        lines += ["", f"## {hint.title}", "", *("    " + s for s in hint.steps.splitlines())]
    return "\n".join(lines) + "\n"


def _nickname(ca: CertificateAuthority) -> str:
    """The name under which NSS stores the CA: its common name."""
    names = ca.cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    value = names[0].value if names else "h2scope CA"
    return value if isinstance(value, str) else value.decode("utf-8", "replace")
