-- 0012: two poll priorities instead of four. Out for delivery and ETA today (0) go first when a
-- carrier's budget cannot cover everything that is due; every other poll waits its turn by how
-- long it is overdue. Parcels in transit (50) no longer go before labels awaiting pickup,
-- numbers not found yet and confirming polls (100 and 200), which a quota that never covers the
-- volume would otherwise leave unpolled for good. Existing rows take the new values at once:
-- a row starved under the old order might never be polled to get them.
-- Never edit this file once it has landed: add 0013_*.sql instead.

UPDATE shipments SET poll_priority = 100 WHERE poll_priority NOT IN (0, 100);
