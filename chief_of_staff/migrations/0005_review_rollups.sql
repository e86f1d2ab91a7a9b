-- 0005: what the review reads (reviews.scorecards, reviews.anomalies), so a scorecard or an anomaly
-- check reads a few index entries per agency, role, grant and window, never a whole table.

-- Outcomes per role and UTC quarter hour (slot: 2026-11-23T08:15), kept by the trigger below in the
-- statement that inserts each outcome, so no caller (log_outcome, bulk loaders) has to remember it.
-- Quarter hours because the database does not know the workspace timezone, while every zone's local
-- midnight falls on a quarter hour: the slots of a local period sum to exact figures in any zone.
CREATE TABLE role_quarter_hours (
    role_id INTEGER NOT NULL REFERENCES roles (id),
    slot TEXT NOT NULL,
    outcomes INTEGER NOT NULL DEFAULT 0,
    successes INTEGER NOT NULL DEFAULT 0,
    partials INTEGER NOT NULL DEFAULT 0,
    failures INTEGER NOT NULL DEFAULT 0,
    cost_cents INTEGER NOT NULL DEFAULT 0,
    minutes_saved INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (role_id, slot)
) WITHOUT ROWID;
INSERT INTO role_quarter_hours (role_id, slot, outcomes, successes, partials, failures, cost_cents, minutes_saved)
    SELECT role_id,
           printf('%s%02d', substr(created_at, 1, 14), (CAST(substr(created_at, 15, 2) AS INTEGER) / 15) * 15),
           count(*), sum(result = 'success'), sum(result = 'partial'), sum(result = 'failure'),
           sum(cost_cents), sum(minutes_saved)
    FROM outcomes WHERE role_id IS NOT NULL GROUP BY 1, 2;
CREATE TRIGGER outcomes_roll_up_role AFTER INSERT ON outcomes WHEN NEW.role_id IS NOT NULL
BEGIN
    INSERT INTO role_quarter_hours (role_id, slot, outcomes, successes, partials, failures, cost_cents,
                                    minutes_saved)
    VALUES (NEW.role_id,
            printf('%s%02d', substr(NEW.created_at, 1, 14), (CAST(substr(NEW.created_at, 15, 2) AS INTEGER) / 15) * 15),
            1, NEW.result = 'success', NEW.result = 'partial', NEW.result = 'failure', NEW.cost_cents,
            NEW.minutes_saved)
    ON CONFLICT (role_id, slot) DO UPDATE SET outcomes = outcomes + 1,
        successes = successes + excluded.successes, partials = partials + excluded.partials,
        failures = failures + excluded.failures, cost_cents = cost_cents + excluded.cost_cents,
        minutes_saved = minutes_saved + excluded.minutes_saved;
END;

-- Decisions asked in a period (scorecards: asked and how they were answered).
CREATE INDEX decisions_by_time ON decisions (created_at);

-- Denials per agency and UTC hour (hour: 2026-11-23T08), kept by a trigger like the one above, so a
-- spike check reads at most 192 rows per agency (24 recent hours, 168 before) however many were denied.
CREATE TABLE denial_hours (
    agency_id INTEGER NOT NULL REFERENCES agencies (id),
    hour TEXT NOT NULL,
    denials INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (agency_id, hour)
) WITHOUT ROWID;
INSERT INTO denial_hours (agency_id, hour, denials)
    SELECT agency_id, substr(created_at, 1, 13), count(*) FROM authorizations WHERE answer = 'denied' GROUP BY 1, 2;
CREATE TRIGGER authorizations_count_denial AFTER INSERT ON authorizations WHEN NEW.answer = 'denied'
BEGIN
    INSERT INTO denial_hours (agency_id, hour, denials) VALUES (NEW.agency_id, substr(NEW.created_at, 1, 13), 1)
    ON CONFLICT (agency_id, hour) DO UPDATE SET denials = denials + 1;
END;

-- Unfinished tasks claimed three times or more (anomalies: leases that keep running out).
CREATE INDEX tasks_lease_churn ON tasks (lease_count)
    WHERE lease_count >= 3 AND status IN ('open', 'claimed', 'blocked', 'waiting');

-- Unfinished dated tasks by priority and due date (anomalies: overdue P0/P1 tasks, blocked and
-- waiting ones included, which tasks_ready leaves out).
CREATE INDEX tasks_due ON tasks (priority, due_on)
    WHERE due_on IS NOT NULL AND status IN ('open', 'claimed', 'blocked', 'waiting');
