"""A bulk operation's JSONL result, streamed line by line and joined to parents.

The file can be gigabytes, so it is never held whole: :class:`BulkResultReader` reads
``response.content`` in chunks, splits lines itself (no line-length limit), and after a transport
error resumes with a ``Range`` request from the end of the last complete line (from the top,
skipping what was read, if the server ignores ``Range``). Result URLs are signed: they are never
logged, and the request carries no Shopify credentials.

Objects of nested connections come on their own lines with ``__parentId``. With grouped output
they follow their parent; :meth:`BulkResultReader.root_batches` attaches them under
``__children`` of the parent while it is still in the batch being built, and counts the others
as ``orphans``. Nothing here knows what the objects are.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import AsyncIterator
from typing import Any

import aiohttp

from tracker.shopify.client import ShopifyError

log = logging.getLogger(__name__)

CHUNK_BYTES = 1 << 16
DOWNLOAD_ATTEMPTS = 4
READ_TIMEOUT = 60.0


class BulkResultError(ShopifyError):
    """The result file could not be read (after retries), or a line is not a JSON object."""


class BulkResultExpired(BulkResultError):
    """The result URL no longer serves the file (it expires seven days after the operation)."""


class _Transient(Exception):
    pass


class BulkResultReader:
    """One result file at ``url``; ``lines`` and ``orphans`` count what was read so far."""

    def __init__(
        self,
        session: aiohttp.ClientSession,
        url: str,
        *,
        attempts: int = DOWNLOAD_ATTEMPTS,
        read_timeout: float = READ_TIMEOUT,
    ) -> None:
        self._session = session
        self._url = url
        self._attempts = attempts
        self._timeout = aiohttp.ClientTimeout(
            total=None, sock_connect=read_timeout, sock_read=read_timeout
        )
        self.lines = 0
        self.orphans = 0
        self.bytes_read = 0
        self.delivered = 0
        """Objects in the batches :meth:`root_batches` has yielded (roots and children)."""

    async def objects(self) -> AsyncIterator[dict[str, Any]]:
        """Every JSON object of the file, in file order."""
        failures = 0
        while True:
            try:
                async for line in self._lines_from(self.bytes_read):
                    yield self._parse(line)
                return
            except (aiohttp.ClientPayloadError, aiohttp.ClientConnectionError, _Transient) as exc:
                failure = f"{type(exc).__name__}: {exc}"
            except TimeoutError:
                failure = "timed out"
            failures += 1
            if failures >= self._attempts:
                raise BulkResultError(
                    f"the bulk result could not be read after {failures} attempts: {failure}"
                )
            log.warning(
                "bulk result download interrupted after %d lines (%s); resuming",
                self.lines,
                failure,
            )
            await asyncio.sleep(min(0.5 * 2**failures, 10.0))

    async def _lines_from(self, offset: int) -> AsyncIterator[bytes]:
        headers = {"Range": f"bytes={offset}-"} if offset else {}
        async with self._session.get(self._url, headers=headers, timeout=self._timeout) as response:
            if response.status in (401, 403, 404, 410):
                raise BulkResultExpired(
                    f"the bulk result is no longer available (HTTP {response.status})"
                )
            if response.status == 416:  # nothing past the offset: the file was read to its end
                return
            if response.status == 429 or response.status >= 500:
                raise _Transient(f"HTTP {response.status}")
            if response.status not in (200, 206):
                raise BulkResultError(f"the bulk result URL answered HTTP {response.status}")
            skip = offset if response.status == 200 else 0
            buffer = bytearray()
            async for chunk in response.content.iter_chunked(CHUNK_BYTES):
                if skip:
                    if len(chunk) <= skip:
                        skip -= len(chunk)
                        continue
                    chunk, skip = chunk[skip:], 0
                buffer += chunk
                start = 0
                while (end := buffer.find(b"\n", start)) >= 0:
                    line = bytes(buffer[start:end])
                    start = end + 1
                    self.bytes_read += len(line) + 1
                    if line.strip():
                        yield line
                del buffer[:start]
            if buffer.strip():
                self.bytes_read += len(buffer)
                yield bytes(buffer)

    def _parse(self, line: bytes) -> dict[str, Any]:
        self.lines += 1
        try:
            value = json.loads(line)
        except ValueError:
            value = None
        if not isinstance(value, dict):
            raise BulkResultError(f"line {self.lines} of the bulk result is not a JSON object")
        return value

    async def root_batches(self, size: int) -> AsyncIterator[list[dict[str, Any]]]:
        """Root objects in lists of ``size``, each with its children under ``__children``."""
        batch: list[dict[str, Any]] = []
        by_id: dict[str, dict[str, Any]] = {}
        in_batch = 0
        async for item in self.objects():
            parent_id = item.pop("__parentId", None)
            if parent_id is None:
                if len(batch) >= size:
                    self.delivered += in_batch
                    yield batch
                    batch, by_id, in_batch = [], {}, 0
                batch.append(item)
            else:
                parent = by_id.get(parent_id)
                if parent is None:
                    self.orphans += 1
                    if self.orphans == 1:
                        log.warning(
                            "bulk result line %d belongs to %s, which is not in the batch being "
                            "read (ungrouped output?); such lines are skipped and counted",
                            self.lines,
                            parent_id,
                        )
                    continue
                parent.setdefault("__children", []).append(item)
            in_batch += 1
            if isinstance(item.get("id"), str):
                by_id[item["id"]] = item
        if batch:
            self.delivered += in_batch
            yield batch
