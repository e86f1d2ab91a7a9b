"""Sending the webhook outbox: signing, address safety, the delivery rules and the retry schedule.

A delivery row is written in the transaction of the change it reports (chief_of_staff.domain.outbox).
This module sends it later, at least once:

1. find due work in a read (cheap when there is none), then claim it in a short write that pushes
   its next attempt a lease ahead, so two processes serving the same workspace never send the same
   row at the same time;
2. send each claimed row outside any transaction (every attempt signed anew, same `webhook-id`);
3. record the answer in its own write. A crash between 2 and 3 only means the row comes due again
   when the lease ends and is sent a second time with the same `webhook-id`: receivers dedupe on it.

Rules: only 2xx is success; redirects are never followed; 410 disables the endpoint; other 4xx
except 408 and 429 are permanent; 408, 429, 5xx, timeouts and connection errors retry with
exponential backoff and full jitter (at least as long as `Retry-After` asks) until about three days
after the row was queued.

Safety (no SSRF): the host is resolved at send time and every address must be public; loopback is
allowed only when the URL itself names this machine. The request then goes to the checked address,
never to a fresh lookup, with the real name in the `Host` header and as the TLS server name.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import ipaddress
import logging
import random
import re
import socket
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from email.utils import parsedate_to_datetime
from typing import TYPE_CHECKING, Literal

import anyio
from pydantic import Field

if TYPE_CHECKING:
    import httpx  # imported where used: loading it costs every server start, and most never send

from chief_of_staff import __version__
from chief_of_staff.core import audit, ids
from chief_of_staff.core.clock import format_ts, parse_ts
from chief_of_staff.core.db import Row, Store, Tx
from chief_of_staff.core.fields import Model

logger = logging.getLogger(__name__)

ATTEMPT_TIMEOUT_SECONDS = 15.0
BACKOFF_BASE_SECONDS = 30.0
BACKOFF_STEP_CAP_SECONDS = 6 * 3600.0
GIVE_UP_AFTER = timedelta(days=3)
# Longer than one attempt can take (the timeout covers resolving, connecting and the answer).
CLAIM_LEASE = timedelta(seconds=60)
_SNIPPET_BYTES = 2048
_SNIPPET_CHARS = 200

Resolver = Callable[[str, int], Awaitable[list[str]]]
IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
DeliveryStatus = Literal["pending", "delivered", "failed", "cancelled"]

_METADATA = {ipaddress.ip_address("169.254.169.254"), ipaddress.ip_address("fd00:ec2::254")}
_NAT64 = ipaddress.ip_network("64:ff9b::/96")
_IPV4_SHORTHAND = re.compile(r"^(0x[0-9a-f]+|[0-9]+)(\.(0x[0-9a-f]+|[0-9]+)){0,3}$")


class DeliveryOutcome(Model):
    """What became of one delivery in this run; `error` is for the operator and never holds a secret."""

    message_id: str
    endpoint_id: str
    event: str
    status: DeliveryStatus
    attempts: int
    http_status: int | None = None
    error: str | None = None
    next_attempt_at: str | None = None


class DeliveryReport(Model):
    """One `deliver_due` run: counts by result, and each delivery it touched."""

    delivered: int = 0
    retrying: int = 0
    failed: int = 0
    cancelled: int = 0
    outcomes: list[DeliveryOutcome] = Field(default_factory=list)

    @classmethod
    def of(cls, outcomes: list[DeliveryOutcome]) -> DeliveryReport:
        def count(status: str) -> int:
            return sum(1 for outcome in outcomes if outcome.status == status)

        return cls(
            delivered=count("delivered"),
            retrying=count("pending"),
            failed=count("failed"),
            cancelled=count("cancelled"),
            outcomes=sorted(outcomes, key=lambda o: o.message_id),
        )


def sign(secret: str, message_id: str, timestamp: int, body: bytes) -> str:
    """The Standard Webhooks signature `v1,<base64 HMAC-SHA256>` of `id.timestamp.body`."""
    key = base64.b64decode(secret.removeprefix("whsec_"))
    content = f"{message_id}.{timestamp}.".encode() + body
    return "v1," + base64.b64encode(hmac.new(key, content, hashlib.sha256).digest()).decode("ascii")


# --- addresses ---------------------------------------------------------------------------------------


def literal_address(host: str) -> IPAddress | None:
    """The address a host names literally (including shorthand such as 127.1), or None for a name."""
    try:
        return ipaddress.ip_address(host.split("%", 1)[0])
    except ValueError:
        pass
    if _IPV4_SHORTHAND.match(host.lower()):
        try:
            return ipaddress.IPv4Address(socket.inet_aton(host))
        except OSError:
            return None
    return None


def is_loopback_host(host: str) -> bool:
    """Whether the URL itself names this machine: `localhost` or a loopback literal."""
    if host.lower().rstrip(".") == "localhost":
        return True
    address = literal_address(host)
    return address is not None and _unwrapped(address).is_loopback


def _unwrapped(address: IPAddress) -> IPAddress:
    """The IPv4 address inside an IPv4-mapped, 6to4 or NAT64 IPv6 address: where packets really go."""
    if isinstance(address, ipaddress.IPv6Address):
        if address.ipv4_mapped is not None:
            return address.ipv4_mapped
        if address.sixtofour is not None:
            return address.sixtofour
        if address in _NAT64:
            return ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
    return address


def address_problem(address: IPAddress) -> str | None:
    """Why a webhook may not be sent to this address, or None for a public unicast address."""
    inner = _unwrapped(address)
    checks = (
        (address in _METADATA or inner in _METADATA, "a cloud metadata address"),
        (inner.is_loopback, "a loopback address"),
        (inner.is_unspecified, "the unspecified address"),
        (inner.is_link_local, "a link-local address"),
        (inner.is_multicast, "a multicast address"),
        (inner.is_private, "a private address"),
        (inner.is_reserved, "a reserved address"),
        (not inner.is_global, "not a public address"),
    )
    return next((why for refused, why in checks if refused), None)


async def resolve_host(host: str, port: int) -> list[str]:
    """Every address the host resolves to (the system resolver), in the order to try them."""
    infos = await anyio.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return list(dict.fromkeys(str(info[4][0]) for info in infos))


class _Refused(Exception):
    """The destination is not allowed; a permanent failure."""


def _checked(host: str, address: IPAddress) -> None:
    if is_loopback_host(host):
        if not _unwrapped(address).is_loopback:
            raise _Refused(f"refused: {host} resolves to {address}, which is not a loopback address")
        return
    problem = address_problem(address)
    if problem is not None:
        raise _Refused(
            f"refused: {host} resolves to {address}, {problem}; webhooks go only to public "
            "addresses (or to this machine when the URL says localhost or 127.0.0.1)"
        )


async def _safe_addresses(url: httpx.URL, resolve: Resolver) -> list[str]:
    """The addresses to connect to, every one checked; refuses the lot if any is not allowed."""
    host = url.host
    literal = literal_address(host)
    if literal is not None:
        _checked(host, literal)
        return [str(literal)]
    found = await resolve(url.raw_host.decode("ascii"), url.port or (443 if url.scheme == "https" else 80))
    if not found:
        raise OSError(f"{host} has no address")
    for text in found:
        _checked(host, ipaddress.ip_address(text.split("%", 1)[0]))
    return found


def http_client() -> httpx.AsyncClient:
    """A client fit for webhooks: no redirects, no proxies or netrc from the environment."""
    import httpx

    return httpx.AsyncClient(follow_redirects=False, trust_env=False, timeout=ATTEMPT_TIMEOUT_SECONDS)


# --- the schedule -------------------------------------------------------------------------------------


def backoff_delay(attempts: int, rng: random.Random) -> float:
    """Seconds before the next attempt after `attempts` failed: full jitter under a doubling ceiling."""
    ceiling = min(BACKOFF_STEP_CAP_SECONDS, BACKOFF_BASE_SECONDS * 2 ** min(max(attempts - 1, 0), 30))
    return rng.uniform(0, ceiling)


def parse_retry_after(value: str | None, now: datetime) -> float | None:
    """`Retry-After` as seconds from now (it may be seconds or an HTTP date); None when absent or unreadable."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(min(int(value), int(GIVE_UP_AFTER.total_seconds())))
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        return None
    return min(max((when - now).total_seconds(), 0.0), GIVE_UP_AFTER.total_seconds())


