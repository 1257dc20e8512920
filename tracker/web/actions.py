"""``POST /shipments/{id}/poll``: the shipment page's "Poll now" button.

Pressing it makes the shipment due at once and first in line (``next_poll_at = now()``,
``poll_priority = 0``), and, while it is still trackable (a configured carrier, a tracking
number, not cancelled), active again with its stop reason cleared; the daemon's next sweep
claims it. The carrier's budget is not bypassed: the poller reserves it as for any poll, and
when today's budget is already spent the page says so instead of queueing. A shipment being
polled right now is left alone. The answer is a redirect back to the page with a ``flash``
code in the query string; the words are chosen when the page is drawn.

The access middleware (:mod:`tracker.web.access`) checks the CSRF token and the origin first.
"""

from __future__ import annotations

import re
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime

import asyncpg
from aiohttp import web

from carriers.registry import available_factories
from tracker.config import Config
from tracker.web.access import ACCESS, see_other

FLASHES = ("queued", "running", "budget", "untrackable")
_ID = re.compile(r"[0-9]{1,19}")
_BIGINT_MAX = 2**63 - 1

_STATE = """
SELECT s.id, s.carrier, s.tracking_number, s.active, s.retired_reason, s.carrier_state,
       s.next_poll_at, s.last_polled_at,
       s.lease_owner IS NOT NULL AND COALESCE(s.lease_until > now(), false) AS polling_now,
       s.active AND s.next_poll_at <= now() AS due_now,
       CASE WHEN s.lease_owner IS NULL AND s.lease_until > now() THEN s.lease_until END
           AS held_until,  -- the carrier's daily budget is spent until then (hold_until)
       COALESCE(b.used, 0) AS budget_used, c.opened_until AS resting_until
FROM shipments s
LEFT JOIN carrier_budgets b
       ON b.carrier = s.carrier AND b.day = (now() AT TIME ZONE 'UTC')::date
LEFT JOIN carrier_circuits c ON c.carrier = s.carrier AND c.opened_until > now()
WHERE s.id = $1::bigint
"""

# The same conditions as PollState.refusal, so a shipment that changed since is not queued.
_QUEUE = """
UPDATE shipments
SET next_poll_at = now(), poll_priority = 0, active = true, stopped_reason = NULL,
    final_confirmed = false, lease_until = NULL, updated_at = now()
WHERE id = $1::bigint AND carrier = $2::text AND retired_reason IS NULL
  AND tracking_number <> '' AND carrier_state <> 'untracked'
  AND (lease_owner IS NULL OR lease_until <= now())  -- not being polled (a hold may go)
RETURNING id
"""


@dataclass(frozen=True, slots=True)
class PollState:
    """What decides whether a shipment may be polled now (one row of ``_STATE``)."""

    carrier: str | None
    tracking_number: str
    retired_reason: str | None
    carrier_state: str
    polling_now: bool
    budget_used: int
    per_day: int | None  # the carrier's daily quota; None: unlimited
    resting_until: datetime | None = None  # the carrier's circuit is open until then

    def untrackable(self, configured: Collection[str]) -> str | None:
        """Why there is nothing to poll, in words; None when there is."""
        if self.carrier_state == "untracked" or not self.tracking_number:
            return "This fulfillment has no tracking number, so there is nothing to poll."
        if self.retired_reason is not None:
            return f"Tracking stopped for good: {self.retired_reason}."
        if self.carrier is None:
            return "No carrier is known for this tracking number, so it is not polled."
        if self.carrier not in configured:
            return f"{self.carrier} is not configured (carriers.{self.carrier}): not polled."
        return None

    @property
    def budget_spent(self) -> bool:
        return self.per_day is not None and self.budget_used >= self.per_day

    def refusal(self, configured: Collection[str]) -> str | None:
        """The flash code when the button must not queue a poll; None when it may."""
        if self.untrackable(configured) is not None:
            return "untrackable"
        if self.polling_now:
            return "running"
        if self.budget_spent:
            return "budget"
        return None


@dataclass(frozen=True, slots=True)
class PollNowView:
    """What the shipment page shows around the button."""

    action: str
    csrf_token: str
    untrackable: str | None
    flash: str | None
    flash_kind: str
    budget: str | None
    polling_now: bool
    queued: bool
    next_poll_at: datetime | None
    last_polled_at: datetime | None


