"""The pcapng export's SYN comment names the server once."""

from __future__ import annotations

from proxy.capture.export_pcapng import _flow_for


def test_a_server_reached_by_its_address_is_named_once() -> None:
    """It read 'server 127.0.0.1 127.0.0.1:43003': the host is the address."""
    meta = {"client": {"ip": "127.0.0.1", "port": 51001},
            "server": {"host": "127.0.0.1", "ip": "127.0.0.1", "port": 43003}}
    assert _flow_for(1, meta).comment == (
        "h2scope connection 1: client 127.0.0.1:51001 -> server 127.0.0.1:43003 "
        "(server port rewritten to 80 so Wireshark dissects HTTP/2)")


def test_a_server_reached_by_name_is_named_with_its_address() -> None:
    meta = {"client": {"ip": "::1", "port": 51001},
            "server": {"host": "example.test", "ip": "::1", "port": 8443}}
    assert "client [::1]:51001 -> server example.test ([::1]:8443) (server port" \
        in _flow_for(2, meta).comment
    ipv6 = {"client": {"ip": "::1", "port": 1}, "server": {"host": "::1", "ip": "::1",
                                                            "port": 443}}
    assert "-> server [::1]:443 (" in _flow_for(3, ipv6).comment
    unknown = {"client": {}, "server": {"host": "example.test", "port": 443}}
    assert "client ?:? -> server example.test:443 (" in _flow_for(4, unknown).comment
