"""The load harness, briefly: a few HTTP clients for two seconds lose nothing and never overspend.

Only the invariants are asserted, never timings (those are tools/load.py's report).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tools.load import Plan, run

pytestmark = [pytest.mark.anyio, pytest.mark.slow]


async def test_a_short_load_run_loses_no_write_and_never_overspends(tmp_path: Path) -> None:
    result = await run(Plan(clients=4, duration=2.0, legacy_share=0.5, inspector=False), tmp_path)

    assert result.ledger.errors == []
    assert result.ledger.samples, "the clients made no call"
    assert result.verdict.lost == []
    assert result.verdict.claimed_twice == []
    assert result.verdict.overspent == []
    assert result.verdict.usage_drift == []
    assert result.verdict.audit_ok, result.verdict.audit_note
    assert result.ok