@dataclass(frozen=True)
class PollNow:
    pool: asyncpg.Pool
    quotas: Mapping[str, int | None]  # configured carrier -> daily quota
    sweep_seconds: float

    @classmethod
    def from_config(cls, pool: asyncpg.Pool, config: Config) -> PollNow:
        factories = available_factories()
        quotas: dict[str, int | None] = {}
        for code, settings in config.carriers.items():
            default = getattr(factories.get(code), "default_requests_per_day", None)
            if settings.requests_per_day is not None:
                quotas[code] = settings.requests_per_day
            else:
                quotas[code] = default if isinstance(default, int) else None
        return cls(pool, quotas, config.polling.sweep_interval.total_seconds())

    async def state(self, shipment_id: int) -> tuple[asyncpg.Record, PollState] | None:
        row = await self.pool.fetchrow(_STATE, shipment_id)
        if row is None:
            return None
        state = PollState(
            carrier=row["carrier"],
            tracking_number=row["tracking_number"],
            retired_reason=row["retired_reason"],
            carrier_state=row["carrier_state"],
            polling_now=row["polling_now"],
            budget_used=row["budget_used"],
            per_day=self.quotas.get(row["carrier"] or ""),
            resting_until=row["resting_until"],
        )
        return row, state

    async def handle(self, request: web.Request) -> web.StreamResponse:
        """``POST /shipments/{id}/poll``: queue, or say why not; back to the page either way."""
        shipment_id = _shipment_id(request)
        found = await self.state(shipment_id)
        if found is None:
            raise web.HTTPNotFound(reason=f"no shipment {shipment_id}")
        _, state = found
        flash = state.refusal(self.quotas)
        if flash is None:
            queued = await self.pool.fetchval(_QUEUE, shipment_id, state.carrier)
            flash = "queued" if queued is not None else "running"
        return see_other(f"/shipments/{shipment_id}?flash={flash}#poll-now")

    async def view(self, request: web.Request, shipment_id: int) -> PollNowView:
        found = await self.state(shipment_id)
        if found is None:
            raise web.HTTPNotFound(reason=f"no shipment {shipment_id}")
        row, state = found
        code = request.query.get("flash")
        flash, kind = self.flash_words(code, state) if code in FLASHES else (None, "")
        budget = None
        if state.carrier in self.quotas:
            budget = (
                f"{state.carrier}: {state.budget_used:,} requests today (UTC), no daily limit."
                if state.per_day is None
                else f"{state.carrier}: {state.budget_used:,} of {state.per_day:,} requests "
                "used today (UTC)."
            )
        return PollNowView(
            action=f"/shipments/{shipment_id}/poll",
            csrf_token=request.app[ACCESS].csrf_token(request),
            untrackable=state.untrackable(self.quotas),
            flash=flash,
            flash_kind=kind,
            budget=budget,
            polling_now=state.polling_now,
            queued=row["due_now"] and not state.polling_now and row["held_until"] is None,
            next_poll_at=(row["held_until"] or row["next_poll_at"]) if row["active"] else None,
            last_polled_at=row["last_polled_at"],
        )

    def flash_words(self, code: str | None, state: PollState) -> tuple[str, str]:
        """The message for a flash code, from the shipment's state now; and its kind."""
        carrier = state.carrier or "the carrier"
        if code == "queued" and state.resting_until is not None:
            return (
                f"Poll queued, but {carrier} keeps failing: its polls are paused until "
                f"{state.resting_until.astimezone(UTC):%Y-%m-%d %H:%M} UTC.",
                "problem",
            )
        if code == "queued":
            return (
                f"Poll queued: the daemon asks {carrier} at its next sweep "
                f"(every {self.sweep_seconds:g} s). Reload to see the result.",
                "ok",
            )
        if code == "running":
            return "A poll of this shipment is running right now; reload in a moment.", "ok"
        if code == "budget":
            size = "" if state.per_day is None else f" of {state.per_day:,} requests"
            return (
                f"Not queued: today's {carrier} budget{size} is spent. "
                "Polls resume after 00:00 UTC.",
                "problem",
            )
        return f"Not queued. {state.untrackable(self.quotas) or ''}".strip(), "problem"


POLL_NOW = web.AppKey("poll_now", PollNow)


def install_actions(app: web.Application, pool: asyncpg.Pool, config: Config) -> PollNow:
    """Serve ``POST /shipments/{id}/poll`` on ``app``."""
    poll_now = PollNow.from_config(pool, config)
    app[POLL_NOW] = poll_now
    app.router.add_post("/shipments/{id}/poll", poll_now.handle, name="poll_now")
    return poll_now


def _shipment_id(request: web.Request) -> int:
    raw = request.match_info["id"]
    if not _ID.fullmatch(raw) or not 0 < int(raw) <= _BIGINT_MAX:
        raise web.HTTPNotFound(reason=f"no shipment {raw[:30]}")
    return int(raw)
