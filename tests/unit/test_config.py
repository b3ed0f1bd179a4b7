"""Configuration: the example file mirrors the defaults, errors name key and line,
flags override the file."""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from proxy.cli import UsageError
from proxy.config import (
    Config,
    ConfigError,
    default_config_path,
    load_config,
)
from proxy.net.modes import ModeKind

REPO = Path(__file__).resolve().parents[2]
EXAMPLE = REPO / "config.example.yaml"


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "config.yaml"
    path.write_text(text, encoding="utf-8")
    return path


def error(tmp_path: Path, text: str, overrides: dict[str, object] | None = None,
          flag_names: dict[str, str] | None = None) -> ConfigError:
    with pytest.raises(ConfigError) as info:
        load_config(write(tmp_path, text), overrides or {}, flag_names=flag_names)
    return info.value


def dotted_fields(cls: type, prefix: str = "") -> Iterator[str]:
    for f in dataclasses.fields(cls):
        if not f.metadata.get("in_file", True):
            continue
        name = f"{prefix}{f.name}"
        default = f.default_factory() if f.default_factory is not dataclasses.MISSING \
            else f.default
        if dataclasses.is_dataclass(default):
            yield from dotted_fields(type(default), name + ".")
        else:
            yield name


# ------------------------------------------------------------ the example

def test_the_example_file_loads_to_exactly_the_defaults() -> None:
    assert load_config(EXAMPLE, {}) == Config()


def test_every_option_appears_in_the_example_file() -> None:
    data = yaml.safe_load(EXAMPLE.read_text(encoding="utf-8"))
    options = list(dotted_fields(Config))
    assert len(options) >= 17
    for dotted in options:
        node = data
        for part in dotted.split("."):
            assert isinstance(node, dict) and part in node, f"{dotted} missing from the example"
            node = node[part]


def test_every_option_in_the_example_has_a_comment_right_above_it() -> None:
    lines = EXAMPLE.read_text(encoding="utf-8").splitlines()
    options = 0
    for i, line in enumerate(lines):
        m = re.match(r"( *)[a-z_]+:(.*)$", line)
        if m is None:
            continue
        nested = (lines[i + 1] if i + 1 < len(lines) else "")[len(m.group(1)):]
        section = not m.group(2).strip() and nested.startswith("  ") and \
            not nested.lstrip().startswith("- ")
        if section:
            continue
        options += 1
        assert lines[i - 1].lstrip().startswith("#"), f"line {i + 1} has no comment: {line}"
    assert options == len(list(dotted_fields(Config)))


def test_no_file_and_no_overrides_gives_the_defaults() -> None:
    config = load_config(None, {})
    assert config == Config()
    assert config.listen_host == "127.0.0.1"
    assert config.listen_port == 8080
    assert config.modes == ("regular",)
    assert [m.kind for m in config.mode_specs] == [ModeKind.REGULAR]
    assert config.insecure is False and config.upstream_ca is None
    assert config.allow_remote is False
    assert config.ignore_hosts == () and config.proxyauth is None
    assert config.sslkeylogfile is None


def test_an_empty_file_gives_the_defaults(tmp_path: Path) -> None:
    assert load_config(write(tmp_path, "# nothing\n"), {}) == Config()


def test_the_config_is_immutable() -> None:
    config = Config()
    with pytest.raises(dataclasses.FrozenInstanceError):
        config.listen.port = 1  # type: ignore[misc]
    with pytest.raises(TypeError):
        config.ui.keymap["quit"] = "q"  # type: ignore[index]


# ------------------------------------------------------- errors in a file

def test_an_unknown_key_is_named_by_its_dotted_path_and_line(tmp_path: Path) -> None:
    exc = error(tmp_path, "listen:\n  host: 127.0.0.1\n  hots: 1\n")
    assert (exc.key, exc.line) == ("listen.hots", 3)
    assert str(exc) == (f"{tmp_path / 'config.yaml'}, line 3: listen.hots: unknown key; did you "
                        f"mean 'host'? known keys here: host, port, allow_remote")
    assert isinstance(exc, UsageError)


