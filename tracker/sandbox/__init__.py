"""Local stand-ins for the outside world: the Shopify Admin GraphQL sandbox and the demo world.

:mod:`tracker.sandbox.shopify_app` serves a :class:`~tracker.sandbox.shopify_store.ShopifyStore`
over HTTP the way Shopify's Admin API answers (auth, API versions, query cost and throttling,
search syntax, cursors, ``fulfillmentEventCreate``), plus ``/_sandbox/`` control routes.
"""
