"""Bounded authority: the agency asks before it acts, and the answer is drawn against its grants.

`authorize` picks the grant that governs the request and answers `allowed` (with a
reservation drawn from the grant's budgets by one conditional UPDATE per budget),
`needs_approval` (with a decision opened for the operator) or `denied` (citing the
grant). With no grant at all the request is escalated, never allowed silently
(default deny). Every call appends one ledger row, whatever the answer. Afterwards
the agency settles (the actual amount) or releases; a hold that runs out unsettled
is spent in full, never refunded. `check` gives the answer authorize would give
without acting or writing.

What the operator decided answers the next identical request:
- an escalation names every bound the request is past (its grant's cap, mode or revocation, and each
  full budget with its period and limit); an approval admits that one request past exactly those
  bounds, drawing the named budgets even when full (an operator exception, kept on the ledger row),
  and a bound it did not show sends the request back to the operator; an approval by silence never
  admits a budget;
- a denial answers the same request `denied` for `decisions.DENIAL_STANDS`, and beats an older approval;
- an escalation that names a task parks it on the decision (see `deciding`).

Which grant governs (Trust, property 1: agency acts are monotone):
- the most specific grant that covers the request (role over agency-wide, exact over
  wildcard, then newest), whether active, past its end date or revoked, until the
  operator hands a stopped grant's space over; so revoking or expiring a narrow grant
  never lets a broad one allow what it held back;
- where that grant was made in chat, every verified grant covering the request applies
  too (stopped ones included, until handed over), and the strictest answer wins;
- a request that names a task is judged as the task's role; a retired agency or role
  gets nothing allowed. Over stdio the agency is one principal and may name any of its
  roles, or none: role grants bound a role only over a role token.
"""

from __future__ import annotations

import json
import re
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any, Literal

from chief_of_staff.core import audit, ids
from chief_of_staff.core.audit import SYSTEM, Actor
from chief_of_staff.core.clock import format_ts, parse_ts
from chief_of_staff.core.db import Row, Tx
from chief_of_staff.core.errors import Conflict, InvalidInput, NotFound
from chief_of_staff.core.fields import MAX_CENTS, Model, money
from chief_of_staff.domain import agencies, decisions, inbox, workspace
from chief_of_staff.domain.authority.grants import (
    budget_rows,
    budget_usage,
    grant_row,
    hand_over_command,
    period_key,
    target_matches,
)
from chief_of_staff.domain.authority.targets import MAX_TARGET_LENGTH, canonical_target
from chief_of_staff.domain.decisions import Bound

# An allowed action holds its reservation this long; one still unsettled then is spent in full.
RESERVATION_TTL = timedelta(hours=24)
# The sweep inside authorize does a bounded slice of work, so one call never stalls on a backlog.
_EXPIRE_BATCH = 100
_PERIOD_NOW = {"day": "today", "week": "this week", "month": "this month"}
_CONCRETE_CAPABILITY = re.compile(r"^[a-z][a-z0-9_-]{0,30}(\.[a-z0-9_-]{1,30}){0,4}$")

Answer = Literal["allowed", "denied", "needs_approval"]


class AuthorizationView(Model):
    authorization_id: str
    answer: Answer
    reason: str
    capability: str
    amount_cents: int
    target: str | None
    grant_id: str | None
    decision_id: str | None
    notify: bool
    status: str
    expires_at: str | None
    budgets_left: list[str]


class CheckView(Model):
    """What authorize would answer now; nothing was reserved, opened or written."""

    answer: Answer
    reason: str
    grant_id: str | None
    budgets_left: list[str]
    would_open_decision: bool


# --- authorize ----------------------------------------------------------------------------------


@dataclass
class _Request:
    agency: Row
    role: Row | None
    capability: str
    amount_cents: int
    target: str | None
    task_id: int | None
    idempotency_key: str | None

    def params(self) -> dict[str, Any]:
        """The exact request a decision is bound to (its hash is the request hash)."""
        return {
            "agency_id": self.agency["id"],
            "role_id": self.role["id"] if self.role else None,
            "capability": self.capability,
            "amount_cents": self.amount_cents,
            "target": self.target,
            "task_id": self.task_id,
        }


@dataclass
class _Outcome:
    answer: Answer
    reason: str
    grant: Row | None = None
    decision_id: int | None = None
    redeem: bool = False
    period_keys: dict[str, str] = field(default_factory=dict)
    why: str = ""  # needs_approval: why the operator is asked, before what to do next
    exceeded: list[Bound] = field(default_factory=list)  # allowed past these bounds by the operator's approval


async def authorize(
    tx: Tx,
    actor: Actor,
    *,
    agency: str,
    role: str | None,
    capability: str,
    amount_cents: int,
    target: str | None,
    task_id: int | str | None,
    idempotency_key: str | None,
) -> AuthorizationView:
    """Ask before acting: allowed (with a reservation), needs_approval (a decision is opened) or denied."""
    await spend_expired(tx, limit=_EXPIRE_BATCH)
    request = await _read_request(tx, agency, role, capability, amount_cents, target, task_id, idempotency_key)
    digest = decisions.request_hash(request.params())
    replay = await _replay(tx, request.idempotency_key, digest)
    if replay is not None:
        return await _authorization_view(tx, replay)
    outcome = await _judge(tx, actor, request, digest)
    row = await _record(tx, request, digest, outcome)
    if outcome.redeem and outcome.decision_id is not None:
        await decisions.redeem(tx, actor, outcome.decision_id, authorization_id=row["id"])
    await audit.append(
        tx,
        actor,
        "authority.authorize",
        ids.format_id("authorization", row["id"]),
        {
            "answer": outcome.answer,
            "capability": request.capability,
            "amount_cents": request.amount_cents,
            "target": request.target,
            "grant": _short("grant", row["grant_id"]),
            "decision": _short("decision", row["decision_id"]),
            "notify": _notifies(outcome),
            "exceeded": [bound.key for bound in outcome.exceeded],
        },
    )
    return await _authorization_view(tx, row, outcome.grant)


