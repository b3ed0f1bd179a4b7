"""Where the public HPACK interoperability corpus (hpack-test-case) is read from.

It is not copied into the repository: ``$H2SCOPE_HPACK_CORPUS`` names its
directory, else it is ``../shared/hpack-test-case`` beside the checkout. A
missing corpus fails the tests that read it (never a skip: they are the
interoperability evidence), with this message.
"""

from __future__ import annotations

import os
from pathlib import Path

ENV = "H2SCOPE_HPACK_CORPUS"
CORPUS = Path(os.environ.get(ENV) or
              Path(__file__).resolve().parents[2].parent / "shared" / "hpack-test-case")
WHERE = (f"the HPACK corpus is read from ${ENV}, else ../shared/hpack-test-case beside the "
         "checkout: git clone https://github.com/http2jp/hpack-test-case there, or set "
         f"{ENV} to a clone")


def missing(what: Path) -> str:
    """The failure message for a corpus directory that is not there."""
    return f"hpack-test-case corpus missing: {what.resolve()} ({WHERE})"
