-- 0011: authority that holds against the agency itself.
--
-- The chat channel gets a rolling allowance of money exposure instead of a per-act ceiling: the
-- ceiling's amount becomes the allowance, over a window of days (default 7). Every chat act that adds
-- money exposure draws from it; the draw is one conditional INSERT over the window's sum.
ALTER TABLE workspace RENAME COLUMN chat_ceiling_cents TO chat_allowance_cents;
ALTER TABLE workspace ADD COLUMN chat_window_days INTEGER NOT NULL DEFAULT 7
    CHECK (chat_window_days BETWEEN 1 AND 90);

CREATE TABLE chat_draws (
    id INTEGER PRIMARY KEY,
    at TEXT NOT NULL,
    cents INTEGER NOT NULL CHECK (cents > 0),
    act TEXT NOT NULL,
    subject TEXT NOT NULL DEFAULT ''
);
CREATE INDEX chat_draws_by_time ON chat_draws (at);
CREATE TRIGGER chat_draws_no_update BEFORE UPDATE ON chat_draws
BEGIN SELECT RAISE(ABORT, 'chat_draws is append-only'); END;
CREATE TRIGGER chat_draws_no_delete BEFORE DELETE ON chat_draws
BEGIN SELECT RAISE(ABORT, 'chat_draws is append-only'); END;

-- A grant remembers the channel it was made on: where a chat-made grant and a verified one both
-- cover a request, the verified grant's stricter answer wins.
ALTER TABLE grants ADD COLUMN origin_channel TEXT NOT NULL DEFAULT 'verified'
    CHECK (origin_channel IN ('verified', 'chat'));
UPDATE grants SET origin_channel = 'chat'
    WHERE id IN (SELECT grant_id FROM grant_versions WHERE version = 1 AND channel = 'chat');

-- A revoked or expired grant keeps governing the space it covered (requests there go to the
-- operator) until the operator hands that space over to whatever broader grant covers it.
ALTER TABLE grants ADD COLUMN handed_over_at TEXT;
-- Grants revoked before this migration were revoked under the old rule, where the broader grant
-- took over at once; they keep that meaning.
UPDATE grants SET handed_over_at = revoked_at WHERE status = 'revoked';
