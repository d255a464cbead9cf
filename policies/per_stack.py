"""Readings of the whole stack that several stack gates need, made once per AnalyzeStack instead of once per gate.

The pack's fast path hands every stack policy of one AnalyzeStack the same list of resources
(`fastpath_patch._analyze_stack`), so a reading keyed on that list's identity is made by the first gate that asks and
shared by the others: a reading returns what no gate changes (a tuple, frozen or unmodified objects). On the
library's stock path each policy gets a list of its own and reads afresh: the same answers, slower.
"""

from __future__ import annotations

import functools
import threading
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

T = TypeVar("T")


def per_stack(read: Callable[[Sequence[Any]], T]) -> Callable[[Sequence[Any]], T]:
    """`read(resources)`, remembered for the last `resources` list it was given (per thread: gRPC serves requests on
    several threads); the list is held, so its identity cannot be reused while remembered."""
    last = threading.local()

    @functools.wraps(read)
    def once(resources: Sequence[Any]) -> T:
        entry = getattr(last, "entry", None)
        if entry is not None and entry[0] is resources:
            return entry[1]  # type: ignore[no-any-return]
        result = read(resources)
        last.entry = (resources, result)
        return result

    return once