def test_an_unknown_top_level_key_suggests_the_closest(tmp_path: Path) -> None:
    exc = error(tmp_path, "modes: [regular]\nsslkeylog: x\n")
    assert (exc.key, exc.line) == ("sslkeylog", 2)
    assert "did you mean 'sslkeylogfile'?" in str(exc)


def test_a_sections_key_written_flat_is_shown_nested(tmp_path: Path) -> None:
    """listen_port: suggested 'listen' (the section), not its key."""
    for flat in ("listen_port: 9000\n", "listen.port: 9000\n"):
        exc = error(tmp_path, flat)
        assert "listen.port is written nested: 'listen:' on one line, '  port: …' " \
            "indented under it" in str(exc), str(exc)
    exc = error(tmp_path, "record-max-data-bytes: 10\n")
    assert "record.max_data_bytes is written nested" in str(exc), str(exc)


def test_a_wrong_type_names_the_key_line_and_expected_type(tmp_path: Path) -> None:
    exc = error(tmp_path, "listen:\n  port: '8080'\n")
    assert (exc.key, exc.line) == ("listen.port", 2)
    assert "expected an integer, got the string '8080'" in str(exc)
    exc = error(tmp_path, "upstream:\n  insecure: 1\n")
    assert "upstream.insecure: expected true or false, got the number 1" in str(exc)
    exc = error(tmp_path, "listen: 8080\n")
    assert (exc.key, exc.line) == ("listen", 1)
    assert "expected a mapping of options, got the number 8080" in str(exc)
    exc = error(tmp_path, "record:\n  max_data_bytes: true\n")
    assert "expected an integer or null, got true" in str(exc)


def test_a_bad_value_names_the_accepted_values(tmp_path: Path) -> None:
    exc = error(tmp_path, "ui:\n  theme: solarized\n")
    assert (exc.key, exc.line) == ("ui.theme", 2)
    assert "accepted: auto, dark, light" in str(exc)
    exc = error(tmp_path, "log:\n  level: verbose\n")
    assert "accepted: debug, info, warning, error, critical" in str(exc)
    exc = error(tmp_path, "listen:\n  port: 65536\n")
    assert "accepted: 0-65535" in str(exc)
    exc = error(tmp_path, "record:\n  max_data_bytes: -1\n")
    assert "accepted: an integer >= 0 or null" in str(exc)
    exc = error(tmp_path, "proxyauth: alice\n")
    assert "expected USER:PASS" in str(exc)
    exc = error(tmp_path, "proxyauth: 'alice:'\n")
    assert "the password of 'alice' is empty" in str(exc)


def test_a_bad_list_item_is_named_by_its_index_and_its_own_line(tmp_path: Path) -> None:
    exc = error(tmp_path, "ignore_hosts:\n  - example\\.com\n  - '(unclosed'\n")
    assert (exc.key, exc.line) == ("ignore_hosts[1]", 3)
    assert "is not a valid regular expression" in str(exc)
    exc = error(tmp_path, "modes:\n  - regular\n  - transparent\n")
    assert (exc.key, exc.line) == ("modes[1]", 3)
    assert "unknown mode 'transparent': use regular, socks5, reverse:https://" in str(exc)
    exc = error(tmp_path, "ignore_hosts: [1]\n")
    assert (exc.key, exc.line) == ("ignore_hosts[0]", 1)


def test_keymap_entries_must_be_strings(tmp_path: Path) -> None:
    exc = error(tmp_path, "ui:\n  keymap:\n    quit: q\n    help: 1\n")
    assert (exc.key, exc.line) == ("ui.keymap.help", 4)
    assert load_config(write(tmp_path, "ui:\n  keymap: {quit: ctrl+q}\n"), {}) \
        .ui.keymap == {"quit": "ctrl+q"}


