"""Webhook endpoints and the outbox: who may add one, which URLs, what emit queues, signatures."""

from __future__ import annotations

import json
import time
from typing import Any

import pytest
from standardwebhooks.webhooks import Webhook, WebhookVerificationError

from chief_of_staff.core.audit import OPERATOR_CLI, Actor
from chief_of_staff.core.db import Store, Tx
from chief_of_staff.core.errors import Conflict, InvalidInput, NotFound, OperatorActRefused
from chief_of_staff.domain import outbox
from chief_of_staff.notify import delivery, endpoints

pytestmark = pytest.mark.anyio

URL = "https://hooks.example.com/cos/inbound"
CHAT = Actor("operator", "chat")
AGENCY = Actor("Outbound", "agency")

DECISION = {
    "decision_id": "D7",
    "title": "Renew <ads> & domain",
    "kind": "escalation",
    "amount_cents": 1250,
    "agency": "Outbound",
    "role": "SDR",
    "expires_at": "2026-11-26T08:00:00.000000Z",
}


async def add(
    store: Store, url: str = URL, events: list[str] | None = None, fmt: str = "standard", actor: Actor = OPERATOR_CLI
) -> tuple[endpoints.EndpointView, str]:
    async with store.write() as tx:
        chosen = ["decision.opened"] if events is None else events
        return await endpoints.add_endpoint(tx, actor, url=url, events=chosen, format=fmt)


async def count(store: Store, sql: str) -> int:
    async with store.read() as tx:
        value = await tx.scalar(sql)
    assert isinstance(value, int)
    return value


async def emit(store: Store, event: str, data: dict[str, Any], dedupe_key: str | None = None) -> int:
    async with store.write() as tx:
        return await outbox.emit(tx, event, data, dedupe_key=dedupe_key)


async def bodies(store: Store) -> list[dict[str, Any]]:
    async with store.read() as tx:
        rows = await tx.all("SELECT body FROM webhook_deliveries ORDER BY id")
    return [json.loads(row["body"]) for row in rows]


# --- adding endpoints ---------------------------------------------------------------------------------


async def test_adding_an_endpoint_returns_a_secret_once_and_audits_without_it(store: Store) -> None:
    view, secret = await add(store, events=["grant.changed", "decision.opened", "grant.changed"])
    assert secret.startswith("whsec_") and len(secret) == len("whsec_") + 44
    assert view.endpoint_id == "NE1" and view.events == ["decision.opened", "grant.changed"]
    assert view.status == "active" and view.pending == 0 and view.format == "standard"
    async with store.read() as tx:
        audit_rows = await tx.all("SELECT action, subject, channel, detail FROM audit_log WHERE action LIKE 'webhook%'")
    assert [(r["action"], r["subject"], r["channel"]) for r in audit_rows] == [("webhook.add", "NE1", "verified")]
    assert secret not in audit_rows[0]["detail"]
    assert secret not in view.model_dump_json()


@pytest.mark.parametrize("actor", [CHAT, AGENCY], ids=["chat", "agency"])
async def test_only_the_verified_channel_may_add_an_endpoint(store: Store, actor: Actor) -> None:
    with pytest.raises(OperatorActRefused, match="chief-of-staff notify add"):
        await add(store, actor=actor)
    assert await count(store, "SELECT count(*) FROM webhook_endpoints") == 0
    assert await count(store, "SELECT count(*) FROM audit_log WHERE action LIKE 'webhook%'") == 0


@pytest.mark.parametrize(
    ("url", "why"),
    [
        ("http://hooks.example.com/x", "plain http"),
        ("http://192.168.1.10/x", "plain http"),
        ("https://user:pw@hooks.example.com/x", "user name or password"),
        ("https://10.0.0.7/x", "private"),
        ("https://169.254.169.254/latest", "metadata"),
        ("https://[fd00:ec2::254]/", "metadata"),
        ("https://[::ffff:10.0.0.1]/", "private"),
        ("https://0.0.0.0/", "unspecified"),
        ("https://224.0.0.1/", "multicast"),
        ("https://[fe80::1]/", "link-local"),
        ("ftp://hooks.example.com/x", "https URL"),
        ("hooks.example.com/x", "https URL"),
        ("https://hooks.example.com:99999/", "port"),
        ("https://hooks.example.com/x#top", "fragment"),
        ("https://hooks example.com/", "host name"),
    ],
)
async def test_unsafe_urls_are_refused_at_add_time_and_nothing_is_written(store: Store, url: str, why: str) -> None:
    with pytest.raises(InvalidInput, match=why) as refused:
        await add(store, url=url)
    assert str(refused.value).startswith("url:")
    assert await count(store, "SELECT count(*) FROM webhook_endpoints") == 0


