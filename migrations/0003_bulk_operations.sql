-- 0003: bulk operations the backfill started (a restart waits on the same one), and a notice per
-- shop for the status table (e.g. no read_all_orders: orders older than 60 days not backfilled).
-- Never edit this file once it has landed: add 0004_*.sql instead.

CREATE TABLE bulk_operations (
    operation_id     text PRIMARY KEY,                -- gid://shopify/BulkOperation/...
    shop_id          bigint NOT NULL REFERENCES shops (id),
    -- running: started and not yet read; then what reading it came to.
    state            text NOT NULL DEFAULT 'running'
                     CHECK (state IN ('running', 'completed', 'empty', 'partial', 'failed',
                                      'expired', 'canceled')),
    enabled_carriers text[] NOT NULL DEFAULT '{}',    -- of the run that started it
    shopify_status   text,                            -- BulkOperationStatus when last read
    error_code       text,                            -- BulkOperationErrorCode
    object_count     bigint,
    orders           bigint NOT NULL DEFAULT 0,       -- orders applied from its result
    parcels          bigint NOT NULL DEFAULT 0,
    retired          bigint NOT NULL DEFAULT 0,
    created_at       timestamptz,                     -- Shopify's createdAt: the snapshot's start
    recorded_at      timestamptz NOT NULL DEFAULT now(),
    finished_at      timestamptz                      -- when its result was read (or given up)
);

CREATE INDEX bulk_operations_running ON bulk_operations (shop_id) WHERE state = 'running';

ALTER TABLE shops ADD COLUMN notice text;
