-- 0005: daily request budgets per carrier, shared by every worker on this database.

CREATE TABLE carrier_budgets (
    carrier text NOT NULL,
    day     date NOT NULL,             -- UTC day (carriers reset their quotas at 00:00 GMT)
    used    integer NOT NULL DEFAULT 0,
    PRIMARY KEY (carrier, day)
);
