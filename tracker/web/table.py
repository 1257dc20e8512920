"""The status table page (``GET /``), the CSV export, and the routes of both and of the API.

The page is whole without JavaScript: tabs, the filter form, sortable headings and the pager
are links and a GET form, each carrying the whole view (:mod:`tracker.web.view`). A small inline
script (``static/live.js``, allowed by its hash in the Content-Security-Policy) fetches the
same URL every 15 seconds and swaps in the counts and the rows of the page being read.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

from aiohttp import web
from yarl import URL

from tracker.config import Config
from tracker.engine.attention import FLAGS
from tracker.web import present
from tracker.web.app import PAGES, POOL, bad_request
from tracker.web.counts import fetch_counts
from tracker.web.export import stream_csv
from tracker.web.links import TrackingLinks, links_context
from tracker.web.queries import Page, fetch_notices, fetch_page
from tracker.web.selection import SORTS, TABS, UNKNOWN_CARRIER
from tracker.web.view import NO_STATUS, STATUSES, BadQuery, View, encode_cursor, parse_view

LINKS = web.AppKey("tracking_links", TrackingLinks)
REFRESH_SECONDS = 15


def view_of(request: web.Request) -> View:
    """The request's view; 400 with the reason when its query string is unusable."""
    try:
        return parse_view(request.query)
    except BadQuery as exc:
        raise bad_request(str(exc)) from None


def link(path: str, pairs: list[tuple[str, str]]) -> str:
    return str(URL(path).with_query(pairs))


def page_cursors(view: View, page: Page) -> tuple[str | None, str | None]:
    """The ``cursor`` of the next and of the previous page, None where there is none."""
    after = None if page.next is None else encode_cursor(view.sort, view.descending, page.next)
    before = None
    if page.previous is not None:
        before = encode_cursor(view.sort, view.descending, page.previous)
    return after, before


@dataclass(frozen=True, slots=True)
class Tab:
    key: str
    label: str
    hint: str
    count: int
    url: str
    current: bool


@dataclass(frozen=True, slots=True)
class Heading:
    key: str
    label: str
    url: str
    aria_sort: str | None


def headings(view: View) -> dict[str, Heading]:
    """Each sortable column: the link that sorts by it (or turns the current sort around)."""
    found = {}
    for key, label in present.SORT_WORDS.items():
        current = key == view.sort
        direction = not view.descending if current else SORTS[key].descending
        aria = None
        if current:
            aria = "descending" if view.descending else "ascending"
        url = link("/", view.query(sort=key, descending=direction))
        found[key] = Heading(key, label, url, aria)
    return found


async def status_table(request: web.Request) -> web.Response:
    view = view_of(request)
    pool = request.app[POOL]
    counts = await fetch_counts(pool, view.where)
    page = await fetch_page(
        pool,
        view.where,
        view.sort,
        view.descending,
        view.after,
        view.limit,
        view_rows=counts.tabs[view.where.tab],
    )
    store_problems, resting_carriers = await fetch_notices(pool)
    after, before = page_cursors(view, page)
    tabs = [
        Tab(
            key,
            *present.TAB_WORDS[key],
            counts.tabs[key],
            link("/", view.query(tab=key)),
            key == view.where.tab,
        )
        for key in TABS
    ]
    stores = []
    if len(counts.stores) > 1:
        every = sum(counts.stores.values())
        everywhere = link("/", view.query(store=None))
        stores.append(Tab("", "All stores", "", every, everywhere, view.where.store is None))
        for domain, count in counts.stores.items():
            url = link("/", view.query(store=domain))
            stores.append(Tab(domain, domain, "", count, url, domain == view.where.store))
    chosen = dict(view.filters)
    return request.app[PAGES].render(
        "shipments.html",
        rows=page.rows,
        tabs=tabs,
        stores=stores,
        headings=headings(view),
        chosen=chosen,
        chosen_statuses=chosen.get("status", "").split(","),
        chosen_attention=chosen.get("attention", "").split(","),
        statuses=STATUSES,
        no_status=NO_STATUS,
        flags=FLAGS,
        carriers=[*request.app[LINKS].carriers, UNKNOWN_CARRIER],
        store_names=list(counts.stores),
        hidden=[(k, v) for k, v in view.query() if k in ("tab", "sort", "dir", "limit")],
        next_url=None if after is None else link("/", view.query(cursor=after)),
        previous_url=None if before is None else link("/", view.query(cursor=before)),
        first_url=link("/", view.query()) if view.after is not None else None,
        export_url=link("/export.csv", view.query(keep_limit=False)),
        api_url=link("/api/shipments", view.query()),
        refresh_seconds=REFRESH_SECONDS,
        now=datetime.now(UTC),
        store_problems=store_problems,
        resting_carriers=resting_carriers,
    )


async def export_csv(request: web.Request) -> web.StreamResponse:
    view = view_of(request)
    return await stream_csv(request, request.app[POOL], view, request.app[LINKS])


def add_table_routes(app: web.Application, config: Config) -> None:
    """Serve the table and the export on ``app``, and teach the templates links."""
    links = TrackingLinks()
    app[LINKS] = links
    app.cleanup_ctx.append(links_context(links, config.carriers))
    app[PAGES].env.filters["day"] = present.day_text
    app[PAGES].env.globals.update(
        tracking_url=lambda row: present.tracking_url(row, links),
        order_url=present.admin_order_url,
        days_in_transit=present.days_in_transit,
    )
    app.router.add_get("/", status_table, name="status_table")
    app.router.add_get("/export.csv", export_csv, name="export_csv")
