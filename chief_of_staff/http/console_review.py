"""The console's Review page."""

from __future__ import annotations

from starlette.routing import Route

from chief_of_staff.http.console_kit import ConsoleCore


def routes(core: ConsoleCore) -> list[Route]:
    return []
