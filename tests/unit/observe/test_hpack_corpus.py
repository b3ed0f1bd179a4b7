"""Every story of the public hpack-test-case corpus decodes to its headers.

The corpus lives beside the repository (``../shared/hpack-test-case``, or
``$H2SCOPE_HPACK_CORPUS``: tests/helpers/corpus.py) and is not copied into it.
Each directory other than ``raw-data`` holds one encoder's output; every case
in a story shares one decoding context. A missing corpus is a failure, never a
skip: these tests are the interoperability evidence.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from proxy.observe.hpack_annotated import AnnotatedDecoder, HpackDecodeError
from tests.helpers.corpus import CORPUS, missing

ENCODER_DIRECTORIES = (
    "go-hpack",
    "nghttp2",
    "nghttp2-change-table-size",
    "node-http2-hpack",
    "python-hpack",
    "swift-nio-hpack-huffman",
)


def _stories(directory: str) -> list[Path]:
    folder = CORPUS / directory
    if not folder.is_dir():
        pytest.fail(missing(folder))
    stories = sorted(folder.glob("story_*.json"))
    assert stories, f"no story_*.json in {folder.resolve()}"
    return stories


def test_corpus_lists_every_encoder_directory() -> None:
    if not CORPUS.is_dir():
        pytest.fail(missing(CORPUS))
    present = {p.name for p in CORPUS.iterdir() if p.is_dir() and not p.name.startswith(".")}
    assert present - {"raw-data"} == set(ENCODER_DIRECTORIES)


@pytest.mark.parametrize("directory", ENCODER_DIRECTORIES)
def test_every_story_decodes_to_its_headers(directory: str) -> None:
    cases_checked = 0
    for story in _stories(directory):
        decoder = AnnotatedDecoder()
        for case in json.loads(story.read_text(encoding="utf-8"))["cases"]:
            if case.get("header_table_size") is not None:  # swift-nio writes null
                # The SETTINGS_HEADER_TABLE_SIZE acknowledged just before this case.
                decoder.max_allowed_table_size = case["header_table_size"]
            wire = bytes.fromhex(case["wire"])
            try:
                block = decoder.decode(wire)
            except HpackDecodeError as err:
                pytest.fail(f"{story.name} case {case['seqno']}: {err}")
            expected = tuple(next(iter(h.items())) for h in case["headers"])
            assert block.headers == expected, f"{story.name} case {case['seqno']}"
            assert block.wire_length == len(wire)
            assert sum(f.wire_length for f in block.fields) == len(wire)
            assert block.table_size == sum(
                len(n.encode("utf-8", "surrogateescape"))
                + len(v.encode("utf-8", "surrogateescape"))
                + 32
                for n, v in decoder.entries
            )
            cases_checked += 1
    assert cases_checked > 0
