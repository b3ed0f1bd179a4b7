"""Every finding code the observer raises has its row in docs/findings.md (the
table users look a code up in), and the table names no code the source lacks."""

from __future__ import annotations

import re
from pathlib import Path

from proxy.observe.floods import FLOODS

ROOT = Path(__file__).resolve().parents[3]
SOURCES = [p.read_text() for p in (ROOT / "proxy").rglob("*.py")]


def test_every_finding_code_is_documented_and_every_documented_code_exists() -> None:
    table = (ROOT / "docs" / "findings.md").read_text()
    first_cells = re.findall(r"^\| (`[^|]*`) \|", table, re.MULTILINE)
    documented = {code for cell in first_cells for code in re.findall(r"`([a-z0-9-]+)`", cell)}
    raised = set(FLOODS) | {code for text in SOURCES
                            for code in re.findall(r'_f\(\s*"([a-z0-9-]+)"', text)}
    assert len(raised) > 40  # (the scan finds the observer's codes at all)
    assert sorted(raised - documented) == []
    # Codes raised through helpers are string literals somewhere in the source.
    literals = {code for text in SOURCES for code in re.findall(r'"([a-z0-9]+(?:-[a-z0-9]+)*)"',
                                                                 text)}
    assert sorted(documented - literals) == []
