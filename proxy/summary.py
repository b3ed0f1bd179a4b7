"""What a headless run saw, in a few lines at its end, and whether it should fail.

:class:`RunSummary` is an event-bus sink beside the headless printer. It
counts connections by protocol, frames by direction, streams, resets by error
code, the observer's findings by (severity, code, RFC section) with where each
was first seen, and the proxy's own errors by stage. When the proxy stops,
``h2scope run --headless`` prints :meth:`RunSummary.lines` on stderr, and with
``--fail-on SEVERITY`` exits with status 3 if a finding of that severity or
worse was seen: a proxy in front of a server in CI fails the job on a
protocol violation.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from proxy.events import Batch, ConnectionOpened, ProxyErrorRaised, RelayStarted
from proxy.observe.enums import error_name
from proxy.observe.events import (
    ConnectionFindingRaised,
    Desynced,
    FrameObserved,
    StreamStateChanged,
)
from proxy.observe.findings import Finding, Severity

EXIT_FINDINGS = 3
"""``run --headless --fail-on``: a finding at or above the severity was seen."""
_RST = 0x3


@dataclass(slots=True)
class FindingGroup:
    """The findings of one (severity, code, RFC section): how many, and the first."""

    severity: Severity
    code: str
    rfc: str
    count: int
    where: str
    """The first occurrence: ``#3 stream 5``."""
    message: str
    first_row: int | None = None
    """The UI's timeline row of the first occurrence (None: not a frame's)."""


class FindingTally:
    """Findings grouped by (severity, code, RFC section): the headless summary, ``check``
    and the UI's findings view count them the same way."""

    def __init__(self) -> None:
        self._groups: dict[tuple[Severity, str, str], FindingGroup] = {}

    def __bool__(self) -> bool:
        return bool(self._groups)

    def add(self, f: Finding, where: str, row: int | None = None) -> None:
        key = (f.severity, f.code, f.rfc)
        group = self._groups.get(key)
        if group is None:
            self._groups[key] = FindingGroup(f.severity, f.code, f.rfc, 1, where, f.message,
                                             row)
        else:
            group.count += 1

    def groups(self) -> list[FindingGroup]:
        """Most severe first, then most frequent, then in the order first seen."""
        return sorted(self._groups.values(), key=lambda g: (-g.severity, -g.count))

    def worst(self) -> Severity | None:
        return max((g.severity for g in self._groups.values()), default=None)


class RunSummary:
    """Bus sink: counts for the end-of-run summary (never blocks the relay)."""

    def __init__(self) -> None:
        self.connections = 0
        self.protocols: Counter[str] = Counter()
        self.frames = [0, 0]
        """HTTP/2 frames by direction (index: Direction)."""
        self.streams = 0
        self.resets: Counter[str] = Counter()
        self.findings = FindingTally()
        self.errors: Counter[str] = Counter()

    def handle_many(self, batches: Sequence[Batch]) -> None:
        for batch in batches:
            self.handle(batch)

    def handle(self, batch: Batch) -> None:
        events: Sequence[Any] = batch.events  # dispatched on the exact type below
        for ev in events:
            kind = type(ev)
            if kind is FrameObserved:
                self.frames[ev.direction] += 1
                if ev.frame.type == _RST:
                    self.resets[error_name(ev.frame.error_code)] += 1
                for f in ev.findings:
                    self._finding(batch.conn_id, f)
            elif kind is StreamStateChanged:
                if ev.old == "idle":  # opened by HEADERS, or reserved by a PUSH_PROMISE
                    self.streams += 1
            elif kind is ConnectionOpened:
                self.connections += 1
            elif kind is RelayStarted:
                self.protocols[ev.protocol] += 1
            elif kind is ProxyErrorRaised:
                self.errors[ev.stage] += 1
            elif kind is ConnectionFindingRaised or kind is Desynced:
                self._finding(batch.conn_id, ev.finding)

    def _finding(self, conn_id: int, f: Finding) -> None:
        self.findings.add(f, f"#{conn_id}" + (f" stream {f.stream_id}" if f.stream_id else ""))

    def worst(self) -> Severity | None:
        """The most severe finding seen, or None."""
        return self.findings.worst()

    def lines(self) -> list[str]:
        """The summary, one fact per line, for stderr."""
        protos = ", ".join(f"{n} {p}" for p, n in self.protocols.most_common())
        out = [f"{self.connections} connection{'s' * (self.connections != 1)}"
               + (f" ({protos})" if protos else "")
               + f", {sum(self.frames):,} HTTP/2 frames ({self.frames[0]:,} → / "
                 f"{self.frames[1]:,} ←), {self.streams:,} stream{'s' * (self.streams != 1)}"]
        if self.resets:
            out.append("resets: " + ", ".join(f"{code} ×{n}"
                                              for code, n in self.resets.most_common()))
        if not self.findings:
            out.append("findings: none")
        else:
            groups = self.findings.groups()
            by_severity = Counter[Severity]()
            for g in groups:
                by_severity[g.severity] += g.count
            out.append("findings: " + ", ".join(
                f"{by_severity[s]} {s.name.lower()}" for s in sorted(by_severity, reverse=True)))
            for g in groups:
                out.append(f"  {g.severity.name.lower():<7} {g.code} ({g.rfc}) ×{g.count}, first "
                           f"{g.where}: {g.message}")
        if self.errors:
            out.append("proxy errors: " + ", ".join(f"{stage} ×{n}"
                                                    for stage, n in self.errors.most_common()))
        return out
