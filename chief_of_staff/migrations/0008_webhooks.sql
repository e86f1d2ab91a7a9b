-- 0008: signed webhooks. An endpoint is where the operator wants to be told (a URL, the events it
-- wants, a payload format); its signing secret must be stored to sign, and is shown only once.
-- Rows are never deleted, so the history of where workspace data was sent stays readable.

CREATE TABLE webhook_endpoints (
    id INTEGER PRIMARY KEY,
    url TEXT NOT NULL,
    events TEXT NOT NULL,
    format TEXT NOT NULL CHECK (format IN ('standard', 'slack')),
    secret TEXT NOT NULL,
    created_at TEXT NOT NULL,
    disabled_at TEXT,
    disabled_reason TEXT,
    removed_at TEXT,
    last_success_at TEXT,
    last_failure_at TEXT,
    last_error TEXT,
    consecutive_failures INTEGER NOT NULL DEFAULT 0 CHECK (consecutive_failures >= 0)
);
-- emit() reads the endpoints that can receive anything; with none, this is one empty index read.
CREATE INDEX webhook_endpoints_active ON webhook_endpoints (id)
    WHERE disabled_at IS NULL AND removed_at IS NULL;

-- The transactional outbox: a delivery is written in the same transaction as the change it reports,
-- and sent later (at least once) with the same message id on every attempt.
CREATE TABLE webhook_deliveries (
    id INTEGER PRIMARY KEY,
    endpoint_id INTEGER NOT NULL REFERENCES webhook_endpoints (id),
    message_id TEXT NOT NULL UNIQUE,
    event TEXT NOT NULL,
    body TEXT NOT NULL,
    created_at TEXT NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0 CHECK (attempts >= 0),
    next_attempt_at TEXT NOT NULL,
    status TEXT NOT NULL DEFAULT 'pending'
        CHECK (status IN ('pending', 'delivered', 'failed', 'cancelled')),
    delivered_at TEXT,
    last_status INTEGER,
    last_error TEXT,
    dedupe_key TEXT,
    UNIQUE (endpoint_id, dedupe_key)
);
-- Finding due work never scans: only pending rows are in this index.
CREATE INDEX webhook_deliveries_due ON webhook_deliveries (next_attempt_at) WHERE status = 'pending';
-- An endpoint's health (pending now, delivered and failed lately) and cancelling its pending work.
CREATE INDEX webhook_deliveries_by_endpoint ON webhook_deliveries (endpoint_id, status, created_at);
