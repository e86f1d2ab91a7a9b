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
Every view carries the request a decision is bound to, every bound it is past and, for an
escalation, the exact authorize arguments that redeem it. The acts that decide, and what deciding
moves (the waiting task, a proposal's ready change), are in `chief_of_staff.domain.deciding`.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, Literal

from chief_of_staff.core import audit, ids
from chief_of_staff.core.audit import Actor
from chief_of_staff.core.clock import format_ts, parse_ts
from chief_of_staff.core.db import Row, Tx
from chief_of_staff.core.errors import Conflict, InvalidInput, NotFound
from chief_of_staff.core.fields import MAX_CENTS, Model, checked_text, is_unseen, money
from chief_of_staff.domain import inbox, outbox

DEFAULT_TTL = timedelta(hours=72)
# An approval stays redeemable at least this long, so a late "yes" is not already stale when the
# agency's next session comes to use it.
REDEEM_WINDOW = timedelta(hours=24)
# The operator's "no" answers the same request this long, so the agency cannot ask again and again.
DENIAL_STANDS = timedelta(days=7)
MAX_TITLE = 200
MAX_DETAILS = 4000
MAX_NOTE = 2000
MAX_LIST = 100
KINDS = ("escalation", "proposal", "question")
TIMEOUT_POLICIES = ("deny", "approve")
LIST_STATUSES = ("pending", "approved", "denied", "expired", "redeemed", "all")

Kind = Literal["escalation", "proposal", "question"]


@dataclass(frozen=True)
class Bound:
    """One bound a request is past: a stable key ("cap:GR2", "budget:7", ...) and the words for the operator."""

    key: str
    text: str


TimeoutPolicy = Literal["deny", "approve"]

_VIEW_COLUMNS = (
    "SELECT d.*, a.name AS agency_name, r.name AS role_name, "
    "(SELECT group_concat(t.id) FROM tasks AS t WHERE t.decision_id = d.id AND t.status = 'waiting') AS waiting"
)
_VIEW_FROM = " FROM decisions d LEFT JOIN agencies a ON a.id = d.agency_id LEFT JOIN roles r ON r.id = d.role_id"
_VIEW_SELECT = _VIEW_COLUMNS + _VIEW_FROM


class DecisionView(Model):
    """One decision as the operator and the agency see it, with the request it is bound to."""

    id: str
    kind: str
    status: str
    title: str
    details: str
    agency: str | None
    role: str | None
    amount_cents: int | None
    capability: str | None
    target: str | None
    task_id: str | None
    grant_id: str | None
    exceeds: list[str]
    redeem_with: dict[str, Any] | None
    waiting_tasks: list[str]
    adjustment: dict[str, Any] | None
    change_set: str | None
    created_at: str
    expires_at: str
    decided_channel: str | None
    note: str | None
    next_step: str


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


def _one_line(text: str) -> str:
    """Agency-written text as one visible line: no line breaks, controls or bidi marks that could draw a
    second, fake line (a forged "Approve: ..." command) into the operator's terminal, brief or Slack."""
    return " ".join("".join(" " if is_unseen(ch) else ch for ch in text).split())


def _visible_lines(text: str) -> str:
    """Details keep their lines, each cleaned as `_one_line`."""
    return "\n".join(_one_line(line) for line in text.splitlines()).strip()


def checked_amount(amount_cents: int | None) -> int | None:
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


def _how_to_decide(short_id: str, kind: str, past_a_budget: bool = False) -> str:
    if kind == "proposal" or past_a_budget:
        why = "Proposals" if kind == "proposal" else "A request past a budget"
        return (
            f"Operator: decide in the console (open_console) or run `chief-of-staff approve {short_id}` / "
            f"`chief-of-staff deny {short_id}`. {why} cannot be approved in chat; denying in chat "
            "(confirm=true) is fine."
        )
    return (
        f"Operator: say approve/deny in chat (confirm=true), decide in the console (open_console), or run "
        f"`chief-of-staff approve {short_id}` / `chief-of-staff deny {short_id}`"
    )


def past_a_budget(row: Row) -> bool:
    """Whether the request is past a budget the operator set: only a verified channel approves that."""
    return any(bound["key"].startswith("budget:") for bound in json.loads(row["exceeds"]))


# What to do when a proposal carried no ready change: the commands that make each kind of change.
NO_READY_CHANGE = (
    "It carried no ready change, so approving it changed nothing. Make the change yourself: `chief-of-staff grants` "
    "lists the grants and `chief-of-staff grant-update GR1 --cap-cents 5000` changes one (its id, the new bounds); "
    "`chief-of-staff goal list`, `chief-of-staff role list` and `chief-of-staff routine list` show where goals, "
    "roles and routines change; or record it as a review: `chief-of-staff review-record --file FILE.json`."
)


def _next_step(row: Row, short_id: str, live: bool, request: dict[str, Any]) -> str:
    """What happens next, for whoever reads the decision: the operator while it waits, the agency after."""
    status, kind = row["status"], row["kind"]
    if live:
        return _how_to_decide(short_id, kind, past_a_budget(row))
    if status == "pending" or status == "expired":
        return "Closed unanswered; nothing was approved. The agency may ask again if it still needs this."
    if status == "denied":
        return (
            f"Denied. The same request is answered denied from {short_id} until "
            f"{format_ts(parse_ts(row['decided_at']) + DENIAL_STANDS)}; do not ask again with the same parameters."
        )
    if status == "redeemed":
        return f"Used at {row['redeemed_at']}; an approval is used once."
    if kind == "escalation":
        return (
            f"Approved for one use until {row['expires_at']}: call authorize with redeem_with "
            "(and a new idempotency_key), then settle or release."
        )
    if kind == "proposal":
        if row["change_set_id"] is not None:
            return f"Approved and applied as change set {ids.format_id('change_set', row['change_set_id'])}."
        return f"Approved. {NO_READY_CHANGE}"
    return "Answered: the operator's note is the answer." if row["note"] else "Approved."


def _redeem_with(row: Row, request: dict[str, Any]) -> dict[str, Any] | None:
    """The exact authorize arguments that redeem an escalation (its request, in the names authorize takes)."""
    if row["kind"] != "escalation" or row["status"] not in ("pending", "approved"):
        return None
    arguments = {
        "agency": row["agency_name"],
        "role": row["role_name"],
        "capability": request.get("capability"),
        "amount_cents": request.get("amount_cents"),
        "target": request.get("target"),
        "task_id": None if request.get("task_id") is None else ids.format_id("task", request["task_id"]),
    }
    return {name: value for name, value in arguments.items() if value is not None}


def _view(row: Row, now_text: str) -> DecisionView:
    short_id = ids.format_id("decision", row["id"])
    live = _is_live(row, now_text)
    # A pending row past its expiry is expired in all but bookkeeping; expire_due will record it.
    status = "expired" if row["status"] == "pending" and not live else row["status"]
    request = json.loads(row["request"]) if row["kind"] == "escalation" else {}
    waiting = sorted(int(number) for number in row["waiting"].split(",")) if row["waiting"] else []
    return DecisionView(
        id=short_id,
        kind=row["kind"],
        status=status,
        title=row["title"],
        details=row["details"],
        agency=row["agency_name"],
        role=row["role_name"],
        amount_cents=row["amount_cents"],
        capability=request.get("capability"),
        target=request.get("target"),
        task_id=None if request.get("task_id") is None else ids.format_id("task", request["task_id"]),
        grant_id=None if row["grant_id"] is None else ids.format_id("grant", row["grant_id"]),
        exceeds=[bound["text"] for bound in json.loads(row["exceeds"])],
        redeem_with=_redeem_with(row, request),
        waiting_tasks=[ids.format_id("task", number) for number in waiting],
        adjustment=None if row["adjustment"] is None else json.loads(row["adjustment"]),
        change_set=None if row["change_set_id"] is None else ids.format_id("change_set", row["change_set_id"]),
        created_at=row["created_at"],
        expires_at=row["expires_at"],
        decided_channel=row["decided_channel"],
        note=row["note"],
        next_step=_next_step(row, short_id, live, request),
    )


def markdown_item(view: DecisionView) -> str:
    """A pending decision as one markdown list item (the brief and the review packet): the ask, then its facts."""
    head, *rest = describe(view)
    return "\n".join([f"- {head} (expires {view.expires_at})", *(f"  {line}" for line in rest)])


def redeem_call(view: DecisionView) -> str:
    """The authorize call that uses an approved escalation, written out: `authorize(agency="Outbound", ...)`."""
    arguments = ", ".join(f"{k}={json.dumps(v, ensure_ascii=False)}" for k, v in (view.redeem_with or {}).items())
    return f"authorize({arguments})"


def describe(view: DecisionView, *, with_redeem: bool = True) -> list[str]:
    """A decision in plain lines, for every text place it appears (brief, command line, Slack, prompts)."""
    who = " / ".join(name for name in (view.agency, view.role) if name) or "the workspace"
    facts = [f"{view.id} ({view.kind}, {view.status}) from {who}: {view.title}"]
    bound = []
    if view.capability:
        bound.append(f"capability {view.capability}")
    if view.amount_cents is not None:
        bound.append(f"amount {money(view.amount_cents)}")
    if view.target:
        bound.append(f"target {view.target}")
    if view.task_id:
        bound.append(f"task {view.task_id}")
    if view.grant_id:
        bound.append(f"grant {view.grant_id}")
    if bound:
        facts.append("Request: " + ", ".join(bound) + ".")
    if view.exceeds:
        facts.append("Past: " + " ".join(view.exceeds))
    if view.adjustment is not None:
        facts.append("Ready change: " + json.dumps(view.adjustment, sort_keys=True, ensure_ascii=False))
    if view.waiting_tasks:
        facts.append("Waiting on it: " + ", ".join(view.waiting_tasks) + ".")
    if with_redeem and view.redeem_with:
        facts.append(f"Redeem with: {redeem_call(view)}.")
    if view.note:
        facts.append(f"Operator's note: {view.note}")
    facts.append(view.next_step)
    return facts


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
    exceeds: Sequence[Bound] = (),
    adjustment: dict[str, Any] | None = None,
) -> DecisionView:
    """Open a decision bound to `request`; a live pending one for the same request is returned instead.

    `exceeds` names every bound the request is past, as the operator is shown it: approving admits the
    request past exactly those. `adjustment` is a proposal's ready change, applied when it is approved.
    """
    _check_choice(kind, "kind", KINDS)
    _check_choice(timeout_policy, "timeout_policy", TIMEOUT_POLICIES)
    if ttl <= timedelta(0):
        raise InvalidInput("ttl: a decision must stay open for some time; send a positive duration.")
    title = _one_line(checked_text(title, "title", UNCAPPED, required=True, what=DECISION_TITLE))
    title_text = _capped(title or "(untitled)", MAX_TITLE)
    details_text = _capped(_visible_lines(checked_text(details, "details", UNCAPPED)), MAX_DETAILS)
    amount = checked_amount(amount_cents)
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
        "amount_cents, grant_id, timeout_policy, expires_at, created_at, exceeds, adjustment) "
        "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
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
            json.dumps([{"key": bound.key, "text": bound.text} for bound in exceeds], ensure_ascii=False),
            None if adjustment is None else json.dumps(adjustment, sort_keys=True, ensure_ascii=False),
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
    await outbox.emit(tx, "decision.opened", payload(view))
    return view


