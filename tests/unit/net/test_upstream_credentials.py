"""Credentials for the upstream proxy: refused in a mode's URL (where ``@`` is the
listening address's mark) without ever repeating the password, accepted in
``upstream.auth`` with an empty password; and what a 407's challenges mean."""

from __future__ import annotations

from pathlib import Path

import pytest

from proxy import cli
from proxy.config import ConfigError, load_config
from proxy.net import http1
from proxy.net.modes import ModeError, parse_mode

PASSWORDS = ("Secr3t", "1234", "p@ss:w0rd!")


@pytest.mark.parametrize("spec", [
    "upstream:http://corpuser:Secr3t@127.0.0.1:3128",
    "upstream:http://corpuser:p@ss:w0rd!@proxy.corp.example:8080",
    "upstream:http://corpuser:Secr3t@proxy.corp.example:8080@9000",
    "upstream:http://alice:1234@10.1.2.3:3128",  # (or a proxy alice:1234 at @10.1.2.3:3128)
    "upstream:http://alice@10.1.2.3:3128",  # (or a proxy alice:80 at @10.1.2.3:3128)
    "upstream:http://corpuser:@proxy.corp.example:3128",  # (an empty password)
    "reverse:https://corpuser:Secr3t@example.com",
])
def test_a_mode_url_with_credentials_is_refused_without_its_password(spec: str) -> None:
    with pytest.raises(ModeError) as info:
        parse_mode(spec)
    message = str(info.value)
    assert not any(p in message for p in PASSWORDS), message
    assert "credentials in the" in message and "not accepted" in message
    if spec.startswith("upstream:"):
        assert "--upstream-auth USER:PASS" in message


def test_a_listening_address_after_a_proxy_url_still_reads_as_one() -> None:
    for spec, listen in (("upstream:http://proxy.corp.example:3128@9000", (None, 9000)),
                         ("upstream:http://proxy.corp.example:3128@127.0.0.1:9000",
                          ("127.0.0.1", 9000)),
                         ("upstream:http://proxy:3128/@127.0.0.1:9000", ("127.0.0.1", 9000)),
                         ("upstream:http://proxy/@127.0.0.1:9000", ("127.0.0.1", 9000)),
                         ("upstream:http://localhost@127.0.0.1:9000", ("127.0.0.1", 9000)),
                         ("upstream:http://10.1.2.3:3128@127.0.0.1:9000", ("127.0.0.1", 9000)),
                         ("reverse:https://example.com@8443", (None, 8443))):
        mode = parse_mode(spec)
        assert (mode.listen_host, mode.listen_port) == listen, spec


def test_credentials_in_the_mode_flag_and_the_config_file_are_refused(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code = cli.main(["run", "--headless", "--confdir", str(tmp_path), "--mode",
                     "upstream:http://corpuser:Secr3t@127.0.0.1:3128"])
    err = capsys.readouterr().err
    assert code == 2 and "credentials in the proxy URL are not accepted" in err
    assert "Secr3t" not in err
    config = tmp_path / "c.yaml"
    config.write_text("modes: ['upstream:http://bob:pw0rd@127.0.0.1:3128']\n")
    with pytest.raises(ConfigError) as info:
        load_config(config, {})
    assert info.value.key == "modes[0]"
    assert "credentials in the proxy URL are not accepted" in str(info.value)
    assert "pw0rd" not in str(info.value)


def test_upstream_auth_may_have_an_empty_password_but_needs_a_user(tmp_path: Path) -> None:
    config = tmp_path / "c.yaml"
    config.write_text("upstream: {auth: 'corpuser:'}\n")
    assert load_config(config, {}).upstream_auth == "corpuser:"
    config.write_text("upstream: {auth: ':secret'}\n")
    with pytest.raises(ConfigError, match="expected USER:PASS"):
        load_config(config, {})
    config.write_text("proxyauth: 'alice:'\n")  # (h2scope's own: anyone would get in)
    with pytest.raises(ConfigError, match="the password of 'alice' is empty"):
        load_config(config, {})


def response(*challenges: str) -> http1.ResponseHead:
    head = "HTTP/1.1 407 Proxy Authentication Required\r\n" + "".join(
        f"Proxy-Authenticate: {c}\r\n" for c in challenges) + "\r\n"
    return http1.parse_response_head(head.encode())


def test_the_407_hint_says_when_the_proxy_wants_a_scheme_h2scope_does_not_speak() -> None:
    from proxy.net.upstream_proxy import auth_hint

    assert "it wants NTLM/Negotiate, which h2scope does not speak" in auth_hint(
        response("NTLM", "Negotiate"), "alice:secret")
    assert "cntlm or px" in auth_hint(response("Negotiate, NTLM"), None)
    assert auth_hint(response('Basic realm="Corp"', "NTLM"), "a:b") == \
        " (it refused the credentials of --upstream-auth)"
    assert auth_hint(response('Digest realm="x", qop="auth", Basic realm="y"'), None) \
        .startswith(" (it wants credentials: --upstream-auth USER:PASS")
    assert auth_hint(response(), None).startswith(" (it wants credentials")


def test_the_https_proxy_hint_is_given_unless_it_names_h2scope_itself(
        monkeypatch: pytest.MonkeyPatch) -> None:
    from proxy.net.upstream_proxy import env_proxy_hint

    for name in ("HTTPS_PROXY", "https_proxy", "HTTP_PROXY", "http_proxy"):
        monkeypatch.delenv(name, raising=False)
    assert env_proxy_hint([("127.0.0.1", 8080)]) is None
    monkeypatch.setenv("https_proxy", "http://localhost:8080")
    assert env_proxy_hint([("127.0.0.1", 8080)]) is None
    monkeypatch.setenv("HTTP_PROXY", "http://user:pw@proxy.corp.example:3128")
    hint = env_proxy_hint([("127.0.0.1", 8080)])
    assert hint == ("h2scope does not use $HTTP_PROXY for its own connections: to go through "
                    "that proxy, use --mode upstream:http://HOST:PORT")


def test_the_proxy_hint_names_the_variable_set_and_respects_no_proxy(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """$no_proxy exempts a host a client would reach directly anyway; a lower-case
    variable is named as it is set."""
    from proxy.net.upstream_proxy import env_proxy_hint

    for name in ("HTTPS_PROXY", "https_proxy", "HTTP_PROXY", "http_proxy", "NO_PROXY",
                 "no_proxy"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("https_proxy", "http://proxy.corp.example:3128")
    hint = env_proxy_hint([], "intranet.corp.example")
    assert hint is not None and hint.startswith("h2scope does not use $https_proxy ")
    monkeypatch.setenv("no_proxy", "localhost, .corp.example")
    assert env_proxy_hint([], "intranet.corp.example") is None
    assert env_proxy_hint([], "corp.example") is None
    assert env_proxy_hint([], "pypi.org") is not None
    assert env_proxy_hint([], "127.0.0.1") is None and env_proxy_hint([], "[::1]") is None
    assert env_proxy_hint([], "app.localhost") is None  # (loopback: never through a proxy)
    monkeypatch.setenv("no_proxy", "10.0.0.0/8, fd00::/8")
    assert env_proxy_hint([], "10.1.2.3") is None and env_proxy_hint([], "[fd00::5]") is None
    assert env_proxy_hint([], "192.0.2.1") is not None
    monkeypatch.setenv("no_proxy", "*")
    assert env_proxy_hint([], "pypi.org") is None
    assert env_proxy_hint([]) is not None  # (no host said: the hint)
