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


def test_an_http1_flow_says_http_and_a_stand_in_address_says_so() -> None:
    """Every flow's comment said 'dissects HTTP/2'; a v6 client's v4 server became
    fd00::2, a real ULA (this host's own address, once)."""
    h1 = {"protocol": "http/1.1", "client": {"ip": "127.0.0.1", "port": 5},
          "server": {"host": "127.0.0.1", "ip": "127.0.0.1", "port": 80}}
    assert _flow_for(1, h1).comment.endswith("so Wireshark dissects HTTP)")
    mixed = {"client": {"ip": "::1", "port": 5},
             "server": {"host": "localhost", "ip": "127.0.0.1", "port": 443}}
    flow = _flow_for(2, mixed)
    assert str(flow.server_ip) == "2001:db8::2"
    assert flow.comment.endswith("dissects HTTP/2; server address 2001:db8::2 stands in "
                                 "for it)")
    none = _flow_for(3, {"client": {}, "server": {"host": "example.test", "port": 443}})
    assert (str(none.client_ip), str(none.server_ip)) == ("192.0.2.1", "192.0.2.2")
