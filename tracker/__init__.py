"""Bulk shipment tracking for Shopify."""

from __future__ import annotations

__version__ = "0.1.0"
