-- 0006: recorded reviews. The adjustments an operator accepts in a review land as one change set,
-- and a later change set can undo it. Each item keeps the state it changed from and to, so a revert
-- can tell whether anything moved since (and refuse rather than clobber it).

CREATE TABLE change_sets (
    id INTEGER PRIMARY KEY,
    kind TEXT NOT NULL CHECK (kind IN ('review', 'revert')),
    note TEXT NOT NULL DEFAULT '',
    actor TEXT NOT NULL,
    channel TEXT NOT NULL,
    reverts INTEGER REFERENCES change_sets (id),
    reverted_by INTEGER REFERENCES change_sets (id),
    created_at TEXT NOT NULL
);

CREATE TABLE change_set_items (
    change_set_id INTEGER NOT NULL REFERENCES change_sets (id),
    position INTEGER NOT NULL,
    tool TEXT NOT NULL,
    subject TEXT NOT NULL,
    arguments TEXT NOT NULL,
    before TEXT NOT NULL,
    after TEXT NOT NULL,
    PRIMARY KEY (change_set_id, position)
) WITHOUT ROWID;

-- A lesson taken out of the playbook keeps its row (and its id, its source and its outcome), so a
-- review that took it out can put it back exactly.
ALTER TABLE lessons ADD COLUMN removed_at TEXT;

-- A grant's decision record, newest first, for the autonomy proposals of the review.
CREATE INDEX decisions_by_grant ON decisions (grant_id, created_at) WHERE grant_id IS NOT NULL;
