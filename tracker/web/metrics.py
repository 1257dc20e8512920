"""``GET /metrics``: the daemon's Prometheus metrics (text exposition format).

The gauges read from PostgreSQL are refreshed on each scrape within a short timeout; when the
database cannot answer, the scrape gets a 503 with a one-line plain-text reason (Prometheus
then records the target as down) rather than stale or partial figures.
"""

from __future__ import annotations

import logging

import asyncpg
from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST

from tracker.metrics import MetricsSource

log = logging.getLogger(__name__)

METRICS_SOURCE = web.AppKey("metrics_source", MetricsSource)
METRICS_PATH = "/metrics"


def add_metrics_route(app: web.Application, source: MetricsSource) -> None:
    app[METRICS_SOURCE] = source
    app.router.add_get(METRICS_PATH, metrics_page, name="metrics")


async def metrics_page(request: web.Request) -> web.Response:
    source = request.app[METRICS_SOURCE]
    try:
        body = await source.scrape()
    except TimeoutError:
        reason = f"the database did not answer within {source.timeout:g} s"
    except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
        reason = f"the database is unavailable ({type(exc).__name__})"
    else:
        return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})
    log.warning("metrics scrape failed: %s", reason)
    return web.Response(status=503, text=f"metrics unavailable: {reason}\n")
