"""replay says when the recorded requests name another host than --target's."""

from __future__ import annotations

from types import SimpleNamespace

from proxy.commands.replay import _authority_note


def _source(*authorities: str | None) -> SimpleNamespace:
    streams = [SimpleNamespace(authority=a) for a in authorities]
    return SimpleNamespace(plans=[SimpleNamespace(original=streams),
                                  SimpleNamespace(original=None)])


def test_another_recorded_host_is_said_with_how_to_address_the_target() -> None:
    note = _authority_note(_source("pypi.org", "pypi.org:443", None), "registry.npmjs.org",
                           "verbatim")
    assert note is not None
    assert "say :authority pypi.org, not registry.npmjs.org" in note
    assert note.endswith("--mode reencode --authority HOST sends the target's instead")
    assert "; --authority HOST" in (_authority_note(_source("a.test"), "b.test", "reencode")
                                    or "")


def test_the_same_host_on_another_port_or_case_says_nothing() -> None:
    assert _authority_note(_source("Example.TEST:8443", "example.test."), "example.test",
                           "verbatim") is None
    assert _authority_note(_source(None), "example.test", "verbatim") is None
    many = _authority_note(_source("a.test", "b.test", "c.test", "d.test", "e.test"),
                           "x.test", "verbatim")
    assert many is not None and "a.test, b.test, c.test (+2 more)" in many
