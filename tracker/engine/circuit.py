"""Per-carrier circuit breakers, shared by every worker through PostgreSQL.

After ``polling.circuit_failures`` failed requests in a row (timeouts, 5xx, 429 after retries,
or credentials the carrier refuses), a carrier is left alone for ``polling.circuit_open_for``;
its shipments wait, the other carriers go on, and the status table says so and why. When that
time is up the next sweep asks the carrier again (the shipments then due): one more failure
opens the circuit again at once, the first success closes it. A carrier that asks for a long
pause (a ``Retry-After`` longer than a process waits by itself) gets it at once, from every
replica: its circuit opens for that long on the first such answer.

Refused credentials will not heal by waiting: the settings must change, which takes a restart.
So a daemon that starts closes the circuits that refused credentials opened for its carriers
(:func:`forget_refusals`) and asks at once instead of after the rest of the open time.
"""

from __future__ import annotations

import logging
from collections.abc import Collection
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Literal, get_args

import asyncpg

from tracker.db import Connection

log = logging.getLogger(__name__)

PAUSE_SLACK = timedelta(seconds=30)
"""How much later than the open circuit's end a carrier's pause must end to extend it."""

Reason = Literal["unavailable", "credentials"]
"""Why requests failed: the carrier could not be asked, or it refused our credentials."""
REASONS: tuple[Reason, ...] = get_args(Reason)


@dataclass(frozen=True)
class Circuits:
    """The carriers' circuits as a sweep finds them."""

    resting: dict[str, datetime]
    """Carriers whose circuit is open now, with when it closes."""
    troubled: frozenset[str]
    """Carriers with failures counted or a circuit opened (resting or not): a success must
    reset theirs. For any other carrier a success has nothing to reset, and the sweep saves a
    statement per carrier and batch."""


async def circuit_states(pool: asyncpg.Pool) -> Circuits:
    rows = await pool.fetch(
        """
        SELECT carrier, CASE WHEN opened_until > now() THEN opened_until END AS resting_until
        FROM carrier_circuits WHERE failures > 0 OR opened_until IS NOT NULL
        """
    )
    return Circuits(
        {r["carrier"]: r["resting_until"] for r in rows if r["resting_until"] is not None},
        frozenset(r["carrier"] for r in rows),
    )


async def open_circuits(pool: asyncpg.Pool) -> dict[str, datetime]:
    """Carriers whose circuit is open now, with when it closes."""
    return (await circuit_states(pool)).resting


async def paused_carriers(db: asyncpg.Pool | Connection) -> list[asyncpg.Record]:
    """The open circuits, by carrier: ``carrier``, ``opened_until``, ``time_left``,
    ``reason`` and ``last_error`` (for the status table and ``tracker doctor``)."""
    return await db.fetch(
        """
        SELECT carrier, opened_until, opened_until - now() AS time_left, reason, last_error
        FROM carrier_circuits WHERE opened_until > now() ORDER BY carrier
        """
    )


async def record_failure(
    pool: asyncpg.Pool,
    carrier: str,
    error: str,
    *,
    threshold: int,
    open_for: timedelta,
    reason: Reason = "unavailable",
    pause: timedelta | None = None,
) -> bool:
    """Count one failed request; True when this failure opened the circuit.

    Failures while it is already open (requests that were in flight) count but do not extend
    it, and return False. The circuit keeps the latest failure's ``error`` and ``reason``.

    ``pause`` is how long the carrier asked us to wait (a long ``Retry-After``): the circuit
    opens for that long at once, whatever the count, so every replica waits, not only the one
    that was told. It extends an open circuit only by more than :data:`PAUSE_SLACK` (the
    requests in flight when the first answer came get the same answer, a moment later).
    """
    # An opening by this statement sets opened_until to this statement's now() + open_for; an
    # earlier opening was made at an earlier now().
    opened: bool | None = await pool.fetchval(
        """
        INSERT INTO carrier_circuits AS c (carrier, failures, last_error, reason, updated_at,
                                           opened_until)
        VALUES ($1, 1, $2, $5, now(),
                COALESCE(now() + $6::interval, CASE WHEN 1 >= $3 THEN now() + $4::interval END))
        ON CONFLICT (carrier) DO UPDATE SET
            failures = c.failures + 1, last_error = EXCLUDED.last_error,
            reason = EXCLUDED.reason, updated_at = now(),
            opened_until = CASE
                WHEN $6::interval IS NOT NULL AND (c.opened_until IS NULL
                     OR c.opened_until < now() + $6::interval - $7::interval)
                THEN now() + $6::interval
                WHEN c.failures + 1 >= $3 AND (c.opened_until IS NULL OR c.opened_until < now())
                THEN now() + $4::interval ELSE c.opened_until END
        RETURNING opened_until IS NOT NULL
              AND opened_until IN (now() + $4::interval, now() + $6::interval)
        """,
        carrier,
        error[:500],
        threshold,
        open_for,
        reason,
        pause,
        PAUSE_SLACK,
    )
    if opened and reason == "credentials":
        log.warning(
            "%s circuit open for %s: the carrier refuses our credentials (%s); fix carriers.%s "
            "and restart to ask again at once",
            carrier,
            open_for,
            error,
            carrier,
        )
    elif opened and pause is not None:
        log.warning(
            "%s circuit open for %s: the carrier asked for a pause (%s)", carrier, pause, error
        )
    elif opened:
        log.warning("%s circuit open for %s after repeated failures: %s", carrier, open_for, error)
    return bool(opened)


async def record_success(pool: asyncpg.Pool, carrier: str) -> None:
    await pool.execute(
        """
        UPDATE carrier_circuits SET failures = 0, opened_until = NULL, updated_at = now()
        WHERE carrier = $1 AND (failures > 0 OR opened_until IS NOT NULL)
        """,
        carrier,
    )


async def forget_refusals(pool: asyncpg.Pool, carriers: Collection[str]) -> list[str]:
    """Close the circuits of ``carriers`` that refused credentials opened or were counting
    towards (this process may have been started with new ones); the carriers, sorted."""
    rows = await pool.fetch(
        """
        UPDATE carrier_circuits SET failures = 0, opened_until = NULL, updated_at = now()
        WHERE carrier = ANY($1::text[]) AND reason = 'credentials'
          AND (failures > 0 OR opened_until IS NOT NULL)
        RETURNING carrier
        """,
        list(carriers),
    )
    forgotten = sorted(r["carrier"] for r in rows)
    for carrier in forgotten:
        log.info("asking %s again: its credentials were refused before this start", carrier)
    return forgotten
