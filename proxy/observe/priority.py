"""Stream priorities: the RFC 7540 §5.3 dependency tree and RFC 9218 signals.

RFC 9113 deprecates the tree (§5.3.2) but browsers and servers still send it,
and seeing it is half of debugging a "why did this load last" question. The
tree here follows RFC 7540: a new dependency defaults to stream 0 with weight
16, an exclusive dependency adopts the parent's other children, and removing a
stream gives its children to its parent (§5.3.4).
"""

from __future__ import annotations

from dataclasses import dataclass

DEFAULT_WEIGHT = 16


@dataclass(frozen=True, slots=True, kw_only=True)
class PriorityNode:
    stream_id: int
    parent: int
    weight: int


class PriorityTree:
    """Parent and weight per stream; children derived on demand."""

    def __init__(self) -> None:
        self._parent: dict[int, int] = {}
        self._weight: dict[int, int] = {}

    def __len__(self) -> int:
        return len(self._parent)

    def __contains__(self, stream_id: int) -> bool:
        return stream_id in self._parent

    def set(self, stream_id: int, depends_on: int, weight: int, exclusive: bool) -> None:
        """Apply a priority signal. The caller has rejected self-dependency."""
        parent = self._parent
        if depends_on and depends_on not in parent:
            # RFC 7540 §5.3.1: a dependency on a stream not in the tree gets default priority.
            parent[depends_on] = 0
            self._weight[depends_on] = DEFAULT_WEIGHT
        # RFC 7540 §5.3.3: if the new parent depends on this stream, it first
        # moves to this stream's former parent.
        ancestor = depends_on
        while ancestor:
            if ancestor == stream_id:
                parent[depends_on] = parent.get(stream_id, 0)
                break
            ancestor = parent.get(ancestor, 0)
        if exclusive:
            for child, p in list(parent.items()):
                if p == depends_on and child != stream_id:
                    parent[child] = stream_id
        parent[stream_id] = depends_on
        self._weight[stream_id] = weight

    def ensure(self, stream_id: int) -> None:
        """A new stream without a priority signal: default dependency on 0."""
        if stream_id not in self._parent:
            self._parent[stream_id] = 0
            self._weight[stream_id] = DEFAULT_WEIGHT

    def remove(self, stream_id: int) -> None:
        parent = self._parent
        if stream_id not in parent:
            return
        up = parent.pop(stream_id)
        self._weight.pop(stream_id, None)
        for child, p in list(parent.items()):
            if p == stream_id:
                parent[child] = up

    def node(self, stream_id: int) -> PriorityNode | None:
        if stream_id not in self._parent:
            return None
        return PriorityNode(stream_id=stream_id, parent=self._parent[stream_id],
                            weight=self._weight[stream_id])

    def children(self, stream_id: int) -> list[int]:
        return sorted(c for c, p in self._parent.items() if p == stream_id)

    def nodes(self) -> list[PriorityNode]:
        return [PriorityNode(stream_id=s, parent=p, weight=self._weight[s])
                for s, p in sorted(self._parent.items())]


def parse_priority_field(value: str) -> tuple[int | None, bool | None, str | None]:
    """(urgency, incremental, problem) from an RFC 9218 §4 Priority field value.

    A Structured Fields dictionary; unknown members are ignored (§4), and a
    member of the wrong type is ignored too, but reported.
    """
    urgency: int | None = None
    incremental: bool | None = None
    problem = None
    for member in value.split(","):
        member = member.strip()
        if not member:
            continue
        key, _, val = member.partition("=")
        key = key.split(";")[0].strip()
        val = val.split(";")[0].strip()
        if key == "u":
            if val.isdigit() and 0 <= int(val) <= 7:
                urgency = int(val)
            else:
                problem = f"urgency {val!r} is not an integer 0-7"
        elif key == "i":
            if val in ("", "?1"):
                incremental = True
            elif val == "?0":
                incremental = False
            else:
                problem = f"incremental {val!r} is not a boolean"
    return urgency, incremental, problem
