-- 0004: per key result and day, the sum of the deltas logged against it and how many outcomes did so,
-- kept by outcomes.log_outcome in the transaction that logs each outcome. Pace forecasts read the
-- recent rate from a few of these rows (by primary key) instead of scanning outcome_metrics.
-- Days are local days of the workspace timezone going forward. The backfill below can only use
-- the UTC day of each outcome (SQL does not know the workspace timezone), so outcomes logged
-- before this migration near local midnight may sit one day off; the sums per key result are exact.
CREATE TABLE key_result_days (
    key_result_id INTEGER NOT NULL REFERENCES key_results (id),
    day TEXT NOT NULL,
    delta_sum REAL NOT NULL DEFAULT 0,
    outcomes INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (key_result_id, day)
) WITHOUT ROWID;
INSERT INTO key_result_days (key_result_id, day, delta_sum, outcomes)
    SELECT m.key_result_id, substr(o.created_at, 1, 10), sum(m.delta), count(*)
    FROM outcome_metrics AS m JOIN outcomes AS o ON o.id = m.outcome_id
    GROUP BY m.key_result_id, substr(o.created_at, 1, 10);