@pytest.mark.parametrize(
    "url",
    [
        "http://localhost:8080/hook",
        "http://127.0.0.1:9/x",
        "http://[::1]/x",
        "http://127.1/x",
        "https://hooks.example.com/x",
    ],
)
async def test_https_and_loopback_http_are_accepted(store: Store, url: str) -> None:
    view, _ = await add(store, url=url)
    assert view.status == "active"


async def test_unknown_events_and_formats_are_refused(store: Store) -> None:
    with pytest.raises(InvalidInput, match=r"'decision\.made' is not an event"):
        await add(store, events=["decision.made"])
    with pytest.raises(InvalidInput, match="events: send a list"):
        await add(store, events=[])
    with pytest.raises(InvalidInput, match="format: send 'standard'"):
        await add(store, fmt="teams")
    with pytest.raises(InvalidInput, match="events"):
        await add(store, events=[outbox.TEST_EVENT])
    assert await count(store, "SELECT count(*) FROM webhook_endpoints") == 0


async def test_the_same_url_twice_is_a_conflict_until_the_first_is_removed(store: Store) -> None:
    await add(store)
    with pytest.raises(Conflict, match="NE1 already sends to this URL"):
        await add(store, events=["grant.changed"])
    async with store.write() as tx:
        await endpoints.remove_endpoint(tx, OPERATOR_CLI, "NE1")
    view, _ = await add(store)
    assert view.endpoint_id == "NE2"


async def test_views_and_the_audit_log_shorten_the_url_because_paths_hold_receiver_secrets(store: Store) -> None:
    path_secret = "T0001/B0002/XyZsecretPathToken42"
    view, _ = await add(store, url=f"https://hooks.slack.com/services/{path_secret}", fmt="slack")
    assert view.url == "https://hooks.slack.com/…en42"
    async with store.read() as tx:
        details = [r["detail"] for r in await tx.all("SELECT detail FROM audit_log")]
    assert not any(path_secret in detail for detail in details)


# --- removing, testing, listing -----------------------------------------------------------------------


async def test_removing_an_endpoint_cancels_what_it_was_owed_and_keeps_the_row(store: Store) -> None:
    await add(store)
    assert await emit(store, "decision.opened", DECISION) == 1
    async with store.write() as tx:
        view = await endpoints.remove_endpoint(tx, OPERATOR_CLI, "NE1")
    assert view.status == "removed" and view.pending == 0
    assert await count(store, "SELECT count(*) FROM webhook_deliveries WHERE status = 'cancelled'") == 1
    async with store.read() as tx:
        assert await endpoints.list_endpoints(tx) == []
        assert [v.endpoint_id for v in await endpoints.list_endpoints(tx, include_removed=True)] == ["NE1"]
    with pytest.raises(Conflict, match="already removed"):
        async with store.write() as tx:
            await endpoints.remove_endpoint(tx, OPERATOR_CLI, "NE1")


async def test_the_agency_cannot_remove_or_test_an_endpoint_and_unknown_ids_are_not_found(store: Store) -> None:
    await add(store)
    for act in (endpoints.remove_endpoint, endpoints.queue_test):
        with pytest.raises(OperatorActRefused):
            async with store.write() as tx:
                await act(tx, AGENCY, "NE1")
    with pytest.raises(NotFound, match="no webhook endpoint NE9"):
        async with store.write() as tx:
            await endpoints.remove_endpoint(tx, OPERATOR_CLI, "NE9")
    with pytest.raises(InvalidInput, match="endpoint_id"):
        async with store.write() as tx:
            await endpoints.queue_test(tx, OPERATOR_CLI, "GR1")
    assert await count(store, "SELECT count(*) FROM webhook_deliveries") == 0


async def test_a_test_message_goes_to_that_endpoint_alone(store: Store) -> None:
    await add(store)
    await add(store, url="https://other.example.com/x")
    async with store.write() as tx:
        message_id = await endpoints.queue_test(tx, OPERATOR_CLI, "NE2")
    async with store.read() as tx:
        rows = await tx.all("SELECT endpoint_id, message_id, event FROM webhook_deliveries")
    assert [tuple(r) for r in rows] == [(2, message_id, "webhook.test")]
    assert message_id.startswith("msg_")
    assert (await bodies(store))[0]["data"]["endpoint_id"] == "NE2"


