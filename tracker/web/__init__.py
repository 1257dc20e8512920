"""The merchant's web view: status table, shipment detail, JSON API and health check."""

from __future__ import annotations

from tracker.web.app import build_app

__all__ = ["build_app"]
