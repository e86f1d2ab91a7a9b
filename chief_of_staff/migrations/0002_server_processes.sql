-- 0002: the server processes that have this workspace open, so `chief-of-staff doctor` can tell one
-- writing process from several (SQLite before 3.51.3 can corrupt a WAL database written by more than
-- one process). A server adds its row at start and removes it at shutdown; doctor prunes rows of
-- processes that died without removing theirs. Bookkeeping, not business: never audited.
CREATE TABLE server_processes (
    pid INTEGER NOT NULL,
    host TEXT NOT NULL,
    started_at TEXT NOT NULL,
    PRIMARY KEY (host, pid)
);
