-- 0001: the first schema. Never edit once released; add 0002_… instead.
-- Times are fixed-width UTC ISO-8601 text (2026-11-23T09:00:00.000000Z); local dates are YYYY-MM-DD
-- in the workspace timezone. Money is integer cents. Ids are integers shown with a prefix (T42).

CREATE TABLE workspace (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    name TEXT NOT NULL,
    timezone TEXT NOT NULL,
    currency TEXT NOT NULL,
    chat_ceiling_cents INTEGER NOT NULL CHECK (chat_ceiling_cents >= 0),
    created_at TEXT NOT NULL
);

CREATE TABLE agencies (
    id INTEGER PRIMARY KEY,
    name TEXT NOT NULL UNIQUE COLLATE NOCASE,
    purpose TEXT NOT NULL,
    operating_spec TEXT NOT NULL DEFAULT '',
    status TEXT NOT NULL DEFAULT 'active' CHECK (status IN ('active', 'retired')),
    blueprint TEXT,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL
);

CREATE TABLE roles (
    id INTEGER PRIMARY KEY,
    agency_id INTEGER NOT NULL REFERENCES agencies (id),
    name TEXT NOT NULL COLLATE NOCASE,
    charter TEXT NOT NULL,
    status TEXT NOT NULL DEFAULT 'active' CHECK (status IN ('active', 'retired')),
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL,
    UNIQUE (agency_id, name)
);

-- The agency's playbook: lessons of what works and what breaks.
CREATE TABLE lessons (
    id INTEGER PRIMARY KEY,
    agency_id INTEGER NOT NULL REFERENCES agencies (id),
    kind TEXT NOT NULL CHECK (kind IN ('works', 'breaks', 'note')),
    text TEXT NOT NULL,
    source TEXT NOT NULL CHECK (source IN ('blueprint', 'outcome', 'review', 'operator', 'agency')),
    outcome_id INTEGER REFERENCES outcomes (id),
    created_at TEXT NOT NULL
);
CREATE INDEX lessons_by_agency ON lessons (agency_id, id);

CREATE TABLE goals (
    id INTEGER PRIMARY KEY,
    agency_id INTEGER NOT NULL REFERENCES agencies (id),
    title TEXT NOT NULL,
    description TEXT NOT NULL DEFAULT '',
    status TEXT NOT NULL DEFAULT 'active' CHECK (status IN ('active', 'achieved', 'dropped')),
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL
);
CREATE INDEX goals_by_agency ON goals (agency_id, status);

-- `current` is a rollup: baseline plus every logged delta, kept in the transaction that logs it.
CREATE TABLE key_results (
    id INTEGER PRIMARY KEY,
    goal_id INTEGER NOT NULL REFERENCES goals (id),
    metric TEXT NOT NULL COLLATE NOCASE,
    unit TEXT NOT NULL DEFAULT '',
    baseline REAL NOT NULL,
    target REAL NOT NULL,
    direction TEXT NOT NULL CHECK (direction IN ('up', 'down')),
    start_date TEXT NOT NULL,
    due_date TEXT NOT NULL,
    current REAL NOT NULL,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL,
    UNIQUE (goal_id, metric),
    CHECK (due_date > start_date),
    CHECK ((direction = 'up' AND target > baseline) OR (direction = 'down' AND target < baseline))
);

-- A grant's bounds live on the row; `version` counts operator changes, whose history is in grant_versions.
CREATE TABLE grants (
    id INTEGER PRIMARY KEY,
    agency_id INTEGER NOT NULL REFERENCES agencies (id),
    role_id INTEGER REFERENCES roles (id),
    capability TEXT NOT NULL,
    mode TEXT NOT NULL CHECK (mode IN ('auto', 'notify', 'approve')),
    per_action_cap_cents INTEGER CHECK (per_action_cap_cents >= 0),
    scope_allow TEXT NOT NULL DEFAULT '[]',
    scope_deny TEXT NOT NULL DEFAULT '[]',
    expires_at TEXT,
    goal_id INTEGER REFERENCES goals (id),
    rationale TEXT NOT NULL DEFAULT '',
    status TEXT NOT NULL DEFAULT 'active' CHECK (status IN ('active', 'revoked')),
    version INTEGER NOT NULL DEFAULT 1,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL,
    revoked_at TEXT
);
CREATE INDEX grants_by_capability ON grants (capability, status);

