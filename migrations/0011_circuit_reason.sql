-- 0011: a carrier's circuit says why it opened. Refused credentials open it too (before, only a
-- carrier that could not be reached did, and a revoked key cost a failed request per shipment
-- for as long as it lasted). Polling again cannot help until the settings change, so a daemon
-- that starts closes the circuits its carriers' credentials opened and asks once more.
-- Never edit this file once it has landed: add 0012_*.sql instead.

ALTER TABLE carrier_circuits
    ADD COLUMN reason text NOT NULL DEFAULT 'unavailable'
        CHECK (reason IN ('unavailable', 'credentials'));
