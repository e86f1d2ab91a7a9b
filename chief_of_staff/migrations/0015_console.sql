-- 0015: the operator's console, a loopback web page that is the verified channel.
--
-- A login link carries a one-time secret: only its SHA-256 digest is stored, it expires within
-- minutes, and redeeming it sets used_at (a compare-and-set, so it is redeemed at most once). Its
-- page is the console path the browser lands on after logging in ("/" or a page such as a decision).
-- Redeeming opens a console session: again only the digest of the session's secret (the cookie) is
-- stored, with the CSRF token every form of the session carries, when it was made, when it expires,
-- when it was last seen (idle sessions end) and when it was ended (logging out). Both live in the
-- workspace file, so a link or a cookie of one workspace opens no other.

CREATE TABLE console_logins (
    id INTEGER PRIMARY KEY,
    digest TEXT NOT NULL UNIQUE,
    page TEXT NOT NULL DEFAULT '/',
    created_at TEXT NOT NULL,
    expires_at TEXT NOT NULL,
    used_at TEXT
);

CREATE TABLE console_sessions (
    id INTEGER PRIMARY KEY,
    login_id INTEGER NOT NULL UNIQUE REFERENCES console_logins (id),
    digest TEXT NOT NULL UNIQUE,
    csrf TEXT NOT NULL,
    created_at TEXT NOT NULL,
    expires_at TEXT NOT NULL,
    last_seen_at TEXT NOT NULL,
    ended_at TEXT
);