async def _read_request(
    tx: Tx,
    agency: str,
    role: str | None,
    capability: str,
    amount_cents: int,
    target: str | None,
    task_id: int | str | None,
    idempotency_key: str | None,
) -> _Request:
    agency_row = await agencies.resolve_agency(tx, agency, field="agency")
    role_row = await agencies.resolve_role(tx, agency_row["id"], role, field="role")
    task = await _task(tx, task_id)
    if task is not None:
        role_row = await _role_of_task(tx, task, agency_row, role_row)
    text = _optional_text(target, "target", MAX_TARGET_LENGTH)
    # One spelling of the target for the ledger row, the decision's request hash and the patterns.
    canonical = None if text is None else canonical_target(text)
    return _Request(
        agency_row,
        role_row,
        _concrete_capability(capability),
        _amount(amount_cents, "amount_cents"),
        canonical,
        None if task is None else task["id"],
        _optional_text(idempotency_key, "idempotency_key", 200),
    )


async def _role_of_task(tx: Tx, task: Row, agency: Row, role: Row | None) -> Row | None:
    """A request that names a task is judged as the task's role (and must be the task's agency's)."""
    short = ids.format_id("task", task["id"])
    if task["agency_id"] is not None and task["agency_id"] != agency["id"]:
        raise InvalidInput(
            f"task_id: {short} belongs to another agency; send that agency, or leave task_id out for other work."
        )
    if task["role_id"] is None:
        return role
    if role is not None and role["id"] != task["role_id"]:
        own = await tx.scalar("SELECT name FROM roles WHERE id = ?", (task["role_id"],))
        raise InvalidInput(
            f"role: {short} is {own}'s task, so its requests are {own}'s; send role {own!r} or leave it out."
        )
    return await tx.one("SELECT * FROM roles WHERE id = ?", (task["role_id"],))


def _concrete_capability(value: str) -> str:
    capability = value.strip().lower() if isinstance(value, str) else ""
    if not _CONCRETE_CAPABILITY.match(capability):
        raise InvalidInput(
            f"capability: {value!r} is not one concrete action kind; send a dotted name such as email.send "
            "or spend.ads (wildcards belong in grants, not in requests)."
        )
    return capability


def _amount(value: int, label: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= MAX_CENTS:
        raise InvalidInput(f"{label}: send whole cents as a non-negative integer (1250 = 12.50), not {value!r}.")
    return value


def _optional_text(value: str | None, label: str, limit: int) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str) or len(value.strip()) > limit:
        raise InvalidInput(f"{label}: send text of at most {limit} characters, or leave it out.")
    return value.strip() or None


async def _task(tx: Tx, task_id: int | str | None) -> Row | None:
    if task_id is None:
        return None
    number = ids.parse_id("task", task_id, field="task_id")
    row = await tx.one("SELECT id, agency_id, role_id FROM tasks WHERE id = ?", (number,))
    if row is None:
        raise NotFound(f"task_id: there is no task {ids.format_id('task', number)}. Call list_tasks to see open tasks.")
    return row


async def _replay(tx: Tx, key: str | None, digest: str) -> Row | None:
    """The first answer for a repeated idempotency key; a reused key with other parameters is refused."""
    if key is None:
        return None
    row = await tx.one("SELECT * FROM authorizations WHERE idempotency_key = ?", (key,))
    if row is not None and row["request_hash"] != digest:
        raise InvalidInput(
            f"idempotency_key: {key!r} was already used for a different request "
            f"({ids.format_id('authorization', row['id'])}). Send a new idempotency_key for this one."
        )
    return row


async def _judge(tx: Tx, actor: Actor, request: _Request, digest: str) -> _Outcome:
    retired = _retired(request)
    if retired is not None:
        return _Outcome("denied", retired)
    governing = await _governing_grants(tx, request)
    if not governing:
        return await _without_grant(tx, actor, request, digest)
    verdicts = [await _verdict(tx, g, request) for g in governing]
    for verdict in verdicts:
        if verdict.denial is not None:
            return _Outcome("denied", verdict.denial, verdict.grant)
    asking = [v for v in verdicts if v.asks]
    if not asking:
        return await _draw(tx, verdicts, request)
    bounds = [bound for v in asking for bound in v.asks] + await _budgets_past(tx, verdicts, request)
    approved = await _standing_approval(tx, digest)
    if approved is not None and _admits(approved, bounds):
        return await _draw(tx, verdicts, request, approved, bounds)
    return await _ask(tx, actor, request, digest, bounds, asking[0].grant, approved)


async def _standing_approval(tx: Tx, digest: str) -> Row | None:
    """The newest unused approval of exactly this request, unless the operator has said no to it since."""
    approved = await decisions.find_redeemable(tx, digest)
    if approved is None:
        return None
    denial = await decisions.standing_denial(tx, digest)
    return None if denial is not None and denial["id"] > approved["id"] else approved


# Bounds an approval made before decisions named their bounds still admits: what it was asked for then.
_LEGACY_ADMITS = ("cap:", "money:", "mode:", "grant")


