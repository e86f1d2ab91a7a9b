"""Every page of the console, in a real browser, after three weeks of an agency's work: nothing fails, nothing
is fetched from anywhere but the console, and the README's pictures are this run's screenshots."""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from playwright.async_api import Browser

from tests.browser.support import (
    MADE,
    Console,
    logged_in,
    new_page,
    run_cli,
    running_console,
    seed_three_weeks,
    watch,
)

pytestmark = [pytest.mark.anyio, pytest.mark.slow]

DOCS = Path(__file__).resolve().parents[2] / "docs"


@pytest.fixture
async def seeded(tmp_path: Path) -> Path:
    db = tmp_path / "workspace.db"
    run_cli(db, "init", "--blueprint", "outbound", "--timezone", "Europe/Berlin", "--name", "Acme", now=MADE)
    await seed_three_weeks(db)
    return db


@pytest.fixture
def busy_console(seeded: Path, tmp_path: Path) -> Iterator[Console]:
    with running_console(seeded, tmp_path / "console.log") as running:
        yield running


async def test_every_page_loads_with_no_errors_and_nothing_from_elsewhere(
    busy_console: Console, browser: Browser
) -> None:
    page = await new_page(browser)
    seen = watch(page)
    await page.goto(busy_console.link)
    links = page.get_by_role("navigation", name="Pages").get_by_role("link")
    pages = [href for href in [await link.get_attribute("href") for link in await links.all()] if href]
    prefix = urlsplit(busy_console.base).path  # every link stays under the run's secret prefix
    names = ("/", "/goals", "/inbox", "/outcomes", "/authority", "/agencies", "/review", "/audit", "/settings")
    assert {prefix + name for name in names} <= set(pages)
    for path in pages:
        answered = await page.goto(busy_console.origin + path)
        assert answered is not None and answered.status == 200, path
        await page.wait_for_load_state("networkidle")
    assert seen.errors == []
    assert seen.foreign(busy_console.origin) == []
    assert any(url.endswith("/static/console.css") for url in seen.requests)  # the watch saw the page's own loads


async def test_the_outcomes_page_downloads_its_filtered_log_as_csv(busy_console: Console, browser: Browser) -> None:
    page = await logged_in(browser, busy_console.link)
    seen = watch(page)
    await page.get_by_role("navigation", name="Pages").get_by_role("link", name="Outcomes").click()
    await page.get_by_label("Result", exact=True).select_option("success")
    async with page.expect_navigation():
        await page.get_by_role("button", name="Show").click()
    assert await page.locator("table.outcomes tbody tr").count() == 15  # three weeks of weekdays, one page
    async with page.expect_download() as downloading:
        await page.get_by_role("link", name="Download these outcomes as CSV").click()
    download = await downloading.value
    assert download.suggested_filename == "outcomes.csv"
    table = list(csv.reader(io.StringIO(Path(await download.path()).read_text("utf-8"))))
    assert table[0][:3] == ["id", "logged_at_utc", "agency"] and len(table) == 16
    assert {row[5] for row in table[1:]} == {"success"}
    assert seen.errors == [] and seen.foreign(busy_console.origin) == []


def keep_if_changed(path: Path, picture: bytes) -> None:
    """Write the screenshot only when it differs, so an unchanged console leaves the committed file alone."""
    path.parent.mkdir(exist_ok=True)
    if not path.exists() or path.read_bytes() != picture:
        path.write_bytes(picture)


async def test_the_readme_screenshots_are_taken_from_the_running_console(
    busy_console: Console, browser: Browser
) -> None:
    page = await logged_in(browser, busy_console.link)
    assert await page.locator("article.decision").count() == 2
    keep_if_changed(DOCS / "console-today.png", await page.screenshot(full_page=True))

    await page.goto(busy_console.url("/goals"))
    chart = page.locator("figure.chart").filter(has_text="emails sent")
    assert await chart.locator("line.forecast").count() == 1  # three weeks is enough history to forecast
    keep_if_changed(DOCS / "console-goals.png", await chart.screenshot())
