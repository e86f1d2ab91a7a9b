"""Sending the outbox: the delivery rules, the retry schedule, and no sending to private addresses.

Outbound HTTP is an `httpx.MockTransport`; addresses come from an injected resolver; time is the
fixed clock, and the jitter takes its highest value so every schedule can be checked by hand.
"""

from __future__ import annotations

import json
import logging
import random
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from standardwebhooks.webhooks import Webhook

from chief_of_staff.core.audit import OPERATOR_CLI
from chief_of_staff.core.clock import FixedClock, format_ts
from chief_of_staff.core.db import Row, Store
from chief_of_staff.domain import outbox
from chief_of_staff.notify import delivery, endpoints
from chief_of_staff.notify.delivery import address_problem, backoff_delay, parse_retry_after
from tests.conftest import START

pytestmark = pytest.mark.anyio

URL = "https://hooks.example.com/cos/inbound"
PUBLIC = "93.184.216.34"
Answer = httpx.Response | Exception | Callable[[httpx.Request], Awaitable[httpx.Response]]


class Highest(random.Random):
    """Full jitter at its ceiling: each delay is exactly the backoff step."""

    def random(self) -> float:
        return 1.0


class Receiver:
    """Answers each request with the next of its answers (the last one repeats) and keeps what it got."""

    def __init__(self, *answers: Answer) -> None:
        self.answers = list(answers) or [httpx.Response(204)]
        self.requests: list[httpx.Request] = []

    async def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        answer = self.answers.pop(0) if len(self.answers) > 1 else self.answers[0]
        if isinstance(answer, Exception):
            raise answer
        if isinstance(answer, httpx.Response):
            return answer
        return await answer(request)


async def public(host: str, port: int) -> list[str]:
    return [PUBLIC]


def resolver(*addresses: str) -> Callable[[str, int], Awaitable[list[str]]]:
    async def resolve(host: str, port: int) -> list[str]:
        return list(addresses)

    return resolve


async def add(store: Store, url: str = URL, events: list[str] | None = None) -> str:
    async with store.write() as tx:
        _, secret = await endpoints.add_endpoint(tx, OPERATOR_CLI, url=url, events=events or ["decision.opened"])
    return secret


async def opened(store: Store, decision: str = "D7") -> None:
    async with store.write() as tx:
        await outbox.emit(tx, "decision.opened", {"decision_id": decision, "title": "Buy ads", "amount_cents": 900})


async def deliver(store: Store, receiver: Receiver, **options: Any) -> delivery.DeliveryReport:
    options.setdefault("resolve", public)
    async with httpx.AsyncClient(transport=httpx.MockTransport(receiver)) as http:
        return await delivery.deliver_due(store, http, rng=Highest(), **options)


async def delivery_row(store: Store, number: int = 1) -> Row:
    async with store.read() as tx:
        row = await tx.one("SELECT * FROM webhook_deliveries WHERE id = ?", (number,))
    assert row is not None
    return row


async def endpoint(store: Store) -> endpoints.EndpointView:
    async with store.read() as tx:
        [view] = await endpoints.list_endpoints(tx)
    return view


def at(seconds: float) -> str:
    return format_ts(START + timedelta(seconds=seconds))


# --- success and what is sent -------------------------------------------------------------------------


async def test_a_delivery_is_signed_and_verifies_with_the_standardwebhooks_package(
    store: Store, clock: FixedClock
) -> None:
    # The package checks the timestamp against the real clock, so this test's clock reads real time.
    clock.set(datetime.now(UTC))
    secret = await add(store)
    await opened(store)
    receiver = Receiver(httpx.Response(200))
    report = await deliver(store, receiver)
    [request] = receiver.requests
    payload = Webhook(secret).verify(request.content, dict(request.headers))
    assert payload["type"] == "decision.opened" and payload["data"]["decision_id"] == "D7"
    assert request.headers["webhook-timestamp"] == str(int(clock.now().timestamp()))
    assert request.headers["content-type"] == "application/json"
    assert request.headers["user-agent"].startswith("chief-of-staff/")
    assert request.content == (await delivery_row(store))["body"].encode()
    assert report.delivered == 1


