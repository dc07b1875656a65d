"""Run nested walks over folders and trees without using the Python call stack.

A recursive walk takes one interpreter frame per directory level, so a folder nested
about 1,000 levels deep (the default recursion limit) made every sync fail with
RecursionError. The walks are written as generators instead: where the recursive
version called ``result = self.visit(child)``, the generator writes
``result = yield self.visit(child)``. :func:`run` keeps the suspended frames on an
explicit list and sends each callee's return value back to its caller, so

* the depth is bounded by memory, not by ``sys.getrecursionlimit()``;
* the order of visits, and so of every side effect, is exactly that of the recursive
  code (the conversion changes no behaviour, only where the frames live).

Anything other than a generator yielded to :func:`run` is a programming error (a walk
step that forgot it is a generator) and raises TypeError in that step rather than
being skipped. Exceptions propagate from callee to caller as with real calls.
"""

from __future__ import annotations

from collections.abc import Generator
from typing import Any, TypeVar

__all__ = ["Walk", "run"]

T = TypeVar("T")

#: A walk step: yields the sub-steps it calls, returns its result.
Walk = Generator[Any, Any, T]


def run(walk: Walk[T]) -> T:
    """Drive ``walk`` and every step it yields, depth first; return its result.

    An exception leaving a step is thrown into the step that called it, as a raise
    would propagate through recursive calls (so a caller's ``try`` still sees it).
    """
    stack: list[Generator[Any, Any, Any]] = [walk]
    sent: Any = None
    error: BaseException | None = None
    while True:
        try:
            if error is None:
                call = stack[-1].send(sent)
            else:
                call, error = stack[-1].throw(error), None
        except StopIteration as done:
            stack.pop()
            if not stack:
                return done.value  # type: ignore[no-any-return]
            sent, error = done.value, None
            continue
        except BaseException as exc:
            stack.pop()
            if not stack:
                raise
            error = exc
            continue
        if isinstance(call, Generator):
            stack.append(call)
            sent = None
        else:
            error = TypeError(f"a walk step yielded {type(call).__name__}, not a sub-walk")
