"""The console's in-process client for the ASGI tests here; each module seeds its own `store`."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest

from chief_of_staff.core.db import Store
from tests.http.console_support import console_client


@pytest.fixture
async def client(store: Store) -> AsyncIterator[httpx.AsyncClient]:
    """The console over the requesting module's `store`, at the loopback BASE."""
    async with console_client(store) as http:
        yield http