def _admits(approved: Row, bounds: list[Bound]) -> bool:
    """Whether an approval admits the request past every bound it is past now (and no bound it was not shown).

    Silence never admits a budget: a timeout approves only what the grant could, and the grant's budgets
    were the operator's word, so a budget full now sends the request back to the operator.
    """
    shown = json.loads(approved["exceeds"])
    if not shown:
        return all(bound.key.startswith(_LEGACY_ADMITS) for bound in bounds)
    admitted = {bound["key"] for bound in shown}
    if approved["decided_channel"] == "system":
        admitted = {key for key in admitted if not key.startswith("budget:")}
    return all(bound.key in admitted for bound in bounds)


async def _ask(
    tx: Tx, actor: Actor, request: _Request, digest: str, bounds: list[Bound], grant: Row | None, approved: Row | None
) -> _Outcome:
    """Go to the operator, unless they already said no to exactly this: then the "no" is the answer."""
    denial = await decisions.standing_denial(tx, digest)
    if denial is not None:
        return _Outcome("denied", decisions.denial_reason(denial), grant, denial["id"])
    outcome = await _escalate(tx, actor, request, digest, bounds, grant)
    if approved is not None:
        outcome.reason += (
            f" ({ids.format_id('decision', approved['id'])} approved it past fewer bounds than it is past now, "
            "so the operator is asked again.)"
        )
    return outcome


def _retired(request: _Request) -> str | None:
    """A retired agency or role gets nothing allowed, nor does a paused agency (saying who may resume it)."""
    if request.agency["status"] != "active":
        return f"{request.agency['name']} is retired, so nothing is allowed for it. Ask the operator to reactivate it."
    paused = agencies.paused_reason(request.agency, "allowed")
    if paused is not None:
        return paused
    if request.role is not None and request.role["status"] != "active":
        return f"The role {request.role['name']} is retired, so nothing is allowed for it. Work as an active role."
    return None


@dataclass
class _Verdict:
    """One grant's reading of a request: a denial, the bounds that send it to the operator, or neither."""

    grant: Row
    budgets: list[Row]
    denial: str | None
    asks: list[Bound]


async def _verdict(tx: Tx, grant: Row, request: _Request) -> _Verdict:
    short = ids.format_id("grant", grant["id"])
    budgets = await budget_rows(tx, grant["id"])
    denial = _scope_refusal(grant, short, request.target, tx.now_text)
    if denial is not None and grant["expires_at"] is not None and grant["expires_at"] <= tx.now_text:
        denial += (
            f" Until then requests it covered stay with it (the operator can run `{hand_over_command(short)}`, "
            "or press Hand over on the console's Authority page)."
        )
    asks = [] if denial is not None else _grant_bounds(grant, short, budgets, request.amount_cents)
    return _Verdict(grant, budgets, denial, asks)


def _grant_bounds(grant: Row, short: str, budgets: list[Row], amount: int) -> list[Bound]:
    """Every bound of the grant itself (not its budgets) that sends this request to the operator."""
    bounds = []
    if grant["status"] == "revoked":
        # A revoked grant still governs its space as if its mode were `approve`: its own scope and budgets
        # still bind, and every request there goes to the operator, so revoking only ever narrows.
        bounds.append(
            Bound(
                f"revoked:{short}",
                f"{short} covered this and was revoked, so requests it covered go to the operator until they "
                f"grant it anew or hand its space over (`{hand_over_command(short)}`, or Hand over on the "
                "console's Authority page).",
            )
        )
    over = _above_one_action(grant, short, budgets, amount)
    if over is not None:
        bounds.append(Bound(f"{'cap' if grant['per_action_cap_cents'] is not None else 'money'}:{short}", over))
    if grant["mode"] == "approve" and grant["status"] != "revoked":
        bounds.append(Bound(f"mode:{short}", f"{short} asks the operator first for every {grant['capability']}."))
    return bounds


async def _budgets_past(tx: Tx, verdicts: list[_Verdict], request: _Request) -> list[Bound]:
    """The budgets that have no room for the request now, each in words (its draw is tried, then undone)."""
    timezone = (await workspace.get(tx)).timezone
    past = []
    await tx.run("SAVEPOINT budgets_past")
    try:
        for verdict in verdicts:
            short = ids.format_id("grant", verdict.grant["id"])
            for budget in verdict.budgets:
                key = period_key(budget["period"], tx.now, timezone)
                if not await _draw_one(tx, budget, {str(budget["id"]): key}, request.amount_cents):
                    words = await _exhausted(tx, short, request, budget, key, timezone)
                    for dimension in await _full_dimensions(tx, budget, key, request.amount_cents):
                        past.append(Bound(f"budget:{budget['id']}@{key}:{dimension}", words))
    finally:
        await tx.run("ROLLBACK TO budgets_past")
        await tx.run("RELEASE budgets_past")
    return past


def _covering_capabilities(capability: str) -> list[str]:
    """The grant capabilities that cover a request: itself, then each wildcard parent (spend.*)."""
    parts = capability.split(".")
    return [capability, *(".".join(parts[:i]) + ".*" for i in range(len(parts) - 1, 0, -1))]


