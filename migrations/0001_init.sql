-- 0001: shops, shipments, normalized tracking events with their write-back state.
-- Never edit this file once it has landed: add 0002_*.sql instead.

CREATE TABLE shops (
    id              bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    domain          text NOT NULL UNIQUE,
    api_version     text NOT NULL,
    -- Orders updated at or after this moment are read again by the next incremental sync.
    sync_cursor     timestamptz,
    last_sync_at    timestamptz,
    last_sync_error text,
    created_at      timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE shipments (
    id                    bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    shop_id               bigint NOT NULL REFERENCES shops (id),
    order_id              text NOT NULL,            -- gid://shopify/Order/...
    order_name            text NOT NULL,            -- "#1001"
    fulfillment_id        text NOT NULL,            -- gid://shopify/Fulfillment/...
    tracking_number       text NOT NULL,
    tracking_company      text,                     -- as the merchant typed it
    tracking_url          text,
    carrier               text,                     -- adapter code; NULL: no adapter known
    carrier_source        text NOT NULL DEFAULT 'shopify'
                          CHECK (carrier_source IN ('shopify', 'detected', 'unknown')),
    fulfilled_at          timestamptz,
    -- What the carrier says.
    status                text,                     -- lower-case FulfillmentEventStatus, NULL: none yet
    status_at             timestamptz,
    carrier_state         text NOT NULL DEFAULT 'pending'
                          CHECK (carrier_state IN ('pending', 'found', 'not_found',
                                                   'invalid_number', 'carrier_error',
                                                   'unavailable', 'no_adapter')),
    carrier_message       text NOT NULL DEFAULT '',
    estimated_delivery_at timestamptz,
    last_event_id         bigint,
    -- Polling.
    active                boolean NOT NULL DEFAULT true,
    next_poll_at          timestamptz NOT NULL DEFAULT now(),
    poll_priority         smallint NOT NULL DEFAULT 100,
    last_polled_at        timestamptz,
    poll_failures         integer NOT NULL DEFAULT 0,
    lease_owner           text,
    lease_until           timestamptz,
    retired_reason        text,                     -- why tracking stopped, when it did
    created_at            timestamptz NOT NULL DEFAULT now(),
    updated_at            timestamptz NOT NULL DEFAULT now(),
    UNIQUE (shop_id, fulfillment_id, tracking_number)
);

-- The claim query reads only active shipments, in this order.
CREATE INDEX shipments_due ON shipments (poll_priority, next_poll_at) WHERE active;
CREATE INDEX shipments_status_at ON shipments (status_at DESC NULLS LAST, id DESC);
CREATE INDEX shipments_tracking_number ON shipments (tracking_number);
CREATE INDEX shipments_order_name ON shipments (order_name);

CREATE TABLE tracking_events (
    id                    bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    shipment_id           bigint NOT NULL REFERENCES shipments (id) ON DELETE CASCADE,
    status                text,                     -- NULL: a scan with no Shopify status
    happened_at           timestamptz NOT NULL,
    time_source           text NOT NULL DEFAULT 'utc',
    carrier_code          text NOT NULL DEFAULT '',
    message               text NOT NULL DEFAULT '',
    city                  text,
    province              text,
    country               text,
    zip                   text,
    estimated_delivery_at timestamptz,
    dedupe_key            text NOT NULL,
    discovered_at         timestamptz NOT NULL DEFAULT now(),
    -- Write-back: pending -> sending -> written | failed | skipped (see DESIGN.md).
    writeback_state       text NOT NULL
                          CHECK (writeback_state IN ('pending', 'sending', 'written',
                                                     'failed', 'skipped')),
    writeback_owner       text,
    writeback_started_at  timestamptz,
    writeback_attempts    integer NOT NULL DEFAULT 0,
    writeback_next_at     timestamptz NOT NULL DEFAULT now(),
    writeback_error       text,
    shopify_event_id      text,
    written_at            timestamptz,
    UNIQUE (shipment_id, dedupe_key)
);

CREATE INDEX tracking_events_shipment ON tracking_events (shipment_id, happened_at);
CREATE INDEX tracking_events_unwritten ON tracking_events (writeback_next_at)
    WHERE writeback_state IN ('pending', 'sending');