# --- one attempt --------------------------------------------------------------------------------------

Verdict = Literal["delivered", "retry", "failed", "gone"]


@dataclass(frozen=True)
class _Due:
    """A claimed delivery: everything needed to send it without touching the database."""

    delivery_id: int
    message_id: str
    endpoint_id: int
    event: str
    body: str
    created_at: str
    attempts: int
    url: str
    secret: str


@dataclass(frozen=True)
class _Attempt:
    verdict: Verdict
    http_status: int | None = None
    error: str | None = None
    retry_after: float | None = None


def _headers(due: _Due, timestamp: int, body: bytes) -> dict[str, str]:
    return {
        "webhook-id": due.message_id,
        "webhook-timestamp": str(timestamp),
        "webhook-signature": sign(due.secret, due.message_id, timestamp, body),
        "content-type": "application/json",
        "user-agent": f"chief-of-staff/{__version__}",
        # A pooled connection is keyed by address, not name: never reuse one verified for another host.
        "connection": "close",
    }


async def _attempt(http: httpx.AsyncClient, due: _Due, now: datetime, resolve: Resolver) -> _Attempt:
    """Send once and judge the answer. Network trouble is a verdict, never an exception."""
    attempt = await _send(http, due, now, resolve)
    return attempt if attempt.error is None else replace(attempt, error=_scrub(attempt.error, due.url))