async def test_a_disabled_endpoint_cannot_be_tested(store: Store) -> None:
    await add(store)
    async with store.write() as tx:
        await tx.run(
            "UPDATE webhook_endpoints SET disabled_at = ?, disabled_reason = '410 Gone' WHERE id = 1", (tx.now_text,)
        )
    with pytest.raises(Conflict, match=r"NE1 is disabled \(410 Gone\)"):
        async with store.write() as tx:
            await endpoints.queue_test(tx, OPERATOR_CLI, "NE1")


# --- emit ---------------------------------------------------------------------------------------------


async def test_emit_with_no_endpoints_is_one_read_and_writes_nothing(store: Store) -> None:
    statements: list[str] = []
    async with store.write() as tx:
        tx.trace(statements.append)
        queued = await outbox.emit(tx, "decision.opened", DECISION)
        tx.trace(None)
    assert queued == 0 and len(statements) == 1 and statements[0].startswith("SELECT")
    assert await count(store, "SELECT count(*) FROM webhook_deliveries") == 0


async def test_emit_queues_one_delivery_per_subscribed_active_endpoint(store: Store) -> None:
    await add(store, events=["decision.opened"])
    await add(store, url="https://b.example.com/", events=["grant.changed"])
    await add(store, url="https://c.example.com/", events=["decision.opened", "grant.changed"])
    await add(store, url="https://d.example.com/", events=["decision.opened"])
    async with store.write() as tx:
        await endpoints.remove_endpoint(tx, OPERATOR_CLI, "NE4")
        await tx.run("UPDATE webhook_endpoints SET disabled_at = ? WHERE id = 3", (tx.now_text,))
    assert await emit(store, "decision.opened", DECISION) == 1
    assert await emit(store, "grant.changed", {"grant_id": "GR2"}) == 1
    async with store.read() as tx:
        rows = await tx.all(
            "SELECT endpoint_id, event, status, attempts, next_attempt_at, created_at "
            "FROM webhook_deliveries ORDER BY id"
        )
    assert [(r["endpoint_id"], r["event"], r["status"], r["attempts"]) for r in rows] == [
        (1, "decision.opened", "pending", 0),
        (2, "grant.changed", "pending", 0),
    ]
    assert all(r["next_attempt_at"] == r["created_at"] for r in rows)


async def test_a_dedupe_key_queues_an_event_once_per_endpoint(store: Store) -> None:
    await add(store, events=["brief.daily"])
    await add(store, url="https://b.example.com/", events=["brief.daily"])
    brief = {"date": "2026-11-23", "summary": ["2 decisions"], "pending_decisions": 2}
    assert await emit(store, "brief.daily", brief, dedupe_key="brief.daily:2026-11-23") == 2
    assert await emit(store, "brief.daily", brief, dedupe_key="brief.daily:2026-11-23") == 0
    assert await emit(store, "brief.daily", brief, dedupe_key="brief.daily:2026-11-24") == 2
    assert await count(store, "SELECT count(*) FROM webhook_deliveries") == 4


async def test_emit_happens_in_the_callers_transaction_and_rolls_back_with_it(store: Store) -> None:
    await add(store)
    with pytest.raises(RuntimeError):
        async with store.write() as tx:
            await outbox.emit(tx, "decision.opened", DECISION)
            raise RuntimeError("the change failed")
    assert await count(store, "SELECT count(*) FROM webhook_deliveries") == 0


async def test_an_unknown_event_is_a_programming_error(store: Store) -> None:
    with pytest.raises(ValueError, match="unknown webhook event"):
        await emit(store, "decision.made", {})


async def test_the_standard_body_is_type_timestamp_and_data(store: Store) -> None:
    await add(store)
    await emit(store, "decision.opened", DECISION)
    assert await bodies(store) == [
        {"type": "decision.opened", "timestamp": "2026-11-23T08:00:00.000000Z", "data": DECISION}
    ]


async def test_the_slack_body_names_the_decision_its_amount_and_the_commands_that_decide_it(store: Store) -> None:
    await add(store, fmt="slack")
    await emit(store, "decision.opened", DECISION)
    [body] = await bodies(store)
    text = body["text"]
    assert list(body) == ["text"]
    assert "Renew &lt;ads&gt; &amp; domain" in text and "<ads>" not in text
    assert "12.50 USD" in text and "Outbound / SDR" in text
    assert "`chief-of-staff approve D7`" in text and "`chief-of-staff deny D7`" in text
    assert "Thu 26 Nov 09:00 Europe/Berlin" in text