async def test_a_2xx_is_marked_delivered_once_and_not_sent_again(store: Store) -> None:
    await add(store)
    await opened(store)
    receiver = Receiver(httpx.Response(202))
    first = await deliver(store, receiver)
    assert (first.delivered, first.outcomes[0].http_status) == (1, 202)
    row = await delivery_row(store)
    assert (row["status"], row["attempts"], row["delivered_at"], row["last_status"]) == ("delivered", 1, at(0), 202)
    second = await deliver(store, receiver)
    assert second == delivery.DeliveryReport() and len(receiver.requests) == 1
    view = await endpoint(store)
    assert (view.pending, view.delivered_7d, view.last_success_at) == (0, 1, at(0))


async def test_the_request_goes_to_the_checked_address_with_the_real_name_for_host_and_tls(store: Store) -> None:
    await add(store, url="https://hooks.example.com:8443/cos")
    await opened(store)
    receiver = Receiver()
    await deliver(store, receiver)
    [request] = receiver.requests
    assert str(request.url) == f"https://{PUBLIC}:8443/cos"
    assert request.headers["host"] == "hooks.example.com:8443"
    assert request.extensions["sni_hostname"] == "hooks.example.com"
    assert request.extensions["timeout"]["read"] == 15.0
    assert request.headers["connection"] == "close"


async def test_every_attempt_carries_the_same_webhook_id_and_is_signed_anew(store: Store, clock: FixedClock) -> None:
    await add(store)
    await opened(store)
    receiver = Receiver(httpx.Response(500), httpx.Response(200))
    await deliver(store, receiver)
    clock.advance(timedelta(seconds=30))
    await deliver(store, receiver)
    first, second = receiver.requests
    assert first.headers["webhook-id"] == second.headers["webhook-id"] == (await delivery_row(store))["message_id"]
    assert int(second.headers["webhook-timestamp"]) - int(first.headers["webhook-timestamp"]) == 30
    assert first.headers["webhook-signature"] != second.headers["webhook-signature"]
    assert first.content == second.content


# --- retries ------------------------------------------------------------------------------------------


async def test_a_500_is_retried_on_the_backoff_schedule(store: Store, clock: FixedClock) -> None:
    await add(store)
    await opened(store)
    receiver = Receiver(httpx.Response(500), httpx.Response(502), httpx.Response(200))
    report = await deliver(store, receiver)
    assert (report.retrying, report.outcomes[0].next_attempt_at) == (1, at(30))  # 30 s × 2⁰
    row = await delivery_row(store)
    assert (row["status"], row["attempts"], row["last_status"], row["next_attempt_at"]) == ("pending", 1, 500, at(30))
    clock.advance(timedelta(seconds=29))
    assert await deliver(store, receiver) == delivery.DeliveryReport()  # not due yet
    clock.advance(timedelta(seconds=1))
    await deliver(store, receiver)
    assert (await delivery_row(store))["next_attempt_at"] == at(30 + 60)  # 30 s × 2¹ after the second try
    clock.advance(timedelta(seconds=60))
    await deliver(store, receiver)
    assert (await delivery_row(store))["status"] == "delivered" and len(receiver.requests) == 3
    view = await endpoint(store)
    assert (view.consecutive_failures, view.last_failure_at, view.last_success_at) == (0, at(30), at(90))


@pytest.mark.parametrize("code", [408, 429, 503])
async def test_408_429_and_5xx_are_retried(store: Store, code: int) -> None:
    await add(store)
    await opened(store)
    report = await deliver(store, Receiver(httpx.Response(code, text="busy")))
    assert report.retrying == 1
    row = await delivery_row(store)
    assert (row["status"], row["last_status"], row["last_error"]) == ("pending", code, f"HTTP {code}: busy")


async def test_retry_after_in_seconds_is_honoured_as_a_minimum(store: Store) -> None:
    await add(store)
    await opened(store)
    await deliver(store, Receiver(httpx.Response(429, headers={"Retry-After": "120"})))
    assert (await delivery_row(store))["next_attempt_at"] == at(120)


async def test_retry_after_as_an_http_date_is_honoured(store: Store) -> None:
    await add(store)
    await opened(store)
    await deliver(store, Receiver(httpx.Response(503, headers={"Retry-After": "Mon, 23 Nov 2026 09:00:00 GMT"})))
    assert (await delivery_row(store))["next_attempt_at"] == at(3600)


