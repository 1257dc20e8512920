"""What the Shopify sandbox counts, and the faults tests make it inject.

Fault counters are plain ints on the store (``store.throttle_next = 2`` or
``store.set_faults(throttle_next=2)`` or ``POST /_sandbox/faults``); each GraphQL request that a
fault applies to counts it down by one:

* ``fail_next_requests``: answered 503 without running;
* ``fail_next_queries``: queries only, answered 503 without running;
* ``fail_next_mutations``: mutations only, answered 503 without running (the caller cannot
  tell that from a 503 after running: it must read the fulfillment's events to find out);
* ``throttle_next``: answered THROTTLED without running;
* ``drop_next_mutation_responses``: the mutation runs and is stored, the answer becomes a 502
  (a response lost on the way back);
* ``hold_mutation_responses``: the mutation runs and is stored, the answer is held until
  :meth:`FaultCounters.release_held_responses` (``POST /_sandbox/held/release``) or server
  shutdown, so a test can kill the caller between Shopify accepting and the caller recording.

Two settings shape the answers, and are not counted down:

* ``server_errors``: how the 503s and 502s above look. ``"http"`` (the default) as said;
  ``"graphql"`` as Shopify mostly sends them, "instead of 500": HTTP 200 with
  ``errors[].extensions.code`` INTERNAL_SERVER_ERROR (whether or not the mutation ran);
* ``shop_closed``: set by :meth:`FaultCounters.close_shop` until
  :meth:`FaultCounters.reopen_shop`, every authenticated request is refused without running:
  ``"frozen"`` HTTP 402 (unpaid bill), ``"locked"`` HTTP 423, ``"inactive"`` HTTP 200 with
  ``errors[].extensions.code`` SHOP_INACTIVE.
"""

from __future__ import annotations

import asyncio
import logging
from collections import Counter
from dataclasses import dataclass, field
from typing import Any, Literal

log = logging.getLogger(__name__)

FaultName = Literal[
    "drop_next_mutation_responses",
    "fail_next_requests",
    "fail_next_queries",
    "fail_next_mutations",
    "throttle_next",
    "hold_mutation_responses",
]
FAULT_NAMES: tuple[FaultName, ...] = (
    "drop_next_mutation_responses",
    "fail_next_requests",
    "fail_next_queries",
    "fail_next_mutations",
    "throttle_next",
    "hold_mutation_responses",
)
ServerErrors = Literal["http", "graphql"]
ShopClosure = Literal["frozen", "locked", "inactive"]


@dataclass
class StoreStats:
    """What the store was asked, for tests to assert on (``GET /_sandbox/stats``)."""

    requests: int = 0
    """Authenticated GraphQL requests, whatever became of them."""
    throttled: int = 0
    """Requests answered THROTTLED (by the bucket or by ``throttle_next``)."""
    mutations: int = 0
    """Mutations that ran and returned a payload (including those whose answer was lost)."""
    events_created: int = 0
    failed_requests: int = 0
    """Requests answered 503 by ``fail_next_requests``, ``..._queries`` or ``..._mutations``."""
    dropped_responses: int = 0
    """Mutation answers replaced by a 502 by ``drop_next_mutation_responses``."""
    held_responses: int = 0
    """Mutation answers held by ``hold_mutation_responses``."""
    unauthorized: int = 0
    closed_answers: int = 0
    """Requests refused because the shop is closed (``shop_closed``)."""
    by_operation: Counter[str] = field(default_factory=Counter)
    """Requests per operation name (``"anonymous"`` for unnamed operations)."""

    def as_dict(self) -> dict[str, Any]:
        return {
            "requests": self.requests,
            "throttled": self.throttled,
            "mutations": self.mutations,
            "events_created": self.events_created,
            "failed_requests": self.failed_requests,
            "dropped_responses": self.dropped_responses,
            "held_responses": self.held_responses,
            "unauthorized": self.unauthorized,
            "closed_answers": self.closed_answers,
            "by_operation": dict(self.by_operation),
        }


class FaultCounters:
    """The fault counters of a store and the gate held answers wait at."""

    def __init__(self) -> None:
        self.drop_next_mutation_responses = 0
        self.fail_next_requests = 0
        self.fail_next_queries = 0
        self.fail_next_mutations = 0
        self.throttle_next = 0
        self.hold_mutation_responses = 0
        self.server_errors: ServerErrors = "http"
        self.shop_closed: ShopClosure | None = None
        self._release: asyncio.Event | None = None

    def set_faults(self, **counts: int) -> dict[str, int]:
        """Set fault counters by name (see the module docstring); returns all of them."""
        for name, count in counts.items():
            if name not in FAULT_NAMES:
                raise ValueError(f"unknown fault {name!r}; known: {', '.join(FAULT_NAMES)}")
            if not isinstance(count, int) or count < 0:
                raise ValueError(f"fault {name} needs a count >= 0, not {count!r}")
            setattr(self, name, count)
        return self.faults()

    def faults(self) -> dict[str, int]:
        """The fault counters still to be consumed."""
        return {name: int(getattr(self, name)) for name in FAULT_NAMES}

    def consume_fault(self, name: FaultName) -> bool:
        """Whether fault ``name`` applies to this request (and count it down if so)."""
        remaining = int(getattr(self, name))
        if remaining <= 0:
            return False
        setattr(self, name, remaining - 1)
        return True

    def close_shop(self, how: ShopClosure) -> None:
        """The shop is frozen, locked or inactive: every request is refused until reopened."""
        self.shop_closed = how
        log.info("sandbox: shop %s", how)

    def reopen_shop(self) -> None:
        self.shop_closed = None
        log.info("sandbox: shop open again")

    async def wait_for_release(self) -> None:
        """Wait until :meth:`release_held_responses` is called."""
        if self._release is None:
            self._release = asyncio.Event()
        await self._release.wait()

    def release_held_responses(self) -> None:
        """Let every held answer go (they are sent if their caller still listens)."""
        if self._release is not None:
            self._release.set()
            self._release = None
