"""The connections of our pools, and how a job that changes its session says so."""

from __future__ import annotations

import asyncpg


class PooledConnection(asyncpg.Connection):
    """A connection of our pools: given back without a reset unless it was marked for one.

    asyncpg resets every connection given back to a pool (it releases advisory locks, closes
    cursors, stops listening, resets settings): one more round trip and transaction each time,
    about as many as the poll path's own statements. Our code leaves no such state behind
    (cursors live in transactions, settings are per connection, nothing listens) except the
    session advisory locks a few jobs hold; they call :func:`reset_on_release` before taking
    one, so a lock whose unlock never ran (the job was cancelled) is still released with the
    connection. An open transaction is rolled back either way.
    """

    _reset_due = False

    def reset_on_release(self) -> None:
        self._reset_due = True

    def get_reset_query(self) -> str:
        if not self._reset_due:
            return ""
        self._reset_due = False
        query: str = super().get_reset_query()
        return query


def reset_on_release(conn: object) -> None:
    """Have ``conn`` (a pool's, or a proxy of one) fully reset when it is given back: call it
    before taking a session-level advisory lock or changing the session in any other way. A
    connection of another kind is always reset (asyncpg's default), so this does nothing."""
    mark = getattr(conn, "reset_on_release", None)
    if mark is not None:
        mark()