CREATE TABLE grant_versions (
    grant_id INTEGER NOT NULL REFERENCES grants (id),
    version INTEGER NOT NULL,
    snapshot TEXT NOT NULL,
    channel TEXT NOT NULL,
    created_at TEXT NOT NULL,
    PRIMARY KEY (grant_id, version)
);

-- Per-period budgets of a grant, in calendar periods of the workspace timezone.
CREATE TABLE grant_budgets (
    id INTEGER PRIMARY KEY,
    grant_id INTEGER NOT NULL REFERENCES grants (id),
    period TEXT NOT NULL CHECK (period IN ('day', 'week', 'month')),
    max_count INTEGER CHECK (max_count >= 0),
    max_cents INTEGER CHECK (max_cents >= 0),
    UNIQUE (grant_id, period),
    CHECK (max_count IS NOT NULL OR max_cents IS NOT NULL)
);

-- What has been drawn from a budget in one period (period_key: 2026-11-23, 2026-W48, 2026-11).
-- Budget checks are one conditional UPDATE on this row, never read-then-check.
CREATE TABLE budget_usage (
    budget_id INTEGER NOT NULL REFERENCES grant_budgets (id),
    period_key TEXT NOT NULL,
    used_count INTEGER NOT NULL DEFAULT 0 CHECK (used_count >= 0),
    used_cents INTEGER NOT NULL DEFAULT 0 CHECK (used_cents >= 0),
    PRIMARY KEY (budget_id, period_key)
) WITHOUT ROWID;

-- The authority ledger: one row per authorize call, whatever the answer.
CREATE TABLE authorizations (
    id INTEGER PRIMARY KEY,
    agency_id INTEGER NOT NULL REFERENCES agencies (id),
    role_id INTEGER REFERENCES roles (id),
    capability TEXT NOT NULL,
    amount_cents INTEGER NOT NULL CHECK (amount_cents >= 0),
    target TEXT,
    task_id INTEGER REFERENCES tasks (id),
    idempotency_key TEXT,
    request_hash TEXT NOT NULL,
    answer TEXT NOT NULL CHECK (answer IN ('allowed', 'denied', 'needs_approval')),
    reason TEXT NOT NULL,
    grant_id INTEGER REFERENCES grants (id),
    grant_version INTEGER,
    decision_id INTEGER REFERENCES decisions (id),
    -- For allowed answers: the reservation drawn against the grant's budgets.
    status TEXT NOT NULL CHECK (status IN ('held', 'settled', 'released', 'expired', 'none')),
    period_keys TEXT NOT NULL DEFAULT '{}',
    settled_cents INTEGER CHECK (settled_cents >= 0),
    expires_at TEXT,
    created_at TEXT NOT NULL,
    closed_at TEXT
);
CREATE UNIQUE INDEX authorizations_by_key ON authorizations (idempotency_key) WHERE idempotency_key IS NOT NULL;
CREATE INDEX authorizations_by_grant ON authorizations (grant_id, created_at);
CREATE INDEX authorizations_held ON authorizations (expires_at) WHERE status = 'held';
CREATE INDEX authorizations_by_time ON authorizations (created_at, answer);