async def _send(http: httpx.AsyncClient, due: _Due, now: datetime, resolve: Resolver) -> _Attempt:
    import httpx

    url = httpx.URL(due.url)
    body = due.body.encode("utf-8")
    headers = _headers(due, int(now.timestamp()), body)
    try:
        with anyio.fail_after(ATTEMPT_TIMEOUT_SECONDS):
            addresses = await _safe_addresses(url, resolve)
            return await _post(http, url, addresses, headers, body, now)
    except _Refused as refused:
        return _Attempt("failed", error=str(refused))
    except (TimeoutError, httpx.TimeoutException):
        return _Attempt("retry", error=f"no answer within {ATTEMPT_TIMEOUT_SECONDS:.0f} s")
    except httpx.HTTPError as exc:
        return _Attempt("retry", error=f"{type(exc).__name__}: {exc}")
    except OSError as exc:
        return _Attempt("retry", error=f"could not reach {url.host}: {exc}")


async def _post(
    http: httpx.AsyncClient, url: httpx.URL, addresses: list[str], headers: dict[str, str], body: bytes, now: datetime
) -> _Attempt:
    """POST to the checked addresses in turn until one accepts the connection."""
    import httpx

    extensions = {"sni_hostname": url.raw_host.decode("ascii")} if url.scheme == "https" else {}
    host_header = url.netloc.decode("ascii")
    for index, address in enumerate(addresses):
        request = http.build_request(
            "POST",
            url.copy_with(host=address),
            content=body,
            headers={**headers, "host": host_header},
            timeout=ATTEMPT_TIMEOUT_SECONDS,
            extensions=extensions,
        )
        try:
            response = await http.send(request, follow_redirects=False, stream=True)
        except httpx.ConnectError:
            if index == len(addresses) - 1:
                raise
            continue
        try:
            snippet = await _snippet(response)
        finally:
            await response.aclose()
        return _judge(response, snippet, now)
    raise OSError(f"{url.host} has no address")


async def _snippet(response: httpx.Response) -> str:
    """The start of the answer's body, as one short line (receivers say why they refused there)."""
    read = b""
    async for chunk in response.aiter_bytes():
        read += chunk
        if len(read) >= _SNIPPET_BYTES:
            break
    text = read[:_SNIPPET_BYTES].decode("utf-8", "replace")
    return " ".join(text.split())[:_SNIPPET_CHARS]


def _judge(response: httpx.Response, snippet: str, now: datetime) -> _Attempt:
    code = response.status_code
    said = f"HTTP {code}" + (f": {snippet}" if snippet else "")
    if 200 <= code < 300:
        return _Attempt("delivered", http_status=code)
    if 300 <= code < 400:
        return _Attempt(
            "failed",
            code,
            f"HTTP {code}, a redirect; redirects are not followed. Remove the "
            "endpoint and add the URL it redirects to.",
        )
    if code == 410:
        return _Attempt("gone", code, f"{said} (the receiver asked to be sent nothing more)")
    if 400 <= code < 500 and code not in (408, 429):
        return _Attempt("failed", code, said)
    return _Attempt("retry", code, said, parse_retry_after(response.headers.get("retry-after"), now))


def _scrub(text: str, url: str) -> str:
    """An error on one short line, without the URL's longer path parts (receivers put secrets there)."""
    import httpx

    path = httpx.URL(url).raw_path.decode("ascii")
    for part in sorted({path, *re.split(r"[/?&=;]", path)}, key=len, reverse=True):
        if len(part) >= 8:
            text = text.replace(part, "…")
    return " ".join(text.split())[:_SNIPPET_CHARS]


