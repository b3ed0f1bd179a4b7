"""``h2scope run``: configuration errors exit 2 naming the key, flags reach the
config, plain ``h2scope`` means ``h2scope run``."""

from __future__ import annotations

import argparse
import contextlib
import os
import queue
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from proxy import cli
from proxy.commands import run as run_cmd
from tests.helpers import procs
from tests.helpers.h2server import ServerThread
from tests.helpers.tls_files import make_self_signed


@pytest.fixture
def confdir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    path = tmp_path / "conf"
    monkeypatch.setenv("H2SCOPE_HOME", str(path))
    monkeypatch.delenv("SSLKEYLOGFILE", raising=False)
    return path


def exit_and_stderr(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    try:
        code = cli.main(argv)
    except SystemExit as exc:  # argparse's own usage errors
        code = int(exc.code or 0)
    return code, capsys.readouterr().err


def parse(argv: list[str]) -> argparse.Namespace:
    return cli.build_parser().parse_args(["run", *argv])


def test_an_unknown_key_in_the_default_config_file_exits_2_naming_key_and_line(
        confdir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    confdir.mkdir()
    (confdir / "config.yaml").write_text("listen:\n  port: 9000\n  hots: x\n")
    code, err = exit_and_stderr(["run", "--headless"], capsys)
    assert code == 2
    assert f"{confdir / 'config.yaml'}, line 3: listen.hots: unknown key" in err


def test_a_bad_value_in_an_explicit_config_file_exits_2(
        confdir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "other.yaml"
    path.write_text("ui:\n  theme: neon\n")
    code, err = exit_and_stderr(["run", "--config", str(path)], capsys)
    assert code == 2
    assert "line 2: ui.theme: 'neon' is not accepted; accepted: auto, dark, light" in err


def test_a_missing_explicit_config_file_exits_2(
        confdir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, err = exit_and_stderr(["run", "--config", str(tmp_path / "nope.yaml")], capsys)
    assert code == 2
    assert "nope.yaml: the config file does not exist" in err


def test_a_bad_flag_value_exits_2_naming_the_flag_and_key(
        confdir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, err = exit_and_stderr(["run", "-p", "70000"], capsys)
    assert (code, err) == (2, "h2scope: --listen-port (listen.port): 70000 is not a port "
                              "number; accepted: 0-65535 (0 picks a free port)\n")
    code, err = exit_and_stderr(["run", "--mode", "regular", "--mode", "reverse:ftp://x"],
                                capsys)
    assert code == 2 and "--mode (modes[1]):" in err
    code, err = exit_and_stderr(["run", "--filter", "type:DATUM"], capsys)
    assert code == 2 and "--filter (headless.filter): invalid filter: unknown frame type " \
        "'DATUM' in 'type:DATUM' (column 6)" in err
    code, err = exit_and_stderr(["run", "--upstream-ca", "/nonexistent/ca.pem"], capsys)
    assert code == 2 and "--upstream-ca (upstream.ca_file): /nonexistent/ca.pem does not " \
        "exist" in err


def test_a_non_loopback_address_needs_allow_remote(
        confdir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, err = exit_and_stderr(["run", "--listen-host", "0.0.0.0"], capsys)
    assert code == 2
    assert "--listen-host (listen.host): 0.0.0.0 is not a loopback address" in err
    assert "--allow-remote" in err


def test_a_flag_that_argparse_rejects_exits_2(
        confdir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, err = exit_and_stderr(["run", "-p", "eighty"], capsys)
    assert code == 2 and "invalid int value: 'eighty'" in err


def test_a_mistyped_command_gets_the_one_meant(capsys: pytest.CaptureFixture[str]) -> None:
    """Option typos got 'did you mean', command typos argparse's list only."""
    code, err = exit_and_stderr(["ruin"], capsys)
    assert code == 2 and "unknown command 'ruin' (did you mean run?)" in err, err
    code, err = exit_and_stderr(["zzz"], capsys)
    assert code == 2 and "invalid choice: 'zzz' (choose from 'run'" in err, err


def test_an_abbreviated_option_is_refused_not_taken_for_the_whole_one(
        confdir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """``run --insec`` silently meant --insecure (upstream verification off): no
    parser of any command takes a prefix for an option."""
    _, extras = cli.build_parser().parse_known_args(["run", "--insec"])
    assert extras == ["--insec"]
    # (the remote address stops the run, should --insec be taken)
    code, err = exit_and_stderr(["run", "--insec", "--listen-host", "192.0.2.1"], capsys)
    assert code == 2
    assert "unrecognized arguments: --insec (did you mean --insecure?)" in err
    code, err = exit_and_stderr(["--confd", str(confdir), "ca", "path"], capsys)
    assert code == 2
    parsers = [cli.build_parser()]
    seen = 0
    while parsers:
        parser = parsers.pop()
        assert parser.allow_abbrev is False, parser.prog
        seen += 1
        for action in parser._actions:
            if isinstance(action, argparse._SubParsersAction):
                parsers.extend(action.choices.values())
    assert seen > len(cli.COMMAND_MODULES) + 5  # (every command, ca's actions too)


def test_no_command_means_run(confdir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, err = exit_and_stderr(["-p", "70000"], capsys)
    assert code == 2 and "--listen-port (listen.port)" in err
    code, err = exit_and_stderr(["--confdir", str(confdir), "--listen-host", "::"], capsys)
    assert code == 2 and "listen.host" in err
    assert cli._without_command([])
    assert cli._without_command(["--confdir", "x"])
    assert not cli._without_command(["--confdir", "x", "ca", "path"])
    assert not cli._without_command(["decode", "00"])
    assert not cli._without_command(["--help"])


def test_version_and_top_level_help_still_work(capsys: pytest.CaptureFixture[str]) -> None:
    code, _ = exit_and_stderr(["--version"], capsys)
    assert code == 0
    code, _ = exit_and_stderr(["--help"], capsys)
    assert code == 0


def test_help_answers_the_common_questions(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        cli.main(["run", "--help"])
    out = capsys.readouterr().out
    for needle in ("-x http://127.0.0.1:8080", "--mode reverse:https://", "h2scope ca path",
                   "h2scope ca install-hints", "--listen-port", "--ignore-hosts",
                   "docs/configuration.md", "docs/filters.md"):
        assert needle in out, needle


def test_where_the_log_goes_by_default_is_said_alike_everywhere(
        capsys: pytest.CaptureFixture[str]) -> None:
    """With no log.file the log goes to stderr headless, but to
    <confdir>/h2scope.log while the UI runs (ui/launch.py): the help, the example
    config and docs/configuration.md say both, none says plain "stderr"."""
    repo = Path(__file__).resolve().parents[2]
    with pytest.raises(SystemExit):
        cli.main(["run", "--help"])
    help_text = " ".join(capsys.readouterr().out.split())
    assert "(default: stderr when headless, <confdir>/h2scope.log while the UI runs)" \
        in help_text
    example = (repo / "config.example.yaml").read_text()
    comment = " ".join(example.split("\nlog:\n", 1)[1].split("file: null")[0]
                       .replace("#", " ").split())
    assert "null: stderr when headless, <confdir>/h2scope.log while the UI runs" in comment
    row = next(line for line in (repo / "docs/configuration.md").read_text().splitlines()
               if line.startswith("| `log.file`"))
    assert "stderr when headless, `<confdir>/h2scope.log` while the UI runs" in row
    assert "instead of stderr" not in row


def test_flags_reach_the_config(confdir: Path, tmp_path: Path) -> None:
    confdir.mkdir()
    (confdir / "config.yaml").write_text("listen: {port: 9000}\nheadless: {quiet: true}\n"
                                         "upstream: {insecure: true}\n")
    config = run_cmd.build_config(parse([
        "-p", "9100", "--mode", "regular", "--mode", "socks5@1080", "--ignore-hosts", "a",
        "--ignore-hosts", "b", "--proxyauth", "u:p", "--record", str(tmp_path / "r.h2c"),
        "--filter", "type:DATA", "--no-insecure", "--sslkeylogfile", "keys.log",
        "--log-level", "debug", "--annotate"]))
    assert config.listen_port == 9100
    assert config.modes == ("regular", "socks5@1080")
    assert config.ignore_hosts == ("a", "b")
    assert config.proxyauth == "u:p"
    assert config.record.file == tmp_path / "r.h2c"
    assert config.headless.filter == "type:DATA"
    assert config.headless.quiet is True  # from the file: -q not given
    assert config.headless.annotate is True
    assert config.insecure is False
    assert config.sslkeylogfile == Path.cwd() / "keys.log"
    assert config.log.level == "debug"
    assert config.confdir == confdir
    # ... and a flag turns the file's quiet off again, and its annotate
    assert run_cmd.build_config(parse(["--no-quiet"])).headless.quiet is False
    (confdir / "config.yaml").write_text("headless: {annotate: true}\n")
    assert run_cmd.build_config(parse([])).headless.annotate is True
    assert run_cmd.build_config(parse(["--no-annotate"])).headless.annotate is False


def test_sslkeylogfile_comes_from_the_environment_unless_the_flag_is_given(
        confdir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SSLKEYLOGFILE", str(tmp_path / "env.log"))
    assert run_cmd.build_config(parse([])).sslkeylogfile == tmp_path / "env.log"
    flag = run_cmd.build_config(parse(["--sslkeylogfile", str(tmp_path / "flag.log")]))
    assert flag.sslkeylogfile == tmp_path / "flag.log"


def test_a_key_log_is_made_private_and_one_that_cannot_be_written_is_a_usage_error(
        confdir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """The key log decrypts every connection: created 0600 whatever the umask (an
    existing one is made 0600 too), and a path that cannot be written stops the
    start with exit 2 instead of a banner that says it is written."""
    import stat

    from certs.files import private_append

    old = os.umask(0o022)
    try:
        fresh, existing = tmp_path / "fresh.keys", tmp_path / "existing.keys"
        existing.write_text("CLIENT_RANDOM aa bb\n")
        existing.chmod(0o644)
        for path in (fresh, existing):
            private_append(path)
            assert stat.S_IMODE(path.stat().st_mode) == 0o600
        assert existing.read_text() == "CLIENT_RANDOM aa bb\n"  # (appended to, not emptied)
    finally:
        os.umask(old)
    missing = tmp_path / "no-such-dir" / "keys.log"
    assert cli.main(["run", "--headless", "--confdir", str(confdir), "-p", "0",
                 "--sslkeylogfile", str(missing)]) == 2
    err = capsys.readouterr().err
    assert f"--sslkeylogfile (sslkeylogfile): the directory {missing.parent} does not " \
        f"exist: create it first (mkdir -p {missing.parent})" in err
    unwritable = tmp_path / "ro"
    unwritable.mkdir(mode=0o500)
    if os.geteuid() != 0:  # (root writes anywhere)
        assert cli.main(["run", "--headless", "--confdir", str(confdir), "-p", "0",
                         "--sslkeylogfile", str(unwritable / "k.log")]) == 2
        assert f"cannot write the TLS key log {unwritable / 'k.log'}" in \
            capsys.readouterr().err
    script = tmp_path / "one.yaml"
    script.write_text("h2scope_script: 1\nframes: []\n")
    assert cli.main(["replay", str(script), "--target", "https://127.0.0.1:9",
                     "--sslkeylogfile", str(tmp_path)]) == 2
    assert "give a file name, not a directory" in capsys.readouterr().err


def test_the_start_names_the_config_file_and_what_turned_the_key_log_on(
        confdir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """$SSLKEYLOGFILE, set for browsers and curl, writes every key of both legs:
    the start says so, where from and how to turn it off; and which file it
    read its configuration from."""
    assert run_cmd.start_lines(parse([]), run_cmd.build_config(parse([]))) == []
    env = tmp_path / "env.log"
    monkeypatch.setenv("SSLKEYLOGFILE", str(env))
    args = parse([])
    assert run_cmd.start_lines(args, run_cmd.build_config(args)) == [
        f"h2scope: writing TLS secrets of both legs to {env} (from $SSLKEYLOGFILE; "
        "--no-sslkeylogfile turns it off)"]
    args = parse(["--no-sslkeylogfile"])
    assert run_cmd.start_lines(args, run_cmd.build_config(args)) == []
    args = parse(["--sslkeylogfile", str(tmp_path / "flag.log")])
    assert run_cmd.start_lines(args, run_cmd.build_config(args)) == [
        f"h2scope: writing TLS secrets of both legs to {tmp_path / 'flag.log'} "
        "(from --sslkeylogfile)"]
    monkeypatch.delenv("SSLKEYLOGFILE")
    confdir.mkdir()
    (confdir / "config.yaml").write_text(f"sslkeylogfile: {tmp_path / 'file.log'}\n")
    args = parse([])
    assert run_cmd.start_lines(args, run_cmd.build_config(args)) == [
        f"h2scope: config: {confdir / 'config.yaml'}",
        f"h2scope: writing TLS secrets of both legs to {tmp_path / 'file.log'} (from the "
        "config file; --no-sslkeylogfile turns it off)"]


def test_with_the_key_log_off_the_upstream_leg_ignores_the_environment_too(
        confdir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """ssl.create_default_context() reads $SSLKEYLOGFILE by itself: --no-sslkeylogfile
    must turn the server leg's key log off as well."""
    from certs.store import CertStore
    from proxy.events import EventBus
    from proxy.net.context import ProxyState

    monkeypatch.setenv("SSLKEYLOGFILE", str(tmp_path / "env.log"))
    config = run_cmd.build_config(parse(["--no-sslkeylogfile"]))
    state = ProxyState(config, EventBus(), CertStore(confdir))  # type: ignore[arg-type]
    assert state.upstream_context(["h2"]).keylog_filename is None
    config = run_cmd.build_config(parse([]))
    state = ProxyState(config, EventBus(), CertStore(confdir))  # type: ignore[arg-type]
    assert state.upstream_context(["h2"]).keylog_filename == str(tmp_path / "env.log")


def test_no_flags_unset_what_the_config_file_sets(
        confdir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    """--no-record, --no-proxyauth and --no-sslkeylogfile turn off for one run what
    the config file (or $SSLKEYLOGFILE) turns on; with the value flag, a usage error."""
    confdir.mkdir()
    (confdir / "config.yaml").write_text(
        f"record: {{file: {tmp_path / 'r.h2scope'}}}\nproxyauth: 'u:p'\n"
        f"sslkeylogfile: {tmp_path / 'k.log'}\n")
    config = run_cmd.build_config(parse([]))
    assert (config.record.file, config.proxyauth, config.sslkeylogfile) == (
        tmp_path / "r.h2scope", "u:p", tmp_path / "k.log")
    config = run_cmd.build_config(parse(["--no-record", "--no-proxyauth",
                                         "--no-sslkeylogfile"]))
    assert (config.record.file, config.proxyauth, config.sslkeylogfile) == (None, None, None)
    (confdir / "config.yaml").unlink()
    monkeypatch.setenv("SSLKEYLOGFILE", str(tmp_path / "env.log"))
    assert run_cmd.build_config(parse(["--no-sslkeylogfile"])).sslkeylogfile is None
    code, err = exit_and_stderr(["run", "--record", "a", "--no-record"], capsys)
    assert code == 2 and "--no-record: not allowed with argument --record" in err


def test_output_files_in_a_missing_directory_are_config_errors_with_their_line(
        confdir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """record.file, log.file and sslkeylogfile are checked alike when the
    configuration loads: a missing directory or a directory given as the file is a
    usage error (exit 2) naming the file's line or the flag, and nothing is created."""
    path = tmp_path / "c.yaml"
    missing = tmp_path / "nope"
    for key, text in (("record.file", f"record:\n  file: {missing / 'r.h2scope'}\n"),
                      ("log.file", f"log:\n  file: {missing / 'h2scope.log'}\n"),
                      ("sslkeylogfile", f"# keys\nsslkeylogfile: {missing / 'k.log'}\n")):
        path.write_text(text)
        code, err = exit_and_stderr(["run", "--headless", "-p", "0", "--config", str(path)],
                                    capsys)
        assert code == 2
        assert f"{path}, line 2: {key}: the directory {missing} does not exist: create it " \
            f"first (mkdir -p {missing})" in err
    assert not missing.exists()
    code, err = exit_and_stderr(["run", "--headless", "-p", "0", "--log-file", str(tmp_path)],
                                capsys)
    assert code == 2
    assert f"--log-file (log.file): {tmp_path} is a directory: give the path of a file" in err


def test_recording_over_a_capture_says_so_at_start(tmp_path: Path) -> None:
    """Run again from the shell's history, --record FILE replaces the last capture:
    a start-up note says so with its size; a new or empty file gets no note."""
    old = tmp_path / "s.h2scope"
    assert run_cmd.replacing_note(old) is None
    old.write_bytes(b"x" * 12_345)
    assert run_cmd.replacing_note(old) == \
        f"h2scope: note: recording replaces {old} (12.1 KiB were there)"
    old.write_bytes(b"")
    assert run_cmd.replacing_note(old) is None
    assert run_cmd.replacing_note(None) is None


def test_a_capture_another_recorder_holds_gets_no_replacing_note(
        confdir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A second recorder on a file being written is refused ("another program is
    writing it"): no note that it replaces the file may come before that."""
    from certs.files import create_private

    busy = tmp_path / "busy.h2scope"
    fd = create_private(busy, exclusive=True)  # (the first recorder's lock)
    try:
        os.write(fd, b"x" * 292)
        assert run_cmd.replacing_note(busy) is None
        code, err = exit_and_stderr(["run", "--headless", "-p", "0", "--record", str(busy)],
                                    capsys)
        assert code == 1  # (the proxy cannot start: not a usage error)
        assert "another program is writing it" in err
        assert "recording replaces" not in err
        assert busy.stat().st_size == 292  # (left as it was)
    finally:
        os.close(fd)
    assert run_cmd.replacing_note(busy) == \
        f"h2scope: note: recording replaces {busy} (292 B were there)"


def test_the_confdir_flag_chooses_the_config_file(tmp_path: Path,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("H2SCOPE_HOME", raising=False)
    (tmp_path / "config.yaml").write_text("listen: {port: 7777}\n")
    config = run_cmd.build_config(parse(["--confdir", str(tmp_path)]))
    assert config.listen_port == 7777 and config.confdir == tmp_path


def test_the_banner_names_addresses_the_ca_and_a_curl_line(confdir: Path) -> None:
    config = run_cmd.build_config(parse([]))
    lines = run_cmd.banner(config, [("regular", "127.0.0.1:8080")], Path("/c/ca.pem"))
    assert lines == [
        "h2scope: regular proxy listening on 127.0.0.1:8080",
        "h2scope: CA certificate: /c/ca.pem",
        "h2scope: try: curl --cacert /c/ca.pem -x http://127.0.0.1:8080 https://example.com/"]
    # Listening on every address: the line to try goes through loopback.
    lines = run_cmd.banner(config, [("regular", "0.0.0.0:8080")], Path("/c/ca.pem"))
    assert lines[0] == "h2scope: regular proxy listening on 0.0.0.0:8080"
    assert lines[-1].endswith("-x http://127.0.0.1:8080 https://example.com/")


@pytest.fixture
def busy_port() -> Iterator[int]:
    """A port in use: a run that wrongly gets as far as listening stops at once (exit 1)."""
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        yield busy.getsockname()[1]


def test_a_flag_does_not_hide_a_bad_value_in_the_config_file(
        confdir: Path, tmp_path: Path, busy_port: int,
        capsys: pytest.CaptureFixture[str]) -> None:
    for text, flags, message in [
            ('listen:\n  port: "18601"\n', [],
             "line 2: listen.port: expected an integer, got the string '18601'"),
            ("upstream:\n  insecure: 1\n", ["--insecure"],
             "line 2: upstream.insecure: expected true or false, got the number 1"),
            ("headless:\n  format: xml\n", ["--format", "text"],
             "line 2: headless.format: 'xml' is not accepted; accepted: text, jsonl")]:
        path = tmp_path / "bad.yaml"
        path.write_text(text)
        code, err = exit_and_stderr(["run", "--headless", "--config", str(path),
                                     "-p", str(busy_port), *flags], capsys)
        assert (code, err) == (2, f"h2scope: {path}, {message}\n")


def test_a_listen_port_no_mode_uses_is_a_usage_error(
        confdir: Path, busy_port: int, capsys: pytest.CaptureFixture[str]) -> None:
    code, err = exit_and_stderr(["run", "--headless", "-p", "18760",
                                 "--mode", f"socks5@{busy_port}"], capsys)
    assert (code, err) == (2, "h2scope: --listen-port (listen.port): 18760 would not be used: "
                              f"every mode has its own @PORT (socks5@{busy_port}); drop this "
                              "flag, or add a mode without @PORT to listen on it\n")
    config = run_cmd.build_config(parse(["-p", "18760", "--mode", "regular",
                                         "--mode", "socks5@18761"]))
    assert config.listen_port == 18760


def test_a_remote_listener_is_warned_about_once_in_h2scopes_format(
        confdir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    # 192.0.2.1 (TEST-NET-1) is on no interface: the bind fails at once, after the
    # proxy core has logged its own warning about the address.
    code, err = exit_and_stderr(["run", "--headless", "--listen-host", "192.0.2.1",
                                 "--allow-remote", "-p", "18770"], capsys)
    assert code == 1 and "no network interface has this address" in err
    warnings = [line for line in err.splitlines() if "listening on 192.0.2.1" in line]
    assert warnings == [
        "h2scope: warning: listening on 192.0.2.1 (regular), not loopback: anyone who can "
        "reach this address can use the proxy and read what goes through it, and no "
        "proxyauth is set (--proxyauth USER:PASS requires credentials)"], err
    assert " WARNING " not in err
    config = run_cmd.build_config(parse(["--allow-remote", "--proxyauth", "u:p", "--mode",
                                         "regular", "--mode", "socks5@0.0.0.0:18771"]))
    assert run_cmd.remote_warning(config) == (
        "h2scope: warning: listening on 0.0.0.0 (socks5@0.0.0.0:18771), not loopback: anyone "
        "who can reach this address can use the proxy and read what goes through it")
    assert run_cmd.remote_warning(run_cmd.build_config(parse([]))) is None


def test_with_proxyauth_the_curl_line_names_the_user_and_curl_asks_the_password(
        confdir: Path) -> None:
    config = run_cmd.build_config(parse(["--proxyauth", "alice:s3cret"]))
    ca = Path("/c/ca.pem")
    assert run_cmd.banner(config, [("regular", "127.0.0.1:8080")], ca)[-1] == (
        "h2scope: try: curl --cacert /c/ca.pem -x http://127.0.0.1:8080 --proxy-user alice "
        "https://example.com/")
    assert run_cmd.banner(config, [("socks5", "127.0.0.1:1080")], ca)[-1] == (
        "h2scope: try: curl --cacert /c/ca.pem --socks5-hostname 127.0.0.1:1080 "
        "--proxy-user alice https://example.com/")
    reverse = run_cmd.banner(config, [("reverse:https://example.com", "127.0.0.1:8443")], ca)
    assert "--proxy-user" not in reverse[-1]  # reverse modes ask for no credentials
    assert not any("s3cret" in line for line in run_cmd.banner(
        config, [("upstream:http://corp:3128", "127.0.0.1:8080")], ca))
    odd = run_cmd.build_config(parse(["--proxyauth", "al ice:x"]))
    assert "--proxy-user 'al ice' " in run_cmd.banner(odd, [("regular", "a:1")], ca)[-1]


def test_an_address_in_use_message_names_the_address_and_the_fix() -> None:
    import errno

    msg = run_cmd.address_in_use_message("127.0.0.1", 8080, OSError(errno.EADDRINUSE, "x"))
    assert msg.startswith("cannot listen on 127.0.0.1:8080: the address is already in use")
    assert "-p PORT" in msg
    msg = run_cmd.address_in_use_message("::1", 80, OSError(errno.EACCES, "x"))
    assert msg.startswith("cannot listen on [::1]:80: permission denied")


# ------------------------------------------------ the real proxy, as a process

class H2scopeProcess:
    """``h2scope ...`` as a subprocess; stderr lines are collected by a thread."""

    def __init__(self, argv: list[str], env: dict[str, str]) -> None:
        self.proc = subprocess.Popen([sys.executable, "-m", "proxy", *argv], env=env,
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        self.err_lines: queue.Queue[str] = queue.Queue()
        self.stderr: list[str] = []
        self._out: list[str] = []
        # One reader thread per pipe: communicate() would race the stderr pump.
        threading.Thread(target=self._pump, daemon=True).start()
        self._out_thread = threading.Thread(target=self._pump_out, daemon=True)
        self._out_thread.start()

    def _pump_out(self) -> None:
        assert self.proc.stdout is not None
        self._out.append(self.proc.stdout.read())

    def _pump(self) -> None:
        assert self.proc.stderr is not None
        for line in self.proc.stderr:
            self.err_lines.put(line)
        self.err_lines.put("")

    def wait_for_line(self, pattern: str, timeout: float = 20.0) -> re.Match[str]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                line = self.err_lines.get(timeout=max(0.01, deadline - time.monotonic()))
            except queue.Empty:
                break
            if line == "":
                break
            self.stderr.append(line)
            m = re.search(pattern, line)
            if m:
                return m
        raise AssertionError(f"no stderr line matching {pattern!r}; got {self.stderr!r}, "
                             f"exit status {self.proc.poll()}")

    def finish(self, sig: int | None = signal.SIGINT, timeout: float = 20.0) -> tuple[int, str]:
        if sig is not None:
            self.proc.send_signal(sig)
        self.proc.wait(timeout=timeout)
        self._out_thread.join(timeout=timeout)
        out = "".join(self._out)
        while True:
            try:
                line = self.err_lines.get(timeout=5)
            except queue.Empty:
                break
            if line == "":
                break
            self.stderr.append(line)
        return self.proc.returncode, out

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        with contextlib.suppress(Exception):
            self.proc.wait(timeout=5)


@pytest.fixture
def origin(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[ServerThread, Path]]:
    cert = make_self_signed(tmp_path_factory.mktemp("origin"))
    server = ServerThread(cert.cert, cert.key)
    try:
        yield server, cert.cert
    finally:
        server.close()


@pytest.fixture
def h2scope(tmp_path: Path) -> Iterator[Callable[..., H2scopeProcess]]:
    started: list[H2scopeProcess] = []
    env = {k: v for k, v in os.environ.items() if k != "SSLKEYLOGFILE"}
    env["H2SCOPE_HOME"] = str(tmp_path / "conf")

    def start(*argv: str) -> H2scopeProcess:
        proc = H2scopeProcess(list(argv), env)
        started.append(proc)
        return proc

    try:
        yield start
    finally:
        for proc in started:
            proc.kill()


def curl_through(port: int, ca: Path, url: str) -> str:
    result = procs.run([procs.require("curl"), "-sS", "--http2", "--cacert", str(ca),
                        "-x", f"http://127.0.0.1:{port}", url])
    assert result.returncode == 0, result.stderr.decode()
    return result.stdout.decode()


@pytest.mark.peer
def test_headless_run_prints_frames_of_a_curl_request_and_stops_cleanly_on_sigint(
        h2scope: Callable[..., H2scopeProcess], origin: tuple[ServerThread, Path],
        tmp_path: Path) -> None:
    server, origin_ca = origin
    proc = h2scope("run", "--headless", "-p", "0", "--upstream-ca", str(origin_ca))
    port = int(proc.wait_for_line(r"regular proxy listening on 127\.0\.0\.1:(\d+)").group(1))
    ca = Path(proc.wait_for_line(r"CA certificate: (\S+)").group(1))
    proc.wait_for_line(r"try: curl --cacert \S+ -x http://127\.0\.0\.1:\d+ https://")
    assert ca.is_file() and ca.parent == tmp_path / "conf"
    assert curl_through(port, ca, f"https://localhost:{server.port}/hello") == "hello /hello\n"
    code, out = proc.finish(signal.SIGINT)
    assert code == 0, proc.stderr
    assert re.search(r"#1\s+→\s+1 HEADERS \[END_STREAM,END_HEADERS\] len=\d+  GET "
                     r"localhost:\d+/hello", out)
    assert re.search(r"#1\s+←\s+1 DATA \[\] len=13  13 bytes", out)
    assert re.search(r"#1\s+→\s+0 SETTINGS", out) and re.search(r"#1\s+←\s+0 SETTINGS", out)
    assert "Traceback" not in "".join(proc.stderr)


@pytest.mark.peer
def test_a_second_sigint_while_stopping_keeps_the_summary_and_the_recording(
        h2scope: Callable[..., H2scopeProcess], origin: tuple[ServerThread, Path],
        tmp_path: Path) -> None:
    """An impatient second Ctrl-C (or `timeout -s INT` signalling the group) raised
    KeyboardInterrupt during shutdown: exit 130, no 'recorded to', no summary."""
    server, origin_ca = origin
    capture = tmp_path / "twice.h2scope"
    proc = h2scope("run", "--headless", "-q", "-p", "0", "--upstream-ca", str(origin_ca),
                   "--record", str(capture))
    port = int(proc.wait_for_line(r"regular proxy listening on 127\.0\.0\.1:(\d+)").group(1))
    ca = Path(proc.wait_for_line(r"CA certificate: (\S+)").group(1))
    curl_through(port, ca, f"https://localhost:{server.port}/a")
    proc.proc.send_signal(signal.SIGINT)
    proc.wait_for_line(r"stopping: closing connections")
    if proc.proc.poll() is None:
        proc.proc.send_signal(signal.SIGINT)
    code, _ = proc.finish(sig=None)
    err = "".join(proc.stderr)
    assert code == 0, err
    assert f"recorded to {capture}" in err and "HTTP/2 frames" in err, err
    # Back to back (a few ms apart: the loop's teardown had let one through as
    # KeyboardInterrupt, exit 130, and a traceback on the closed wakeup pipe).
    for gap in (0.0, 0.005, 0.012):
        proc = h2scope("run", "--headless", "-q", "-p", "0", "--upstream-ca", str(origin_ca))
        proc.wait_for_line(r"regular proxy listening on 127\.0\.0\.1:(\d+)")
        proc.proc.send_signal(signal.SIGINT)
        time.sleep(gap)
        with contextlib.suppress(ProcessLookupError):
            proc.proc.send_signal(signal.SIGINT)
        code, _ = proc.finish(sig=None)
        err = "".join(proc.stderr)
        assert code == 0 and "findings: none" in err and "Traceback" not in err \
            and "Exception ignored" not in err, (gap, code, err)


@pytest.mark.peer
def test_plain_h2scope_runs_the_proxy_with_a_filter_and_stops_on_sigterm(
        h2scope: Callable[..., H2scopeProcess], origin: tuple[ServerThread, Path]) -> None:
    server, origin_ca = origin
    proc = h2scope("-p", "0", "--upstream-ca", str(origin_ca), "--filter",
                   "type:DATA status:200")
    proc.wait_for_line(r"not a terminal: running headless")
    port = int(proc.wait_for_line(r"listening on 127\.0\.0\.1:(\d+)").group(1))
    ca = Path(proc.wait_for_line(r"CA certificate: (\S+)").group(1))
    curl_through(port, ca, f"https://localhost:{server.port}/a")
    code, out = proc.finish(signal.SIGTERM)
    assert code == 0, proc.stderr
    frames = re.findall(r"[→←]\s+\d+ [A-Z_]+ \[", out)
    assert frames == ["←     1 DATA [", "←     1 DATA ["], out  # the 200 stream's DATA only
    assert "opened from" in out and "closed by" in out  # connection lines always shown


@pytest.mark.peer
def test_a_listen_port_in_use_exits_1_naming_the_address_and_the_fix(
        h2scope: Callable[..., H2scopeProcess]) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        proc = h2scope("run", "--headless", "-p", str(port))
        code, _ = proc.finish(sig=None)
    assert code == 1
    err = "".join(proc.stderr)
    assert f"cannot listen on 127.0.0.1:{port}: the address is already in use" in err
    assert "choose another port with -p PORT" in err
    assert "Traceback" not in err


def test_a_config_error_in_a_process_exits_2_naming_the_key(
        h2scope: Callable[..., H2scopeProcess], tmp_path: Path) -> None:
    (tmp_path / "bad.yaml").write_text("headless:\n  filtr: x\n")
    proc = h2scope("run", "--config", str(tmp_path / "bad.yaml"))
    code, _ = proc.finish(sig=None)
    assert code == 2
    assert "line 2: headless.filtr: unknown key; did you mean 'filter'?" in "".join(proc.stderr)


@pytest.mark.peer
def test_record_writes_a_private_capture_that_replays_to_the_live_frames(
        h2scope: Callable[..., H2scopeProcess], origin: tuple[ServerThread, Path],
        tmp_path: Path) -> None:
    from proxy.capture.replay import replay_observer
    from proxy.observe.events import FrameObserved

    server, origin_ca = origin
    capture = tmp_path / "session.cap"
    proc = h2scope("run", "--headless", "-p", "0", "--upstream-ca", str(origin_ca),
                   "--record", str(capture))
    port = int(proc.wait_for_line(r"regular proxy listening on 127\.0\.0\.1:(\d+)").group(1))
    ca = Path(proc.wait_for_line(r"CA certificate: (\S+)").group(1))
    for path in ("/one", "/two"):
        assert curl_through(port, ca, f"https://localhost:{server.port}{path}") == \
            f"hello {path}\n"
    code, out = proc.finish(signal.SIGINT)
    assert code == 0, proc.stderr
    assert any("recorded to" in line for line in proc.stderr)
    assert capture.stat().st_mode & 0o777 == 0o600
    live = re.findall(r"#(\d+)\s+([→←])\s+(\d+) ([A-Z_]+) ", out)
    replayed = [(str(conn), ev.direction.arrow, str(ev.frame.stream_id), ev.frame.type_name)
                for conn, ev in replay_observer(capture) if isinstance(ev, FrameObserved)]
    assert replayed == live and len(live) >= 10
    paths = [dict(ev.block.headers).get(":path") for _, ev in replay_observer(capture)
             if isinstance(ev, FrameObserved) and ev.block is not None]
    assert "/one" in paths and "/two" in paths


def test_upstream_auth_without_an_upstream_mode_is_warned_about(
        confdir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    import socket

    with socket.socket() as busy:  # the run stops at once: its port is taken
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        code, err = exit_and_stderr(["run", "--headless", "--confdir", str(confdir),
                                     "--upstream-auth", "alice:secret", "-p", str(port)], capsys)
    assert code == 1 and "already in use" in err
    assert "warning: upstream.auth (--upstream-auth) is set but no mode is " \
        "upstream:http://HOST:PORT" in err


def test_the_huffman_tables_are_built_before_the_proxy_listens(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """Built lazily, they made the first connection's first header block ~60 ms slow
    (a first request through a fresh proxy took 67 ms, the next ones 2 ms)."""
    import asyncio

    from proxy.config import load_config
    from proxy.observe import huffman

    monkeypatch.setattr(huffman, "_next", [])
    seen: list[int] = []

    def fake_run(coro: object) -> int:
        seen.append(len(huffman._next))
        coro.close()  # type: ignore[attr-defined]
        return 0

    monkeypatch.setattr(asyncio, "run", fake_run)
    assert run_cmd._serve(load_config(None)) == 0
    assert seen and seen[0] == 257 * 256


def test_log_files_are_private_and_the_uis_does_not_open_up_the_confdir(
        tmp_path: Path) -> None:
    """The live UI logs to <confdir>/h2scope.log: it created a missing confdir with
    the umask (0755) before the CA store could make it 0700, and the log 0644."""
    import logging
    import stat
    from types import SimpleNamespace

    from ui.launch import prepare_logging

    logger = logging.getLogger("h2scope")
    saved = (logger.handlers[:], logger.propagate, logger.level)
    old = os.umask(0o022)
    try:
        confdir = tmp_path / "fresh-conf"
        config = SimpleNamespace(log=SimpleNamespace(file=None, level="warning"),
                                 confdir=confdir)
        path = prepare_logging(config)
        assert path == confdir / "h2scope.log"
        assert stat.S_IMODE(confdir.stat().st_mode) == 0o700
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
    finally:
        os.umask(old)
        for handler in logger.handlers:
            handler.close()
        logger.handlers[:], logger.propagate, logger.level = saved


def test_a_record_file_that_is_a_link_is_refused_and_what_it_points_to_is_kept(
        confdir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """In a shared directory a link planted under the name the user records to
    would make h2scope truncate and chmod the file it points to."""
    victim = tmp_path / "notes.txt"
    victim.write_text("the user's own file\n")
    victim.chmod(0o644)
    for name, target in (("link.h2scope", victim), ("dangling.h2scope", tmp_path / "x")):
        link = tmp_path / name
        link.symlink_to(target)
        code, err = exit_and_stderr(["run", "--headless", "-p", "0", "--record", str(link)],
                                    capsys)
        assert code == 2, err
        assert f"cannot record to {link}: it is a symbolic link" in err
        assert "recording replaces" not in err
        assert link.is_symlink()
    assert victim.read_text() == "the user's own file\n"
    assert victim.stat().st_mode & 0o777 == 0o644
    assert not (tmp_path / "x").exists()


def test_private_files_are_not_written_through_links_but_system_ones_are(
        tmp_path: Path) -> None:
    from certs.files import create_private, private_append

    victim = tmp_path / "victim"
    victim.write_bytes(b"keep")
    link = tmp_path / "keys.log"
    link.symlink_to(victim)
    for make in (create_private, private_append):
        with pytest.raises(OSError, match="it is a symbolic link"):
            make(link)  # type: ignore[operator]
    assert victim.read_bytes() == b"keep"
    # /dev/stdout is a link to whatever the shell redirected to: written, not refused.
    out = tmp_path / "redirected"
    r = subprocess.run([sys.executable, "-c",
                        "import os; from certs.files import create_private; "
                        "fd = create_private('/dev/stdout'); os.write(fd, b'capture'); "
                        "os.close(fd)"],
                       stdout=out.open("wb"), stderr=subprocess.PIPE,
                       cwd=Path(__file__).resolve().parents[2])
    assert r.returncode == 0, r.stderr
    assert out.read_bytes() == b"capture"


def test_headless_an_internal_errors_traceback_goes_to_a_log_file_not_the_terminal(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    import logging

    from proxy.config import Config

    logger = logging.getLogger("h2scope")
    saved = logger.handlers[:], logger.level, logger.propagate
    try:
        run_cmd._configure_logging(Config(confdir=tmp_path / "conf"))
        logging.getLogger("h2scope.proxy").warning("cannot accept new connections")
        assert not (tmp_path / "conf" / "h2scope.log").exists()  # (made when needed)
        try:
            raise UnicodeError("label empty or too long")
        except UnicodeError:
            logging.getLogger("h2scope.proxy").exception("[conn %d] internal error", 5)
        for h in logger.handlers:
            h.flush()
        err = capsys.readouterr().err
        log = tmp_path / "conf" / "h2scope.log"
        assert "cannot accept new connections" in err
        assert (f"ERROR h2scope.proxy: [conn 5] internal error: UnicodeError: label empty or "
                f"too long (the traceback is in {log})") in err
        assert "Traceback" not in err
        text = log.read_text()
        assert "[conn 5] internal error" in text and "Traceback (most recent call last)" in text
        assert "cannot accept" not in text
        assert log.stat().st_mode & 0o777 == 0o600
    finally:
        for h in logger.handlers:
            h.close()
        logger.handlers[:], logger.level, logger.propagate = saved  # type: ignore[assignment]


def test_the_start_warns_that_upstream_certificates_are_not_verified(
        confdir: Path, tmp_path: Path) -> None:
    args = parse(["--insecure"])
    (line,) = run_cmd.start_lines(args, run_cmd.build_config(args))
    assert line.startswith("h2scope: warning: upstream certificates are NOT verified "
                           "(--insecure): ")
    config_file = tmp_path / "c.yaml"
    config_file.write_text("upstream: {insecure: true}\n")
    args = parse(["--config", str(config_file)])
    lines = run_cmd.start_lines(args, run_cmd.build_config(args))
    assert "NOT verified (upstream.insecure)" in lines[-1]


def test_sigterm_ends_a_command_through_its_cleanup_with_status_143(
        monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    """Python's default SIGTERM ended a command at once: an export's or a replay's
    unfinished output stayed beside the target as a .part file. The command line
    turns it into SystemExit(143), which runs the command's finally blocks."""
    previous = signal.getsignal(signal.SIGTERM)
    monkeypatch.setattr(sys, "argv", ["h2scope", "decode", "000004080000000000000f0001"])
    try:
        assert cli.main() == 0
        assert signal.getsignal(signal.SIGTERM) is cli._terminated
        with pytest.raises(SystemExit) as raised:
            os.kill(os.getpid(), signal.SIGTERM)
            time.sleep(1)  # (the handler runs at the next bytecode)
        assert raised.value.code == 143
    finally:
        signal.signal(signal.SIGTERM, previous)
    capsys.readouterr()


def test_run_with_the_ui_opens_with_the_filter_given_on_the_command_line(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """``h2scope run --filter EXPR`` without --headless started the UI with no filter
    and said nothing, where ``view --filter`` applies it."""
    import ui.launch
    from proxy.cli import main

    given: list[str] = []

    def fake_run_live(config: object, *, initial_filter: str = "") -> int:
        given.append(initial_filter)
        return 0

    monkeypatch.setattr(ui.launch, "run_live", fake_run_live)
    monkeypatch.setattr(sys.stdin, "isatty", lambda: True)
    monkeypatch.setattr(sys.stdout, "isatty", lambda: True)
    confdir = str(tmp_path / "conf")
    assert main(["run", "--confdir", confdir, "-p", "0", "--filter", "-type:SETTINGS"]) == 0
    assert main(["run", "--confdir", confdir, "-p", "0"]) == 0
    assert given == ["-type:SETTINGS", ""]


def test_a_filtered_headless_run_that_printed_no_frame_says_so_at_the_stop() -> None:
    """Export and the UI say 'no frame matches' (with their typo hints); the live log
    had printed nothing for the whole run, and said nothing."""
    from types import SimpleNamespace

    from proxy.commands.run import event_filter, no_match_note
    from proxy.observe.connection import ConnectionObserver
    from proxy.observe.enums import CONNECTION_PREFACE, Direction
    from proxy.observe.events import FrameObserved

    settings = [e for e in ConnectionObserver().feed(
        Direction.C2S, CONNECTION_PREFACE + bytes([0, 0, 0, 4, 0, 0, 0, 0, 0]), 0.0)
        if isinstance(e, FrameObserved)]
    info = SimpleNamespace(conn_id=1, target="a:443", sni=None)
    accept = event_filter("status=404")
    assert not accept(settings[0], info)
    assert no_match_note("status=404", accept, 12, 0) == (
        "h2scope: no frame matched --filter 'status=404' (12 HTTP/2 frames seen) "
        "('status=404' is a search for those characters: did you mean status:404?)")
    assert "the connections were HTTP/1.x: a filter selects HTTP/2 frames" in \
        str(no_match_note("method:GET", event_filter("method:GET"), 0, 3))
    accept = event_filter("type:SETTINGS")
    assert accept(settings[0], info)
    assert no_match_note("type:SETTINGS", accept, 1, 0) is None
