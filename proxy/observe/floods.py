"""Frame floods: the 2019 HTTP/2 denial-of-service patterns (RFC 9113 §10.5).

In August 2019 several HTTP/2 implementations were found to spend unbounded
work or memory on frames that are each legal but cheap to send in bulk; RFC
9113 §10.5 asks endpoints to limit them. Each pattern here is a number of
one endpoint's frames of a kind within a short time, reported once per
connection and endpoint:

* ``ping-flood`` (CVE-2019-9512): PINGs, each asking its peer for an ACK;
* ``settings-flood`` (CVE-2019-9515): SETTINGS, each asking for an ACK;
* ``empty-frames-flood`` (CVE-2019-9518): DATA frames carrying no data and not
  ending the stream (nothing for the receiver to do but process them).

Ordinary traffic stays far below: browsers send a PING now and then to check
a connection, SETTINGS once or twice, and an empty DATA frame only with
END_STREAM. The rapid reset pattern (CVE-2023-44487) is in :mod:`flow`, the
CONTINUATION flood in :mod:`header_blocks`.
"""

from __future__ import annotations

from collections import deque

from proxy.observe.findings import Finding, Severity
from proxy.observe.findings import finding as _f
from proxy.observe.sides import Side

FLOOD_COUNT = 100
FLOOD_WINDOW = 1.0
"""``FLOOD_COUNT`` frames of a kind within ``FLOOD_WINDOW`` seconds make a finding."""

FLOODS = {
    "ping-flood": ("PING frames", "CVE-2019-9512"),
    "settings-flood": ("SETTINGS frames", "CVE-2019-9515"),
    "empty-frames-flood": ("DATA frames without data or END_STREAM", "CVE-2019-9518"),
}


def count(side: Side, code: str, t: float, seq: int, findings: list[Finding]) -> None:
    """One more frame of flood kind ``code`` from ``side``'s endpoint at ``t``."""
    times = side.bursts.get(code)
    if times is None:
        times = side.bursts[code] = deque(maxlen=FLOOD_COUNT)
    times.append(t)
    if (len(times) == FLOOD_COUNT and t - times[0] <= FLOOD_WINDOW
            and code not in side.floods_reported):
        side.floods_reported.add(code)
        what, cve = FLOODS[code]
        findings.append(_f(code, Severity.WARNING, "RFC 9113 §10.5",
                           f"the {side.direction.sender} sent {FLOOD_COUNT} {what} within "
                           f"{t - times[0]:.3f} s: the pattern of the 2019 HTTP/2 flood "
                           f"attacks ({cve})", seq, 0))