# --- the outbox ---------------------------------------------------------------------------------------

_DUE_COLUMNS = """
    SELECT d.id, d.message_id, d.endpoint_id, d.event, d.body, d.created_at, d.attempts, d.status,
           e.url, e.secret, e.disabled_at, e.removed_at
    FROM webhook_deliveries d JOIN webhook_endpoints e ON e.id = d.endpoint_id
"""
_DUE = _DUE_COLUMNS + " WHERE d.status = 'pending' AND d.next_attempt_at <= ? ORDER BY d.next_attempt_at LIMIT ?"


async def cancel_pending(tx: Tx, endpoint_id: int) -> int:
    """Cancel every delivery still waiting for this endpoint; returns how many."""
    return await tx.run(
        "UPDATE webhook_deliveries SET status = 'cancelled', last_error = 'endpoint removed or disabled' "
        "WHERE endpoint_id = ? AND status = 'pending'",
        (endpoint_id,),
    )


def _due(row: Row) -> _Due:
    return _Due(
        row["id"],
        row["message_id"],
        row["endpoint_id"],
        row["event"],
        row["body"],
        row["created_at"],
        row["attempts"],
        row["url"],
        row["secret"],
    )


def _outcome(due: _Due, status: DeliveryStatus, **fields: object) -> DeliveryOutcome:
    return DeliveryOutcome.model_validate(
        {
            "message_id": due.message_id,
            "endpoint_id": ids.format_id("webhook_endpoint", due.endpoint_id),
            "event": due.event,
            "status": status,
            "attempts": due.attempts,
            **fields,
        }
    )


async def _claim(tx: Tx, rows: list[Row]) -> tuple[list[_Due], list[DeliveryOutcome]]:
    """Take the rows to send (pushing each a lease ahead); settle those that must not be sent at all."""
    claimed: list[_Due] = []
    settled: list[DeliveryOutcome] = []
    horizon = format_ts(tx.now - GIVE_UP_AFTER)
    for row in rows:
        due = _due(row)
        if row["disabled_at"] is not None or row["removed_at"] is not None:
            await cancel_pending(tx, due.endpoint_id)
            settled.append(_outcome(due, "cancelled", error="endpoint removed or disabled"))
        elif due.created_at < horizon:
            error = "not sent within 3 days of being queued (was no server running?)"
            await _finish(tx, due.delivery_id, "failed", None, error)
            settled.append(_outcome(due, "failed", error=error))
        else:
            await tx.run(
                "UPDATE webhook_deliveries SET attempts = attempts + 1, next_attempt_at = ? WHERE id = ?",
                (format_ts(tx.now + CLAIM_LEASE), due.delivery_id),
            )
            claimed.append(replace(due, attempts=due.attempts + 1))
    return claimed, settled


async def _finish(tx: Tx, delivery_id: int, status: DeliveryStatus, http_status: int | None, error: str | None) -> None:
    await tx.run(
        "UPDATE webhook_deliveries SET status = ?, last_status = ?, last_error = ?, "
        "delivered_at = CASE WHEN ? = 'delivered' THEN ? END WHERE id = ? AND status = 'pending'",
        (status, http_status, error, status, tx.now_text, delivery_id),
    )


async def _endpoint_health(tx: Tx, endpoint_id: int, attempt: _Attempt) -> None:
    if attempt.verdict == "delivered":
        await tx.run(
            "UPDATE webhook_endpoints SET last_success_at = ?, consecutive_failures = 0 WHERE id = ?",
            (tx.now_text, endpoint_id),
        )
        return
    await tx.run(
        "UPDATE webhook_endpoints SET last_failure_at = ?, last_error = ?, "
        "consecutive_failures = consecutive_failures + 1 WHERE id = ?",
        (tx.now_text, attempt.error, endpoint_id),
    )


async def _disable(tx: Tx, due: _Due) -> None:
    """A 410: the receiver asked for nothing more, so the endpoint is disabled and its queue cancelled."""
    reason = (
        f"the receiver answered 410 Gone on {tx.now_text[:16].replace('T', ' ')} UTC; remove the "
        "endpoint, and add it again if that was a mistake"
    )
    changed = await tx.run(
        "UPDATE webhook_endpoints SET disabled_at = ?, disabled_reason = ? WHERE id = ? AND disabled_at IS NULL",
        (tx.now_text, reason, due.endpoint_id),
    )
    cancelled = await cancel_pending(tx, due.endpoint_id)
    if changed:
        await audit.append(
            tx,
            audit.SYSTEM,
            "webhook.disable",
            ids.format_id("webhook_endpoint", due.endpoint_id),
            {"reason": "410 Gone", "cancelled": cancelled},
        )


