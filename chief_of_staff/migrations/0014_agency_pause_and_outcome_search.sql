-- 0014: pausing an agency, and searching the outcome log.
--
-- A pause is a stop put on an agency that stays on its roster: while paused_at is set, nothing is
-- claimed for it and nothing is allowed for it. `status` keeps its two values ('active', 'retired'):
-- retiring is a change of the roster, pausing is not, and every rule that reads status stays as it was.
-- paused_by is the channel that paused it ('agency', 'chat' or 'verified'): a pause made on a channel
-- is lifted only on one at least as trusted, so the model's word never lifts the operator's own stop.
ALTER TABLE agencies ADD COLUMN paused_at TEXT;
ALTER TABLE agencies ADD COLUMN paused_by TEXT CHECK (paused_by IN ('agency', 'chat', 'verified', 'system'));
ALTER TABLE agencies ADD COLUMN pause_note TEXT NOT NULL DEFAULT '';

-- list_outcomes reads newest first (created_at, then id) and stops at the page: these give that order
-- for the log as a whole and for one role, as outcomes_by_agency does for one agency.
CREATE INDEX outcomes_by_time ON outcomes (created_at);
CREATE INDEX outcomes_by_role ON outcomes (role_id, created_at) WHERE role_id IS NOT NULL;
