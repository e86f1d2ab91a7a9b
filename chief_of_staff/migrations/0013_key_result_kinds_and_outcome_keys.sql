-- 0013: key results a model gets right.
--
-- A key result is `cumulative` (each outcome sends a delta: "+3 emails sent") or `level` (each outcome
-- sends an observation: "subscribers are now 180"). Either way `current` stays baseline plus the sum of
-- the deltas in outcome_metrics: a level observation is recorded with the change it made as its delta,
-- so the rollups, pace and forecast read both kinds the same way.
ALTER TABLE key_results ADD COLUMN kind TEXT NOT NULL DEFAULT 'cumulative' CHECK (kind IN ('cumulative', 'level'));

-- The observation a level key result was sent (NULL for a cumulative delta), as the outcome reported it.
ALTER TABLE outcome_metrics ADD COLUMN value REAL;

-- log_outcome and complete_task take an optional idempotency key, as authorize does: a retry with the
-- same key and the same request returns the first outcome and writes nothing. Keys are the agency's own.
ALTER TABLE outcomes ADD COLUMN idempotency_key TEXT;
ALTER TABLE outcomes ADD COLUMN request_hash TEXT;
CREATE UNIQUE INDEX outcomes_by_key ON outcomes (agency_id, idempotency_key) WHERE idempotency_key IS NOT NULL;
