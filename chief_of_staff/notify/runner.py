"""The delivery loop a running server keeps: queue what time made due, then send what is due.

It runs while a server runs (stdio or HTTP) and stops with it; nothing is sent while no
server runs, and whatever was queued meanwhile goes out at the next start. It never runs a
model or spends tokens. A failure in one tick is logged (to stderr, never with a secret)
and the next tick tries again: the loop must never take the server down with it.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import anyio

if TYPE_CHECKING:
    import httpx

from chief_of_staff.core.db import Store
from chief_of_staff.notify import delivery, events

log = logging.getLogger(__name__)

# Idle, a tick costs one indexed read; this keeps a waiting decision a few seconds from the operator.
TICK_SECONDS = 5.0


@dataclass
class RunnerState:
    """What this process already queued, so a tick does not redo it (dedupe keys guard across processes)."""

    last_daily: str | None = None
    announced: set[str] = field(default_factory=set)


async def tick(store: Store, http: httpx.AsyncClient, state: RunnerState) -> None:
    """Queue the events time made due, then deliver what is due."""
    async with store.read() as tx:
        wanted = await events.subscribed_events(tx)
        expiring = await events.expiring_due(tx, state.announced) if "decision.expiring" in wanted else []
        today = await events.daily_due(tx) if wanted & events.DAILY_EVENTS else None
    daily = today is not None and today != state.last_daily
    if expiring or daily:
        async with store.write() as tx:
            await events.queue_expiring(tx, expiring)
            if daily and today is not None:
                await events.queue_daily(tx, today, wanted)
        state.announced.update(f"D{number}" for number in expiring)
        if daily:
            state.last_daily = today
    await delivery.deliver_due(store, http)


async def has_work(store: Store) -> bool:
    """Whether any endpoint is configured or any delivery waits: without either, a tick has nothing to do."""
    async with store.read() as tx:
        found = await tx.scalar(
            "SELECT EXISTS (SELECT 1 FROM webhook_endpoints WHERE removed_at IS NULL) "
            "OR EXISTS (SELECT 1 FROM webhook_deliveries WHERE status = 'pending')"
        )
    return bool(found)


async def run_deliveries(store: Store, *, interval: float = TICK_SECONDS) -> None:
    """Tick until cancelled.

    The HTTP client is made only once there is work: making one loads the TLS trust store, a tenth
    of a second of the server's start-up, and most workspaces never configure an endpoint.
    """
    state = RunnerState()
    while not await _has_work_logged(store):
        await anyio.sleep(interval)
    async with delivery.http_client() as http:  # never follows redirects, ignores proxy settings
        while True:
            try:
                await tick(store, http, state)
            except Exception as exc:  # one bad tick must not stop the server; the next one retries
                log.warning("webhook delivery tick failed: %s: %s", type(exc).__name__, exc)
            await anyio.sleep(interval)


async def _has_work_logged(store: Store) -> bool:
    try:
        return await has_work(store)
    except Exception as exc:  # like a failed tick: logged, and the next look tries again
        log.warning("webhook delivery check failed: %s: %s", type(exc).__name__, exc)
        return False
