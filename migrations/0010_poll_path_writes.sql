-- 0010: cheaper writes on the poll path. A poll updates its shipment twice (the claim, then the
-- result); an update that puts the row's new version on another page adds an entry to every
-- index of the table, and one that changes an indexed column does so wherever the version goes.
-- Never edit this file once it has landed: add 0011_*.sql instead.

-- No query reads these any more: the status table sorts by the expressions of 0007
-- (shipments_by_urgency holds status_at) and searches shipments_search. Each cost an entry per
-- update of a shipment.
DROP INDEX shipments_status_at;
DROP INDEX shipments_tracking_number;

-- Room on each page for new versions of its rows. A claim changes only the lease, which no
-- index holds: with room on the page, PostgreSQL keeps the new version beside the old one (a
-- HOT update) and writes no index entry at all. Pages written from now on keep the room; the
-- pages there already get it as their rows move. The price: rows no longer updated (delivered
-- parcels) take up to twice the pages, so reading the whole table takes longer.
-- Measured at 100,000 shipments: 50 keeps nearly every claim in place (70 about a third), for
-- 250 ms of PostgreSQL CPU per 1,000 polls against 280 at 70 and 320 at 100; whole-table reads
-- (analytics, exports, the attention refresh) take up to 1.8x as long as at 100 (tens to
-- hundreds of milliseconds more), the status table's pages the same.
ALTER TABLE shipments SET (fillfactor = 50);

-- What the latest reservation of the row was granted: a reservation is then one statement that
-- locks the row, takes what is left and says how much it took (tracker/engine/budget.py,
-- tracker/engine/pacing.py), instead of a transaction of two statements.
ALTER TABLE carrier_budgets ADD COLUMN granted integer NOT NULL DEFAULT 0;
ALTER TABLE carrier_windows ADD COLUMN granted integer NOT NULL DEFAULT 0;
