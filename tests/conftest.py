"""Suite-wide fixtures."""

from __future__ import annotations

import logging
from collections.abc import Iterator

import pytest


@pytest.fixture(autouse=True)
def _restore_h2scope_logger() -> Iterator[None]:
    """Commands run in-process configure the ``h2scope`` logger (handlers, no
    propagation); put it back so later tests' ``caplog`` still sees records."""
    logger = logging.getLogger("h2scope")
    handlers, level, propagate = list(logger.handlers), logger.level, logger.propagate
    yield
    for handler in logger.handlers:
        if handler not in handlers:
            logger.removeHandler(handler)
            handler.close()
    logger.setLevel(level)
    logger.propagate = propagate
