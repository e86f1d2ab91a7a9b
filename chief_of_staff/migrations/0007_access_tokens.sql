-- 0007: access tokens for the HTTP transport. A token belongs to this workspace file and nowhere
-- else; only its SHA-256 digest is stored, so a copy of the file hands out no working token.
-- An operator token is the verified operator channel; an agency token (optionally one role) acts
-- as that agency and can never make an operator act.

CREATE TABLE access_tokens (
    id INTEGER PRIMARY KEY,
    kind TEXT NOT NULL CHECK (kind IN ('operator', 'agency')),
    agency_id INTEGER REFERENCES agencies (id),
    role_id INTEGER REFERENCES roles (id),
    label TEXT NOT NULL DEFAULT '',
    digest TEXT NOT NULL UNIQUE,
    created_at TEXT NOT NULL,
    expires_at TEXT,
    revoked_at TEXT,
    last_used_at TEXT,
    CHECK ((kind = 'operator') = (agency_id IS NULL)),
    CHECK (role_id IS NULL OR agency_id IS NOT NULL)
);