def payload(view: DecisionView) -> dict[str, Any]:
    """A decision as a webhook carries it: what is asked, the request it is bound to and how to redeem it."""
    return {
        "decision_id": view.id,
        "title": view.title,
        "kind": view.kind,
        "amount_cents": view.amount_cents,
        "agency": view.agency,
        "role": view.role,
        "capability": view.capability,
        "target": view.target,
        "task_id": view.task_id,
        "grant_id": view.grant_id,
        "exceeds": view.exceeds,
        "redeem_with": view.redeem_with,
        "adjustment": view.adjustment,
        "expires_at": view.expires_at,
    }


def _request_text(request: dict[str, Any]) -> str:
    return json.dumps(request, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False)


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


async def live_row(tx: Tx, decision: str) -> Row:
    """The decision's row, if it can still be decided; NotFound or Conflict (saying why) otherwise."""
    decision_id = ids.parse_id("decision", decision, field="decision_id")
    row = await _load(tx, decision_id)
    if row is None:
        raise _not_found(decision_id)
    if not _is_live(row, tx.now_text):
        raise Conflict(_closed_message(row))
    return row


async def record_decided(tx: Tx, actor: Actor, row: Row, *, approve: bool, note: str) -> None:
    """Decide exactly once: a compare-and-set on status, audited in the same transaction."""
    await _compare_and_set_decided(tx, actor, row, approve, note)
    await audit.append(
        tx,
        actor,
        f"decision.{'approve' if approve else 'deny'}",
        ids.format_id("decision", row["id"]),
        {"channel": actor.channel, "kind": row["kind"], "amount_cents": row["amount_cents"]},
    )