def test_a_key_given_to_two_actions_is_an_error_naming_both(tmp_path: Path) -> None:
    """``quit: "?"`` was accepted, and the help key then quit at once."""
    exc = error(tmp_path, "ui:\n  keymap:\n    quit: '?'\n")
    assert (exc.key, exc.line) == ("ui.keymap.quit", 3)
    assert "'?' is also the key of 'help': give ui.keymap.help another key" in str(exc)
    swapped = "ui:\n  keymap:\n    quit: '?'\n    help: q\n"
    assert load_config(write(tmp_path, swapped), {}).ui.keymap["help"] == "q"


def test_view_stops_on_a_config_file_with_a_mistake(tmp_path: Path,
                                                    capsys: pytest.CaptureFixture[str]
                                                    ) -> None:
    """view started with every default and no word when the keymap had a typo (run
    said what was wrong, exit 2)."""
    from proxy.cli import main

    confdir = tmp_path / "conf"
    confdir.mkdir()
    (confdir / "config.yaml").write_text("ui:\n  keymap:\n    quit: ctrl+xx\n")
    assert main(["--confdir", str(confdir), "view", str(tmp_path / "any.h2scope")]) == 2
    err = capsys.readouterr().err
    assert "line 3: ui.keymap.quit: 'ctrl+xx': 'xx' is not a key name" in err, err


def test_a_headless_filter_is_compiled_when_loading(tmp_path: Path) -> None:
    exc = error(tmp_path, "headless:\n  filter: 'type:DATUM'\n")
    assert (exc.key, exc.line) == ("headless.filter", 2)
    assert "unknown frame type 'DATUM' in 'type:DATUM' (column 6)" in str(exc)


def test_invalid_yaml_reports_the_line(tmp_path: Path) -> None:
    exc = error(tmp_path, "listen:\n  host: [127.0.0.1\nmodes: x\n")
    assert exc.line is not None and exc.line >= 2
    assert "not valid YAML" in str(exc)


def test_a_key_given_twice_is_an_error(tmp_path: Path) -> None:
    exc = error(tmp_path, "listen:\n  port: 1\n  port: 2\n")
    assert (exc.key, exc.line) == ("listen.port", 3)


def test_confdir_cannot_be_set_in_the_file(tmp_path: Path) -> None:
    exc = error(tmp_path, "confdir: /elsewhere\n")
    assert (exc.key, exc.line) == ("confdir", 1)
    assert "--confdir" in str(exc)


def test_a_missing_explicit_file_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="does not exist"):
        load_config(tmp_path / "nope.yaml", {})
    with pytest.raises(ConfigError, match=r"this is a directory: give the config file "
                       r"itself \(e\.g\. .*config\.yaml\)"):
        load_config(tmp_path, {})
    (tmp_path / "latin1.yaml").write_bytes(b"listen: {host: caf\xe9}\n")
    with pytest.raises(ConfigError, match="not UTF-8 text"):
        load_config(tmp_path / "latin1.yaml", {})


def test_a_top_level_list_is_rejected(tmp_path: Path) -> None:
    exc = error(tmp_path, "- regular\n")
    assert "expected a mapping of options, got a list" in str(exc)


# ---------------------------------------------------- cross-field rules

def test_a_non_loopback_host_needs_allow_remote(tmp_path: Path) -> None:
    exc = error(tmp_path, "listen:\n  host: 0.0.0.0\n")
    assert (exc.key, exc.line) == ("listen.host", 2)
    assert "--allow-remote" in str(exc)
    config = load_config(write(tmp_path, "listen:\n  host: 0.0.0.0\n  allow_remote: true\n"), {})
    assert config.listen_host == "0.0.0.0" and not config.listen_is_loopback
    for host in ("127.0.0.1", "127.1.2.3", "::1", "localhost"):
        assert load_config(None, {"listen.host": host}).listen_is_loopback


