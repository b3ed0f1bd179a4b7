"""``h2scope run``: configuration errors exit 2 naming the key, flags reach the
config, plain ``h2scope`` means ``h2scope run``."""

from __future__ import annotations

import argparse
from pathlib import Path

import pytest

from proxy import cli
from proxy.commands import run as run_cmd


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


def test_flags_reach_the_config(confdir: Path, tmp_path: Path) -> None:
    confdir.mkdir()
    (confdir / "config.yaml").write_text("listen: {port: 9000}\nheadless: {quiet: true}\n"
                                         "upstream: {insecure: true}\n")
    config = run_cmd.build_config(parse([
        "-p", "9100", "--mode", "regular", "--mode", "socks5@1080", "--ignore-hosts", "a",
        "--ignore-hosts", "b", "--proxyauth", "u:p", "--record", str(tmp_path / "r.h2c"),
        "--filter", "type:DATA", "--no-insecure", "--sslkeylogfile", "keys.log",
        "--log-level", "debug"]))
    assert config.listen_port == 9100
    assert config.modes == ("regular", "socks5@1080")
    assert config.ignore_hosts == ("a", "b")
    assert config.proxyauth == "u:p"
    assert config.record.file == tmp_path / "r.h2c"
    assert config.headless.filter == "type:DATA"
    assert config.headless.quiet is True  # from the file: -q not given
    assert config.insecure is False
    assert config.sslkeylogfile == Path.cwd() / "keys.log"
    assert config.log.level == "debug"
    assert config.confdir == confdir


def test_sslkeylogfile_comes_from_the_environment_unless_the_flag_is_given(
        confdir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SSLKEYLOGFILE", str(tmp_path / "env.log"))
    assert run_cmd.build_config(parse([])).sslkeylogfile == tmp_path / "env.log"
    flag = run_cmd.build_config(parse(["--sslkeylogfile", str(tmp_path / "flag.log")]))
    assert flag.sslkeylogfile == tmp_path / "flag.log"


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


def test_an_address_in_use_message_names_the_address_and_the_fix() -> None:
    import errno

    msg = run_cmd.address_in_use_message("127.0.0.1", 8080, OSError(errno.EADDRINUSE, "x"))
    assert msg.startswith("cannot listen on 127.0.0.1:8080: the address is already in use")
    assert "-p PORT" in msg
    msg = run_cmd.address_in_use_message("::1", 80, OSError(errno.EACCES, "x"))
    assert msg.startswith("cannot listen on [::1]:80: permission denied")
