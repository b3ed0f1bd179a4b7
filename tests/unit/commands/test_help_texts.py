"""Every subcommand's ``--help`` must be runnable as printed: what a newcomer copies must work."""

from __future__ import annotations

import argparse
import re

import pytest

from proxy.cli import build_parser


def _subparsers(parser: argparse.ArgumentParser, prefix: str = "h2scope"):
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                yield f"{prefix} {name}", sub
                yield from _subparsers(sub, f"{prefix} {name}")


HELPS = dict(_subparsers(build_parser()))


def test_every_command_has_help_text():
    assert {"h2scope run", "h2scope serve", "h2scope replay", "h2scope ca path"} <= set(HELPS)


@pytest.mark.parametrize("name", sorted(HELPS))
def test_cacert_examples_name_the_real_ca_file(name):
    text = HELPS[name].format_help()
    for arg in re.findall(r'--cacert\s+("[^"]*"|\S+)', text):
        # the CA file is <confdir>/h2scope-ca-cert.pem; `h2scope ca path` prints it
        assert arg in ('"$(h2scope ca path)"', "$(h2scope ca path)") or arg.endswith(
            "/h2scope-ca-cert.pem"), f"{name} --help: --cacert {arg} is not the CA file"


def test_the_decode_examples_that_need_no_file_run_as_printed(capsys):
    """Each self-contained `h2scope decode HEX` line of its --help, run as printed
    (everything before two spaces of comment): exit 0 and something decoded."""
    import shlex

    from proxy.cli import main

    text = HELPS["h2scope decode"].format_help()
    lines = [ln.strip() for ln in text.splitlines() if ln.strip().startswith("h2scope decode ")]
    runnable = [shlex.split(re.split(r"\s{2,}", ln)[0])[1:] for ln in lines
                if " -f " not in ln and "--protoset" not in ln and not ln.endswith(" -")]
    assert len(runnable) >= 3
    for argv in runnable:
        capsys.readouterr()
        assert main(argv) == 0, argv
        assert capsys.readouterr().out.strip(), argv


@pytest.mark.parametrize(("argv", "usage", "said"), [
    (["check", "--jsn", "x.h2scope"], "usage: h2scope check ", "--jsn (did you mean --json?)"),
    (["run", "--port", "8080"], "usage: h2scope run ", "(did you mean --listen-port?)"),
    (["serve", "x.h2scope", "--listen-prot", "9"], "usage: h2scope serve ",
     "(did you mean --listen-port?)"),
    (["ca", "path", "--bogus"], "usage: h2scope ca path ", "unrecognized arguments: --bogus;"),
])
def test_an_unknown_option_gets_its_commands_usage_and_the_option_meant(
        argv, usage, said, capsys):
    """The options differ between commands (run's -p is --listen-port, serve's
    --port): a mistake shows the usage of the command typed, not h2scope's."""
    from proxy.cli import main

    with pytest.raises(SystemExit) as stop:
        main(argv)
    assert stop.value.code == 2
    err = capsys.readouterr().err
    assert err.startswith(usage) and said in err, err
    assert f"h2scope {' '.join(a for a in argv[:2] if not a.startswith('-') and '.' not in a)}" \
        " --help lists its options" in err


def test_a_file_given_as_the_command_points_to_view(tmp_path, capsys):
    from proxy.cli import main

    capture = tmp_path / "s1.h2scope"
    capture.write_bytes(b"")
    assert main([str(capture)]) == 2
    assert f"to open a capture: h2scope view {capture}" in capsys.readouterr().err
