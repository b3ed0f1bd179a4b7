"""h2scope: an HTTP/2 frame debugging proxy.

Everything that runs without a screen lives in this package: the sans-IO
observer (:mod:`proxy.observe`), the asyncio network shell, capture files and
the command line.
"""

__version__ = "0.1.0"