async def _governing_grants(tx: Tx, request: _Request) -> list[Row]:
    """The grant that governs the request first, then the active verified grants that also bind it.

    The governing grant is the most specific covering grant that has not handed its space over:
    role-specific over agency-wide, exact over wildcard, then newest. A revoked or expired grant
    still governs, so stopping a narrow grant never lets a broader one take over. When the governing
    grant was made in chat, each verified grant covering the request that has not handed its space
    over applies as well (a revoked one as if in approve mode, an ended one refusing), so a chat grant
    cannot override the operator's denies, mode or bounds, nor take over what they held.
    """
    covering = _covering_capabilities(request.capability)
    marks = ", ".join("?" * len(covering))
    covers = (
        f"FROM grants WHERE capability IN ({marks}) AND agency_id = ? AND (role_id IS NULL OR role_id = ?) "
        "AND handed_over_at IS NULL"
    )
    params = (*covering, request.agency["id"], request.role["id"] if request.role else None)
    order = "ORDER BY role_id IS NULL, length(capability) DESC, id DESC"
    governing = await tx.one(f"SELECT * {covers} {order} LIMIT 1", params)
    if governing is None or governing["origin_channel"] != "chat":
        return [] if governing is None else [governing]
    # Every verified grant that still governs binds too, revoked or ended ones included: otherwise revoking
    # the operator's grant, or outliving it, would free a chat grant from its denies, mode and bounds.
    verified = await tx.all(f"SELECT * {covers} AND origin_channel = 'verified' {order}", params)
    return [governing, *verified]


async def _without_grant(tx: Tx, actor: Actor, request: _Request, digest: str) -> _Outcome:
    """Default deny: escalate, unless the operator already approved this exact request as a one-off."""
    await _refuse_near_miss(tx, request)
    approved = await decisions.find_redeemable(tx, digest)
    bounds = [Bound("grant", f"No grant lets {_who(request)} do {request.capability}.")]
    if approved is not None:
        reason = (
            f"No grant covers {request.capability}, but the operator approved this exact request in "
            f"{ids.format_id('decision', approved['id'])} (one use), as an operator exception. "
            "Settle or release it when done."
        )
        return _Outcome("allowed", reason, None, approved["id"], redeem=True, exceeded=bounds)
    return await _ask(tx, actor, request, digest, bounds, None, None)


def _who(request: _Request) -> str:
    return str(request.agency["name"]) + (f" ({request.role['name']})" if request.role else "")


async def _refuse_near_miss(tx: Tx, request: _Request) -> None:
    """A capability no grant covers but one edit away from one that does is a typo, not a new kind of action."""
    rows = await tx.all(
        "SELECT DISTINCT capability FROM grants WHERE agency_id = :agency AND status = 'active' "
        "AND (:role IS NULL OR role_id IS NULL OR role_id = :role) AND capability NOT LIKE '%*'",
        {"agency": request.agency["id"], "role": request.role["id"] if request.role else None},
    )
    near = sorted(row["capability"] for row in rows if _one_edit_apart(request.capability, row["capability"]))
    if near:
        raise InvalidInput(
            f"capability: no grant covers {request.capability!r}; did you mean {' or '.join(near)}? "
            "Nothing was asked or reserved. Send the capability as the grant spells it; if you truly mean a new "
            "kind of action, ask the operator with request_decision."
        )


def _one_edit_apart(asked: str, granted: str) -> bool:
    """One insertion, deletion, substitution or swap of neighbours turns `asked` into `granted`.

    Only exact grants are compared: next to a wildcard (spend.*) too many new kinds of action are one
    edit away (send.email), and those must reach the operator as a question, not bounce as a typo.
    """
    return asked != granted and _one_edit(asked, granted)


def _one_edit(a: str, b: str) -> bool:
    if abs(len(a) - len(b)) > 1:
        return False
    if len(a) == len(b):
        diff = [i for i, (x, y) in enumerate(zip(a, b, strict=True)) if x != y]
        swapped = len(diff) == 2 and diff[1] == diff[0] + 1 and a[diff[0]] == b[diff[1]] and a[diff[1]] == b[diff[0]]
        return len(diff) == 1 or swapped
    short, long = (a, b) if len(a) < len(b) else (b, a)
    return any(long[:i] + long[i + 1 :] == short for i in range(len(long)))


def _scope_refusal(grant: Row, short: str, target: str | None, now_text: str) -> str | None:
    """Expiry, then a missing target (a grant with patterns needs one), then deny patterns (deny wins), then allow."""
    if grant["expires_at"] is not None and grant["expires_at"] <= now_text:
        return f"{short} expired at {grant['expires_at']}; it allows nothing. Ask the operator to renew it."
    allow, deny = json.loads(grant["scope_allow"]), json.loads(grant["scope_deny"])
    if target is None:
        if allow:
            return f"{short} allows only listed targets ({', '.join(allow)}); send the target you will act on."
        if deny:
            # Leaving the target out must not step around a deny pattern.
            return (
                f"{short} never allows targets matching {', '.join(deny)}, so it needs to see the target; "
                "send the target you will act on."
            )
        return None
    for pattern in deny:
        if target_matches(pattern, target):
            return f"{short} never allows targets matching {pattern!r}; this target is out of bounds."
    if allow and not any(target_matches(p, target) for p in allow):
        return f"{short} allows only targets matching {', '.join(allow)}; this target is not one of them."
    return None


def _above_one_action(grant: Row, short: str, budgets: list[Row], amount: int) -> str | None:
    """Why one action of `amount` is more than the grant lets through on its own; None when it is not."""
    cap = grant["per_action_cap_cents"]
    if cap is not None and amount > cap:
        return f"{money(amount)} is above {short}'s per-action cap of {money(cap)}."
    if cap is None and amount > 0 and all(b["max_cents"] is None for b in budgets):
        return f"{short} sets no money limit, so it allows amount 0 only; {money(amount)} needs the operator."
    return None


