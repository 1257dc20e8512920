"""Asking a carrier about several numbers at once, and the one error a failed call raises.

The built-in adapters use this, and a plugin adapter (a third-party carrier declared under the
``tracker.carriers`` entry points) can use it the same way. For an API that takes one number per
request, :func:`track_each` is the whole of ``track``::

    async def track(self, numbers: Sequence[str]) -> dict[str, TrackResult]:
        if not numbers:
            return {}
        if self._settings.api_key is None:
            raise CarrierAuthError("carriers.acme.api_key is not set")
        return await track_each(numbers, self._track_one)

where ``_track_one(number)`` sends one request through :func:`carriers.http.request_json` and
returns that number's :class:`~carriers.base.TrackResult`, reading the answer through
:func:`read_isolated` so that a parser bug costs only that number. An API that takes a batch per
request sends its batches with :func:`gather_all`.

What every function here guarantees:

* **Concurrency.** Each call runs as its own task of one :class:`asyncio.TaskGroup`, all of them
  started together, in the order given; a single call is simply awaited. Nothing here limits
  how many run at once: the adapter's :class:`~carriers.http.RateLimiter` paces the requests
  (each waits its turn there, served in the order the tasks started).
* **Failure.** A call that raises fails the whole ``track`` call: the other tasks are cancelled
  (requests in flight are abandoned, requests waiting at the limiter never sent) and awaited,
  then one exception is raised, picked by :func:`most_telling` from every failure recorded by
  then, without the group as its cause. No partial results are returned. What the carrier says
  about one number (not found, invalid, an error for it) is a result, not an exception, so it
  never gets here: see the contract in :mod:`carriers.base`.
* **Cancellation.** Cancelling the caller cancels every task; the caller sees
  :class:`asyncio.CancelledError` once they have all finished.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Coroutine, Iterable, Sequence
from typing import Any, TypeVar

from carriers.base import CarrierAuthError, CarrierError, CarrierUnavailable, TrackResult

__all__ = ["SEVERITY", "gather_all", "most_telling", "read_isolated", "track_each"]

log = logging.getLogger(__name__)

T = TypeVar("T")

SEVERITY: tuple[type[CarrierError], ...] = (CarrierAuthError, CarrierUnavailable, CarrierError)
"""The error a failed call raises, most telling first: rejected credentials (polling again will
not help until they change), then unavailability (the engine backs off and opens the circuit),
then any other :class:`CarrierError` (an answer we cannot read)."""


def most_telling(failures: BaseExceptionGroup[BaseException]) -> BaseException:
    """The one exception to raise for a call whose tasks failed with ``failures``.

    Nested groups are flattened depth first, in order (a task group lists its failures in the
    order the tasks failed). The first :class:`CarrierAuthError` wins, else the first
    :class:`CarrierUnavailable`, else the first other :class:`CarrierError`, else the first
    failure of any kind (a bug, which the engine logs with its traceback).
    """
    leaves = list(_leaves(failures))
    for kind in SEVERITY:
        for exc in leaves:
            if isinstance(exc, kind):
                return exc
    return leaves[0] if leaves else failures


def _leaves(group: BaseExceptionGroup[BaseException]) -> Iterable[BaseException]:
    for exc in group.exceptions:
        if isinstance(exc, BaseExceptionGroup):
            yield from _leaves(exc)
        else:
            yield exc


async def gather_all(calls: Iterable[Coroutine[Any, Any, T]]) -> list[T]:
    """Run ``calls`` concurrently; their results in the order given.

    On the first failure the other calls are cancelled and awaited, then the
    :func:`most_telling` of the failures is raised.
    """
    try:
        async with asyncio.TaskGroup() as group:
            tasks = [group.create_task(call) for call in calls]
    except BaseExceptionGroup as failures:
        raise most_telling(failures) from None
    return [task.result() for task in tasks]


async def track_each(
    numbers: Sequence[str], track_one: Callable[[str], Coroutine[Any, Any, TrackResult]]
) -> dict[str, TrackResult]:
    """``track_one`` for each distinct number, concurrently, as :func:`gather_all` runs them.

    One result per distinct number, keyed by the number exactly as given, in the order numbers
    first appear; a number given twice is asked once. No numbers: no tasks, ``{}``.
    """
    unique = list(dict.fromkeys(numbers))
    if len(unique) == 1:  # the engine's usual call for a one-number API: no task needed
        return {unique[0]: await track_one(unique[0])}
    results = await gather_all(track_one(number) for number in unique)
    return dict(zip(unique, results, strict=True))


def read_isolated(
    number: str,
    read: Callable[[], TrackResult],
    *,
    carrier: str,
    asked: str,
    logger: logging.Logger = log,
) -> TrackResult:
    """``read()``: the result for ``number`` read from the carrier's answer, a bug kept to it.

    A :class:`CarrierError` that ``read`` raises (rejected credentials, say) is about the whole
    call and propagates. Any other exception is a bug in reading the answer: it is logged on
    ``logger`` with its traceback (``asked`` is the number as sent to ``carrier``) and becomes an
    ``ERROR`` result for ``number`` alone, so the other numbers of the call still get theirs.
    """
    try:
        return read()
    except CarrierError:
        raise
    except Exception:  # a parser bug must not fail the other numbers
        logger.exception("could not read %s's answer for %s", carrier, asked)
        return TrackResult.error(number, f"could not read {carrier}'s answer (see the daemon log)")
