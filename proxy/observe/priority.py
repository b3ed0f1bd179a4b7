"""Stream priorities: the RFC 7540 §5.3 dependency tree and RFC 9218 signals.

RFC 9113 deprecates the tree (§5.3.2) but browsers and servers still send it,
and seeing it is half of debugging a "why did this load last" question. The
tree here follows RFC 7540: a new dependency defaults to stream 0 with weight
16, an exclusive dependency adopts the parent's other children, and removing a
stream gives its children to its parent (§5.3.4).
"""

from __future__ import annotations

from proxy.observe.records import record

DEFAULT_WEIGHT = 16
MAX_NODES = 10_000
"""Streams the tree keeps at most. PRIORITY frames may name idle streams that are
never opened nor closed (RFC 7540 §5.3.4 lets a receiver bound that state, and
RFC 9113 §10.5 counts such frames among the costs a peer can impose): past
this, the oldest node is forgotten, so a peer cannot grow the observer's memory."""


@record
class PriorityNode:
    stream_id: int
    parent: int
    weight: int


class PriorityTree:
    """Parent and weight per stream, with a children index so that closing a
    stream or an exclusive insert costs the size of one family, not the tree."""

    def __init__(self) -> None:
        self._parent: dict[int, int] = {}
        self._weight: dict[int, int] = {}
        self._children: dict[int, set[int]] = {}
        self.forgotten = 0
        """Nodes dropped to stay within :data:`MAX_NODES`."""

    def __len__(self) -> int:
        return len(self._parent)

    def __contains__(self, stream_id: int) -> bool:
        return stream_id in self._parent

    def _attach(self, stream_id: int, parent: int) -> None:
        old = self._parent.get(stream_id)
        if old is None and len(self._parent) >= MAX_NODES:
            oldest = next(s for s in self._parent if s != parent)
            self.remove(oldest)
            self.forgotten += 1
        if old is not None:
            kids = self._children.get(old)
            if kids is not None:
                kids.discard(stream_id)
                if not kids:
                    del self._children[old]
        self._parent[stream_id] = parent
        kids = self._children.get(parent)
        if kids is None:
            self._children[parent] = {stream_id}
        else:
            kids.add(stream_id)

    def set(self, stream_id: int, depends_on: int, weight: int, exclusive: bool) -> None:
        """Apply a priority signal. The caller reports a self-dependency (§5.3.1);
        here it is ignored, as a cycle would be: the tree stays a tree."""
        if depends_on == stream_id:
            return
        parent = self._parent
        if depends_on and depends_on not in parent:
            # RFC 7540 §5.3.1: a dependency on a stream not in the tree gets default priority.
            self._attach(depends_on, 0)
            self._weight[depends_on] = DEFAULT_WEIGHT
        # RFC 7540 §5.3.3: if the new parent depends on this stream, it first
        # moves to this stream's former parent.
        ancestor = depends_on
        for _ in range(len(parent) + 1):  # (bounded: a tree has no cycle to loop on)
            if not ancestor:
                break
            if ancestor == stream_id:
                self._attach(depends_on, parent.get(stream_id, 0))
                break
            ancestor = parent.get(ancestor, 0)
        if exclusive:
            for child in list(self._children.get(depends_on, ())):
                if child != stream_id:
                    self._attach(child, stream_id)
        self._attach(stream_id, depends_on)
        self._weight[stream_id] = weight

    def ensure(self, stream_id: int) -> None:
        """A new stream without a priority signal: default dependency on 0."""
        if stream_id not in self._parent:
            self._attach(stream_id, 0)
            self._weight[stream_id] = DEFAULT_WEIGHT

    def remove(self, stream_id: int) -> None:
        """RFC 7540 §5.3.4: a removed stream's children move to its parent."""
        if stream_id not in self._parent:
            return
        up = self._parent[stream_id]
        orphans = self._children.pop(stream_id, None)
        if orphans:
            for child in orphans:
                self._attach(child, up)
        kids = self._children.get(up)
        if kids is not None:
            kids.discard(stream_id)
            if not kids:
                del self._children[up]
        del self._parent[stream_id]
        self._weight.pop(stream_id, None)

    def node(self, stream_id: int) -> PriorityNode | None:
        if stream_id not in self._parent:
            return None
        return PriorityNode(stream_id=stream_id, parent=self._parent[stream_id],
                            weight=self._weight[stream_id])

    def children(self, stream_id: int) -> list[int]:
        return sorted(self._children.get(stream_id, ()))

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