async def _escalate(
    tx: Tx, actor: Actor, request: _Request, digest: str, bounds: list[Bound], grant: Row | None
) -> _Outcome:
    title = f"{request.agency['name']} asks to {request.capability}"
    if request.amount_cents:
        title += f" for {money(request.amount_cents)}"
    why = " ".join(bound.text for bound in bounds)
    view = await decisions.open_decision(
        tx,
        actor,
        kind="escalation",
        title=title,
        details=why,
        request=request.params(),
        agency_id=request.agency["id"],
        role_id=request.role["id"] if request.role else None,
        amount_cents=request.amount_cents,
        grant_id=grant["id"] if grant else None,
        timeout_policy=grant["on_timeout"] if grant else "deny",
        exceeds=bounds,
    )
    decision_id = ids.parse_id("decision", view.id, field="decision")
    short = ids.format_id("decision", decision_id)
    reason = f"{why} Asked the operator in {short}."
    if request.task_id is not None and await inbox.wait_on_decision(
        tx, actor, request.task_id, decision_id, agency_id=request.agency["id"]
    ):
        reason += f" {ids.format_id('task', request.task_id)} waits on it; claim other work meanwhile."
    reason += (
        " Once it is approved, call authorize again with the same parameters (the decision's redeem_with) "
        "and a new idempotency_key."
    )
    cancelled = await decisions.last_cancelled(tx, digest)
    if cancelled is not None:
        reason += f" (An earlier ask, {ids.format_id('decision', cancelled['id'])}, was closed: {cancelled['note']})"
    elsewhere = await decisions.approved_elsewhere(tx, request.agency["id"], request.capability, digest)
    if elsewhere is not None:
        reason += (
            f" Note: {ids.format_id('decision', elsewhere['id'])} is an unused approval for {request.capability} "
            "with other parameters; if you meant that one, resend its redeem_with exactly (list_decisions "
            "status=approved shows it)."
        )
    return _Outcome("needs_approval", reason, grant, decision_id, why=why)


async def _draw(
    tx: Tx, verdicts: list[_Verdict], request: _Request, approved: Row | None = None, bounds: Sequence[Bound] = ()
) -> _Outcome:
    """Draw the request from the budgets of every grant that binds it, all or none.

    With an approval, the budgets it admitted the request past are drawn even when full (an operator
    exception, recorded on the ledger row); every other budget must still have room.
    """
    timezone = (await workspace.get(tx)).timezone
    budgets = [b for verdict in verdicts for b in verdict.budgets]
    keys = {str(b["id"]): period_key(b["period"], tx.now, timezone) for b in budgets}
    grant = next((v.grant for v in verdicts if v.grant["mode"] == "notify"), verdicts[0].grant)
    forced = _forced(bounds, keys)
    failed = await _draw_budgets(tx, budgets, keys, request.amount_cents, forced)
    if failed is not None:
        cited = next(v.grant for v in verdicts if v.grant["id"] == failed["grant_id"])
        short = ids.format_id("grant", cited["id"])
        reason = await _exhausted(tx, short, request, failed, keys[str(failed["id"])], timezone)
        return _Outcome("denied", reason, cited, period_keys=keys)
    names = " and ".join(ids.format_id("grant", v.grant["id"]) for v in verdicts)
    reason = f"Allowed by {names}; {money(request.amount_cents)} reserved. Settle with the actual amount or release."
    if approved is not None:
        reason = (
            f"Allowed by {names} with the operator's approval in {ids.format_id('decision', approved['id'])} "
            f"(one use), past: {' '.join(bound.text for bound in bounds)} {money(request.amount_cents)} reserved "
            "as an operator exception. Settle with the actual amount or release."
        )
    if grant["mode"] == "notify":
        reason += " The operator will be told."
    return _Outcome(
        "allowed",
        reason,
        grant,
        approved["id"] if approved else None,
        redeem=approved is not None,
        period_keys=keys,
        exceeded=list(bounds) if approved is not None else [],
    )


def _forced(bounds: Sequence[Bound], keys: dict[str, str]) -> dict[int, set[str]]:
    """The budget limits an approval admits this request past, per budget: only in the period it was shown."""
    forced: dict[int, set[str]] = {}
    for bound in bounds:
        if not bound.key.startswith("budget:"):
            continue
        budget, _, rest = bound.key.removeprefix("budget:").partition("@")
        period, _, dimension = rest.partition(":")
        if keys.get(budget) == period:
            forced.setdefault(int(budget), set()).add(dimension)
    return forced


# One conditional upsert draws one budget: the period's first draw inserts the usage row (when the
# draw fits in an empty period), later ones update it only while it fits. No row back means refused,
# and a refused draw changed nothing.
_DRAW_SQL = (
    "INSERT INTO budget_usage (budget_id, period_key, used_count, used_cents) "
    "SELECT :b, :p, 1, :amt WHERE ((:max_count IS NULL OR 1 <= :max_count) "
    "AND (:max_cents IS NULL OR :amt <= :max_cents)) "
    "OR EXISTS (SELECT 1 FROM budget_usage WHERE budget_id = :b AND period_key = :p) "
    "ON CONFLICT (budget_id, period_key) DO UPDATE SET used_count = used_count + 1, "
    "used_cents = used_cents + :amt "
    "WHERE (:max_count IS NULL OR used_count + 1 <= :max_count) "
    "AND (:max_cents IS NULL OR used_cents + :amt <= :max_cents) "
    "RETURNING used_count, used_cents"
)


