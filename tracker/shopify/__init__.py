"""Shopify Admin GraphQL: the client, order sync and the write-back of tracking events."""
