"""Decisions: what needs the operator's judgment, bound to the exact request, single-use, expiring.

A decision is an escalated authorization, a proposal from the agency (raise a
limit, change a goal, add a role) or a question. It carries the hash of the
request it answers, so an approval can only ever be redeemed by that same
request, and only once. Every state change is a compare-and-set on `status`,
so a decision decided in two places at once is decided exactly once.

    pending ──decide──> approved ──redeem──> redeemed
       │    └─decide──> denied
       └──timeout─────> expired  (or approved, when timeout_policy = 'approve' and the grant,
                                  read as it is then, could have allowed it)

Revoking a grant cancels its pending decisions (status expired, with a note saying why).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Awaitable, Callable
from datetime import timedelta
from typing import Any, Literal

from chief_of_staff.core import audit, ids
from chief_of_staff.core.audit import Actor
from chief_of_staff.core.clock import format_ts
from chief_of_staff.core.db import Row, Tx
from chief_of_staff.core.errors import Conflict, InvalidInput, NotFound, OperatorActRefused
from chief_of_staff.core.fields import MAX_CENTS, Model, checked_text, money
from chief_of_staff.domain import agencies, outbox, trust

DEFAULT_TTL = timedelta(hours=72)
# An approval stays redeemable at least this long, so a late "yes" is not already stale when the
# agency's next session comes to use it.
REDEEM_WINDOW = timedelta(hours=24)
MAX_TITLE = 200
MAX_DETAILS = 4000
MAX_NOTE = 2000
MAX_LIST = 100
KINDS = ("escalation", "proposal", "question")
TIMEOUT_POLICIES = ("deny", "approve")
LIST_STATUSES = ("pending", "approved", "denied", "expired", "redeemed", "all")

Kind = Literal["escalation", "proposal", "question"]
TimeoutPolicy = Literal["deny", "approve"]

_VIEW_COLUMNS = "SELECT d.*, a.name AS agency_name, r.name AS role_name"
_VIEW_FROM = " FROM decisions d LEFT JOIN agencies a ON a.id = d.agency_id LEFT JOIN roles r ON r.id = d.role_id"
_VIEW_SELECT = _VIEW_COLUMNS + _VIEW_FROM


class DecisionView(Model):
    """One decision as the operator and the agency see it."""

    id: str
    kind: str
    status: str
    title: str
    details: str
    agency: str | None
    role: str | None
    amount_cents: int | None
    created_at: str
    expires_at: str
    decided_channel: str | None
    note: str | None
    how_to_decide: str


# --- hashing and validation -------------------------------------------------------------------


def request_hash(request: dict[str, Any]) -> str:
    """sha256 hex of the request as canonical JSON (sorted keys, compact separators)."""
    if not isinstance(request, dict):
        raise InvalidInput("request: send the request as a JSON object.")
    try:
        text = json.dumps(request, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False)
    except (TypeError, ValueError):
        raise InvalidInput(
            "request: only JSON values (strings, whole or finite numbers, booleans, null, lists, objects) "
            "can be bound to a decision."
        ) from None
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


# Titles the server builds itself are cut to size, not refused (see _capped).
UNCAPPED = 1_000_000
DECISION_TITLE = "a short line saying what needs deciding"


def _capped(value: str, limit: int) -> str:
    """Callers inside the server may build text from outside data; cut it rather than fail the request."""
    return value if len(value) <= limit else value[: limit - 1] + "…"


def _checked_amount(amount_cents: int | None) -> int | None:
    if amount_cents is None:
        return None
    if isinstance(amount_cents, bool) or not isinstance(amount_cents, int):
        raise InvalidInput("amount_cents: send whole cents as an integer, e.g. 1250 for 12.50.")
    if not 0 <= amount_cents <= MAX_CENTS:
        raise InvalidInput(f"amount_cents: must be between 0 and {MAX_CENTS}; got {amount_cents}.")
    return amount_cents


def _check_choice(value: str, field: str, allowed: tuple[str, ...]) -> None:
    if value not in allowed:
        raise InvalidInput(f"{field}: {value!r} is not one of {', '.join(allowed)}.")


# --- views ------------------------------------------------------------------------------------


def _is_live(row: Row, now_text: str) -> bool:
    return bool(row["status"] == "pending" and row["expires_at"] > now_text)


def _how_to_decide(short_id: str, kind: str) -> str:
    if kind == "proposal":
        return (
            f"Operator: run `chief-of-staff approve {short_id}` / `chief-of-staff deny {short_id}`. "
            "Proposals cannot be approved in chat; denying in chat (confirm=true) is fine."
        )
    return (
        f"Operator: say approve/deny in chat (confirm=true) or run "
        f"`chief-of-staff approve {short_id}` / `chief-of-staff deny {short_id}`"
    )


def _view(row: Row, now_text: str) -> DecisionView:
    short_id = ids.format_id("decision", row["id"])
    live = _is_live(row, now_text)
    # A pending row past its expiry is expired in all but bookkeeping; expire_due will record it.
    status = "expired" if row["status"] == "pending" and not live else row["status"]
    return DecisionView(
        id=short_id,
        kind=row["kind"],
        status=status,
        title=row["title"],
        details=row["details"],
        agency=row["agency_name"],
        role=row["role_name"],
        amount_cents=row["amount_cents"],
        created_at=row["created_at"],
        expires_at=row["expires_at"],
        decided_channel=row["decided_channel"],
        note=row["note"],
        how_to_decide=_how_to_decide(short_id, row["kind"]) if live else "",
    )


async def _load(tx: Tx, decision_id: int) -> Row | None:
    return await tx.one(f"{_VIEW_SELECT} WHERE d.id = ?", (decision_id,))


async def _load_view(tx: Tx, decision_id: int) -> DecisionView:
    row = await _load(tx, decision_id)
    assert row is not None  # just written in this transaction
    return _view(row, tx.now_text)


def _not_found(decision_id: int) -> NotFound:
    return NotFound(
        f"decision: there is no decision {ids.format_id('decision', decision_id)}. "
        "Call list_decisions to see pending ones."
    )


# --- opening ----------------------------------------------------------------------------------


async def open_decision(
    tx: Tx,
    actor: Actor,
    *,
    kind: Kind,
    title: str,
    details: str = "",
    request: dict[str, Any],
    agency_id: int | None,
    role_id: int | None,
    amount_cents: int | None = None,
    grant_id: int | None = None,
    timeout_policy: TimeoutPolicy = "deny",
    ttl: timedelta = DEFAULT_TTL,
) -> DecisionView:
    """Open a decision bound to `request`; a live pending one for the same request is returned instead."""
    _check_choice(kind, "kind", KINDS)
    _check_choice(timeout_policy, "timeout_policy", TIMEOUT_POLICIES)
    if ttl <= timedelta(0):
        raise InvalidInput("ttl: a decision must stay open for some time; send a positive duration.")
    title_text = _capped(checked_text(title, "title", UNCAPPED, required=True, what=DECISION_TITLE), MAX_TITLE)
    details_text = _capped(checked_text(details, "details", UNCAPPED), MAX_DETAILS)
    amount = _checked_amount(amount_cents)
    digest = request_hash(request)
    existing = await tx.one(
        "SELECT id FROM decisions WHERE request_hash = ? AND status = 'pending' AND expires_at > ? ORDER BY id LIMIT 1",
        (digest, tx.now_text),
    )
    if existing is not None:
        return await _load_view(tx, existing["id"])
    expires_at = format_ts(tx.now + ttl)
    decision_id = await tx.run(
        "INSERT INTO decisions (kind, agency_id, role_id, title, details, request, request_hash, "
        "amount_cents, grant_id, timeout_policy, expires_at, created_at) "
        "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        (
            kind,
            agency_id,
            role_id,
            title_text,
            details_text,
            _request_text(request),
            digest,
            amount,
            grant_id,
            timeout_policy,
            expires_at,
            tx.now_text,
        ),
    )
    await audit.append(
        tx,
        actor,
        "decision.open",
        ids.format_id("decision", decision_id),
        {
            "kind": kind,
            "agency_id": agency_id,
            "role_id": role_id,
            "amount_cents": amount,
            "grant_id": grant_id,
            "timeout_policy": timeout_policy,
            "expires_at": expires_at,
        },
    )
    view = await _load_view(tx, decision_id)
    # In the decision's own transaction (the outbox): the operator hears of it if and only if it exists.
    await outbox.emit(
        tx,
        "decision.opened",
        {
            "decision_id": view.id,
            "title": view.title,
            "kind": view.kind,
            "amount_cents": view.amount_cents,
            "agency": view.agency,
            "role": view.role,
            "expires_at": view.expires_at,
        },
    )
    return view


def _request_text(request: dict[str, Any]) -> str:
    return json.dumps(request, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False)


async def request_decision(
    tx: Tx,
    actor: Actor,
    *,
    agency: str,
    role: str | None,
    kind: Literal["proposal", "question"],
    title: str,
    details: str = "",
    amount_cents: int | None = None,
) -> DecisionView:
    """The agency asks the operator: a proposal (to change limits, goals or roster) or a question."""
    _check_choice(kind, "kind", ("proposal", "question"))
    title_text = checked_text(title, "title", MAX_TITLE, required=True, what=DECISION_TITLE)
    details_text = checked_text(details, "details", MAX_DETAILS, required=False)
    amount = _checked_amount(amount_cents)
    agency_row = await agencies.resolve_agency(tx, agency)
    role_row = await agencies.resolve_role(tx, agency_row["id"], role)
    role_id = None if role_row is None else role_row["id"]
    request = {
        "kind": kind,
        "agency_id": agency_row["id"],
        "role_id": role_id,
        "title": title_text,
        "details": details_text,
        "amount_cents": amount,
    }
    return await open_decision(
        tx,
        actor,
        kind=kind,
        title=title_text,
        details=details_text,
        request=request,
        agency_id=agency_row["id"],
        role_id=role_id,
        amount_cents=amount,
    )


# --- deciding ---------------------------------------------------------------------------------


def _closed_message(row: Row) -> str:
    short_id = ids.format_id("decision", row["id"])
    if row["status"] in ("pending", "expired"):
        return (
            f"decision: {short_id} expired at {row['expires_at']} and can no longer be decided; "
            "nothing was changed. If it is still needed, the agency can ask again."
        )
    channel = row["decided_channel"]
    via = " by timeout" if channel == "system" else (f" via {channel}" if channel else "")
    return (
        f"decision: {short_id} was already {row['status']}{via}; "
        "nothing was changed. Call list_decisions to see what is still pending."
    )


async def _check_chat_approval(tx: Tx, actor: Actor, row: Row, short_id: str) -> None:
    """Chat approves escalations only within its allowance, and never a proposal (it widens authority or goals)."""
    if actor.channel != "chat":
        return
    hint = f"chief-of-staff approve {short_id}"
    if row["kind"] == "proposal":
        raise OperatorActRefused(
            f"Approving {short_id} cannot be done in chat: proposals widen authority or change goals. "
            f"The operator can approve it from a terminal: {hint} (denying in chat is fine)."
        )
    if row["kind"] == "escalation":
        await trust.draw_chat(tx, actor, f"Approving {short_id}", row["amount_cents"] or 0, hint, subject=short_id)


async def decide(tx: Tx, actor: Actor, decision: str, *, approve: bool, note: str = "") -> DecisionView:
    """The operator approves or denies a pending decision, exactly once, before it expires."""
    decision_id = ids.parse_id("decision", decision, field="decision_id")
    short_id = ids.format_id("decision", decision_id)
    verb = "approve" if approve else "deny"
    trust.require_operator(actor, f"Deciding {short_id}", f"chief-of-staff {verb} {short_id}")
    note_text = checked_text(note, "note", MAX_NOTE, required=False)
    row = await _load(tx, decision_id)
    if row is None:
        raise _not_found(decision_id)
    if not _is_live(row, tx.now_text):
        raise Conflict(_closed_message(row))
    if approve:
        await _check_chat_approval(tx, actor, row, short_id)
    await _compare_and_set_decided(tx, actor, row, approve, note_text)
    await audit.append(
        tx,
        actor,
        f"decision.{verb}",
        short_id,
        {
            "channel": actor.channel,
            "kind": row["kind"],
            "amount_cents": row["amount_cents"],
        },
    )
    return await _load_view(tx, decision_id)


async def _compare_and_set_decided(tx: Tx, actor: Actor, row: Row, approve: bool, note: str) -> None:
    status = "approved" if approve else "denied"
    changed = await tx.run(
        "UPDATE decisions SET status = ?, decided_at = ?, decided_channel = ?, note = ? "
        "WHERE id = ? AND status = 'pending' AND expires_at > ?",
        (status, tx.now_text, actor.channel, note or None, row["id"], tx.now_text),
    )
    if changed == 0:
        fresh = await _load(tx, row["id"])
        raise Conflict(_closed_message(fresh if fresh is not None else row))
    if approve:
        await _extend_for_redemption(tx, row["id"])


async def _extend_for_redemption(tx: Tx, decision_id: int) -> None:
    await tx.run(
        "UPDATE decisions SET expires_at = max(expires_at, ?) WHERE id = ?",
        (format_ts(tx.now + REDEEM_WINDOW), decision_id),
    )


# True when expire_due has work: an indexed probe a caller can fold into one statement with others.
# Also true when a pending decision's grant has reached its end date (the ledger cancels those).
DUE_EXISTS = (
    "EXISTS (SELECT 1 FROM decisions WHERE status = 'pending' AND (expires_at <= :now OR grant_id IN "
    "(SELECT id FROM grants WHERE status = 'active' AND expires_at <= :now)))"
)


# Why silence cannot approve a decision, read from its grant as it is now; None when it can.
TimeoutJudge = Callable[[Tx, Row], Awaitable[str | None]]


async def expire_due(tx: Tx, *, judge: TimeoutJudge) -> int:
    """Close pending decisions past their expiry by their timeout policy; returns how many were closed.

    Silence approves only what the grant could: a decision under `timeout_policy = 'approve'` is
    approved only when `judge` (the ledger, reading the grant as it is at the timeout) finds no reason
    against it; otherwise it expires, with that reason as its note.
    """
    due = await tx.all(
        "SELECT * FROM decisions WHERE status = 'pending' AND expires_at <= ? ORDER BY expires_at", (tx.now_text,)
    )
    for row in due:
        refusal = await judge(tx, row) if row["timeout_policy"] == "approve" else None
        status = "approved" if row["timeout_policy"] == "approve" and refusal is None else "expired"
        note = None if refusal is None else f"Not approved by silence: {refusal}"
        await tx.run(
            "UPDATE decisions SET status = ?, decided_at = ?, decided_channel = 'system', note = coalesce(?, note) "
            "WHERE id = ? AND status = 'pending'",
            (status, tx.now_text, note, row["id"]),
        )
        if status == "approved":
            await _extend_for_redemption(tx, row["id"])
        await audit.append(
            tx,
            audit.SYSTEM,
            "decision.expire",
            ids.format_id("decision", row["id"]),
            {"timeout_policy": row["timeout_policy"], "status": status, "refusal": refusal},
        )
    return len(due)


CANCELLED = "Cancelled"


async def cancel_pending_of_grant(tx: Tx, grant_id: int, why: str) -> list[str]:
    """Close every pending decision under a grant that stopped (status expired, the note says why); their ids."""
    rows = await tx.all("SELECT id FROM decisions WHERE grant_id = ? AND status = 'pending'", (grant_id,))
    note = f"{CANCELLED}: {why}; nothing under it can be approved any more."
    for row in rows:
        await tx.run(
            "UPDATE decisions SET status = 'expired', decided_at = ?, decided_channel = 'system', note = ? "
            "WHERE id = ? AND status = 'pending'",
            (tx.now_text, note, row["id"]),
        )
        await audit.append(tx, audit.SYSTEM, "decision.cancel", ids.format_id("decision", row["id"]), {"why": why})
    return [ids.format_id("decision", row["id"]) for row in rows]


async def last_cancelled(tx: Tx, digest: str) -> Row | None:
    """The newest decision for this exact request that was cancelled because its grant stopped."""
    row: Row | None = await tx.one(
        "SELECT id, note FROM decisions WHERE request_hash = ? AND status = 'expired' AND note LIKE ? "
        "ORDER BY id DESC LIMIT 1",
        (digest, f"{CANCELLED}:%"),
    )
    return row


# --- redeeming --------------------------------------------------------------------------------


async def find_redeemable(tx: Tx, request_hash: str) -> Row | None:
    """The approved, unredeemed, unexpired decision for exactly this request, if any."""
    row: Row | None = await tx.one(
        "SELECT * FROM decisions WHERE request_hash = ? AND status = 'approved' AND redeemed_at IS NULL "
        "AND expires_at > ? ORDER BY id LIMIT 1",
        (request_hash, tx.now_text),
    )
    return row


async def redeem(tx: Tx, actor: Actor, decision_id: int, *, authorization_id: int) -> None:
    """Use an approval once: approved -> redeemed, or Conflict if it is not (or no longer) redeemable."""
    short_id = ids.format_id("decision", decision_id)
    changed = await tx.run(
        "UPDATE decisions SET status = 'redeemed', redeemed_at = ? "
        "WHERE id = ? AND status = 'approved' AND redeemed_at IS NULL AND expires_at > ?",
        (tx.now_text, decision_id, tx.now_text),
    )
    if changed == 0:
        raise Conflict(
            f"decision: {short_id} is not an unused, unexpired approval, so it cannot be redeemed; "
            "an approval is used at most once. Ask again to open a new decision."
        )
    await audit.append(
        tx, actor, "decision.redeem", short_id, {"authorization_id": ids.format_id("authorization", authorization_id)}
    )


# --- reading ----------------------------------------------------------------------------------


async def terms_for_approval(tx: Tx, decision: str) -> str:
    """What approving a decision means, from its own row (never from the caller's words): for a prompt."""
    decision_id = ids.parse_id("decision", decision, field="decision_id")
    row = await _load(tx, decision_id)
    if row is None:
        raise _not_found(decision_id)
    request = json.loads(row["request"])
    who = " / ".join(name for name in (row["agency_name"], row["role_name"]) if name) or "the workspace"
    parts = [f"{ids.format_id('decision', row['id'])} is a {row['kind']} from {who}: {row['title']}"]
    if row["amount_cents"] is not None:
        parts.append(f"amount {money(row['amount_cents'])}")
    if request.get("target"):
        parts.append(f"target {request['target']}")
    if request.get("task_id"):
        parts.append(f"task {ids.format_id('task', request['task_id'])}")
    if row["grant_id"] is not None:
        parts.append(f"under grant {ids.format_id('grant', row['grant_id'])}")
    parts.append(f"why it was asked: {row['details'] or 'no reason given'}")
    parts.append(f"status {row['status']}, expires {row['expires_at']}")
    return "; ".join(parts) + "."


async def get_decision(tx: Tx, decision: str) -> DecisionView:
    """One decision by id ("D7")."""
    decision_id = ids.parse_id("decision", decision, field="decision_id")
    row = await _load(tx, decision_id)
    if row is None:
        raise _not_found(decision_id)
    return _view(row, tx.now_text)


async def list_decisions(tx: Tx, *, status: str = "pending", limit: int = 20) -> list[DecisionView]:
    """Pending decisions oldest-expiry first (most urgent); closed ones newest first."""
    if status not in LIST_STATUSES:
        raise InvalidInput(f"status: {status!r} is not one of {', '.join(LIST_STATUSES)}.")
    if isinstance(limit, bool) or not isinstance(limit, int) or not 1 <= limit <= MAX_LIST:
        raise InvalidInput(f"limit: send a whole number from 1 to {MAX_LIST}.")
    where, params = _list_filter(status, tx.now_text)
    order = "d.expires_at, d.id" if status == "pending" else "d.id DESC"
    rows = await tx.all(f"{_VIEW_SELECT} WHERE {where} ORDER BY {order} LIMIT ?", (*params, limit))
    return [_view(row, tx.now_text) for row in rows]


def _list_filter(status: str, now_text: str) -> tuple[str, tuple[str, ...]]:
    if status == "pending":
        return "d.status = 'pending' AND d.expires_at > ?", (now_text,)
    if status == "expired":
        # Rows past expiry that no sweep has closed yet are expired all the same.
        return "(d.status = 'expired' OR (d.status = 'pending' AND d.expires_at <= ?))", (now_text,)
    if status == "all":
        return "1 = 1", ()
    return "d.status = ?", (status,)


async def pending_with_count(tx: Tx, *, limit: int = 20) -> tuple[list[DecisionView], int]:
    """The most urgent pending decisions (as list_decisions) and how many are pending, in one statement."""
    if isinstance(limit, bool) or not isinstance(limit, int) or not 1 <= limit <= MAX_LIST:
        raise InvalidInput(f"limit: send a whole number from 1 to {MAX_LIST}.")
    # The count is an uncorrelated subquery over the same index, evaluated once; no rows means none pending.
    rows = await tx.all(
        f"{_VIEW_COLUMNS}, (SELECT count(*) FROM decisions WHERE status = 'pending' AND expires_at > :now) "
        f"AS pending_total{_VIEW_FROM} WHERE d.status = 'pending' AND d.expires_at > :now "
        "ORDER BY d.expires_at, d.id LIMIT :limit",
        {"now": tx.now_text, "limit": limit},
    )
    return [_view(row, tx.now_text) for row in rows], int(rows[0]["pending_total"]) if rows else 0


async def pending_count(tx: Tx) -> int:
    """How many decisions wait on the operator (index only)."""
    count = await tx.scalar(
        "SELECT count(*) FROM decisions WHERE status = 'pending' AND expires_at > ?", (tx.now_text,)
    )
    return int(count or 0)