async def _draw_budgets(
    tx: Tx, budgets: list[Row], keys: dict[str, str], amount: int, forced: Mapping[int, set[str]] | None = None
) -> Row | None:
    """Draw from every budget atomically, or from none; returns the budget that refused, if any.

    A limit in `forced` ("count", "cents" per budget) is drawn past: the operator admitted this one request.
    """
    forced = forced or {}
    if len(budgets) == 1:  # one statement is atomic on its own
        past = forced.get(budgets[0]["id"], set())
        return None if await _draw_one(tx, budgets[0], keys, amount, past) else budgets[0]
    if not budgets:
        return None
    await tx.run("SAVEPOINT authorize_budgets")
    refused = None
    for budget in budgets:
        if not await _draw_one(tx, budget, keys, amount, forced.get(budget["id"], set())):
            refused = budget
            await tx.run("ROLLBACK TO authorize_budgets")
            break
    await tx.run("RELEASE authorize_budgets")
    return refused


async def _draw_one(tx: Tx, budget: Row, keys: dict[str, str], amount: int, past: Collection[str] = ()) -> bool:
    drawn = await tx.one(
        _DRAW_SQL,
        {
            "amt": amount,
            "b": budget["id"],
            "p": keys[str(budget["id"])],
            "max_count": None if "count" in past else budget["max_count"],
            "max_cents": None if "cents" in past else budget["max_cents"],
        },
    )
    return drawn is not None


async def _full_dimensions(tx: Tx, budget: Row, key: str, amount: int) -> list[str]:
    """Which of a budget's limits has no room for one more action of `amount` in period `key`: count, cents."""
    used_count, used_cents = await budget_usage(tx, budget["id"], key)
    full = []
    if budget["max_count"] is not None and used_count + 1 > budget["max_count"]:
        full.append("count")
    if budget["max_cents"] is not None and used_cents + amount > budget["max_cents"]:
        full.append("cents")
    return full


async def _exhausted(tx: Tx, short: str, request: _Request, budget: Row, key: str, timezone: str) -> str:
    used_count, used_cents = await budget_usage(tx, budget["id"], key)
    period, when = budget["period"], _PERIOD_NOW[budget["period"]]
    if budget["max_count"] is not None and used_count + 1 > budget["max_count"]:
        return (
            f"{short} allows {budget['max_count']} {request.capability} per {period}; "
            f"{used_count} used {when} ({timezone})."
        )
    return (
        f"{short} allows {money(budget['max_cents'])} of {request.capability} per {period}; "
        f"{money(used_cents)} used {when} ({timezone}), {money(request.amount_cents)} asked."
    )


def _notifies(outcome: _Outcome) -> bool:
    return outcome.answer == "allowed" and outcome.grant is not None and outcome.grant["mode"] == "notify"


async def _record(tx: Tx, request: _Request, digest: str, outcome: _Outcome) -> Row:
    """Append the ledger row and return it; an allowed answer holds its reservation for RESERVATION_TTL."""
    held = outcome.answer == "allowed"
    grant = outcome.grant
    row = await tx.one(
        "INSERT INTO authorizations (agency_id, role_id, capability, amount_cents, target, task_id, "
        "idempotency_key, request_hash, answer, reason, grant_id, grant_version, decision_id, status, "
        "period_keys, expires_at, created_at, exceeded) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) "
        "RETURNING *",
        (
            request.agency["id"],
            request.role["id"] if request.role else None,
            request.capability,
            request.amount_cents,
            request.target,
            request.task_id,
            request.idempotency_key,
            digest,
            outcome.answer,
            outcome.reason,
            grant["id"] if grant else None,
            grant["version"] if grant else None,
            outcome.decision_id,
            "held" if held else "none",
            json.dumps(outcome.period_keys),
            format_ts(tx.now + RESERVATION_TTL) if held else None,
            tx.now_text,
            json.dumps([bound.text for bound in outcome.exceeded], ensure_ascii=False) if outcome.exceeded else None,
        ),
    )
    assert row is not None  # an INSERT … RETURNING returns the row it inserted
    return row


# --- check: "can I?" -----------------------------------------------------------------------------


async def check(
    tx: Tx,
    actor: Actor,
    *,
    agency: str,
    role: str | None,
    capability: str,
    amount_cents: int,
    target: str | None,
    task_id: int | str | None,
) -> CheckView:
    """The answer authorize would give now, with nothing reserved, opened or written.

    Needs a write transaction (its steps write, then are undone before it returns).
    """
    # One source of truth: authorize's own steps (the expiry sweep, _judge with its conditional
    # budget UPDATEs and the decision it would open) run inside a savepoint that is rolled back.
    # A read-only twin would re-implement the budget arithmetic and the sweep, and could drift.
    await tx.run("SAVEPOINT authority_check")
    try:
        await spend_expired(tx, limit=_EXPIRE_BATCH)
        request = await _read_request(tx, agency, role, capability, amount_cents, target, task_id, None)
        outcome = await _judge(tx, actor, request, decisions.request_hash(request.params()))
        grant_id = outcome.grant["id"] if outcome.grant else None
        left = await _left(tx, grant_id, outcome.period_keys)
    finally:
        await tx.run("ROLLBACK TO authority_check")
        await tx.run("RELEASE authority_check")
    # A decision authorize would open is gone with the savepoint; a pending one it would reuse is not.
    opens = (
        outcome.answer == "needs_approval"
        and await tx.one("SELECT 1 FROM decisions WHERE id = ?", (outcome.decision_id,)) is None
    )
    return CheckView(
        answer=outcome.answer,
        reason=_check_reason(outcome, request, opens),
        grant_id=_short("grant", grant_id),
        budgets_left=left,
        would_open_decision=opens,
    )


