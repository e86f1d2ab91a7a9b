"""The crash test harness: a line cut short by the kill is no acknowledgment, and a short run loses nothing."""

from __future__ import annotations

from pathlib import Path

import pytest

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
