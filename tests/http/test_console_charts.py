"""The Goals page: each key result drawn as SVG on the server, with its text equivalent beside it."""

from __future__ import annotations

import re
from datetime import UTC, date, datetime, timedelta
from xml.etree import ElementTree

import httpx
import pytest

from chief_of_staff.core.audit import OPERATOR_CLI, Actor
from chief_of_staff.core.clock import FixedClock
from chief_of_staff.core.db import Store
from chief_of_staff.domain import console_access, goals, outcomes
from chief_of_staff.domain.blueprints import loader
from chief_of_staff.http import console_charts
from chief_of_staff.http.console import build_console_app

pytestmark = pytest.mark.anyio

BASE = "http://127.0.0.1:8123"
AGENCY = Actor("agency:Outbound", "agency")
SVG = "{http://www.w3.org/2000/svg}"


async def log(store: Store, clock: FixedClock, day: date, meetings: float) -> None:
    clock.set(datetime(day.year, day.month, day.day, 9, tzinfo=UTC))
    async with store.write() as tx:
        await outcomes.log_outcome(
            tx,
            AGENCY,
            agency="Outbound",
            summary="Booked <b>meetings</b>",
            result="success",
            metrics=[outcomes.MetricDelta(key_result="meetings booked", delta=meetings)],
        )


@pytest.fixture
async def store(store: Store, clock: FixedClock) -> Store:
    """The Outbound blueprint (KR1 meetings booked, 0 to 12 from 2026-11-23), with meetings on four days."""
    async with store.write() as tx:
        await loader.apply_blueprint(tx, OPERATOR_CLI, "outbound")
    for offset, meetings in ((0, 1), (2, 1), (4, 2), (7, 1)):
        await log(store, clock, date(2026, 11, 23) + timedelta(days=offset), meetings)
    clock.set(datetime(2026, 12, 2, 9, tzinfo=UTC))
    return store


async def goals_page(store: Store) -> str:
    app = build_console_app(store, base_url=BASE)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=BASE) as http:
        async with store.write() as tx:
            secret = await console_access.mint_login(tx, OPERATOR_CLI)
        assert (await http.get(f"/login?token={secret}")).status_code == 303
        answer = await http.get("/goals")
    assert answer.status_code == 200
    return answer.text


def figure(page: str, key_result: str) -> str:
    found = re.search(rf'<figure class="chart [^"]*" id="{key_result}">.*?</figure>', page, re.DOTALL)
    assert found is not None
    return found.group(0)


async def test_each_key_result_has_a_chart_and_its_text_equivalent(store: Store) -> None:
    page = await goals_page(store)
    async with store.read() as tx:
        shown = [kr for goal in await goals.list_goals(tx) for kr in goal.key_results]
    assert len(shown) == 3
    for kr in shown:
        chart = figure(page, kr.id)
        svg = ElementTree.fromstring(re.search(r"<svg.*?</svg>", chart, re.DOTALL).group(0))  # type: ignore[union-attr]
        assert svg.get("role") == "img"
        assert svg.find(f"{SVG}title") is not None and kr.metric in (svg.findtext(f"{SVG}title") or "")
        assert svg.find(f"{SVG}polyline[@class='actual']") is not None
        assert svg.find(f"{SVG}line[@class='plan']") is not None
        described = svg.findtext(f"{SVG}desc") or ""
        assert described.startswith(f"{kr.metric}: ") and "straight line" in described
        assert described in chart.split("</svg>", 1)[1]  # the same words beside the chart, visible
        assert "<table>" in chart and "<summary>The values drawn" in chart


async def test_the_chart_draws_the_daily_values_the_line_and_the_forecast(store: Store) -> None:
    page = await goals_page(store)
    chart = figure(page, "KR1")
    rows = re.findall(r"<tr><td>(\d{4}-\d\d-\d\d)</td><td>([^<]+)</td></tr>", chart)
    assert rows == [
        ("2026-11-23", "1"),
        ("2026-11-25", "2"),
        ("2026-11-27", "4"),
        ("2026-11-30", "5"),
        ("2026-12-02", "5"),
    ]
    svg = ElementTree.fromstring(re.search(r"<svg.*?</svg>", chart, re.DOTALL).group(0))  # type: ignore[union-attr]
    points = (svg.find(f"{SVG}polyline[@class='actual']").get("points") or "").split()  # type: ignore[union-attr]
    assert len(points) == len(rows)
    assert svg.find(f"{SVG}line[@class='forecast']") is not None  # 10 days and 4 data points: a forecast
    assert "Forecast: " in chart and "at the recent rate" in chart
    assert "KR1 meetings booked: " in chart  # the pace in words beside it


async def test_history_is_the_baseline_plus_each_days_deltas(store: Store) -> None:
    async with store.read() as tx:
        history = await goals.key_result_history(tx, "meetings booked")
    assert history == [
        (date(2026, 11, 23), 1.0),
        (date(2026, 11, 25), 2.0),
        (date(2026, 11, 27), 4.0),
        (date(2026, 11, 30), 5.0),
    ]


def test_a_new_key_result_draws_its_baseline_and_says_why_there_is_no_forecast() -> None:
    kr = goals.KeyResultView(
        id="KR9",
        metric="<b>subscribers</b>",
        kind="level",
        unit="people",
        baseline=100,
        target=180,
        direction="up",
        start_date="2026-11-20",
        due_date="2027-01-31",
        current=100,
        progress=0,
        expected_now=103.33,
        pace="on_track",
        behind_by=0,
        rate_per_day=None,
        forecast_at_due=None,
        at_risk=False,
        risk_reason=None,
        forecast_note="forecast after 7 days and 3 data points; 4 days, 0 points so far",
    )
    drawn = console_charts.chart(kr, [], date(2026, 11, 23))
    assert drawn.table == [("2026-11-20", "100"), ("2026-11-23", "100")]
    assert drawn.forecast is None and drawn.today is not None
    assert "No forecast yet: forecast after 7 days" in drawn.summary
    assert drawn.summary.startswith("<b>subscribers</b>: 100 of 180 people")  # escaped by the template, not here
    assert [tick.label for tick in drawn.y_ticks] == ["100", "120", "140", "160", "180"]


@pytest.mark.parametrize(
    ("values", "expected"),
    [((0, 12), (0, 15, 5)), ((0, 1500), (0, 1500, 500)), ((100, 180), (100, 180, 20)), ((5, 5), (4, 6, 0.5))],
)
def test_the_value_axis_has_round_ends_and_steps(
    values: tuple[float, float], expected: tuple[float, float, float]
) -> None:
    assert console_charts.axis(*values) == expected