def _check_reason(outcome: _Outcome, request: _Request, opens: bool) -> str:
    """authorize's reason, told as what authorize would do rather than what it did."""
    if outcome.answer == "denied":
        return outcome.reason
    if outcome.answer == "needs_approval":
        if opens:
            return f"{outcome.why} authorize would ask the operator in a new decision."
        return f"{outcome.why} The operator is already asked in {_short('decision', outcome.decision_id)}."
    reason = "Allowed" + (f" by {_short('grant', outcome.grant['id'])}" if outcome.grant else "")
    if outcome.decision_id is not None:
        reason += f" with the operator's one-use approval in {_short('decision', outcome.decision_id)}"
    reason += f"; authorize would reserve {money(request.amount_cents)}."
    return reason + (" The operator will be told." if _notifies(outcome) else "")


# --- settle, release, expire --------------------------------------------------------------------


async def settle(tx: Tx, actor: Actor, authorization: str, *, actual_cents: int) -> AuthorizationView:
    """Close a held reservation at the actual amount (at most the reserved amount); the rest returns."""
    actual = _amount(actual_cents, "actual_cents")
    await spend_expired(tx, limit=_EXPIRE_BATCH)
    done = await _already(tx, authorization, "settled", actual)
    if done is not None:
        return await _authorization_view(tx, done)
    row = await _held(tx, authorization, "settle")
    short = ids.format_id("authorization", row["id"])
    if actual > row["amount_cents"]:
        raise InvalidInput(
            f"actual_cents: {money(actual)} is more than the {money(row['amount_cents'])} reserved on {short}. "
            "Settle at most the reserved amount and call authorize for the rest."
        )
    await _give_back(tx, row, cents=row["amount_cents"] - actual, count=0)
    await _close(tx, row["id"], "settled", actual)
    await audit.append(
        tx, actor, "authority.settle", short, {"actual_cents": actual, "reserved_cents": row["amount_cents"]}
    )
    return await _authorization_view(tx, await _authorization_row(tx, row["id"]))


async def release(tx: Tx, actor: Actor, authorization: str) -> AuthorizationView:
    """Give a held reservation back whole: the action did not happen."""
    await spend_expired(tx, limit=_EXPIRE_BATCH)
    done = await _already(tx, authorization, "released", None)
    if done is not None:
        return await _authorization_view(tx, done)
    row = await _held(tx, authorization, "release")
    await _give_back(tx, row, cents=row["amount_cents"], count=1)
    await _close(tx, row["id"], "released", None)
    short = ids.format_id("authorization", row["id"])
    await audit.append(tx, actor, "authority.release", short, {"reserved_cents": row["amount_cents"]})
    return await _authorization_view(tx, await _authorization_row(tx, row["id"]))


# True when spend_expired has work: an indexed probe a caller can fold into one statement with others.
EXPIRED_EXISTS = "EXISTS (SELECT 1 FROM authorizations WHERE status = 'held' AND expires_at <= :now)"


async def spend_expired(tx: Tx, *, limit: int | None = None) -> int:
    """Held reservations past their expiry are spent in full (status 'expired'); returns how many.

    Nothing returns to the budget: the agency may have acted and never settled, and a refund would
    let a budget be overspent by never settling (Trust, property 4). Only `release` gives money back.
    The review reports them as an anomaly.
    """
    rows = await tx.all(
        "SELECT * FROM authorizations WHERE status = 'held' AND expires_at <= ? ORDER BY expires_at LIMIT ?",
        (tx.now_text, -1 if limit is None else limit),
    )
    for row in rows:
        await _close(tx, row["id"], "expired", row["amount_cents"])
        await audit.append(
            tx,
            SYSTEM,
            "authority.expire",
            ids.format_id("authorization", row["id"]),
            {"reserved_cents": row["amount_cents"], "spent_cents": row["amount_cents"]},
        )
    return len(rows)


async def expire_decisions(tx: Tx) -> int:
    """Close decisions past their expiry, and cancel pending ones whose grant has reached its end date.

    Silence approves only what the grant could (Trust, property 3): see `_timeout_refusal`.
    """
    stopped = await tx.all(
        "SELECT DISTINCT g.id FROM decisions AS d JOIN grants AS g ON g.id = d.grant_id "
        "WHERE d.status = 'pending' AND g.status = 'active' AND g.expires_at <= ?",
        (tx.now_text,),
    )
    for grant in stopped:
        await decisions.cancel_pending_of_grant(tx, grant["id"], f"{ids.format_id('grant', grant['id'])} expired")
    return await decisions.expire_due(tx, judge=_timeout_refusal)


async def _timeout_refusal(tx: Tx, decision: Row) -> str | None:
    """Why silence may not approve this decision, reading its grant as it is now; None when it may."""
    if decision["grant_id"] is None:
        return "no grant covers it, and only the operator can approve what no grant covers."
    grant = await grant_row(tx, decision["grant_id"])
    short = ids.format_id("grant", grant["id"])
    if grant["status"] != "active":
        return f"{short} was revoked."
    if grant["on_timeout"] != "approve":
        return f"{short} no longer lets an unanswered decision go ahead."
    request = json.loads(decision["request"])
    refusal = _scope_refusal(grant, short, request.get("target"), tx.now_text)
    if refusal is not None:
        return refusal
    budgets = await budget_rows(tx, grant["id"])
    amount = int(decision["amount_cents"] or 0)
    over = _above_one_action(grant, short, budgets, amount)
    if over is not None:
        return over
    # Authorize's own conditional draw, undone at once: a second copy of the budget arithmetic could drift.
    # Budgets are read in the periods of the moment it timed out, not of whenever the sweep happens to run,
    # so waiting for a fresh month cannot make room.
    timezone = (await workspace.get(tx)).timezone
    timed_out = parse_ts(decision["expires_at"])
    keys = {str(b["id"]): period_key(b["period"], timed_out, timezone) for b in budgets}
    await tx.run("SAVEPOINT silence_check")
    try:
        full = await _draw_budgets(tx, budgets, keys, amount)
    finally:
        await tx.run("ROLLBACK TO silence_check")
        await tx.run("RELEASE silence_check")
    return None if full is None else f"{short}'s {full['period']} budget has no room for it."