async def _record(tx: Tx, due: _Due, attempt: _Attempt, rng: random.Random) -> DeliveryOutcome:
    """Write what the attempt came to; a row no longer pending (removed meanwhile) is left as it is."""
    status: DeliveryStatus = "pending"
    error, next_at = attempt.error, None
    if attempt.verdict == "delivered":
        status = "delivered"
    elif attempt.verdict in ("failed", "gone"):
        status = "failed"
    else:
        delay = max(backoff_delay(due.attempts, rng), attempt.retry_after or 0.0)
        following = tx.now + timedelta(seconds=delay)
        if following > parse_ts(due.created_at) + GIVE_UP_AFTER:
            status, error = "failed", f"gave up after {due.attempts} attempts over 3 days; last: {attempt.error}"
        else:
            next_at = format_ts(following)
    await _endpoint_health(tx, due.endpoint_id, attempt)
    if next_at is not None:
        await tx.run(
            "UPDATE webhook_deliveries SET next_attempt_at = ?, last_status = ?, last_error = ? "
            "WHERE id = ? AND status = 'pending'",
            (next_at, attempt.http_status, error, due.delivery_id),
        )
    else:
        await _finish(tx, due.delivery_id, status, attempt.http_status, error)
    if attempt.verdict == "gone":
        await _disable(tx, due)
    _log(due, status, error)
    return _outcome(due, status, http_status=attempt.http_status, error=error, next_attempt_at=next_at)


def _log(due: _Due, status: DeliveryStatus, error: str | None) -> None:
    endpoint = ids.format_id("webhook_endpoint", due.endpoint_id)
    if status == "failed":
        logger.warning("webhook %s (%s) to %s failed for good: %s", due.message_id, due.event, endpoint, error)
    elif status == "pending":
        logger.info("webhook %s (%s) to %s will be retried: %s", due.message_id, due.event, endpoint, error)


async def _send_and_record(
    store: Store,
    http: httpx.AsyncClient,
    due: _Due,
    resolve: Resolver,
    rng: random.Random,
    results: list[DeliveryOutcome],
) -> None:
    attempt = await _attempt(http, due, store.clock.now(), resolve)
    async with store.write() as tx:
        results.append(await _record(tx, due, attempt, rng))


async def _run(
    store: Store,
    http: httpx.AsyncClient,
    rows_sql: str,
    params: tuple[object, ...],
    resolve: Resolver,
    rng: random.Random,
) -> list[DeliveryOutcome]:
    async with store.write() as tx:
        claimed, results = await _claim(tx, await tx.all(rows_sql, params))
    # Sent side by side: one receiver that hangs for the whole timeout must not hold up the others.
    async with anyio.create_task_group() as group:
        for due in claimed:
            group.start_soon(_send_and_record, store, http, due, resolve, rng, results)
    return results


_RNG = random.Random()


async def deliver_due(
    store: Store,
    http: httpx.AsyncClient,
    *,
    limit: int = 20,
    resolve: Resolver = resolve_host,
    rng: random.Random | None = None,
) -> DeliveryReport:
    """Send up to `limit` deliveries that are due, each outside any transaction, and record each answer."""
    now_text = format_ts(store.clock.now())
    async with store.read() as tx:
        any_due = await tx.scalar(
            "SELECT 1 FROM webhook_deliveries WHERE status = 'pending' AND next_attempt_at <= ? LIMIT 1", (now_text,)
        )
    if any_due is None:
        return DeliveryReport()
    return DeliveryReport.of(await _run(store, http, _DUE, (now_text, limit), resolve, rng or _RNG))


async def deliver_message(
    store: Store,
    http: httpx.AsyncClient,
    message_id: str,
    *,
    resolve: Resolver = resolve_host,
    rng: random.Random | None = None,
) -> DeliveryOutcome | None:
    """Send one due delivery now (`notify test`); None if it is not pending, or another sender holds it."""
    lease_start = format_ts(store.clock.now())
    sql = _DUE_COLUMNS + " WHERE d.message_id = ? AND d.status = 'pending' AND d.next_attempt_at <= ?"
    results = await _run(store, http, sql, (message_id, lease_start), resolve, rng or _RNG)
    return results[0] if results else None
