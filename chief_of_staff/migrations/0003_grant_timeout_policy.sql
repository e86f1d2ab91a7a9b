-- 0003: what an unanswered decision under a grant becomes when it expires (design brief, Decisions:
-- "auto-deny unless the grant says otherwise"). Existing grants keep the safe default.
ALTER TABLE grants ADD COLUMN on_timeout TEXT NOT NULL DEFAULT 'deny' CHECK (on_timeout IN ('deny', 'approve'));
