"""``GET /export.csv``: every shipment of a view, as CSV, streamed.

The query string is the status table's (:mod:`tracker.web.view`); the export has the view's
filters and order and all its rows, from the first (``cursor`` and ``limit`` are ignored). Rows
come from a server-side cursor in one read-only, repeatable-read transaction, ``BATCH`` at a time,
and go out in chunks of about ``CHUNK`` bytes, each written (and drained when the client is
slow) before more rows are read: memory does not grow with the number of rows, and a slow
reader holds the cursor back rather than filling this process.

Cells are UTF-8 (with a byte-order mark, so that spreadsheets read them as such) and quoted where
CSV needs it; text starting with ``=``, ``+``, ``-``, ``@``, a tab or a carriage return gets a
leading ``'`` so that a spreadsheet shows it rather than running it as a formula.
"""

from __future__ import annotations

import csv
import io
import logging
from collections.abc import Sequence
from datetime import UTC, datetime

import asyncpg
from aiohttp import web

from tracker.web import present
from tracker.web.queries import stream_rows
from tracker.web.view import View

log = logging.getLogger(__name__)

BATCH = 200
"""Rows per fetch from the cursor."""
CHUNK = 1 << 16
"""Bytes of CSV (about) per write to the client."""
BOM = "\ufeff"
COLUMNS = (
    "shipment_id",
    "store",
    "order",
    "order_url",
    "customer_name",
    "customer_email",
    "carrier",
    "carrier_source",
    "tracking_company",
    "tracking_number",
    "tracking_url",
    "status",
    "status_since",
    "last_scan_at",
    "last_scan_message",
    "last_scan_place",
    "eta",
    "days_in_transit",
    "shipped_at",
    "attention",
    "attention_since",
    "carrier_state",
    "carrier_message",
    "writeback_written",
    "writeback_pending",
    "writeback_failed",
    "retired_reason",
)
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


class ExportInterrupted(Exception):
    """The export failed after its first bytes were sent; the connection is closed unfinished."""


def safe_cell(value: object) -> str | int:
    """A cell a spreadsheet shows as written: text that could start a formula gets a ``'``."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return value
    text = str(value)
    return "'" + text if text.startswith(_FORMULA_START) else text


def csv_cells(row: present.Row, public_url: present.PublicUrl, now: datetime) -> list[str | int]:
    """One shipment row as the cells of :data:`COLUMNS`."""
    has_event = row["ev_id"] is not None
    values: Sequence[object] = (
        row["id"],
        row["shop"],
        row["order_name"],
        present.admin_order_url(row["shop"], row["order_id"]),
        row["customer_name"],
        row["customer_email"],
        row["carrier"],
        row["carrier_source"],
        row["tracking_company"],
        row["tracking_number"],
        present.tracking_url(row, public_url),
        row["status"],
        present.iso(row["status_at"]),
        present.iso(row["ev_happened_at"]) if has_event else None,
        row["ev_message"] if has_event else None,
        present.place(row["ev_city"], row["ev_province"], row["ev_zip"], row["ev_country"])
        if has_event
        else None,
        present.iso(row["estimated_delivery_at"]),
        present.days_in_transit(row, now),
        present.iso(row["fulfilled_at"]),
        row["attention"],
        present.iso(row["attention_since"]),
        row["carrier_state"],
        row["carrier_message"],
        row["wb_written"],
        row["wb_pending"],
        row["wb_failed"],
        row["retired_reason"],
    )
    return [safe_cell(value) for value in values]


class _Lines:
    """CSV lines into a buffer that is emptied as bytes."""

    def __init__(self) -> None:
        self._buffer = io.StringIO()
        self._writer = csv.writer(self._buffer, lineterminator="\r\n")

    def add(self, cells: Sequence[str | int]) -> None:
        self._writer.writerow(cells)

    @property
    def size(self) -> int:
        """Characters waiting (about the bytes, for mostly ASCII text)."""
        return self._buffer.tell()

    def take(self) -> bytes:
        data = self._buffer.getvalue().encode("utf-8")
        self._buffer.seek(0)
        self._buffer.truncate()
        return data


async def stream_csv(
    request: web.Request,
    pool: asyncpg.Pool,
    view: View,
    public_url: present.PublicUrl,
) -> web.StreamResponse:
    """Send the view as CSV; a database failure before the first byte raises as usual."""
    now = datetime.now(UTC)
    response = web.StreamResponse(
        headers={
            "Content-Disposition": (
                f'attachment; filename="shipments-{now.strftime("%Y-%m-%d-%H%M")}.csv"'
            ),
            "Cache-Control": "no-store",
        }
    )
    response.content_type = "text/csv"
    response.charset = "utf-8"
    response.enable_chunked_encoding()
    lines = _Lines()
    lines.add(COLUMNS)
    if request.method == "HEAD":  # the headers only: no need to read a single row
        await response.prepare(request)
        return response
    rows = 0
    async with pool.acquire() as conn:
        try:
            async with conn.transaction(isolation="repeatable_read", readonly=True):
                await response.prepare(request)
                await response.write(BOM.encode() + lines.take())
                async for row in stream_rows(conn, view.where, view.sort, view.descending, BATCH):
                    lines.add(csv_cells(row, public_url, now))
                    rows += 1
                    if lines.size >= CHUNK:
                        await response.write(lines.take())
                await response.write(lines.take())
        except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
            if not response.prepared:
                raise  # nothing sent yet: answered as any database failure
            client_gone = request.transport is None or request.transport.is_closing()
            if isinstance(exc, ConnectionError) and client_gone:
                log.info("CSV export: the client went away after %d rows", rows)
                return response
            # Headers are out: end the connection without the last chunk, so that the client
            # sees an unfinished download rather than a short file.
            raise ExportInterrupted(f"the export stopped after {rows} rows: {exc}") from exc
    await response.write_eof()
    log.info("CSV export: %d rows", rows)
    return response