CREATE TABLE decisions (
    id INTEGER PRIMARY KEY,
    kind TEXT NOT NULL CHECK (kind IN ('escalation', 'proposal', 'question')),
    agency_id INTEGER REFERENCES agencies (id),
    role_id INTEGER REFERENCES roles (id),
    title TEXT NOT NULL,
    details TEXT NOT NULL DEFAULT '',
    request TEXT NOT NULL DEFAULT '{}',
    request_hash TEXT NOT NULL,
    amount_cents INTEGER CHECK (amount_cents >= 0),
    grant_id INTEGER REFERENCES grants (id),
    status TEXT NOT NULL DEFAULT 'pending'
        CHECK (status IN ('pending', 'approved', 'denied', 'expired', 'redeemed')),
    timeout_policy TEXT NOT NULL DEFAULT 'deny' CHECK (timeout_policy IN ('deny', 'approve')),
    expires_at TEXT NOT NULL,
    decided_at TEXT,
    decided_channel TEXT,
    note TEXT,
    redeemed_at TEXT,
    created_at TEXT NOT NULL
);
CREATE INDEX decisions_pending ON decisions (expires_at) WHERE status = 'pending';
CREATE INDEX decisions_by_hash ON decisions (request_hash, status);

CREATE TABLE routines (
    id INTEGER PRIMARY KEY,
    agency_id INTEGER NOT NULL REFERENCES agencies (id),
    role_id INTEGER REFERENCES roles (id),
    title TEXT NOT NULL,
    details TEXT NOT NULL DEFAULT '',
    priority INTEGER NOT NULL CHECK (priority BETWEEN 0 AND 3),
    schedule TEXT NOT NULL,
    goal_id INTEGER REFERENCES goals (id),
    key_result_id INTEGER REFERENCES key_results (id),
    active INTEGER NOT NULL DEFAULT 1 CHECK (active IN (0, 1)),
    last_run_on TEXT,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL
);

CREATE TABLE tasks (
    id INTEGER PRIMARY KEY,
    title TEXT NOT NULL,
    details TEXT NOT NULL DEFAULT '',
    agency_id INTEGER REFERENCES agencies (id),
    role_id INTEGER REFERENCES roles (id),
    goal_id INTEGER REFERENCES goals (id),
    key_result_id INTEGER REFERENCES key_results (id),
    priority INTEGER NOT NULL CHECK (priority BETWEEN 0 AND 3),
    due_on TEXT,
    status TEXT NOT NULL DEFAULT 'open'
        CHECK (status IN ('open', 'claimed', 'done', 'failed', 'cancelled', 'blocked', 'waiting')),
    source TEXT NOT NULL CHECK (source IN ('operator', 'agency', 'routine', 'blueprint')),
    routine_id INTEGER REFERENCES routines (id),
    routine_on TEXT,
    lease_owner TEXT,
    lease_expires_at TEXT,
    lease_count INTEGER NOT NULL DEFAULT 0,
    note TEXT NOT NULL DEFAULT '',
    outcome_id INTEGER REFERENCES outcomes (id),
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL,
    closed_at TEXT,
    UNIQUE (routine_id, routine_on)
);
-- Unfinished work only, so claim_next_task stays flat however many tasks are done.
-- Undated tasks sort after dated ones within a priority ('9999-12-31' stands for "no due date").
CREATE INDEX tasks_ready ON tasks (priority, coalesce(due_on, '9999-12-31'), id)
    WHERE status IN ('open', 'claimed');
CREATE INDEX tasks_by_status ON tasks (status, agency_id);
CREATE INDEX tasks_closed ON tasks (closed_at) WHERE closed_at IS NOT NULL;

CREATE TABLE task_dependencies (
    task_id INTEGER NOT NULL REFERENCES tasks (id),
    depends_on INTEGER NOT NULL REFERENCES tasks (id),
    PRIMARY KEY (task_id, depends_on),
    CHECK (task_id != depends_on)
) WITHOUT ROWID;
CREATE INDEX task_dependencies_reverse ON task_dependencies (depends_on);

