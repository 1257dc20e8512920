"""Every document the client sends is valid against Shopify's published schema."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import pytest
from graphql import GraphQLEnumType, build_client_schema, parse, validate

from tests.conftest import shared_file
from tracker.shopify.bulk_operations import bulk_query
from tracker.shopify.client import load_document

DOCUMENTS = sorted(
    p.stem
    for p in (Path(__file__).resolve().parents[1] / "tracker/shopify/graphql").glob("*.graphql")
)

# Newer than the 2025-01 schema file, and allowed (../shared/specs/README.md).
ALLOWED_NEWER_ENUM_VALUES = {("FulfillmentEventStatus", "CARRIER_PICKED_UP")}


@pytest.fixture(scope="module")
def shopify_schema():
    path = shared_file("specs/shopify/admin-2025-01.schema.json.gz")
    with gzip.open(path) as handle:
        return build_client_schema(json.load(handle)["data"], assume_valid=True)


def test_there_are_documents():
    assert {"FulfilledOrders", "FulfillmentEventCreate", "FulfillmentEvents"} <= set(DOCUMENTS)


@pytest.mark.parametrize("name", DOCUMENTS)
def test_document_is_valid_against_shopify(shopify_schema, name):
    errors = validate(shopify_schema, parse(load_document(name)))
    assert errors == [], [e.message for e in errors]


def test_the_backfill_query_without_customer_data_is_valid_and_asks_for_none(shopify_schema):
    query = bulk_query(customer_data=False)
    assert validate(shopify_schema, parse(query)) == []
    assert "email" not in query
    assert "customer" not in query
    assert query.split() != load_document("BulkFulfilledOrders").split()


@pytest.mark.parametrize("name", DOCUMENTS)
def test_document_names_its_operation_after_its_file(name):
    document = parse(load_document(name))
    names = [d.name.value for d in document.definitions if getattr(d, "name", None)]
    assert names == [name]


def test_every_status_we_send_exists_in_shopify(shopify_schema):
    from tracker.domain import Status

    enum = shopify_schema.get_type("FulfillmentEventStatus")
    assert isinstance(enum, GraphQLEnumType)
    missing = {("FulfillmentEventStatus", s.shopify) for s in Status} - {
        ("FulfillmentEventStatus", v) for v in enum.values
    }
    assert missing == ALLOWED_NEWER_ENUM_VALUES
