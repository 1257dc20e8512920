-- 0008: per-second (per-window) carrier pacing shared by every worker on this database.

CREATE TABLE carrier_windows (
    carrier      text NOT NULL,
    window_start bigint NOT NULL,      -- epoch seconds, a multiple of the window length
    used         integer NOT NULL DEFAULT 0,
    PRIMARY KEY (carrier, window_start)
);