def test_a_listen_host_must_be_an_address(tmp_path: Path) -> None:
    exc = error(tmp_path, "listen:\n  host: my-laptop\n")
    assert "is not an IP address or 'localhost'" in str(exc)
    # Host names are case-insensitive; a mode's own address may take port 0 (a free
    # one), as -p 0 does.
    config = load_config(write(tmp_path, "listen: {host: LOCALHOST}\n"
                                         "modes: [regular, 'socks5@127.0.0.1:0']\n"), {})
    assert config.listen_host == "localhost" and config.listen_is_loopback
    assert config.listen_address_of(config.mode_specs[1]) == ("127.0.0.1", 0)


def test_two_modes_on_one_port_are_rejected_with_a_fix(tmp_path: Path) -> None:
    exc = error(tmp_path, "modes: [regular, socks5]\n")
    assert exc.key == "modes[1]"
    assert "e.g. socks5@8081" in str(exc)
    config = load_config(write(tmp_path, "modes: [regular, socks5@1080]\n"), {})
    assert [config.listen_address_of(m) for m in config.mode_specs] == [
        ("127.0.0.1", 8080), ("127.0.0.1", 1080)]
    config = load_config(write(tmp_path, "modes: [regular, socks5@127.0.0.2:8080]\n"), {})
    assert config.listen_address_of(config.mode_specs[1]) == ("127.0.0.2", 8080)


def test_an_upstream_ca_file_must_exist(tmp_path: Path) -> None:
    exc = error(tmp_path, "upstream:\n  ca_file: missing.pem\n")
    assert (exc.key, exc.line) == ("upstream.ca_file", 2)
    assert str(tmp_path / "missing.pem") in str(exc)


def test_config_errors_name_the_file_and_line_not_a_flag_nobody_gave(tmp_path: Path) -> None:
    """confdir in the file was blamed on --confdir (which every command passes);
    a missing ui.protosets file on --protoset."""
    exc = error(tmp_path, "listen: {port: 9000}\nconfdir: /elsewhere\n",
                {"confdir": tmp_path}, {"confdir": "--confdir"})
    assert (exc.key, exc.line, exc.flag) == ("confdir", 2, None)
    exc = error(tmp_path, "ui:\n  protosets: [nope.pb]\n")
    assert exc.key == "ui.protosets[0]" and exc.line is not None and exc.flag is None
    assert "nope.pb does not exist" in str(exc)


def test_an_upstream_ca_file_must_hold_certificates(tmp_path: Path) -> None:
    """Each upstream connection loads it: a file OpenSSL cannot read is an error at
    start, not a failure of every intercepted connection."""
    (tmp_path / "ca.pem").write_text("not a certificate\n")
    exc = error(tmp_path, "upstream:\n  ca_file: ca.pem\n")
    assert (exc.key, exc.line) == ("upstream.ca_file", 2)
    assert "holds no certificate OpenSSL can read" in str(exc)
    assert "-----BEGIN CERTIFICATE-----" in str(exc)


def test_relative_paths_in_the_file_are_relative_to_the_file(tmp_path: Path) -> None:
    from tests.helpers.tls_files import make_self_signed

    make_self_signed(tmp_path).cert.rename(tmp_path / "ca.pem")
    config = load_config(write(tmp_path, "upstream: {ca_file: ca.pem}\nrecord: {file: out.h2c}\n"
                                         "sslkeylogfile: ~/keys.log\n"), {})
    assert config.upstream_ca == tmp_path / "ca.pem"
    assert config.record.file == tmp_path / "out.h2c"
    assert config.sslkeylogfile == Path("~/keys.log").expanduser()


# ------------------------------------------------------------- overrides

def test_flags_override_the_file(tmp_path: Path) -> None:
    path = write(tmp_path, "listen:\n  port: 9000\n  host: ::1\nmodes: [socks5]\n"
                           "headless: {quiet: true}\n")
    config = load_config(path, {"listen.port": 9100, "modes": ["regular"], "listen.host": None})
    assert config.listen_port == 9100
    assert config.listen_host == "::1"  # None means "flag not given"
    assert config.modes == ("regular",)
    assert config.headless.quiet is True


