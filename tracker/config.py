"""Configuration: one pydantic model, its sections and their defaults.

Every key is documented in ``config.example.yaml`` (and ``docs/CONFIG.md``, generated from this
model). :func:`tracker.config_load.load_config` reads it from a YAML file and ``TRACKER_*``.
"""

from __future__ import annotations

import re
from datetime import timedelta
from pathlib import Path
from typing import Literal

from pydantic import (
    Field,
    SecretStr,
    field_validator,
    model_validator,
)

from carriers.base import CarrierSettings
from tracker.config_types import Duration, NonNegativeDuration
from tracker.config_types import Section as _Section
from tracker.config_web import WebAuthConfig, is_loopback

DEFAULT_API_VERSION = "2026-10"


class DatabaseConfig(_Section):
    url: SecretStr | None = Field(
        None,
        description="PostgreSQL URL (postgresql://user:pass@host/db). Empty: start an embedded "
        "PostgreSQL in data_dir.",
    )
    data_dir: Path = Field(
        Path("data/postgres"),
        description="Data directory of the embedded PostgreSQL (relative to the config file).",
    )
    pool_min_size: int = Field(2, ge=1, le=100, description="Connections kept open.")
    pool_max_size: int = Field(10, ge=1, le=200, description="Most connections at once.")
    migrate_on_start: bool = Field(
        True, description="Apply pending migrations when the daemon starts."
    )

    @field_validator("url")
    @classmethod
    def _postgres_url(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None and not _POSTGRES_URL.match(value.get_secret_value()):
            # The value is not repeated: it may hold a password.
            raise ValueError(
                "is not a PostgreSQL URL like postgresql://user:password@host:5432/dbname"
            )
        return value

    @model_validator(mode="after")
    def _pool_bounds(self) -> DatabaseConfig:
        if self.pool_min_size > self.pool_max_size:
            raise ValueError("pool_min_size is larger than pool_max_size")
        return self


_SHOP_DOMAIN = re.compile(
    r"^[a-z0-9][a-z0-9-]*\.myshopify\.com$|^127\.0\.0\.1:\d+$|^localhost:\d+$"
)
_API_VERSION = re.compile(r"^(20\d\d-(01|04|07|10)|unstable)$")
_POSTGRES_URL = re.compile(r"^postgres(ql)?://[^\s]*$")
_WEB_URL = re.compile(r"^https?://[^/?#\s@]+(/[^\s]*)?$", re.IGNORECASE)


def web_url(value: str | None, example: str) -> str | None:
    """``value`` when it is an http(s) URL with a host; ValueError naming ``example`` if not."""
    if value is not None and not _WEB_URL.match(value):
        raise ValueError(f"{value[:200]!r} is not an http(s) URL like {example}")
    return value


class ShopConfig(_Section):
    domain: str = Field(description="The store's myshopify.com domain, e.g. acme.myshopify.com.")
    access_token: SecretStr | None = Field(
        None,
        description="Admin API access token (shpat_...) of a custom app. Empty: the "
        "client-credentials grant with client_id and client_secret.",
    )
    client_id: str | None = Field(
        None, description="App client id, for the client-credentials token grant."
    )
    client_secret: SecretStr | None = Field(
        None,
        description="App client secret: verifies webhook signatures (HMAC) and, with "
        "client_id, obtains access tokens.",
    )
    previous_client_secret: SecretStr | None = Field(
        None, description="The secret before a rotation; webhooks signed with it still pass."
    )
    api_version: str = Field(DEFAULT_API_VERSION, description="Admin API version, YYYY-MM.")
    api_url: str | None = Field(
        None,
        description="Admin API root; empty: https://<domain>. Set to a sandbox URL for testing.",
    )
    writeback: dict[str, Literal["auto", "always", "never"]] = Field(
        default_factory=dict,
        description="Per carrier code (or 'default'): auto writes events only while the "
        "fulfillment has no events from Shopify's own tracking or other apps; always; never.",
    )

    @model_validator(mode="after")
    def _credentials(self) -> ShopConfig:
        if self.access_token is None and not (self.client_id and self.client_secret):
            raise ValueError(
                "needs access_token, or client_id and client_secret for the token grant"
            )
        return self

    def writeback_policy(self, carrier: str | None) -> str:
        return self.writeback.get(carrier or "", self.writeback.get("default", "auto"))

    @field_validator("domain")
    @classmethod
    def _domain(cls, value: str) -> str:
        value = value.strip().lower().removeprefix("https://").rstrip("/")
        if not _SHOP_DOMAIN.match(value):
            raise ValueError(f"{value!r} is not a shop domain like acme.myshopify.com")
        return value

    @field_validator("api_url")
    @classmethod
    def _api_url(cls, value: str | None) -> str | None:
        return web_url(value, "https://acme.myshopify.com")

    @field_validator("api_version")
    @classmethod
    def _version(cls, value: str) -> str:
        if not _API_VERSION.match(value):
            raise ValueError(f"{value!r} is not an API version like {DEFAULT_API_VERSION}")
        return value

    @property
    def admin_url(self) -> str:
        return (self.api_url or f"https://{self.domain}").rstrip("/")

    @property
    def graphql_url(self) -> str:
        return f"{self.admin_url}/admin/api/{self.api_version}/graphql.json"


class WebConfig(_Section):
    host: str = Field("127.0.0.1", description="Address the status table listens on.")
    port: int = Field(8080, ge=0, le=65535, description="Port of the status table (0: any).")
    public_url: str | None = Field(
        None,
        description="The URL Shopify reaches this daemon at (https://tracker.example.com); "
        "webhooks are registered for <public_url>/webhooks/shopify. Empty: no webhooks.",
    )
    auth: WebAuthConfig | None = Field(
        None,
        description="Login for the pages and a bearer token for the API; required when host "
        "is not a loopback address. Empty: everything is open (loopback only).",
    )

    @field_validator("public_url")
    @classmethod
    def _public_url(cls, value: str | None) -> str | None:
        return web_url(value, "https://tracker.example.com")

    @model_validator(mode="after")
    def _auth_off_loopback(self) -> WebConfig:
        if self.auth is None and not is_loopback(self.host):
            raise ValueError(
                f"host {self.host!r} is reachable from other machines, so web.auth is required "
                "(api_token, username, password_hash or TRACKER_WEB__AUTH__PASSWORD, "
                "session_secret); or keep host 127.0.0.1"
            )
        return self


class SyncConfig(_Section):
    interval: Duration = Field(timedelta(minutes=5), description="How often to read new orders.")
    page_size: int = Field(
        50,
        ge=1,
        le=249,
        description="Orders per GraphQL page; at most 249, so a page costs at most 1000 points.",
    )
    overlap: NonNegativeDuration = Field(
        timedelta(minutes=2),
        description="Each sync re-reads orders updated this long before the cursor, because "
        "Shopify's search index lags.",
    )
    lookback: Duration = Field(
        timedelta(days=30), description="On first start, read orders updated this far back."
    )


class PollingConfig(_Section):
    sweep_interval: Duration = Field(
        timedelta(seconds=10), description="How often to look for due shipments."
    )
    # Defaults measured with bench/sweep.py (bench/README.md): larger and more batches spread
    # each batch's fixed statements (circuits, claim, budget and pacing per carrier) over more
    # shipments and keep requests going while a batch is stored.
    batch_size: int = Field(400, ge=1, le=5000, description="Shipments claimed per sweep.")
    concurrent_batches: int = Field(
        8,
        ge=1,
        le=64,
        description=(
            "Claimed batches polled at once by one process; a slow carrier then holds up one"
            " batch, not the whole sweep."
        ),
    )
    requests_in_flight: int = Field(
        200,
        ge=1,
        le=1000,
        description=(
            "Concurrent requests to one carrier from one process (its rate limits still apply)."
        ),
    )
    lease: Duration = Field(
        timedelta(minutes=5),
        description="A claimed shipment returns to the pool after this long if its worker died.",
    )
    pre_transit_every: Duration = Field(timedelta(hours=6), description="Poll interval.")
    in_transit_every: Duration = Field(timedelta(hours=4), description="Poll interval.")
    out_for_delivery_every: Duration = Field(timedelta(hours=1), description="Poll interval.")
    not_found_every: Duration = Field(timedelta(hours=6), description="Poll interval.")
    error_backoff_max: Duration = Field(
        timedelta(hours=12), description="Longest wait after repeated carrier errors."
    )
    final_confirm_after: Duration = Field(
        timedelta(hours=24),
        description="Delivered or failed: one confirming poll this long after, then stop.",
    )
    not_found_give_up_after: Duration = Field(
        timedelta(days=3), description="Stop polling a number the carrier never found."
    )
    expire_after: Duration = Field(
        timedelta(days=30), description="Stop polling a parcel with no new scan for this long."
    )
    circuit_failures: int = Field(
        5,
        ge=1,
        le=1000,
        description=(
            "Failed requests in a row (unavailable, or credentials refused) that open a "
            "carrier's circuit."
        ),
    )
    circuit_open_for: Duration = Field(
        timedelta(minutes=10),
        description=(
            "How long an open circuit leaves the carrier alone (a carrier's Retry-After over "
            "30 s opens it at once, for that long)."
        ),
    )


class WritebackConfig(_Section):
    drain_interval: Duration = Field(
        timedelta(seconds=5), description="How often pending events are written to Shopify."
    )
    lease: Duration = Field(
        timedelta(minutes=2),
        description="A write still 'sending' after this long is checked against Shopify.",
    )
    concurrency: int = Field(4, ge=1, le=64, description="Fulfillments written at once.")
    max_attempts: int = Field(8, ge=1, le=100, description="Tries before an event is failed.")
    enabled: bool = Field(True, description="Write events to Shopify at all.")
    max_event_age: Duration = Field(
        timedelta(days=7),
        description="Events already this old when first seen are kept but not sent, so a first "
        "run over old orders does not send customers stale notifications.",
    )


class AttentionConfig(_Section):
    interval: Duration = Field(
        timedelta(minutes=2), description="How often attention flags are computed."
    )
    stalled_pre_transit_business_days: int = Field(
        3, ge=1, le=60, description="No scan for this many weekdays before pickup: stalled."
    )
    stalled_in_transit_business_days: int = Field(
        5, ge=1, le=60, description="No scan for this many weekdays in transit: stalled."
    )
    pickup_waiting_days: int = Field(
        5, ge=1, le=60, description="Waiting at a pickup point longer than this: flagged."
    )
    not_found_days: float = Field(
        3,
        gt=0,
        le=60,
        allow_inf_nan=False,
        description="Not found this long (days; fractions allowed, as 0.5): flagged.",
    )
    late_days: int = Field(2, ge=0, le=60, description="This long past the first ETA: late.")


class LogConfig(_Section):
    level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = Field("INFO", description="Log level.")
    json_lines: bool = Field(False, description="One JSON object per log line.")


class Config(_Section):
    """The whole configuration file."""

    database: DatabaseConfig = Field(
        default_factory=DatabaseConfig,
        description="Where the state lives: a PostgreSQL URL, or an embedded PostgreSQL.",
    )
    shops: list[ShopConfig] = Field(
        default_factory=list,
        description="The Shopify stores to track, one entry per store. Empty: nothing is synced.",
    )
    carriers: dict[str, CarrierSettings] = Field(
        default_factory=dict,
        description="Carrier code (dhl, ...) -> credentials and budget. Absent: not polled.",
    )
    web: WebConfig = Field(
        default_factory=WebConfig,
        description="The status table, JSON API, /metrics and the Shopify webhook endpoint.",
    )
    sync: SyncConfig = Field(
        default_factory=SyncConfig, description="Reading fulfilled orders from Shopify."
    )
    polling: PollingConfig = Field(
        default_factory=PollingConfig, description="When and how much carriers are asked."
    )
    writeback: WritebackConfig = Field(
        default_factory=WritebackConfig,
        description="Writing tracking events to Shopify as fulfillment events.",
    )
    attention: AttentionConfig = Field(
        default_factory=AttentionConfig,
        description="Thresholds of the 'needs attention' flags in the status table.",
    )
    log: LogConfig = Field(default_factory=LogConfig, description="Logging to stderr.")

    @field_validator("shops")
    @classmethod
    def _unique_shops(cls, value: list[ShopConfig]) -> list[ShopConfig]:
        domains = [shop.domain for shop in value]
        for domain in domains:
            if domains.count(domain) > 1:
                raise ValueError(f"shop {domain} is listed twice")
        return value

    @field_validator("carriers")
    @classmethod
    def _known_carriers(cls, value: dict[str, CarrierSettings]) -> dict[str, CarrierSettings]:
        from carriers.registry import available_factories

        known = available_factories()
        for code, settings in value.items():
            if code not in known:
                raise ValueError(f"unknown carrier {code!r}; known: {', '.join(sorted(known))}")
            if settings.base_url:
                try:
                    web_url(settings.base_url, "https://api.example.com")
                except ValueError as exc:
                    raise ValueError(f"{code}.base_url: {exc}") from None
        return value
