-- 0004: per fulfillment, whether someone else (Shopify's own carrier tracking, another app)
-- writes its tracking events, so that write-back in 'auto' mode never doubles the story.

CREATE TABLE fulfillment_writeback (
    shop_id          bigint NOT NULL REFERENCES shops (id),
    fulfillment_id   text NOT NULL,
    foreign_event_id text,            -- an event on the fulfillment this daemon did not write
    foreign_seen_at  timestamptz,
    checked_at       timestamptz,     -- last time the fulfillment's events were read
    PRIMARY KEY (shop_id, fulfillment_id)
);

-- The status written to Shopify when it differs from the scan's own: a multi-parcel
-- fulfillment's combined status, told at the moment one parcel's scan changed it.
ALTER TABLE tracking_events ADD COLUMN writeback_status text;
