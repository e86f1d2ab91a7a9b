"""Fuzzing in small: every tool in both protocol modes, no violation; and the checks do catch what they name.

`uv run python tools/fuzz.py` runs the same engine with hundreds (--quick) or thousands of cases.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

import pytest
from mcp.types import CallToolResult, TextContent

from chief_of_staff.core.clock import FixedClock
from tools import fuzz


def test_fuzzing_every_tool_in_both_modes_breaks_no_invariant(tmp_path: Path, clock: FixedClock) -> None:
    report = fuzz.run(fuzz.FuzzConfig(cases=2, seed=0, clock=clock), tmp_path)
    assert report.violations == []
    assert report.tools >= 20
    for mode in fuzz.MODES:
        figures = report.figures[mode]
        assert figures.cases >= 2 * report.tools, mode
        assert figures.valid > 0 and figures.errors > 0, (mode, figures)  # both sides of the line were reached
        assert {"schema", "malformed", "unknown_tool"} <= set(figures.kinds), (mode, figures)


@pytest.mark.anyio
async def test_the_checks_catch_a_crash_a_leaked_path_and_a_raw_exception(tmp_path: Path, clock: FixedClock) -> None:
    async with fuzz.open_session(tmp_path / "w.db", "legacy", clock, fuzz.Figures()) as session:
        for leak in (
            "Error executing tool add_task",
            'Traceback (most recent call last):\n  File "x"',
            f"cannot open {tmp_path}/w.db",
            "KeyError('title')",
        ):
            with pytest.raises(fuzz.Violation):
                session.check_text(leak)
        session.check_text("title: required; send it.")


@pytest.mark.anyio
async def test_the_checks_catch_a_refused_call_that_wrote(tmp_path: Path, clock: FixedClock) -> None:
    db = tmp_path / "w.db"
    async with fuzz.open_session(db, "auto", clock, fuzz.Figures()) as session:

        async def writes_then_refuses(case: fuzz.Case) -> CallToolResult:
            conn = sqlite3.connect(db)
            with conn:
                conn.execute("UPDATE workspace SET name = name || '!'")
            conn.close()
            return CallToolResult(content=[TextContent(type="text", text="No.")], is_error=True)

        answer: Any = writes_then_refuses
        session.answer = answer
        with pytest.raises(fuzz.Violation, match="wrote"):
            await session.run_case(fuzz.Case("add_task", {}, "schema"), read_only=False)