def test_an_invalid_flag_value_names_the_flag_and_the_key(tmp_path: Path) -> None:
    exc = error(tmp_path, "listen:\n  port: 9000\n", {"listen.port": 70000},
                {"listen.port": "--listen-port"})
    assert (exc.key, exc.line, exc.flag) == ("listen.port", None, "--listen-port")
    assert str(exc) == ("--listen-port (listen.port): 70000 is not a port number; "
                        "accepted: 0-65535 (0 picks a free port)")
    exc = error(tmp_path, "", {"modes": ["regular", "reverse:ftp://x"]}, {"modes": "--mode"})
    assert exc.key == "modes[1]" and exc.flag == "--mode"


@pytest.mark.parametrize(("text", "overrides", "key", "message"), [
    ('listen:\n  port: "18601"\n', {"listen.port": 18600}, "listen.port",
     "expected an integer, got the string '18601'"),
    ("upstream:\n  insecure: 1\n", {"upstream.insecure": True}, "upstream.insecure",
     "expected true or false, got the number 1"),
    ("headless:\n  format: xml\n", {"headless.format": "text"}, "headless.format",
     "'xml' is not accepted"),
    ("modes:\n  - transparent\n", {"modes": ["regular"]}, "modes[0]",
     "unknown mode 'transparent'"),
    ("ignore_hosts:\n  - '(unclosed'\n", {"ignore_hosts": ["^a:"]}, "ignore_hosts[0]",
     "not a valid regular expression"),
    ("listen: 5\n", {"listen.port": 9000}, "listen",
     "expected a mapping of options, got the number 5"),
])
def test_a_flag_does_not_hide_a_bad_value_in_the_file(
        tmp_path: Path, text: str, overrides: dict[str, object], key: str,
        message: str) -> None:
    names = {k: "--flag" for k in overrides}
    exc = error(tmp_path, text, overrides, names)
    assert (exc.key, exc.line, exc.flag) == (key, 1 if key == "listen" else 2, None)
    assert exc.source == str(tmp_path / "config.yaml")
    assert message in str(exc)
    if key == "listen.port":  # the merged value is still what is used
        ok = load_config(write(tmp_path, "listen:\n  port: 18601\n"), overrides)
        assert ok.listen_port == 18600


def test_a_missing_path_in_the_file_that_a_flag_replaces_is_not_looked_for(
        tmp_path: Path) -> None:
    from tests.helpers.tls_files import make_self_signed

    ca = make_self_signed(tmp_path).cert
    path = write(tmp_path, "upstream:\n  ca_file: nothere.pem\n")
    assert load_config(path, {"upstream.ca_file": str(ca)}).upstream_ca == ca
    exc = error(tmp_path, "upstream:\n  ca_file: 5\n", {"upstream.ca_file": str(ca)})
    assert (exc.key, exc.line) == ("upstream.ca_file", 2)  # a wrong type still is an error


def test_a_listen_address_flag_that_no_mode_uses_is_an_error(tmp_path: Path) -> None:
    exc = error(tmp_path, "", {"listen.port": 18760, "modes": ["socks5@18761"]},
                {"listen.port": "--listen-port", "modes": "--mode"})
    assert (exc.key, exc.flag) == ("listen.port", "--listen-port")
    assert str(exc) == ("--listen-port (listen.port): 18760 would not be used: every mode "
                        "has its own @PORT (socks5@18761); drop this flag, or add a mode "
                        "without @PORT to listen on it")
    exc = error(tmp_path, "modes: ['regular@127.0.0.1:18761']\n", {"listen.host": "::1"},
                {"listen.host": "--listen-host"})
    assert (exc.key, exc.flag) == ("listen.host", "--listen-host")
    assert "every mode has its own @HOST:PORT" in str(exc)
    # One mode without @PORT uses it; from the file, listen.port is only a default.
    assert load_config(None, {"listen.port": 18760, "modes": ["regular", "socks5@18761"]}) \
        .listen_port == 18760
    path = write(tmp_path, "listen: {port: 18760, host: '::1'}\nmodes: ['socks5@18761']\n")
    assert load_config(path, {}).modes == ("socks5@18761",)
    assert load_config(None, {"listen.host": "::1", "modes": ["socks5@18761"]}) \
        .listen_host == "::1"  # @PORT alone keeps listen.host


