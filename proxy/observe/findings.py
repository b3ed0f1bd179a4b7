"""Findings: protocol violations and oddities the observer noticed.

A finding never stops the observer: it is attached to the event of the frame
concerned (or stands alone when no frame can be blamed) and the bytes keep
flowing. Each carries the RFC section its rule comes from.
"""

from __future__ import annotations

from enum import IntEnum

from proxy.observe.records import record


class Severity(IntEnum):
    INFO = 0
    """Legal but worth knowing (an unknown frame type, a GREASE setting)."""
    WARNING = 1
    """Suspicious or a SHOULD-level rule broken."""
    ERROR = 2
    """A MUST-level rule broken: a conforming peer would reset or close."""


@record
class Finding:
    code: str
    """Stable identifier, e.g. ``flow-control-exceeded``; filters and tests use it."""
    severity: Severity
    rfc: str
    """Where the rule comes from, e.g. ``RFC 9113 §6.9.1``."""
    message: str
    """One sentence naming what happened, with the numbers involved."""
    seq: int | None = None
    """Sequence number of the frame concerned (connection-wide), if any."""
    stream_id: int | None = None

    def __str__(self) -> str:
        return f"{self.severity.name} {self.code} ({self.rfc}): {self.message}"


def finding(code: str, severity: Severity, rfc: str, message: str, seq: int | None = None,
            stream_id: int | None = None) -> Finding:
    """A :class:`Finding`, positionally (the observer makes them in many places)."""
    return Finding(code=code, severity=severity, rfc=rfc, message=message, seq=seq,
                   stream_id=stream_id)
