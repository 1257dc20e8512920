"""The event loop every long-running command runs on, and the garbage collector's settings.

uvloop (libuv under asyncio's API) where it is installed: the daemon spends most of its time
in socket I/O to carriers, Shopify and PostgreSQL, and uvloop roughly halves what that costs.
``TRACKER_EVENT_LOOP=asyncio`` selects the standard library's loop instead (for debugging, or
to rule the loop out when something misbehaves).
"""

from __future__ import annotations

import asyncio
import gc
import logging
import os
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

from tracker.config_load import ConfigError

T = TypeVar("T")

log = logging.getLogger(__name__)

ENV = "TRACKER_EVENT_LOOP"


def loop_factory() -> Callable[[], asyncio.AbstractEventLoop] | None:
    """uvloop's loop factory, or None for asyncio's default loop."""
    choice = os.environ.get(ENV, "").strip().lower()
    if choice not in ("", "uvloop", "asyncio"):
        raise ConfigError(f"{ENV} must be 'uvloop' or 'asyncio', not {choice!r}")
    if choice == "asyncio":
        return None
    try:
        import uvloop
    except ImportError:
        if choice == "uvloop":
            raise ConfigError(f"{ENV}=uvloop but uvloop is not installed") from None
        return None
    factory: Callable[[], asyncio.AbstractEventLoop] = uvloop.new_event_loop
    return factory


def loop_name() -> str:
    """What :func:`run` runs on, for the startup banner and ``tracker doctor``."""
    return "uvloop" if loop_factory() is not None else "asyncio"


def run(main: Coroutine[Any, Any, T]) -> T:
    """``asyncio.run(main)`` on the loop :func:`loop_factory` picks."""
    factory = loop_factory()
    log.debug("event loop: %s", "uvloop" if factory is not None else "asyncio")
    with asyncio.Runner(loop_factory=factory) as runner:
        return runner.run(main)


GC_THRESHOLDS = (20_000, 50, 100)
"""Young objects allocated before the collector looks (Python's default: 700, 10, 10)."""


def settle_gc() -> None:
    """Tune the garbage collector for a long-running process (``tracker run``, ``demo``,
    ``sandbox``), once its modules are loaded.

    Everything built by then (modules, configuration) lives as long as the process:
    :func:`gc.freeze` takes it out of the collector's walks. Polling allocates a great many
    short-lived containers (every carrier answer is a tree of dicts and lists) that reference
    counting frees; looking for cycles among them every 700 allocations cost the poller about
    an eighth of its CPU (bench/sweep.py, 10,000 shipments, measured both ways side by side).
    """
    gc.collect()
    gc.freeze()
    gc.set_threshold(*GC_THRESHOLDS)