-- Outcomes are appended and never edited.
CREATE TABLE outcomes (
    id INTEGER PRIMARY KEY,
    task_id INTEGER REFERENCES tasks (id),
    agency_id INTEGER NOT NULL REFERENCES agencies (id),
    role_id INTEGER REFERENCES roles (id),
    summary TEXT NOT NULL,
    result TEXT NOT NULL CHECK (result IN ('success', 'partial', 'failure')),
    cost_cents INTEGER NOT NULL DEFAULT 0 CHECK (cost_cents >= 0),
    minutes_saved INTEGER NOT NULL DEFAULT 0 CHECK (minutes_saved >= 0),
    evidence TEXT NOT NULL DEFAULT '[]',
    lesson TEXT,
    created_at TEXT NOT NULL
);
CREATE INDEX outcomes_by_agency ON outcomes (agency_id, created_at);
CREATE INDEX outcomes_by_task ON outcomes (task_id) WHERE task_id IS NOT NULL;

CREATE TABLE outcome_metrics (
    outcome_id INTEGER NOT NULL REFERENCES outcomes (id),
    key_result_id INTEGER NOT NULL REFERENCES key_results (id),
    delta REAL NOT NULL,
    PRIMARY KEY (outcome_id, key_result_id)
) WITHOUT ROWID;
CREATE INDEX outcome_metrics_by_kr ON outcome_metrics (key_result_id);

-- Rollup per agency and local day, kept in the transaction that logs each outcome, so the brief and
-- the review read a few rows instead of the outcome log.
CREATE TABLE agency_days (
    agency_id INTEGER NOT NULL REFERENCES agencies (id),
    day TEXT NOT NULL,
    outcomes INTEGER NOT NULL DEFAULT 0,
    successes INTEGER NOT NULL DEFAULT 0,
    partials INTEGER NOT NULL DEFAULT 0,
    failures INTEGER NOT NULL DEFAULT 0,
    cost_cents INTEGER NOT NULL DEFAULT 0,
    minutes_saved INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (agency_id, day)
) WITHOUT ROWID;

-- Per viewer (the operator, each role): the last audit row it has seen in a brief.
CREATE TABLE viewers (
    name TEXT PRIMARY KEY,
    last_audit_id INTEGER NOT NULL,
    last_seen_at TEXT NOT NULL
);

-- Hash-chained, append-only record of every change, written in the same transaction as the change.
CREATE TABLE audit_log (
    id INTEGER PRIMARY KEY,
    at TEXT NOT NULL,
    actor TEXT NOT NULL,
    channel TEXT NOT NULL CHECK (channel IN ('verified', 'chat', 'agency', 'system')),
    action TEXT NOT NULL,
    subject TEXT NOT NULL DEFAULT '',
    detail TEXT NOT NULL DEFAULT '{}',
    prev_hash TEXT NOT NULL,
    hash TEXT NOT NULL UNIQUE
);

CREATE TRIGGER audit_log_no_update BEFORE UPDATE ON audit_log
BEGIN
    SELECT RAISE(ABORT, 'audit_log is append-only');
END;
CREATE TRIGGER audit_log_no_delete BEFORE DELETE ON audit_log
BEGIN
    SELECT RAISE(ABORT, 'audit_log is append-only');
END;
CREATE TRIGGER outcomes_no_update BEFORE UPDATE ON outcomes
BEGIN
    SELECT RAISE(ABORT, 'outcomes are append-only');
END;
CREATE TRIGGER outcomes_no_delete BEFORE DELETE ON outcomes
BEGIN
    SELECT RAISE(ABORT, 'outcomes are append-only');
END;
CREATE TRIGGER outcome_metrics_no_update BEFORE UPDATE ON outcome_metrics
BEGIN
    SELECT RAISE(ABORT, 'outcome metrics are append-only');
END;
CREATE TRIGGER outcome_metrics_no_delete BEFORE DELETE ON outcome_metrics
BEGIN
    SELECT RAISE(ABORT, 'outcome metrics are append-only');
END;
