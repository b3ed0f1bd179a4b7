"""``h2scope ca``: show, export, trust and regenerate the certificate authority.

Every action that needs the CA creates the configuration directory (0700) and
the CA when both CA files are missing; damaged CA files are reported with the
file's name and exit status 1, never replaced behind the user's back.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import logging
import sys
import textwrap
from collections.abc import Callable, Iterator
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.serialization import pkcs12

from certs.ca import (
    CAFileError,
    CAImportError,
    CertificateAuthority,
    ca_paths,
    colon_hex,
    import_ca,
    load_ca,
    load_or_create_ca,
    pem_from_pkcs12,
    regenerate_ca,
    serial_hex,
)
from certs.files import PUBLIC_FILE_MODE, write_atomic
from certs.hints import DEFAULT_PROXY_URL, render_hints
from certs.store import discard_leaves
from proxy.cli import EXIT_FAILURE, EXIT_OK, EXIT_USAGE, UsageError, resolve_confdir

FORMATS = ("pem", "der", "p12")
_SUFFIX_FORMATS = {
    ".pem": "pem",
    ".crt": "pem",
    ".der": "der",
    ".cer": "der",
    ".p12": "p12",
    ".pfx": "p12",
}

Handler = Callable[[argparse.Namespace], int]

_DAMAGED = ("1 when the CA files are damaged (one missing, unreadable, a key not the\n"
            "certificate's: the message names the file)")
EPILOGS = {
    "ca": """\
examples:
  h2scope ca path                 the CA certificate's path, alone on stdout
  h2scope ca install-hints        how to trust it in browsers, the OS, tools
  h2scope ca show                 subject, fingerprints, SPKI hash and validity
  h2scope ca import ~/.mitmproxy/mitmproxy-ca.pem
      sign with a CA that clients already trust

exit status: 0 done, 1 when the CA files are damaged (or a replacement was
declined), 2 for a usage error; each action's --help says more
(h2scope ca ACTION --help). The CA: docs/certificates.md.
""",
    "path": f"""\