async def _already(tx: Tx, ref: str, status: str, settled_cents: int | None) -> Row | None:
    """The row when this exact settle or release was already done: a retry gets the same answer, writes nothing."""
    row = await _authorization_row(tx, ids.parse_id("authorization", ref, field="authorization_id"))
    if row["status"] == status and row["settled_cents"] == settled_cents:
        return row
    return None


async def _held(tx: Tx, ref: str, verb: str) -> Row:
    row = await _authorization_row(tx, ids.parse_id("authorization", ref, field="authorization_id"))
    if row["status"] == "held" and row["expires_at"] <= tx.now_text:
        # Ran out, not yet swept (the sweep works in batches): it is spent in full all the same.
        short = ids.format_id("authorization", row["id"])
        raise Conflict(
            f"authorization_id: {short}'s hold ran out at {row['expires_at']}, so it counts as spent in full and "
            "can no longer be settled or released. Call authorize for a new one if you still act."
        )
    if row["status"] != "held":
        short = ids.format_id("authorization", row["id"])
        raise Conflict(
            f"authorization_id: {short} is {row['status']}, so there is nothing to {verb}; only held "
            "reservations can be settled or released. Call authorize for a new one if you still act."
        )
    return row


async def _give_back(tx: Tx, row: Row, *, cents: int, count: int) -> None:
    """Return amount (and count) to the very periods the reservation was drawn from."""
    for budget_id, key in json.loads(row["period_keys"]).items():
        await tx.run(
            "UPDATE budget_usage SET used_count = max(used_count - ?, 0), used_cents = max(used_cents - ?, 0) "
            "WHERE budget_id = ? AND period_key = ?",
            (count, cents, int(budget_id), key),
        )


async def _close(tx: Tx, authorization_id: int, status: str, settled_cents: int | None) -> None:
    await tx.run(
        "UPDATE authorizations SET status = ?, settled_cents = ?, closed_at = ? WHERE id = ? AND status = 'held'",
        (status, settled_cents, tx.now_text, authorization_id),
    )


async def _authorization_row(tx: Tx, authorization_id: int) -> Row:
    row = await tx.one("SELECT * FROM authorizations WHERE id = ?", (authorization_id,))
    if row is None:
        short = ids.format_id("authorization", authorization_id)
        raise NotFound(f"authorization_id: there is no authorization {short}; send the id that authorize returned.")
    return row


def _short(kind: str, number: int | None) -> str | None:
    return None if number is None else ids.format_id(kind, number)


async def _authorization_view(tx: Tx, row: Row, grant: Row | None = None) -> AuthorizationView:
    """The view of a ledger row; `grant` is its grant's row when the caller has it already."""
    if grant is None and row["grant_id"] is not None:
        grant = await grant_row(tx, row["grant_id"])
    return AuthorizationView(
        authorization_id=ids.format_id("authorization", row["id"]),
        answer=row["answer"],
        reason=row["reason"],
        capability=row["capability"],
        amount_cents=row["amount_cents"],
        target=row["target"],
        grant_id=_short("grant", row["grant_id"]),
        decision_id=_short("decision", row["decision_id"]),
        notify=row["answer"] == "allowed" and grant is not None and grant["mode"] == "notify",
        status=row["status"],
        expires_at=row["expires_at"],
        budgets_left=await _budgets_left(tx, row),
    )


async def _budgets_left(tx: Tx, row: Row) -> list[str]:
    return await _left(tx, row["grant_id"], json.loads(row["period_keys"]))


async def _left(tx: Tx, grant_id: int | None, keys: dict[str, str]) -> list[str]:
    if grant_id is None or not keys:
        return []
    # The grant's budgets that the keys name, each with its usage in its key's period, in one statement.
    numbers = [int(budget_id) for budget_id in keys]
    period_of = " ".join("WHEN ? THEN ?" for _ in numbers)
    rows = await tx.all(
        "SELECT b.id, b.period, b.max_count, b.max_cents, coalesce(u.used_count, 0) AS used_count, "
        "coalesce(u.used_cents, 0) AS used_cents FROM grant_budgets AS b LEFT JOIN budget_usage AS u "
        f"ON u.budget_id = b.id AND u.period_key = CASE b.id {period_of} END "
        f"WHERE b.grant_id = ? AND b.id IN ({', '.join('?' * len(numbers))}) ORDER BY b.id",
        (*(value for number in numbers for value in (number, keys[str(number)])), grant_id, *numbers),
    )
    left = []
    for budget in rows:
        used_count, used_cents = budget["used_count"], budget["used_cents"]
        if budget["max_count"] is not None:
            left.append(f"{budget['period']}: {max(budget['max_count'] - used_count, 0)} of {budget['max_count']} left")
        if budget["max_cents"] is not None:
            left.append(
                f"{budget['period']}: {money(max(budget['max_cents'] - used_cents, 0))} of "
                f"{money(budget['max_cents'])} left"
            )
    return left
