"""``@record``: frozen, slotted, keyword-only dataclasses that are cheap to create.

A frozen dataclass's generated ``__init__`` assigns every field through
``object.__setattr__`` (to get past its own ``__setattr__`` guard), which costs
about 1.5 µs for eight fields — more than parsing a frame. The observer makes
one or two records per frame, at 150,000+ frames/s, so :func:`record` keeps
the dataclass (equality, repr, immutability, ``fields()``, pattern matching)
and replaces only ``__init__`` with one that stores through the slots' member
descriptors directly: the same semantics at about a third of the cost
(measured: 1.53 µs → 0.49 µs for eight fields).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any, TypeVar, dataclass_transform

T = TypeVar("T")
_MISSING = dataclasses.MISSING


def _slot_setter(cls: type, name: str) -> Callable[[object, object], None]:
    for klass in cls.__mro__:
        desc = klass.__dict__.get(name)
        if desc is not None and hasattr(desc, "__set__"):
            return desc.__set__
    raise TypeError(f"{cls.__name__}.{name} is not a slot")  # pragma: no cover


def _fast_init(cls: type) -> None:
    params = []
    body = []
    env: dict[str, Any] = {"_MISSING": _MISSING}
    for i, f in enumerate(dataclasses.fields(cls)):
        setter = f"_set{i}"
        env[setter] = _slot_setter(cls, f.name)
        if f.default is not _MISSING:
            env[f"_d{i}"] = f.default
            params.append(f"{f.name}=_d{i}")
            body.append(f"    {setter}(self, {f.name})")
        elif f.default_factory is not _MISSING:
            env[f"_f{i}"] = f.default_factory
            params.append(f"{f.name}=_MISSING")
            body.append(f"    {setter}(self, _f{i}() if {f.name} is _MISSING else {f.name})")
        else:
            params.append(f.name)
            body.append(f"    {setter}(self, {f.name})")
    src = f"def __init__(self, *, {', '.join(params)}):\n" + ("\n".join(body) or "    pass")
    exec(src, env)
    init = env["__init__"]
    init.__qualname__ = f"{cls.__qualname__}.__init__"
    cls.__init__ = init  # type: ignore[misc]


def positional(cls: type[T]) -> Callable[..., T]:
    """A constructor of ``cls`` taking every field positionally, in field order.

    For the observer's hot paths: it skips ``type.__call__`` and keyword
    binding (measured: 0.90 µs → 0.56 µs for an eight-field event) and builds
    exactly what ``cls(**fields)`` builds. Every field must be passed.
    """
    names = [f.name for f in dataclasses.fields(cls)]  # type: ignore[arg-type]
    env: dict[str, Any] = {"_new": object.__new__, "_cls": cls}
    body = []
    for i, name in enumerate(names):
        env[f"_set{i}"] = _slot_setter(cls, name)
        body.append(f"    _set{i}(o, {name})")
    src = (f"def new_{cls.__name__}({', '.join(names)}):\n    o = _new(_cls)\n"
           + "\n".join(body) + "\n    return o")
    exec(src, env)
    factory: Callable[..., T] = env[f"new_{cls.__name__}"]
    return factory


@dataclass_transform(frozen_default=True, kw_only_default=True)
def record(cls: type[T]) -> type[T]:
    """Make ``cls`` a frozen, slotted, keyword-only dataclass with a fast ``__init__``."""
    new_cls = dataclasses.dataclass(frozen=True, slots=True, kw_only=True)(cls)
    if hasattr(new_cls, "__post_init__"):
        raise TypeError(f"{cls.__name__}: @record classes cannot define __post_init__")
    _fast_init(new_cls)
    return new_cls
