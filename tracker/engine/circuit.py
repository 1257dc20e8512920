"""Per-carrier circuit breakers, shared by every worker through PostgreSQL.

After ``polling.circuit_failures`` failed requests in a row (timeouts, 5xx, 429 after retries),
a carrier is left alone for ``polling.circuit_open_for``; its shipments wait, the other
carriers go on, and the status table says so. When that time is up the next sweep asks the
carrier again (the shipments then due): one more failure opens the circuit again at once, the
first success closes it.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta

import asyncpg

log = logging.getLogger(__name__)


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


async def record_failure(
    pool: asyncpg.Pool, carrier: str, error: str, *, threshold: int, open_for: timedelta
) -> bool:
    """Count one failed request; True when this failure opened the circuit.

    Failures while it is already open (requests that were in flight) count but do not extend
    it, and return False.
    """
    # An opening by this statement sets opened_until to this statement's now() + open_for; an
    # earlier opening was made at an earlier now().
    opened: bool | None = await pool.fetchval(
        """
        INSERT INTO carrier_circuits AS c (carrier, failures, last_error, updated_at,
                                           opened_until)
        VALUES ($1, 1, $2, now(), CASE WHEN 1 >= $3 THEN now() + $4::interval END)
        ON CONFLICT (carrier) DO UPDATE SET
            failures = c.failures + 1, last_error = EXCLUDED.last_error, updated_at = now(),
            opened_until = CASE
                WHEN c.failures + 1 >= $3 AND (c.opened_until IS NULL OR c.opened_until < now())
                THEN now() + $4::interval ELSE c.opened_until END
        RETURNING opened_until IS NOT NULL AND opened_until = now() + $4::interval
        """,
        carrier,
        error[:500],
        threshold,
        open_for,
    )
    if opened:
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
