-- 0006: adaptive polling (confirming poll, give-up rules), carrier circuits, attention flags,
-- and fulfillments shipped without a tracking number.

ALTER TABLE shipments
    ADD COLUMN last_scan_at    timestamptz,          -- newest scan of any kind
    ADD COLUMN first_eta       timestamptz,          -- the first ETA the carrier gave
    ADD COLUMN not_found_since timestamptz,          -- first of an unbroken run of "not found"
    ADD COLUMN final_confirmed boolean NOT NULL DEFAULT false,
    ADD COLUMN stopped_reason  text,                 -- why polling stopped early (expired, ...)
    ADD COLUMN attention       text,                 -- most urgent flag, NULL: all is well
    ADD COLUMN attention_since timestamptz;

ALTER TABLE shipments DROP CONSTRAINT shipments_carrier_state_check;
ALTER TABLE shipments ADD CONSTRAINT shipments_carrier_state_check
    CHECK (carrier_state IN ('pending', 'found', 'not_found', 'invalid_number', 'carrier_error',
                             'unavailable', 'no_adapter', 'untracked'));

CREATE INDEX shipments_attention ON shipments (attention) WHERE attention IS NOT NULL;

-- A carrier that keeps failing is left alone for a while, by every worker.
CREATE TABLE carrier_circuits (
    carrier      text PRIMARY KEY,
    failures     integer NOT NULL DEFAULT 0,   -- consecutive failed requests
    opened_until timestamptz,                  -- no polls before this
    last_error   text,
    updated_at   timestamptz NOT NULL DEFAULT now()
);

-- Weekdays from a to b (Saturdays and Sundays do not count), in whole days.
CREATE FUNCTION business_days_between(a timestamptz, b timestamptz) RETURNS integer
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT CASE WHEN a IS NULL OR b IS NULL OR b <= a THEN 0 ELSE (
        SELECT count(*)::integer
        FROM generate_series((a AT TIME ZONE 'UTC')::date + 1, (b AT TIME ZONE 'UTC')::date,
                             interval '1 day') AS d
        WHERE extract(isodow FROM d) < 6
    ) END
$$;