async def record_change_set(tx: Tx, decision_id: int, change_set_id: int) -> None:
    """Remember the change set an approved proposal applied."""
    await tx.run("UPDATE decisions SET change_set_id = ? WHERE id = ?", (change_set_id, decision_id))


async def view_of(tx: Tx, decision_id: int) -> DecisionView:
    """The view of an existing decision."""
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
        await _resume_tasks(tx, row["id"], approved=status == "approved")
    return len(due)


async def _resume_tasks(tx: Tx, decision_id: int, *, approved: bool) -> list[str]:
    """Reopen the tasks a decision held up once nobody decided it: approved by silence, or closed unanswered."""
    short = ids.format_id("decision", decision_id)
    if approved:
        note = f"{short} was approved by timeout. Next: {redeem_hint(await _load_view(tx, decision_id))}"
    else:
        note = f"{short} closed without approval; do this task another way, or ask again if it is still needed."
    return await inbox.resume_after_decision(tx, audit.SYSTEM, decision_id, status="open", note=note)


def redeem_hint(view: DecisionView) -> str:
    """What the agency does with an approval, for the note of the task that waited on it."""
    if view.redeem_with is None:
        return "carry on with the task."
    return f"call {redeem_call(view)} with a new idempotency_key to use it once, then settle or release."


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
        await _resume_tasks(tx, row["id"], approved=False)
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
    """The newest approved, unredeemed, unexpired decision for exactly this request, if any."""
    row: Row | None = await tx.one(
        "SELECT * FROM decisions WHERE request_hash = ? AND status = 'approved' AND redeemed_at IS NULL "
        "AND expires_at > ? ORDER BY id DESC LIMIT 1",
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


async def standing_denial(tx: Tx, request_hash: str) -> Row | None:
    """The operator's newest "no" to exactly this request, while it stands (DENIAL_STANDS after deciding)."""
    row: Row | None = await tx.one(
        "SELECT * FROM decisions WHERE request_hash = ? AND status = 'denied' AND decided_at > ? "
        "ORDER BY id DESC LIMIT 1",
        (request_hash, format_ts(tx.now - DENIAL_STANDS)),
    )
    return row


def denial_reason(row: Row) -> str:
    """Why an identical request is denied from the operator's standing "no", in words the agency can act on."""
    short = ids.format_id("decision", row["id"])
    until = format_ts(parse_ts(row["decided_at"]) + DENIAL_STANDS)
    note = f' Their note: "{row["note"]}".' if row["note"] else ""
    return (
        f"The operator denied this exact request in {short} at {row['decided_at']}.{note} "
        f"It stands until {until}: do not ask again with the same parameters; do the work another way "
        "or propose a change with request_decision."
    )


# Read through decisions_approved: approved, unredeemed decisions are few, however many were ever made.
APPROVED_ELSEWHERE = (
    "SELECT * FROM decisions WHERE agency_id = ? AND status = 'approved' AND redeemed_at IS NULL "
    "AND expires_at > ? AND request_hash != ? AND json_extract(request, '$.capability') = ? "
    "ORDER BY id DESC LIMIT 1"
)


async def approved_elsewhere(tx: Tx, agency_id: int, capability: str, request_hash: str) -> Row | None:
    """An unused approval for this agency and capability bound to other parameters: the likely mis-sent redeem."""
    row: Row | None = await tx.one(APPROVED_ELSEWHERE, (agency_id, tx.now_text, request_hash, capability))
    return row


# --- reading ----------------------------------------------------------------------------------


async def terms_for_approval(tx: Tx, decision: str) -> str:
    """What approving a decision means, from its own row (never from the caller's words): for a prompt."""
    view = await get_decision(tx, decision)
    if view.kind != "escalation":
        # A proposal's or question's words are the agency's own: shown as such, never as the server's facts.
        return (
            f"{view.id} is a {view.kind} from {view.agency or 'the workspace'}, status {view.status}, expires "
            f"{view.expires_at}; it changes nothing unless it carries a ready change ({view.adjustment is not None}). "
            f'The agency wrote (not checked by the server): "{_capped(view.title, 200)}"'
            + (f' — "{_capped(view.details, 300)}"' if view.details else "")
        )
    lines = describe(view, with_redeem=False)[:-1]  # the record, without the operator's how-to
    lines.append(f"Why it was asked: {_capped(view.details, 600) or 'no reason given'}.")
    lines.append(f"Status {view.status}, expires {view.expires_at}.")
    return " ".join(lines)


async def get_decision(tx: Tx, decision: str) -> DecisionView:
    """One decision by id ("D7")."""
    decision_id = ids.parse_id("decision", decision, field="decision_id")
    row = await _load(tx, decision_id)
    if row is None:
        raise _not_found(decision_id)
    return _view(row, tx.now_text)


async def list_decisions(
    tx: Tx, *, status: str = "pending", limit: int = 20, agency_id: int | None = None
) -> list[DecisionView]:
    """Pending decisions oldest-expiry first (most urgent); closed ones newest first; one agency's if named."""
    if status not in LIST_STATUSES:
        raise InvalidInput(f"status: {status!r} is not one of {', '.join(LIST_STATUSES)}.")
    if isinstance(limit, bool) or not isinstance(limit, int) or not 1 <= limit <= MAX_LIST:
        raise InvalidInput(f"limit: send a whole number from 1 to {MAX_LIST}.")
    where, params = _list_filter(status, tx.now_text)
    order = "d.expires_at, d.id" if status == "pending" else "d.id DESC"
    rows = await tx.all(
        f"{_VIEW_SELECT} WHERE {where} AND (? IS NULL OR d.agency_id = ?) ORDER BY {order} LIMIT ?",
        (*params, agency_id, agency_id, limit),
    )
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


async def pending_with_count(
    tx: Tx, *, limit: int = 20, agency_id: int | None = None
) -> tuple[list[DecisionView], int]:
    """The most urgent pending decisions (as list_decisions) and how many are pending, in one statement."""
    if isinstance(limit, bool) or not isinstance(limit, int) or not 1 <= limit <= MAX_LIST:
        raise InvalidInput(f"limit: send a whole number from 1 to {MAX_LIST}.")
    # The count is an uncorrelated subquery over the same index, evaluated once; no rows means none pending.
    mine = "(:agency IS NULL OR agency_id = :agency)"
    rows = await tx.all(
        f"{_VIEW_COLUMNS}, (SELECT count(*) FROM decisions WHERE status = 'pending' AND expires_at > :now "
        f"AND {mine}) AS pending_total{_VIEW_FROM} WHERE d.status = 'pending' AND d.expires_at > :now "
        "AND (:agency IS NULL OR d.agency_id = :agency) ORDER BY d.expires_at, d.id LIMIT :limit",
        {"now": tx.now_text, "limit": limit, "agency": agency_id},
    )
    return [_view(row, tx.now_text) for row in rows], int(rows[0]["pending_total"]) if rows else 0


async def pending_count(tx: Tx) -> int:
    """How many decisions wait on the operator (index only)."""
    count = await tx.scalar(
        "SELECT count(*) FROM decisions WHERE status = 'pending' AND expires_at > ?", (tx.now_text,)
    )
    return int(count or 0)
