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