def test_relative_paths_from_flags_are_relative_to_the_working_directory(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    config = load_config(None, {"record.file": "rec.h2c", "confdir": tmp_path / "conf"})
    assert config.record.file == tmp_path / "rec.h2c"
    assert config.confdir == tmp_path / "conf"


def test_the_default_config_path_is_used_only_when_it_exists(tmp_path: Path) -> None:
    assert default_config_path(tmp_path) is None
    write(tmp_path, "listen: {port: 1}\n")
    assert default_config_path(tmp_path) == tmp_path / "config.yaml"


# ----------------------------------------------------------------- modes

@pytest.mark.parametrize("text", [
    "regular", "regular@8081", "socks5@1080", "reverse:https://example.com",
    "reverse:http://127.0.0.1:8000/@9000", "reverse:https://[::1]:8443",
])
def test_valid_modes_are_kept_as_written(tmp_path: Path, text: str) -> None:
    config = load_config(None, {"modes": [text]})
    assert config.modes == (text,)
    assert config.mode_specs[0].spec == text


@pytest.mark.parametrize(("text", "message"), [
    ("transparent", "unknown mode 'transparent'"),
    ("reverse:ftp://example.com", "unsupported scheme 'ftp'"),
    ("reverse:example.com", "not an absolute URI"),
    ("reverse:https://example.com:0", "invalid port"),
    ("reverse:https://exa mple.com", "invalid authority"),
    ("reverse:https://example.com/api", "a reverse target has no path"),
    ("socks5@x", "bad listen address after '@'"),
    ("regular@70000", "invalid port 70000"),
])
def test_invalid_modes_are_named_by_index_with_the_reason(
        tmp_path: Path, text: str, message: str) -> None:
    exc = error(tmp_path, f"modes:\n  - regular@9000\n  - '{text}'\n")
    assert (exc.key, exc.line) == ("modes[1]", 3)
    assert message in str(exc)


def test_a_mode_on_a_remote_address_needs_allow_remote(tmp_path: Path) -> None:
    exc = error(tmp_path, "modes: [regular, 'socks5@0.0.0.0:1080']\n")
    assert exc.key == "modes[1]" and "allow_remote" in str(exc)
    config = load_config(write(tmp_path, "modes: [regular, 'socks5@0.0.0.0:1080']\n"
                                         "listen: {allow_remote: true}\n"), {})
    assert config.modes[1] == "socks5@0.0.0.0:1080"


def test_an_empty_mode_list_is_rejected(tmp_path: Path) -> None:
    exc = error(tmp_path, "modes: []\n")
    assert (exc.key, exc.line) == ("modes", 1)
    assert "needs at least one mode" in str(exc)


def test_keymap_action_ids_are_checked_against_the_ui(tmp_path: Path) -> None:
    exc = error(tmp_path, "ui:\n  keymap:\n    quitt: x\n")
    assert (exc.key, exc.line) == ("ui.keymap.quitt", 3)
    assert "did you mean 'quit'?" in str(exc)
    assert load_config(write(tmp_path, "ui:\n  keymap: {save_session: ctrl+w}\n"), {}) \
        .ui.keymap == {"save_session": "ctrl+w"}


def test_allow_hosts_and_ignore_hosts_exclude_each_other(tmp_path: Path) -> None:
    exc = error(tmp_path, "ignore_hosts: ['^a:']\nallow_hosts: ['^b:']\n")
    assert exc.key == "allow_hosts" and "cannot both be set" in str(exc)
    exc = error(tmp_path, "allow_hosts:\n  - '(unclosed'\n")
    assert exc.key == "allow_hosts[0]" and "not a valid regular expression" in str(exc)
    config = load_config(write(tmp_path, "allow_hosts: ['^api\\.example\\.com:']\n"), {})
    assert config.allow_hosts == ("^api\\.example\\.com:",)


def test_fail_on_takes_a_severity(tmp_path: Path) -> None:
    exc = error(tmp_path, "headless:\n  fail_on: fatal\n")
    assert (exc.key, exc.line) == ("headless.fail_on", 2)
    assert "accepted: error, warning, info, none" in str(exc)
    assert load_config(write(tmp_path, "headless: {fail_on: Warning}\n"), {}).headless.fail_on \
        == "warning"
    # none, as check --fail-on takes it: never (a file's setting turned off by a flag)
    assert load_config(write(tmp_path, "headless: {fail_on: error}\n"),
                       {"headless.fail_on": "none"}).headless.fail_on is None


def test_keymap_key_names_are_checked(tmp_path: Path) -> None:
    """A key the terminal can never send would leave the action without a key (a
    keymap 'quit: ctrl+nonsense+key' left the UI with no way to quit)."""
    exc = error(tmp_path, "ui:\n  keymap:\n    quit: ctrl+nonsense+key\n")
    assert (exc.key, exc.line) == ("ui.keymap.quit", 3)
    assert "nonsense is not a modifier" in str(exc)
    exc = error(tmp_path, "ui:\n  keymap:\n    help: pgdn\n")
    assert "did you mean 'pagedown'?" in str(exc)
    assert load_config(write(tmp_path, "ui:\n  keymap: {quit: 'ctrl+x,f10', help: '?'}\n"),
                       {}).ui.keymap == {"quit": "ctrl+x,f10", "help": "?"}


def test_yaml_aliases_may_not_stand_for_billions_of_values(tmp_path: Path) -> None:
    """The "billion laughs": each line nine aliases of the one before. Reading the
    key lines followed every alias (9⁹ nodes: memory grew past 1.6 GB, no output).
    Aliases that stand for a few values are read as ever."""
    lines = ['a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]']
    for prev, name in zip("abcdefgh", "bcdefghi", strict=True):
        lines.append(f"{name}: &{name} [" + ",".join([f"*{prev}"] * 9) + "]")
    exc = error(tmp_path, "\n".join(lines) + "\n")
    assert exc.key is not None and exc.key in "bcdefghi"
    assert "its YAML aliases (*name) expand to more than 100,000 values" in str(exc)
    path = tmp_path / "anchors.yaml"
    path.write_text("ignore_hosts: [&internal '^internal\\.', *internal, '^cdn\\.']\n")
    assert load_config(path).ignore_hosts == ("^internal\\.", "^internal\\.", "^cdn\\.")


@pytest.mark.parametrize("text", ["listen: " + "[" * 3000 + "]" * 3000 + "\n",
                                  "{a: " * 3000 + "1" + "}" * 3000 + "\n",
                                  "listen: " + "[" * 40 + "]" * 40 + "\n"])
def test_yaml_nested_too_deep_is_a_message_not_a_recursion_error(
        tmp_path: Path, text: str) -> None:
    exc = error(tmp_path, text)
    assert "nested" in str(exc) and "three levels deep at most" in str(exc)


def test_a_config_file_with_a_password_that_others_may_read_is_warned_about(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """docs/proxy.md says to keep proxyauth in the config file (mode 0600) to keep it
    out of ps: a 0644 one loaded without a word."""
    path = tmp_path / "auth.yaml"
    path.write_text('proxyauth: "ops:s3cret-pass"\nupstream:\n  auth: "u:p"\n')
    path.chmod(0o644)
    load_config(path)
    err = capsys.readouterr().err
    assert f"h2scope: warning: {path} holds proxyauth and upstream.auth (a password) and " \
        f"others may read it (mode 0644): chmod 600 {path}" in err
    assert "s3cret" not in err
    path.chmod(0o600)
    load_config(path)
    assert capsys.readouterr().err == ""
    plain = tmp_path / "plain.yaml"
    plain.write_text("listen:\n  port: 9000\n")
    plain.chmod(0o644)
    load_config(plain)
    assert capsys.readouterr().err == ""
