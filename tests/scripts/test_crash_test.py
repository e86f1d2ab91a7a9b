"""The crash test harness: a line cut short by the kill is no acknowledgment, a short run loses nothing, and the
anchor may be one unit behind a kill but never short of an acknowledged write."""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path

import pytest

from chief_of_staff.core import audit
from chief_of_staff.core.anchor import Anchor
from chief_of_staff.core.audit import OPERATOR_CLI
from chief_of_staff.core.clock import FixedClock
from chief_of_staff.core.db import Store
from tests.conftest import START
from tools import crash_check
from tools.crash_test import main, read_acks


def test_a_line_cut_short_by_the_kill_is_not_an_acknowledgment() -> None:
    acks, cut = read_acks(b'{"kind":"start","run":0}\n{"kind":"outcome","id":"O1"}\n{"kind":"cla')
    assert [ack["kind"] for ack in acks] == ["start", "outcome"] and cut
    assert read_acks(b'{"kind":"start","run":0}\n') == ([{"kind": "start", "run": 0}], False)
    assert read_acks(b"") == ([], False)


@pytest.mark.slow
def test_no_acknowledged_write_is_lost_when_the_writer_is_killed(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["--kills", "3", "--seed", "3", "--dir", str(tmp_path / "crash")]) == 0
    report = capsys.readouterr().out
    assert "lost: 0" in report and "PASS" in report
    assert "committed tails cut through the anchored row and refused on opening: 2/2" in report


async def _logged(tmp_path: Path, units: int) -> tuple[Store, list[bytes]]:
    """A store with `units` units of two audit rows each (one instant apart), and the anchor after each."""
    clock = FixedClock(START)
    store = await Store.open(tmp_path / "w.db", clock)
    anchors = []
    for n in range(units):
        clock.advance(timedelta(seconds=1))
        async with store.write() as tx:
            await audit.append(tx, OPERATOR_CLI, "test.change", f"U{n}")
            await audit.append(tx, OPERATOR_CLI, "test.change", f"U{n}")
        anchors.append(store.anchor.path.read_bytes())
    return store, anchors


def held(record: bytes) -> Anchor:
    data = json.loads(record)
    return Anchor(data["row_id"], data["hash"], data["at"])


@pytest.mark.anyio
async def test_the_check_accepts_an_anchor_one_unit_behind_and_nothing_further(tmp_path: Path) -> None:
    store, anchors = await _logged(tmp_path, 3)
    try:
        acked = [{"kind": "outcome", "head": 4}]  # the second unit was acknowledged, the third was not
        for written, behind in ((anchors[2], False), (anchors[1], True)):
            async with store.read() as tx:
                assert await crash_check.anchor_problems(tx, held(written), acked) == (behind, [])
        async with store.read() as tx:
            behind, problems = await crash_check.anchor_problems(tx, held(anchors[0]), acked)
        assert problems == [
            "anchor: it holds row 2, but a write that ended at row 4 was acknowledged",
            "anchor: it holds row 2, 2 units behind the log (at most one)",
        ]
    finally:
        await store.close()
