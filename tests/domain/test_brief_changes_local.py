"""The brief's "since you last looked" says when in the workspace's local time, not as a stored UTC stamp."""

from __future__ import annotations

from chief_of_staff.domain.brief import Changes, change_summary


def test_since_reads_in_the_workspaces_local_time() -> None:
    nothing = Changes(total=0, by_action={}, latest=[], more=False, since="2026-11-23T08:00:00.000000Z")
    assert change_summary(nothing, "Europe/Berlin") == "Nothing has changed since 2026-11-23 09:00 (Europe/Berlin)."
    one = Changes(total=1, by_action={"task.add": 1}, latest=[], more=False, since="2026-11-23T08:00:00.000000Z")
    assert change_summary(one, "UTC").startswith("1 change since 2026-11-23 08:00 (UTC): ")