async def test_slack_bodies_for_the_other_events_read_as_sentences(store: Store) -> None:
    await add(store, fmt="slack", events=list(outbox.EVENTS))
    await emit(store, "decision.expiring", {**DECISION, "amount_cents": None, "hours_left": 5})
    await emit(
        store,
        "grant.changed",
        {
            "grant_id": "GR3",
            "change": "created",
            "version": 1,
            "agency": "Outbound",
            "capability": "spend.ads",
            "mode": "approve",
        },
    )
    await emit(store, "anomaly.found", {"kind": "cost_spike", "subject": "Outbound", "summary": "3x usual"})
    await emit(store, "brief.daily", {"date": "2026-11-23", "summary": ["G1 behind"], "pending_decisions": 2})
    texts = [body["text"] for body in await bodies(store)]
    assert texts[0].startswith("Decision D7 expires in about 5 h: *Renew") and "USD" not in texts[0]
    assert texts[1] == "Grant GR3 created (version 1): Outbound may spend.ads, mode approve."
    assert texts[2] == "Anomaly (cost_spike) in Outbound: 3x usual"
    assert texts[3] == "Daily brief for 2026-11-23: 2 decision(s) waiting for you.\n• G1 behind"


# --- signatures ---------------------------------------------------------------------------------------


def headers(message_id: str, timestamp: int, signature: str) -> dict[str, str]:
    return {"webhook-id": message_id, "webhook-timestamp": str(timestamp), "webhook-signature": signature}


async def secret_of(tx: Tx) -> str:
    value = await tx.scalar("SELECT secret FROM webhook_endpoints WHERE id = 1")
    assert isinstance(value, str)
    return value


async def test_a_signature_verifies_with_the_standardwebhooks_package(store: Store) -> None:
    _, secret = await add(store)
    body = b'{"type":"decision.opened","data":{"title":"caf\xc3\xa9"}}'
    # The package checks the timestamp against the real clock, so sign at the real time.
    now = int(time.time())
    signature = delivery.sign(secret, "msg_1", now, body)
    assert signature.startswith("v1,")
    assert Webhook(secret).verify(body, headers("msg_1", now, signature))["data"]["title"] == "café"
    async with store.read() as tx:
        assert await secret_of(tx) == secret


@pytest.mark.parametrize("tamper", ["body", "id", "timestamp"])
async def test_a_changed_body_id_or_timestamp_fails_verification(store: Store, tamper: str) -> None:
    _, secret = await add(store)
    body, now = b'{"type":"decision.opened"}', int(time.time())
    signature = delivery.sign(secret, "msg_1", now, body)
    sent = {
        "body": (b'{"type":"decision.opened "}', "msg_1", now),
        "id": (body, "msg_2", now),
        "timestamp": (body, "msg_1", now + 1),
    }[tamper]
    with pytest.raises(WebhookVerificationError, match="No matching signature"):
        Webhook(secret).verify(sent[0], headers(sent[1], sent[2], signature))


@pytest.mark.parametrize(("offset", "why"), [(-600, "too old"), (600, "too new")])
async def test_a_timestamp_outside_five_minutes_fails_verification(store: Store, offset: int, why: str) -> None:
    _, secret = await add(store)
    body, then = b"{}", int(time.time()) + offset
    with pytest.raises(WebhookVerificationError, match=why):
        Webhook(secret).verify(body, headers("msg_1", then, delivery.sign(secret, "msg_1", then, body)))


async def test_another_endpoints_secret_does_not_verify(store: Store) -> None:
    _, first = await add(store)
    _, second = await add(store, url="https://b.example.com/")
    assert first != second
    now = int(time.time())
    with pytest.raises(WebhookVerificationError):
        Webhook(second).verify(b"{}", headers("msg_1", now, delivery.sign(first, "msg_1", now, b"{}")))


@pytest.mark.parametrize("url", ["https://xn--/", "https://xn--ab.com/"])
def test_a_malformed_international_name_is_refused_as_invalid_input(url: str) -> None:
    from chief_of_staff.core.errors import InvalidInput

    with pytest.raises(InvalidInput, match="not a URL"):
        endpoints.check_url(url)
