-- 0009: shipments counted by everything a tab or a list filter of the status table looks at,
-- kept by triggers, so that the tabs' live counts need not read every shipment on each load.
-- Never edit this file once it has landed: add 0010_*.sql instead.

-- Signed counts per group of shipments alike in these columns. Every statement that inserts,
-- deletes or changes shipments appends what it changed (+n for rows that came into a group, -n
-- for rows that left it); a group's count is the sum of its rows. Appending never waits for
-- another transaction, so concurrent pollers do not queue on a counter row or deadlock.
-- tracker/web/queries.py sums the rows and folds them back into one row per group now and then.
CREATE TABLE shipment_counts (
    shop_id        bigint NOT NULL,
    status         text,
    carrier_state  text NOT NULL,
    attention      text,
    active         boolean NOT NULL,
    stopped_reason text,
    carrier        text,
    retired_reason text,
    n              bigint NOT NULL
);

CREATE FUNCTION shipment_counts_inserted() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO shipment_counts (shop_id, status, carrier_state, attention, active,
                                 stopped_reason, carrier, retired_reason, n)
    SELECT shop_id, status, carrier_state, attention, active, stopped_reason, carrier,
           retired_reason, count(*)
    FROM new_rows
    GROUP BY 1, 2, 3, 4, 5, 6, 7, 8;
    RETURN NULL;
END
$$;

CREATE FUNCTION shipment_counts_deleted() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO shipment_counts (shop_id, status, carrier_state, attention, active,
                                 stopped_reason, carrier, retired_reason, n)
    SELECT shop_id, status, carrier_state, attention, active, stopped_reason, carrier,
           retired_reason, -count(*)
    FROM old_rows
    GROUP BY 1, 2, 3, 4, 5, 6, 7, 8;
    RETURN NULL;
END
$$;

-- Most updates (a poll that found nothing new, a lease) move no row to another group: the
-- rows before and after cancel out and nothing is appended.
CREATE FUNCTION shipment_counts_updated() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO shipment_counts (shop_id, status, carrier_state, attention, active,
                                 stopped_reason, carrier, retired_reason, n)
    SELECT shop_id, status, carrier_state, attention, active, stopped_reason, carrier,
           retired_reason, sum(d)
    FROM (SELECT shop_id, status, carrier_state, attention, active, stopped_reason, carrier,
                 retired_reason, -1 AS d
          FROM old_rows
          UNION ALL
          SELECT shop_id, status, carrier_state, attention, active, stopped_reason, carrier,
                 retired_reason, 1
          FROM new_rows) AS moved
    GROUP BY 1, 2, 3, 4, 5, 6, 7, 8
    HAVING sum(d) <> 0;
    RETURN NULL;
END
$$;

CREATE FUNCTION shipment_counts_truncated() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    DELETE FROM shipment_counts;
    RETURN NULL;
END
$$;

CREATE TRIGGER shipments_counted_on_insert AFTER INSERT ON shipments
    REFERENCING NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION shipment_counts_inserted();
CREATE TRIGGER shipments_counted_on_update AFTER UPDATE ON shipments
    REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION shipment_counts_updated();
CREATE TRIGGER shipments_counted_on_delete AFTER DELETE ON shipments
    REFERENCING OLD TABLE AS old_rows
    FOR EACH STATEMENT EXECUTE FUNCTION shipment_counts_deleted();
CREATE TRIGGER shipments_counted_on_truncate AFTER TRUNCATE ON shipments
    FOR EACH STATEMENT EXECUTE FUNCTION shipment_counts_truncated();

-- The shipments already there. CREATE TRIGGER locked the table against writes until this
-- migration commits, so none is missed or counted twice.
INSERT INTO shipment_counts (shop_id, status, carrier_state, attention, active, stopped_reason,
                             carrier, retired_reason, n)
SELECT shop_id, status, carrier_state, attention, active, stopped_reason, carrier,
       retired_reason, count(*)
FROM shipments
GROUP BY 1, 2, 3, 4, 5, 6, 7, 8;
