"""Replaying captures: the client side against a server (``h2scope replay``) and
the server side to a client (``h2scope serve``). See docs/replay.md."""
