-- 0012: decisions that lead back to the work.
--
-- A task whose request went to the operator waits on that decision; deciding moves it (approved:
-- reopened with how to redeem; denied: failed or reopened as the operator chose; expired: reopened).
ALTER TABLE tasks ADD COLUMN decision_id INTEGER REFERENCES decisions (id);
CREATE INDEX tasks_by_decision ON tasks (decision_id) WHERE decision_id IS NOT NULL;

-- Every bound the request is past, as the operator was shown it when asked: a JSON list of
-- {"key": "cap:GR2" | "mode:GR2" | "revoked:GR2" | "budget:7" | "money:GR2" | "grant", "text": ...}.
-- Approving admits that one request past exactly these bounds, and no others.
ALTER TABLE decisions ADD COLUMN exceeds TEXT NOT NULL DEFAULT '[]';
-- A proposal's ready change, {"tool": ..., "arguments": ...}; approving applies it as a change set.
ALTER TABLE decisions ADD COLUMN adjustment TEXT;
ALTER TABLE decisions ADD COLUMN change_set_id INTEGER REFERENCES change_sets (id);

-- An allowed request the operator admitted past bounds (an operator exception): the bounds, as JSON.
ALTER TABLE authorizations ADD COLUMN exceeded TEXT;
