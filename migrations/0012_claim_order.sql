-- 0012: the order of claims, and claims of one carrier at a time.
--
-- Two poll priorities instead of four. Out for delivery and ETA today (0) go first when a
-- carrier's budget cannot cover everything that is due; every other poll waits its turn by how
-- long it is overdue. Parcels in transit (50) no longer go before labels awaiting pickup,
-- numbers not found yet and confirming polls (100 and 200), which a quota that never covers the
-- volume would otherwise leave unpolled for good. Existing rows take the new values at once:
-- a row starved under the old order might never be polled to get them.
--
-- A carrier on a slow quota is claimed apart, a few shipments at a time
-- (tracker.engine.poller.claim_caps). Through shipments_due that claim read every due row of
-- every other carrier before finding its own (0.9 s at 1,000,000 due); this index finds its
-- own at once.
-- Never edit this file once it has landed: add 0013_*.sql instead.

UPDATE shipments SET poll_priority = 100 WHERE poll_priority NOT IN (0, 100);

CREATE INDEX shipments_due_by_carrier ON shipments (carrier, poll_priority, next_poll_at)
    WHERE active;