examples:
  h2scope ca path
  curl --cacert "$(h2scope ca path)" -x 127.0.0.1:8080 https://example.com/
      (the path for a client's trust option)

The CA is created (in the configuration directory, 0700) if it does not exist.

exit status: 0 path printed, 2 for a usage error,
{_DAMAGED}.
""",
    "show": f"""\
examples:
  h2scope ca show
  h2scope ca show --confdir ~/.h2scope-work
      another configuration directory's CA

exit status: 0 shown, 2 for a usage error,
{_DAMAGED}.
""",
    "export": f"""\
examples:
  h2scope ca export > h2scope-ca.pem          PEM on stdout
  h2scope ca export -o h2scope-ca.der         DER (from the suffix): Android
  h2scope ca export --format p12 -o ca.p12
      PKCS#12 trust store (the certificate only: no key, no password)

exit status: 0 written, 2 for a usage error (an -o FILE that cannot be written,
DER or PKCS#12 to a terminal),
{_DAMAGED}.
""",
    "install-hints": f"""\
examples:
  h2scope ca install-hints        steps for every platform and tool
  h2scope ca install-hints --proxy http://192.0.2.10:8080
      for a proxy on another machine

The examples use the address h2scope run listens on with the config file (the
first regular or upstream mode's, else listen.host/listen.port).

exit status: 0 printed, 2 for a usage error or a bad config file,
{_DAMAGED}.
""",
    "regenerate": """\
examples:
  h2scope ca regenerate           shows the current CA and asks first
  h2scope ca regenerate --yes     no question (scripts)

Every trust store that holds the old CA must then be updated (the command lists
them); cached leaf certificates are deleted, and a running proxy keeps signing
with the old CA until it is restarted.

exit status: 0 replaced, 1 when the answer was no, 2 with no terminal to ask
on and no --yes (nothing is replaced), or for a usage error.
""",
    "import": """\
examples:
  h2scope ca import ~/.mitmproxy/mitmproxy-ca.pem
      certificate and key in one file (mitmproxy's CA)
  h2scope ca import corp-ca.pem corp-ca-key.pem --yes
      the key in a file of its own; no question (scripts)

The pair is checked first: the key unencrypted (openssl pkey -in KEY -out
plain.pem removes a passphrase) and the certificate's, the certificate a CA
and not expired. Cached leaf certificates are deleted; a running proxy keeps
signing with the old CA until it is restarted.

exit status: 0 imported, 1 when the answer was no, 2 when CERT or KEY cannot be
read or used (not a CA, an encrypted key, a key not the certificate's: nothing
is replaced), with no terminal to ask on and no --yes, or for a usage error.
""",
}


def register(
    sub: argparse._SubParsersAction[argparse.ArgumentParser], common: argparse.ArgumentParser
) -> None:
    """Add ``h2scope ca ...`` to the command line."""
    ca = sub.add_parser(
        "ca",
        allow_abbrev=False,
        parents=[common],
        help="the certificate authority: path, show, export, install-hints, regenerate, "
        "import",
        description=textwrap.fill("Manage the CA that signs h2scope's intercepting "
                                  "certificates. It is created in the configuration "
                                  "directory on first use.", width=79),
        epilog=EPILOGS["ca"],
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    ca.set_defaults(func=_usage(ca))
    actions = ca.add_subparsers(dest="ca_action", metavar="ACTION")

    def action(name: str, func: Handler, help_text: str) -> argparse.ArgumentParser:
        parser = actions.add_parser(name, parents=[common], help=help_text,
                                    description=textwrap.fill(help_text[0].upper()
                                                              + help_text[1:] + ".",
                                                              width=79),
                                    allow_abbrev=False,
                                    epilog=EPILOGS[name],
                                    formatter_class=argparse.RawDescriptionHelpFormatter)
        parser.set_defaults(func=func)
        return parser

    action("path", cmd_path, "print the CA certificate's path")
    action("show", cmd_show, "print the CA's subject, fingerprints, SPKI hash and validity")
    export = action("export", cmd_export, "write the CA certificate as PEM, DER or PKCS#12")
    export.add_argument(
        "--format",
        choices=FORMATS,
        default=None,
        help="pem (default), der, or p12 (certificate only, no key, no password); "
        "guessed from the -o suffix when omitted",
    )
    export.add_argument(
        "-o", "--output", metavar="FILE", help="write to FILE (mode 0644) instead of stdout"
    )
    hints = action(
        "install-hints", cmd_install_hints, "print copy-pasteable steps to trust the CA"
    )
    hints.add_argument(
        "--proxy",
        metavar="URL",
        default=None,
        help="the proxy address used in examples (default: where the config file says "
        "h2scope run listens, the first regular or upstream mode's address, else "
        f"{DEFAULT_PROXY_URL})",
    )
    hints.add_argument(
        "--config", metavar="FILE",
        help="config file whose listen address the examples use (default: "
        "<confdir>/config.yaml if present)",
    )
    regen = action(
        "regenerate",
        cmd_regenerate,
        "replace the CA with a new one (every trust store must then be updated)",
    )
    regen.add_argument("-y", "--yes", action="store_true", help="do not ask for confirmation")
    imp = action(
        "import",
        cmd_import,
        "use an existing CA (an organisation's, or mitmproxy's mitmproxy-ca.pem) instead of "
        "h2scope's own",
    )
    imp.add_argument("cert", metavar="CERT", type=Path,
                     help="PEM file with the CA certificate (and its key, if KEY is not given)")
    imp.add_argument("key", metavar="KEY", type=Path, nargs="?",
                     help="PEM file with the CA's unencrypted private key (default: CERT)")
    imp.add_argument("-y", "--yes", action="store_true", help="do not ask for confirmation")


def cmd_path(args: argparse.Namespace) -> int:
    """``h2scope ca path``: the certificate's path, alone on stdout."""
    ca = _load(args)
    if ca is None:
        return EXIT_FAILURE
    print(ca.cert_path)
    return EXIT_OK


def cmd_show(args: argparse.Namespace) -> int:
    """``h2scope ca show``."""
    ca = _load(args)
    if ca is None:
        return EXIT_FAILURE
    cert = ca.cert
    rows = [
        ("Certificate", str(ca.cert_path)),
        ("Subject", cert.subject.rfc4514_string()),
        ("Serial", serial_hex(cert.serial_number)),
        ("Not before", f"{cert.not_valid_before_utc:%Y-%m-%d %H:%M:%S} UTC"),
        ("Not after", f"{cert.not_valid_after_utc:%Y-%m-%d %H:%M:%S} UTC"),
        ("Key", _describe_key(ca)),
        ("SHA-256 fingerprint", ca.fingerprint),
        ("SHA-1 fingerprint", colon_hex(hashlib.sha1(ca.cert_der).digest())),
        ("SPKI SHA-256 (base64)", ca.spki_hash),
    ]
    width = max(len(label) for label, _ in rows)
    for label, value in rows:
        print(f"{label + ':':<{width + 1}} {value}")
    return EXIT_OK


def cmd_export(args: argparse.Namespace) -> int:
    """``h2scope ca export [--format pem|der|p12] [-o FILE]``."""
    output: str | None = args.output
    fmt: str | None = args.format
    if fmt is None:
        suffix = Path(output).suffix.lower() if output and output != "-" else ""
        fmt = _SUFFIX_FORMATS.get(suffix, "pem")
    to_stdout = output is None or output == "-"
    if to_stdout and fmt != "pem" and sys.stdout.isatty():
        raise UsageError(f"refusing to write binary {fmt.upper()} to a terminal; use -o FILE")
    ca = _load(args)
    if ca is None:
        return EXIT_FAILURE
    data = export_bytes(ca, fmt)
    if to_stdout:
        sys.stdout.flush()
        sys.stdout.buffer.write(data)
        sys.stdout.buffer.flush()
        return EXIT_OK
    assert output is not None
    try:
        write_atomic(Path(output), data, mode=PUBLIC_FILE_MODE)
    except OSError as exc:  # (a bad -o: a usage error, as for export -o)
        raise UsageError(f"cannot write {output}: {exc.strerror or exc}") from None
    print(f"h2scope: wrote the CA certificate ({fmt.upper()}) to {output}", file=sys.stderr)
    return EXIT_OK


def export_bytes(ca: CertificateAuthority, fmt: str) -> bytes:
    """The CA certificate in *fmt*: ``pem``, ``der`` or ``p12``.

    The PKCS#12 file holds only the certificate — never the key — without a
    password, marked as a trusted certificate entry so Java's ``keytool``
    reads it as a trust store too.
    """
    if fmt == "pem":
        return ca.cert_pem
    if fmt == "der":
        return ca.cert_der
    if fmt == "p12":
        return pkcs12.serialize_java_truststore(
            [pkcs12.PKCS12Certificate(ca.cert, b"h2scope-ca")],
            serialization.NoEncryption(),
        )
    raise UsageError(f"unknown export format {fmt!r}; choose from {', '.join(FORMATS)}")


def cmd_install_hints(args: argparse.Namespace) -> int:
    """``h2scope ca install-hints``."""
    ca = _load(args)
    if ca is None:
        return EXIT_FAILURE
    proxy_url = args.proxy or configured_proxy_url(resolve_confdir(args), args.config)
    sys.stdout.write(render_hints(ca, proxy_url=proxy_url))
    return EXIT_OK


def configured_proxy_url(confdir: Path, config_file: str | None = None) -> str:
    """``http://HOST:PORT`` where ``h2scope run`` listens as an explicit proxy with
    this configuration (``--config FILE`` or ``<confdir>/config.yaml``): the first
    regular or upstream mode's address, else ``listen.*``; a wildcard address is
    reached through loopback, a port picked at start (0) is not known: the default.
    Raises :class:`~proxy.config.ConfigError` for a bad config file."""
    from proxy.commands.run import reachable
    from proxy.config import default_config_path, load_config
    from proxy.net.context import hostport
    from proxy.net.modes import ModeKind

    path = Path(config_file).expanduser() if config_file else default_config_path(confdir)
    config = load_config(path, {"confdir": confdir})
    host, port = config.listen_host, config.listen_port
    for mode in config.mode_specs:
        if mode.kind in (ModeKind.REGULAR, ModeKind.UPSTREAM):
            host, port = config.listen_address_of(mode)
            break
    if port == 0:
        return DEFAULT_PROXY_URL
    return f"http://{reachable(hostport(host, port))}"


def cmd_regenerate(args: argparse.Namespace) -> int:
    """``h2scope ca regenerate [--yes]``: asks unless ``--yes``; no tty and no --yes: exit 2."""
    confdir = resolve_confdir(args)
    old: CertificateAuthority | None = None
    old_problem: str | None = None
    try:
        with _warnings_to_stderr():
            old = load_ca(confdir) if _ca_present(confdir) else None
    except CAFileError as exc:
        old_problem = str(exc)
    if not args.yes:
        if not _interactive():
            raise UsageError(
                "ca regenerate replaces the CA that browsers and systems trust; "
                "there is no terminal to confirm on, so pass --yes"
            )
        if old is not None:
            print(f"Current CA: {old.cert.subject.rfc4514_string()}")
            print(f"  SHA-256:  {old.fingerprint}")
        elif old_problem is not None:
            print(f"Current CA is damaged: {old_problem}")
        print(
            "A new CA invalidates every trust store that holds the current one; "
            "each must be updated."
        )
        answer = input("Replace the h2scope CA? [y/N] ").strip().lower()
        if answer not in ("y", "yes"):
            print("Not replaced.")
            return EXIT_FAILURE
    new = regenerate_ca(confdir)
    discard_leaves(confdir)
    print(f"Replaced the h2scope CA in {confdir}.")
    if old is not None:
        print(f"  old SHA-256: {old.fingerprint}")
    print(f"  new SHA-256: {new.fingerprint}")
    print(f"  new SPKI:    {new.spki_hash}")
    print(
        "\nUpdate every trust store that held the old CA: remove it and add the new\n"
        f"certificate {new.cert_path}:\n"
        "  - system stores (Debian/Ubuntu update-ca-certificates, Fedora/RHEL update-ca-trust)\n"
        "  - Firefox and Chromium NSS databases (certutil)\n"
        "  - the macOS keychain, the Windows certificate store\n"
        "  - Java keystores (keytool)\n"
        "  - copies of the certificate made for curl, Python, Node or Go; variables that\n"
        "    point at the path above (SSL_CERT_FILE, NODE_EXTRA_CA_CERTS, ...) see the new\n"
        "    one automatically\n"
        "  - Chromium's --ignore-certificate-errors-spki-list: use the new SPKI above\n"
        "Steps: h2scope ca install-hints"
    )
    _running_note(confdir)
    return EXIT_OK


def _running_note(confdir: Path) -> None:
    """Say so when a proxy running with this confdir still signs with the old CA."""
    from certs.files import in_use

    if in_use(confdir):
        print(f"\nAn h2scope proxy is running with {confdir}: it signs with the old CA until "
              "you restart it (clients given the new certificate reject it meanwhile).")


def cmd_import(args: argparse.Namespace) -> int:
    """``h2scope ca import CERT [KEY] [--yes]``: replaces the CA (asks, as regenerate)."""
    confdir = resolve_confdir(args)
    key_file = args.key or args.cert
    try:
        cert_pem, key_pem = args.cert.read_bytes(), key_file.read_bytes()
    except OSError as exc:
        raise UsageError(f"ca import: cannot read {exc.filename}: {exc.strerror}") from None
    if _ca_present(confdir) and not args.yes:
        if not _interactive():
            raise UsageError("ca import replaces the CA h2scope uses now; there is no terminal "
                             "to confirm on, so pass --yes")
        answer = input(f"Replace the CA in {confdir} with {args.cert}? [y/N] ").strip().lower()
        if answer not in ("y", "yes"):
            print("Not replaced.")
            return EXIT_FAILURE
    try:
        if args.key is None and b"-----BEGIN" not in cert_pem:  # (DER: a .p12 or .pfx)
            cert_pem, key_pem = pem_from_pkcs12(cert_pem)
        ca = import_ca(confdir, cert_pem, key_pem)
    except CAImportError as exc:
        where = args.cert if args.key is None else f"{args.cert} and {args.key}"
        hint = ""
        if args.key is None and str(exc).startswith("no PEM private key"):
            hint = (f"; if the key is in a file of its own, give it too: h2scope ca import "
                    f"{args.cert} KEY.pem")
        raise UsageError(f"ca import: {where}: {exc}{hint}") from None
    discard_leaves(confdir)
    print(f"h2scope now signs with {ca.cert.subject.rfc4514_string()} ({confdir}).")
    print(f"  SHA-256: {ca.fingerprint}")
    print(f"  SPKI:    {ca.spki_hash}")
    print("Clients that trust this CA already trust h2scope's certificates.")
    _running_note(confdir)
    return EXIT_OK


def _usage(parser: argparse.ArgumentParser) -> Handler:
    def show_usage(_: argparse.Namespace) -> int:
        parser.print_help(sys.stderr)
        return EXIT_USAGE

    return show_usage


def _load(args: argparse.Namespace) -> CertificateAuthority | None:
    """The CA (created if absent), or ``None`` after printing why it cannot be loaded."""
    confdir = resolve_confdir(args)
    try:
        with _warnings_to_stderr():
            ca = load_or_create_ca(confdir)
    except CAFileError as exc:
        print(f"h2scope: {exc}", file=sys.stderr)
        return None
    except OSError as exc:
        print(f"h2scope: cannot create the CA in {confdir}: {exc}", file=sys.stderr)
        return None
    if ca.created:
        print(
            f"h2scope: created a new CA: {ca.cert_path} "
            "(trust it with the steps of `h2scope ca install-hints`)",
            file=sys.stderr,
        )
    return ca


def _ca_present(confdir: Path) -> bool:
    return any(path.exists() for path in ca_paths(confdir))


def _interactive() -> bool:
    try:
        return sys.stdin.isatty()
    except (AttributeError, ValueError):
        return False


def _describe_key(ca: CertificateAuthority) -> str:
    key = ca.key
    if isinstance(key, rsa.RSAPrivateKey):
        return f"RSA {key.key_size} bits"
    if isinstance(key, ec.EllipticCurvePrivateKey):
        return f"ECDSA {key.curve.name}"
    return type(key).__name__


@contextlib.contextmanager
def _warnings_to_stderr() -> Iterator[None]:
    """Show the CA's warnings as ``h2scope: warning: ...`` on the current stderr.

    Only around CLI actions, which are the whole program while they run.
    """
    logger = logging.getLogger("h2scope.certs")
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("h2scope: warning: %(message)s"))
    handler.setLevel(logging.WARNING)
    logger.addHandler(handler)
    propagate, logger.propagate = logger.propagate, False
    try:
        yield
    finally:
        logger.propagate = propagate
        logger.removeHandler(handler)