async def test_a_retry_after_shorter_than_the_backoff_does_not_shorten_it(store: Store) -> None:
    await add(store)
    await opened(store)
    await deliver(store, Receiver(httpx.Response(503, headers={"Retry-After": "5"})))
    assert (await delivery_row(store))["next_attempt_at"] == at(30)


@pytest.mark.parametrize(
    ("error", "said"),
    [
        (httpx.ConnectError("[Errno 111] Connection refused"), "ConnectError: [Errno 111] Connection refused"),
        (httpx.ReadTimeout("timed out"), "no answer within 15 s"),
    ],
)
async def test_connection_errors_and_timeouts_are_retried(store: Store, error: Exception, said: str) -> None:
    await add(store)
    await opened(store)
    report = await deliver(store, Receiver(error))
    assert report.retrying == 1
    row = await delivery_row(store)
    assert (row["status"], row["last_status"], row["last_error"], row["next_attempt_at"]) == (
        "pending",
        None,
        said,
        at(30),
    )


async def test_delivery_gives_up_after_about_three_days(store: Store, clock: FixedClock) -> None:
    await add(store)
    await opened(store)
    receiver = Receiver(httpx.Response(500))
    while (row := await delivery_row(store))["status"] == "pending":
        clock.set(datetime.strptime(row["next_attempt_at"], "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=UTC))
        await deliver(store, receiver)
    # Steps of 30 s doubling to 15,360 s (10 attempts, 30,690 s in all), then 6 h each: attempt 21 comes at
    # 30,690 + 10 × 21,600 = 246,690 s (68.5 h); the next would be at 268,290 s, past 72 h, so it gives up.
    assert (row["status"], row["attempts"], len(receiver.requests)) == ("failed", 21, 21)
    assert clock.now() - START == timedelta(seconds=246_690)
    assert row["last_error"] == "gave up after 21 attempts over 3 days; last: HTTP 500"


async def test_backoff_doubles_to_its_cap_and_jitter_stays_under_the_step() -> None:
    assert [backoff_delay(n, Highest()) for n in (1, 2, 3, 11, 12, 500)] == [30, 60, 120, 21_600, 21_600, 21_600]
    seeded = random.Random(7)
    assert all(0 <= backoff_delay(4, seeded) <= 240 for _ in range(100))


def test_retry_after_reads_seconds_and_dates_and_ignores_nonsense() -> None:
    assert parse_retry_after("90", START) == 90
    assert parse_retry_after("Mon, 23 Nov 2026 08:01:00 GMT", START) == 60
    assert parse_retry_after("Sun, 22 Nov 2026 08:00:00 GMT", START) == 0
    assert parse_retry_after("soon", START) is None
    assert parse_retry_after(None, START) is None
    assert parse_retry_after("99999999", START) == 3 * 86_400


# --- permanent failures -------------------------------------------------------------------------------


async def test_a_3xx_is_not_followed_and_fails_for_good(store: Store) -> None:
    await add(store)
    await opened(store)
    receiver = Receiver(httpx.Response(302, headers={"Location": "https://elsewhere.example.com/"}))
    report = await deliver(store, receiver)
    assert report.failed == 1 and len(receiver.requests) == 1
    row = await delivery_row(store)
    assert (row["status"], row["last_status"]) == ("failed", 302)
    assert "redirects are not followed" in row["last_error"]


async def test_a_404_fails_for_good(store: Store, clock: FixedClock) -> None:
    await add(store)
    await opened(store)
    receiver = Receiver(httpx.Response(404, text="no such hook"))
    await deliver(store, receiver)
    row = await delivery_row(store)
    assert (row["status"], row["last_status"], row["last_error"]) == ("failed", 404, "HTTP 404: no such hook")
    clock.advance(timedelta(days=1))
    await deliver(store, receiver)
    assert len(receiver.requests) == 1


async def test_a_410_disables_the_endpoint_and_cancels_what_it_was_owed(store: Store) -> None:
    await add(store)
    await opened(store, "D7")
    await opened(store, "D8")
    report = await deliver(store, Receiver(httpx.Response(410)), limit=1)
    assert report.failed == 1
    view = await endpoint(store)
    assert view.status == "disabled" and "410 Gone" in (view.disabled_reason or "")
    assert (await delivery_row(store, 2))["status"] == "cancelled"
    async with store.write() as tx:
        assert await outbox.emit(tx, "decision.opened", {"decision_id": "D9"}) == 0
        audited = await tx.all("SELECT action, subject, channel FROM audit_log WHERE action = 'webhook.disable'")
    assert [tuple(row) for row in audited] == [("webhook.disable", "NE1", "system")]


# --- where it may be sent -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("addresses", "why"),
    [
        (["10.0.0.5"], "10.0.0.5, a private address"),
        ([PUBLIC, "192.168.1.1"], "192.168.1.1, a private address"),
        (["169.254.169.254"], "a cloud metadata address"),
        (["fd00:ec2::254"], "a cloud metadata address"),
        (["127.0.0.1"], "a loopback address"),
        (["::ffff:127.0.0.1"], "a loopback address"),
        (["0.0.0.0"], "the unspecified address"),
        (["100.64.0.1"], "not a public address"),
        (["2002:a00:1::"], "a private address"),
    ],
)
async def test_a_name_that_resolves_to_a_private_address_is_refused_for_good(
    store: Store, addresses: list[str], why: str
) -> None:
    await add(store)
    await opened(store)
    receiver = Receiver()
    report = await deliver(store, receiver, resolve=resolver(*addresses))
    assert report.failed == 1 and receiver.requests == []
    row = await delivery_row(store)
    assert row["status"] == "failed" and row["last_error"].startswith("refused: hooks.example.com resolves to ")
    assert why in row["last_error"]


async def test_localhost_may_be_sent_to_but_only_at_a_loopback_address(store: Store) -> None:
    await add(store, url="http://localhost:8080/hook")
    await opened(store)
    receiver = Receiver()
    await deliver(store, receiver, resolve=resolver("::1", "127.0.0.1"))
    assert str(receiver.requests[0].url) == "http://[::1]:8080/hook"
    assert receiver.requests[0].headers["host"] == "localhost:8080"
    assert "sni_hostname" not in receiver.requests[0].extensions
    await opened(store, "D8")
    await deliver(store, receiver, resolve=resolver(PUBLIC))
    assert "not a loopback address" in (await delivery_row(store, 2))["last_error"]


async def test_a_loopback_literal_is_sent_without_resolving(store: Store) -> None:
    await add(store, url="http://127.0.0.1:9999/hook")
    await opened(store)
    receiver = Receiver()

    async def never(host: str, port: int) -> list[str]:
        raise AssertionError("a literal address is not resolved")

    await deliver(store, receiver, resolve=never)
    assert str(receiver.requests[0].url) == "http://127.0.0.1:9999/hook"


async def test_the_next_checked_address_is_tried_when_one_refuses_the_connection(store: Store) -> None:
    await add(store)
    await opened(store)
    receiver = Receiver(httpx.ConnectError("refused"), httpx.Response(200))
    report = await deliver(store, receiver, resolve=resolver("2606:2800:220:1::1", PUBLIC))
    assert report.delivered == 1
    assert [request.url.host for request in receiver.requests] == ["2606:2800:220:1::1", PUBLIC]


async def test_a_name_that_does_not_resolve_is_retried(store: Store) -> None:
    await add(store)
    await opened(store)

    async def nxdomain(host: str, port: int) -> list[str]:
        raise OSError("[Errno -2] Name or service not known")

    await deliver(store, Receiver(), resolve=nxdomain)
    row = await delivery_row(store)
    assert (row["status"], row["last_error"]) == (
        "pending",
        "could not reach hooks.example.com: [Errno -2] Name or service not known",
    )


def test_public_addresses_pass_the_check() -> None:
    import ipaddress

    for text in (PUBLIC, "8.8.8.8", "2606:4700:4700::1111"):
        assert address_problem(ipaddress.ip_address(text)) is None
    assert address_problem(ipaddress.ip_address("64:ff9b::a00:1")) == "a private address"  # NAT64 of 10.0.0.1
    assert address_problem(ipaddress.ip_address("224.0.0.1")) == "a multicast address"


# --- at least once, never twice at the same time ------------------------------------------------------


async def test_a_claimed_delivery_is_not_sent_by_a_second_sender_meanwhile(store: Store) -> None:
    await add(store)
    await opened(store)
    inner: list[delivery.DeliveryReport] = []

    async def while_sending(request: httpx.Request) -> httpx.Response:
        inner.append(await deliver(store, Receiver()))
        return httpx.Response(200)

    await deliver(store, Receiver(while_sending))
    assert inner == [delivery.DeliveryReport()]
    assert (await delivery_row(store))["status"] == "delivered"


async def test_a_sender_that_dies_mid_send_leaves_the_row_to_be_sent_again_with_the_same_id(
    store: Store, clock: FixedClock
) -> None:
    await add(store)
    await opened(store)
    dying = Receiver(RuntimeError("the process died here"))
    with pytest.raises(ExceptionGroup):
        await deliver(store, dying)
    row = await delivery_row(store)
    assert (row["status"], row["attempts"], row["next_attempt_at"]) == ("pending", 1, at(60))
    clock.advance(timedelta(seconds=60))
    again = Receiver()
    await deliver(store, again)
    assert again.requests[0].headers["webhook-id"] == dying.requests[0].headers["webhook-id"] == row["message_id"]
    assert (await delivery_row(store))["status"] == "delivered"


async def test_a_delivery_left_unsent_for_three_days_is_dropped_not_sent_stale(store: Store, clock: FixedClock) -> None:
    await add(store)
    await opened(store)
    clock.advance(timedelta(days=3, seconds=1))
    receiver = Receiver()
    report = await deliver(store, receiver)
    assert report.failed == 1 and receiver.requests == []
    assert "not sent within 3 days" in (await delivery_row(store))["last_error"]


async def test_removing_an_endpoint_mid_send_leaves_the_delivery_cancelled(store: Store) -> None:
    await add(store)
    await opened(store)

    async def removed_meanwhile(request: httpx.Request) -> httpx.Response:
        async with store.write() as tx:
            await endpoints.remove_endpoint(tx, OPERATOR_CLI, "NE1")
        return httpx.Response(500)

    await deliver(store, Receiver(removed_meanwhile))
    assert (await delivery_row(store))["status"] == "cancelled"


async def test_deliver_message_sends_one_message_now(store: Store) -> None:
    await add(store)
    await opened(store)
    async with store.write() as tx:
        message_id = await endpoints.queue_test(tx, OPERATOR_CLI, "NE1")
    receiver = Receiver()
    async with httpx.AsyncClient(transport=httpx.MockTransport(receiver)) as http:
        outcome = await delivery.deliver_message(store, http, message_id, resolve=public)
        assert outcome is not None and (outcome.status, outcome.endpoint_id) == ("delivered", "NE1")
        assert await delivery.deliver_message(store, http, message_id, resolve=public) is None
    assert [json.loads(r.content)["type"] for r in receiver.requests] == ["webhook.test"]
    assert (await delivery_row(store, 1))["status"] == "pending"


# --- secrets ------------------------------------------------------------------------------------------


async def test_secrets_appear_in_no_view_log_error_or_report(
    store: Store, clock: FixedClock, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="chief_of_staff")
    path_secret = "T0001/B0002/XyZsecretPathToken42"
    secret = await add(store, url=f"https://hooks.slack.com/services/{path_secret}")
    await opened(store)
    await opened(store, "D8")
    reports = [await deliver(store, Receiver(httpx.ConnectError(f"failed POST /services/{path_secret}")))]
    clock.advance(timedelta(seconds=30))
    reports.append(await deliver(store, Receiver(), resolve=resolver("10.0.0.1"), limit=1))
    reports.append(await deliver(store, Receiver(httpx.Response(404, text=f"no such {path_secret}"))))
    async with store.read() as tx:
        views = [v.model_dump_json() for v in await endpoints.list_endpoints(tx)]
        errors = [r[0] or "" for r in await tx.all("SELECT last_error FROM webhook_deliveries")]
        audited = [r[0] for r in await tx.all("SELECT detail FROM audit_log")]
    seen = views + errors + audited + [r.model_dump_json() for r in reports] + [caplog.text]
    assert len(caplog.records) == 4 and any("refused" in e for e in errors) and any("404" in e for e in errors)
    for text in seen:
        assert secret not in text and secret.removeprefix("whsec_") not in text
        assert "XyZsecretPathToken42" not in text
