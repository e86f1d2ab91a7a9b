"""Fixtures for the browser tests: a workspace made from the terminal, the running console, and chromium."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from playwright.async_api import Browser, async_playwright

from tests.browser.support import Console, chromium_executable, run_cli, running_console


@pytest.fixture
def workspace(tmp_path: Path) -> Path:
    """A workspace made as the README's quick start makes one: the Outbound agency, stood up from the terminal."""
    db = tmp_path / "workspace.db"
    run_cli(db, "init", "--blueprint", "outbound", "--timezone", "Europe/Berlin", "--name", "Acme")
    return db


@pytest.fixture
def console(workspace: Path, tmp_path: Path) -> Iterator[Console]:
    with running_console(workspace, tmp_path / "console.log") as running:
        yield running


@pytest.fixture
async def browser() -> AsyncIterator[Browser]:
    executable = chromium_executable()
    async with async_playwright() as playwright:
        # chromium_sandbox=False passes --no-sandbox: CI and these machines run as root, and Chromium refuses
        # to start its setuid/namespace sandbox as root ("Chromium sandboxing failed!"). The pages are our own,
        # served on loopback, so the sandbox guards against nothing here.
        launched = await playwright.chromium.launch(executable_path=executable, chromium_sandbox=False)
        try:
            yield launched
        finally:
            await launched.close()
