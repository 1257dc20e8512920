-- 0002: Shopify webhook deliveries, stored on receipt and processed by the daemon's job.
-- Never edit this file once it has landed: add 0003_*.sql instead.

CREATE TABLE webhook_deliveries (
    webhook_id      text PRIMARY KEY,                 -- X-Shopify-Webhook-Id (same on retries)
    shop_id         bigint NOT NULL REFERENCES shops (id),
    topic           text NOT NULL,                    -- X-Shopify-Topic, e.g. orders/fulfilled
    event_id        text,                             -- X-Shopify-Event-Id
    api_version     text,                             -- X-Shopify-API-Version
    triggered_at    timestamptz,                      -- X-Shopify-Triggered-At
    received_at     timestamptz NOT NULL DEFAULT now(),
    payload         jsonb NOT NULL,
    -- Processing: claimed by moving next_attempt_at past a lease; done when processed_at is set.
    processed_at    timestamptz,
    outcome         text,                             -- what processing did (applied, ignored: ...)
    attempts        integer NOT NULL DEFAULT 0,
    next_attempt_at timestamptz NOT NULL DEFAULT now(),
    error           text,                             -- the last failure, kept
    failed_at       timestamptz                       -- gave up after the last attempt
);

-- The processor's claim query reads only deliveries still to do.
CREATE INDEX webhook_deliveries_due ON webhook_deliveries (next_attempt_at)
    WHERE processed_at IS NULL AND failed_at IS NULL;

-- Shopify may deliver one event again under a new webhook id: keep the first.
CREATE UNIQUE INDEX webhook_deliveries_event ON webhook_deliveries (shop_id, event_id)
    WHERE event_id IS NOT NULL;
