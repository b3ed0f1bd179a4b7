"""The sans-IO HTTP/2 observer.

Bytes of one direction of one connection go in (with a timestamp passed in);
immutable event records come out. No sockets, no asyncio, no clock: the same
code runs live in the proxy, offline on a capture, in ``h2scope decode`` and in
tests. See :class:`proxy.observe.connection.ConnectionObserver`.
"""
