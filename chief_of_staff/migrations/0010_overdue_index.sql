-- 0010: the brief counts overdue unfinished tasks through an index range on the due date, so the count
-- reads only the overdue tasks instead of looking up every unfinished one (5,000 at 100k tasks).
CREATE INDEX tasks_overdue ON tasks (due_on)
    WHERE due_on IS NOT NULL AND status IN ('open', 'claimed', 'blocked', 'waiting');
