-- 0007: the order's customer on each shipment, and what the status table sorts and searches by.
-- Never edit this file once it has landed: add 0008_*.sql instead.

ALTER TABLE shipments
    ADD COLUMN customer_name  text,                  -- Order.customer.displayName
    ADD COLUMN customer_email text;                  -- Order.email

-- Microseconds since the epoch; immutable (unlike extract(epoch FROM timestamptz)), so that sort
-- keys built from it can be indexed.
CREATE FUNCTION epoch_us(t timestamptz) RETURNS bigint
LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE AS $$
    SELECT (extract(epoch FROM t - timestamptz '1970-01-01 00:00:00+00') * 1000000)::bigint
$$;

-- The status table's default order, most urgent first: attention flags (in the order of
-- tracker.engine.attention.FLAGS), then carrier problems, then statuses by tracker.domain.URGENCY.
-- tests/test_web_table.py checks that this agrees with those Python definitions.
CREATE FUNCTION shipment_rank(attention text, carrier_state text, status text) RETURNS integer
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT CASE
        WHEN attention IS NOT NULL THEN COALESCE(array_position(
            ARRAY['returned_or_failed', 'delivery_attempt_failed', 'not_found', 'expired',
                  'stalled', 'late', 'waiting_at_pickup', 'no_tracking_number',
                  'carrier_not_tracked']::text[], attention), 0)
        WHEN carrier_state IN ('not_found', 'invalid_number', 'carrier_error', 'unavailable',
                               'no_adapter') THEN 20
        ELSE 21 + CASE status
            WHEN 'failure' THEN 0
            WHEN 'attempted_delivery' THEN 1
            WHEN 'delayed' THEN 2
            WHEN 'ready_for_pickup' THEN 3
            WHEN 'out_for_delivery' THEN 4
            WHEN 'in_transit' THEN 5
            WHEN 'carrier_picked_up' THEN 6
            WHEN 'confirmed' THEN 7
            WHEN 'label_printed' THEN 8
            WHEN 'label_purchased' THEN 9
            WHEN 'delivered' THEN 11
            ELSE 10
        END
    END
$$;

-- What the search box looks in, lower-cased; the separator keeps matches within one field.
CREATE FUNCTION shipment_search_text(order_name text, tracking_number text, customer_name text,
                                     customer_email text) RETURNS text
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT lower(COALESCE(order_name, '') || E'\x1f' || COALESCE(tracking_number, '') || E'\x1f'
                 || COALESCE(customer_name, '') || E'\x1f' || COALESCE(customer_email, ''))
$$;

-- One index per sort of the table (tracker/web/queries.py SORTS spells the same expressions), so
-- that a page after any cursor is an index range scan, however deep it is.
CREATE INDEX shipments_by_urgency ON shipments (
    shipment_rank(attention, carrier_state, status),
    (COALESCE(-epoch_us(status_at), 9223372036854775807)),
    id);
CREATE INDEX shipments_by_order_name ON shipments (order_name, id);
CREATE INDEX shipments_by_last_scan ON shipments (
    (COALESCE(epoch_us(last_scan_at), -9223372036854775807)), id);
CREATE INDEX shipments_by_eta ON shipments (
    (COALESCE(epoch_us(estimated_delivery_at), 9223372036854775807)), id);
CREATE INDEX shipments_by_shipped ON shipments (
    (COALESCE(epoch_us(fulfilled_at), -9223372036854775807)), id);
DROP INDEX shipments_order_name;                 -- a prefix of shipments_by_order_name

-- Substring search ("contains") by trigrams, where pg_trgm can be installed; without it the
-- search still works, by reading every row.
DO $$
BEGIN
    CREATE EXTENSION IF NOT EXISTS pg_trgm;
EXCEPTION WHEN OTHERS THEN
    RAISE WARNING 'pg_trgm is not available (%): the status table search will not be indexed',
        SQLERRM;
END
$$;

DO $$
BEGIN
    IF EXISTS (SELECT 1 FROM pg_extension WHERE extname = 'pg_trgm') THEN
        EXECUTE 'CREATE INDEX shipments_search ON shipments USING gin ('
             || 'shipment_search_text(order_name, tracking_number, customer_name, customer_email)'
             || ' gin_trgm_ops)';
    END IF;
END
$$;
