-- 0009: the local time of day the daily brief goes to the operator's webhooks, while a server runs.
ALTER TABLE workspace ADD COLUMN daily_brief_at TEXT NOT NULL DEFAULT '08:00';
