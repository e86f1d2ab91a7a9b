"""Grants: authority given to an agency (or one role) over one capability, with its bounds.

A grant carries a per-action cap, per-period budgets (calendar day, ISO week or
month in the workspace timezone), allow and deny patterns for targets, an expiry,
a mode and the goal it serves. Creating one is an operator act; revoking one only
narrows authority, so anyone may. Changing one (`update_grant`, `restore_version`)
is classified by `widens`: a change that only narrows is open to any actor, one
that widens in any way is an operator act (in chat, only a raised money bound,
drawn from the chat allowance). Every change is kept in grant_versions.

A grant that stops (revoked, or past its end date) keeps governing the space it
covered: a broader grant does not take over until the operator hands the space
over on a verified channel (`revoke --hand-over`, or Hand over in the console).
Otherwise revoking or expiring a narrow grant would let a broad one allow what the
narrow one held back, and the agency could widen its own authority by revoking
(Trust, property 1). The ledger that draws on grants lives in `ledger`.
"""

from __future__ import annotations

import enum
import json
import re
import shlex
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit

from pydantic import AfterValidator, Field, ValidationError, model_validator

from chief_of_staff.core import audit, ids
from chief_of_staff.core.audit import Actor
from chief_of_staff.core.clock import format_ts, local_date, local_midnight_utc, parse_ts
from chief_of_staff.core.db import Row, Tx
from chief_of_staff.core.errors import Conflict, InvalidInput, NotFound, OperatorActRefused
from chief_of_staff.core.fields import Capability, Cents, LocalDate, Model, Text, money
from chief_of_staff.domain import agencies, decisions, goals, outbox, trust, workspace
from chief_of_staff.domain.authority.targets import canonical_pattern, canonical_target
from chief_of_staff.domain.authority.terms import (
    MODE_HELP,
    BudgetSpec,
    GrantTerms,
    Mode,
    OnTimeout,
    Patterns,
    Period,
    authority_widening,
    money_exposure,
    one_per_period,
    update_command,
    widens,
)

_MODE_WORDS = {
    "auto": "on its own",
    "notify": "on its own, telling you",
    "approve": "asking you first each time",
}

GrantStatus = Literal["active", "revoked", "expired"]


def _check_wildcard(value: str) -> str:
    if "*" in value and not (value.endswith(".*") and value.count("*") == 1):
        raise ValueError("a wildcard grant ends in .* (spend.* covers spend.ads); no '*' anywhere else")
    return value


GrantCapability = Annotated[Capability, AfterValidator(_check_wildcard)]


class GrantSpec(Model):
    """Authority for one agency (or one role in it) over one capability, with its bounds."""

    agency: str = Field(description="Name or id")
    role: str | None = Field(None, description="Only this role")
    capability: GrantCapability = Field(description="Dotted action kind, e.g. email.send or spend.*")
    mode: Mode = Field("auto", description=MODE_HELP)
    per_action_cap_cents: Cents | None = None
    budgets: Annotated[list[BudgetSpec], Field(max_length=3)] = Field(default_factory=list, description="Per period")
    scope_allow: Patterns = Field(default_factory=list, description="Target globs it may touch")
    scope_deny: Patterns = Field(default_factory=list, description="Target globs it never may (wins)")
    expires_on: LocalDate | None = Field(None, description="Last local day")
    goal: str | None = Field(None, description='The goal it serves, e.g. "G1"')
    rationale: Text = Field("", description="Why, for the record")
    on_timeout: OnTimeout = Field(
        default="deny", description="What an unanswered decision under this grant becomes when it expires"
    )

    @model_validator(mode="after")
    def _one_budget_per_period(self) -> GrantSpec:
        one_per_period(self.budgets)
        return self


class BudgetView(Model):
    period: Period
    max_count: int | None
    max_cents: int | None
    used_count: int
    used_cents: int
    period_key: str


class GrantView(Model):
    id: str
    agency: str
    role: str | None
    capability: str
    mode: str
    per_action_cap_cents: int | None
    budgets: list[BudgetView]
    scope_allow: list[str]
    scope_deny: list[str]
    expires_on: str | None
    goal: str | None
    rationale: str
    on_timeout: str
    status: GrantStatus
    version: int


# --- pure helpers -------------------------------------------------------------------------------


def target_matches(pattern: str, target: str) -> bool:
    """Does a scope pattern cover a target?

    Both are read in their canonical spelling first (`targets`), so case, fullwidth letters,
    trailing dots, IDNA and display names make no difference. Globs (* and ?) match the whole
    target. An email or URL also matches by its host, and a plain domain covers its subdomains:
    "acme.com" covers "jane@acme.com" and "mail.acme.com". A target with no canonical spelling
    (several recipients, invisible characters) raises InvalidInput rather than match nothing.
    """
    glob = canonical_pattern(pattern)
    if not glob or not target.strip():
        return False
    regex = re.compile(re.escape(glob).replace(r"\*", ".*").replace(r"\?", "."))
    return any(regex.fullmatch(candidate) for candidate in _match_candidates(canonical_target(target)))


def _match_candidates(target: str) -> list[str]:
    """The target itself, then its host and every parent domain of the host.

    The host of a URL, of an email address, or of a URL without its scheme (a canonical target
    whose part before the first /, ? or # holds a dot: acme.com/pricing).
    """
    host = target
    if "://" in target:
        host = urlsplit(target).hostname or target
    elif "@" in target:
        host = target.rpartition("@")[2]
    elif "." in (head := re.split(r"[/?#]", target, maxsplit=1)[0]):
        host = head
    labels = host.split(".")
    return [target, *(".".join(labels[i:]) for i in range(len(labels)) if all(labels[i:]))]


def period_key(period: str, instant: datetime, timezone: str) -> str:
    """The calendar period holding `instant` in the workspace timezone: 2026-11-23, 2026-W48, 2026-11."""
    day = local_date(instant, timezone)
    if period == "day":
        return day.isoformat()
    if period == "week":
        year, week, _ = day.isocalendar()
        return f"{year}-W{week:02d}"
    return f"{day.year}-{day.month:02d}"


def _plain(text: str) -> str:
    """Outside text for the letter: one line, and no backtick to break out of a code span."""
    return " ".join(text.replace("`", "'").split())


# --- rows shared with the ledger ----------------------------------------------------------------


# A grant with the display names its view shows, in the one statement that reads it.
_VIEW_SELECT = (
    "SELECT g.*, a.name AS agency_name, r.name AS role_name FROM grants AS g "
    "LEFT JOIN agencies AS a ON a.id = g.agency_id LEFT JOIN roles AS r ON r.id = g.role_id "
)


async def grant_row(tx: Tx, grant_id: int) -> Row:
    """The grants row, or NotFound naming the id."""
    row = await tx.one("SELECT * FROM grants WHERE id = ?", (grant_id,))
    if row is None:
        short = ids.format_id("grant", grant_id)
        raise NotFound(f"grant: there is no grant {short}. Call list_grants to see grants.")
    return row


async def budget_rows(tx: Tx, grant_id: int) -> list[Row]:
    """A grant's budgets (at most three), through the (grant_id, period) unique index."""
    return await tx.all("SELECT * FROM grant_budgets WHERE grant_id = ? ORDER BY id", (grant_id,))


async def budget_usage(tx: Tx, budget_id: int, key: str) -> tuple[int, int]:
    """(used_count, used_cents) of one budget in one period; zero when nothing was drawn yet."""
    row = await tx.one(
        "SELECT used_count, used_cents FROM budget_usage WHERE budget_id = ? AND period_key = ?",
        (budget_id, key),
    )
    return (0, 0) if row is None else (row["used_count"], row["used_cents"])


def create_command(spec: GrantSpec) -> str:
    """The terminal command that makes this grant through the verified channel."""
    parts = ["chief-of-staff", "grant", f"--agency {shlex.quote(spec.agency)}"]  # (tested to parse)
    parts += [f"--role {shlex.quote(spec.role)}"] if spec.role else []
    parts += [f"--capability {spec.capability}", f"--mode {spec.mode}"]
    parts += [f"--cap-cents {spec.per_action_cap_cents}"] if spec.per_action_cap_cents is not None else []
    for budget in spec.budgets:
        parts += [f"--{budget.period}-count {budget.max_count}"] if budget.max_count is not None else []
        parts += [f"--{budget.period}-cents {budget.max_cents}"] if budget.max_cents is not None else []
    parts += [" ".join(["--allow", *map(shlex.quote, spec.scope_allow)])] if spec.scope_allow else []
    parts += [" ".join(["--deny", *map(shlex.quote, spec.scope_deny)])] if spec.scope_deny else []
    parts += [f"--expires-on {spec.expires_on}"] if spec.expires_on else []
    parts += [f"--goal {shlex.quote(spec.goal)}"] if spec.goal else []
    parts += [f"--rationale {shlex.quote(spec.rationale)}"] if spec.rationale else []
    parts += ["--on-timeout approve"] if spec.on_timeout == "approve" else []
    return " ".join(parts)


# --- operations ---------------------------------------------------------------------------------


async def create_grant(tx: Tx, actor: Actor, spec: GrantSpec) -> GrantView:
    """Give an agency (or one role) authority over one capability. Operator-only; chat within its allowance.

    A grant made in chat draws its worst-case money exposure from the chat allowance, and where it
    and a grant made on a verified channel both cover a request, the verified grant's stricter
    answer wins (see the ledger), so chat can add authority but never override the operator's.
    """
    hint = create_command(spec)
    trust.require_operator(actor, "Creating a grant", hint, console=True)
    space = await workspace.get(tx)
    if spec.on_timeout == "approve":
        # Silence would then grant authority: that is the operator's call, made outside the model's reach.
        trust.refuse_in_chat(
            actor, "Creating a grant", "its unanswered decisions would go ahead on their own", hint, console=True
        )
    exposure = money_exposure(spec, space.chat_window_days)
    await trust.draw_chat(tx, actor, "Creating a grant", exposure, hint, subject=spec.capability, console=True)
    agency = await agencies.resolve_agency(tx, spec.agency, field="agency")
    role = await agencies.resolve_role(tx, agency["id"], spec.role, field="role")
    _require_active(agency, role)
    goal_id = await _goal_of_agency(tx, spec.goal, agency)
    expires_at = _end_of_day(tx, spec.expires_on, space.timezone)
    grant_id = await tx.run(
        "INSERT INTO grants (agency_id, role_id, capability, mode, per_action_cap_cents, scope_allow, "
        "scope_deny, expires_at, goal_id, rationale, on_timeout, origin_channel, created_at, updated_at) "
        "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        (
            agency["id"],
            role["id"] if role else None,
            spec.capability,
            spec.mode,
            spec.per_action_cap_cents,
            json.dumps(spec.scope_allow),
            json.dumps(spec.scope_deny),
            expires_at,
            goal_id,
            spec.rationale,
            spec.on_timeout,
            "chat" if actor.channel == "chat" else "verified",
            tx.now_text,
            tx.now_text,
        ),
    )
    await tx.run_many(
        "INSERT INTO grant_budgets (grant_id, period, max_count, max_cents) VALUES (?, ?, ?, ?)",
        [(grant_id, b.period, b.max_count, b.max_cents) for b in spec.budgets],
    )
    snapshot = await _snapshot(tx, grant_id, actor.channel)
    await audit.append(tx, actor, "grant.create", ids.format_id("grant", grant_id), snapshot)
    return await _announce(tx, await _grant_view(tx, grant_id, space.timezone), "created")


async def revoke_grant(tx: Tx, actor: Actor, grant: str, *, reason: str = "", hand_over: bool = False) -> GrantView:
    """Withdraw a grant; its pending decisions are cancelled. Narrowing authority is safe, so any actor may.

    The revoked grant keeps governing its space: requests it covered go to the operator, not to a
    broader grant. `hand_over` (verified channel only, since it widens) lets the broader grants
    cover that space; it also works on a grant already revoked or past its end date.
    """
    if not isinstance(reason, str) or len(reason) > 4000:
        raise InvalidInput("reason: send a short text of at most 4000 characters, or leave it out.")
    row = await grant_row(tx, ids.parse_id("grant", grant, field="grant"))
    short = ids.format_id("grant", row["id"])
    if hand_over:
        return await _hand_over(tx, actor, row, reason)
    if row["status"] == "revoked":
        raise Conflict(f"grant: {short} is already revoked. Call list_grants to see the active grants.")
    await tx.run(
        "UPDATE grants SET status = 'revoked', revoked_at = ?, updated_at = ?, version = version + 1 WHERE id = ?",
        (tx.now_text, tx.now_text, row["id"]),
    )
    return await _record_stop(tx, actor, row["id"], reason, "grant.revoke", "revoked")


def hand_over_command(short: str) -> str:
    return f"chief-of-staff revoke {short} --hand-over"


async def _hand_over(tx: Tx, actor: Actor, row: Row, reason: str) -> GrantView:
    """Let broader grants cover what a stopped grant governed: a widening only the verified channel makes."""
    short = ids.format_id("grant", row["id"])
    hint = hand_over_command(short)
    act = f"Handing {short}'s space over to broader grants"
    trust.require_operator(actor, act, hint, console=True)
    trust.refuse_in_chat(actor, act, "it may let a broader grant allow what this one held back", hint, console=True)
    if row["handed_over_at"] is not None:
        raise Conflict(f"grant: {short} was already handed over at {row['handed_over_at']}; nothing was changed.")
    await tx.run(
        "UPDATE grants SET status = 'revoked', revoked_at = coalesce(revoked_at, :now), handed_over_at = :now, "
        "updated_at = :now, version = version + 1 WHERE id = :id",
        {"now": tx.now_text, "id": row["id"]},
    )
    return await _record_stop(tx, actor, row["id"], reason, "grant.hand_over", "handed over")


async def hand_overs(tx: Tx) -> dict[str, str]:
    """When each grant that handed its space over did so (a UTC stamp), by grant id."""
    rows = await tx.all("SELECT id, handed_over_at FROM grants WHERE handed_over_at IS NOT NULL ORDER BY id")
    return {ids.format_id("grant", row["id"]): row["handed_over_at"] for row in rows}


async def hand_over_successors(tx: Tx, grant: str) -> list[GrantView]:
    """The grants that may answer requests `grant` held back once it hands its space over, first to answer first.

    Read as the ledger picks the grant that governs a request (role-specific over agency-wide, exact over
    wildcard, then newest): every grant of the same agency, not handed over itself, whose role and
    capability share some request with this one's, and that either ranks below it (so this grant answered
    first) or was made in chat while this one was made on a verified channel (so this one bound it too).
    Each answers only within its own role, capability and bounds; a stopped one keeps its own space.
    """
    row = await grant_row(tx, ids.parse_id("grant", grant, field="grant"))
    rows = await tx.all(
        f"{_VIEW_SELECT}WHERE g.agency_id = ? AND g.id != ? AND g.handed_over_at IS NULL "
        "AND (g.role_id IS NULL OR ? IS NULL OR g.role_id = ?) "
        "ORDER BY g.role_id IS NULL, length(g.capability) DESC, g.id DESC",
        (row["agency_id"], row["id"], row["role_id"], row["role_id"]),
    )
    freed = [
        other
        for other in rows
        if _share_a_request(other["capability"], row["capability"])
        and (_rank(other) > _rank(row) or (other["origin_channel"] == "chat" and row["origin_channel"] == "verified"))
    ]
    return await _grant_views(tx, freed, (await workspace.get(tx)).timezone)


def _rank(row: Row) -> tuple[bool, int, int]:
    """Where a grant stands when the ledger picks the one governing a request: the lower governs first."""
    return (row["role_id"] is None, -len(row["capability"]), -row["id"])


def _share_a_request(one: str, other: str) -> bool:
    """Whether some request's capability falls under both grant capabilities (spend.* and spend.ads do)."""
    if one.endswith(".*") and other.endswith(".*"):
        return one[:-1].startswith(other[:-1]) or other[:-1].startswith(one[:-1])
    if one.endswith(".*"):
        return other.startswith(one[:-1])
    if other.endswith(".*"):
        return one.startswith(other[:-1])
    return one == other


async def _record_stop(tx: Tx, actor: Actor, grant_id: int, reason: str, action: str, change: str) -> GrantView:
    """After a revoke or a hand-over: cancel the grant's pending decisions, keep the version, audit, announce."""
    short = ids.format_id("grant", grant_id)
    cancelled = await decisions.cancel_pending_of_grant(tx, grant_id, f"{short} was revoked")
    snapshot = await _snapshot(tx, grant_id, actor.channel, reason=reason)
    await audit.append(
        tx, actor, action, short, {"version": snapshot["version"], "reason": reason, "cancelled": cancelled}
    )
    return await _announce(tx, await _grant_view(tx, grant_id, (await workspace.get(tx)).timezone), change)


class _Unchanged(enum.Enum):
    """Marks a bound left as it is, where None means "no limit"."""

    UNCHANGED = "unchanged"


UNCHANGED = _Unchanged.UNCHANGED


async def update_grant(
    tx: Tx,
    actor: Actor,
    grant: str,
    *,
    mode: Mode | None = None,
    per_action_cap_cents: int | _Unchanged | None = UNCHANGED,
    budgets: list[BudgetSpec] | None = None,
    scope_allow: list[str] | None = None,
    scope_deny: list[str] | None = None,
    expires_on: date | str | _Unchanged | None = UNCHANGED,
    on_timeout: OnTimeout | None = None,
    rationale: str | None = None,
) -> GrantView:
    """Change a grant's bounds as a new version. Fields left out stay; None removes a cap or the end date.

    `budgets` replaces the whole list: a period kept keeps its usage so far, a period left out is
    dropped with its usage (a budget added later for that period starts at zero). Narrowing is open
    to any actor; widening (see `widens`) is an operator act, in chat only under the ceiling.
    """
    given: dict[str, Any] = {
        key: value
        for key, value in (
            ("mode", mode),
            ("budgets", budgets),
            ("scope_allow", scope_allow),
            ("scope_deny", scope_deny),
            ("on_timeout", on_timeout),
            ("rationale", rationale),
        )
        if value is not None
    }
    given |= {
        key: value
        for key, value in (("per_action_cap_cents", per_action_cap_cents), ("expires_on", expires_on))
        if value is not UNCHANGED
    }
    if not given:
        raise InvalidInput(
            "grant: nothing to change; send at least one of mode, per_action_cap_cents, budgets, "
            "scope_allow, scope_deny, expires_on, on_timeout, rationale."
        )
    row, space = await _changeable(tx, grant), await workspace.get(tx)
    before = await _terms_of_row(tx, row, space.timezone)
    after = _changed_terms(before, given)
    _check_new_end(tx, before, after, space.timezone)
    hint = update_command(ids.format_id("grant", row["id"]), before, after)
    return await _apply_terms(tx, actor, row, before, after, hint, {})


async def restore_version(tx: Tx, actor: Actor, grant: str, version: int) -> GrantView:
    """Put a grant's bounds back as they stood at `version`, as a new version.

    Classified like any change, against the bounds in force now: undoing a narrowing widens.
    """
    row = await _changeable(tx, grant)
    short = ids.format_id("grant", row["id"])
    if isinstance(version, bool) or not isinstance(version, int):
        raise InvalidInput(f"version: send a whole version number of {short}, e.g. 1, not {version!r}.")
    stored = await tx.scalar(
        "SELECT snapshot FROM grant_versions WHERE grant_id = ? AND version = ?", (row["id"], version)
    )
    if stored is None:
        raise NotFound(f"version: {short} has versions 1 to {row['version']}; send one of them.")
    space = await workspace.get(tx)
    before = await _terms_of_row(tx, row, space.timezone)
    after = _terms_of_snapshot(json.loads(stored), space.timezone)
    hint = f"chief-of-staff grant-update {short} --restore {version}"
    return await _apply_terms(tx, actor, row, before, after, hint, {"restores_version": version})


@dataclass(frozen=True)
class GrantVersion:
    """One kept version of a grant: when it was recorded, on which channel, what made it, and its bounds then."""

    version: int
    at: str
    channel: str
    change: Literal["given", "changed", "revoked", "handed over"]
    terms: GrantTerms


async def grant_versions(tx: Tx, grant: str, *, newest: int | None = None) -> list[GrantVersion]:
    """A grant's kept versions (only the `newest` so many, if given), oldest first, with the bounds
    `restore_version` would put back."""
    row = await grant_row(tx, ids.parse_id("grant", grant, field="grant"))
    timezone = (await workspace.get(tx)).timezone
    rows = await tx.all(
        "SELECT version, snapshot, channel, created_at FROM grant_versions WHERE grant_id = ? "
        "ORDER BY version DESC LIMIT ?",
        (row["id"], -1 if newest is None else newest),
    )
    return [_version_of(kept, timezone) for kept in reversed(rows)]


def _version_of(kept: Row, timezone: str) -> GrantVersion:
    snapshot = json.loads(kept["snapshot"])
    change: Literal["given", "changed", "revoked", "handed over"] = "given" if kept["version"] == 1 else "changed"
    if snapshot.get("handed_over_at") is not None:
        change = "handed over"
    elif snapshot.get("status") == "revoked":
        change = "revoked"
    terms = _terms_of_snapshot(snapshot, timezone)
    return GrantVersion(kept["version"], kept["created_at"], kept["channel"], change, terms)


async def preview_change(tx: Tx, grant: str, *, restore_version: int | None = None, **given: Any) -> str:
    """A change to a grant as its bounds stand now and would stand after, read from the store: for a prompt."""
    row, space = await _changeable(tx, grant), await workspace.get(tx)
    before = await _terms_of_row(tx, row, space.timezone)
    if restore_version is None:
        after = _changed_terms(before, given)
        _check_new_end(tx, before, after, space.timezone)  # what update_grant would refuse, refused here too
    else:
        stored = await tx.scalar(
            "SELECT snapshot FROM grant_versions WHERE grant_id = ? AND version = ?", (row["id"], restore_version)
        )
        if stored is None:
            short = ids.format_id("grant", row["id"])
            raise NotFound(f"version: {short} has versions 1 to {row['version']}; send one of them.")
        after = _terms_of_snapshot(json.loads(stored), space.timezone)
    widened = widens(before, after)
    return (
        f"{ids.format_id('grant', row['id'])} ({row['capability']}, version {row['version']}). "
        f"Bounds now: {_terms_words(before)}. After: {_terms_words(after)}. "
        + (f"This widens authority: {'; '.join(widened)}." if widened else "This only narrows authority.")
    )


def _check_new_end(tx: Tx, before: GrantTerms, after: GrantTerms, timezone: str) -> None:
    """A changed last day may not be in the past (a grant that ended yesterday is revoked, not changed)."""
    if after.expires_on != before.expires_on and after.expires_on is not None:
        _end_of_day(tx, after.expires_on, timezone)  # refuses a past date


def _terms_words(terms: GrantTerms) -> str:
    shown = terms.model_dump(mode="json", exclude={"rationale"})
    return ", ".join(f"{key} {json.dumps(value)}" for key, value in shown.items())


async def _changeable(tx: Tx, grant: str) -> Row:
    row = await grant_row(tx, ids.parse_id("grant", grant, field="grant"))
    if row["status"] == "revoked":
        short = ids.format_id("grant", row["id"])
        raise Conflict(f"grant: {short} is revoked and cannot be changed; create a new grant instead.")
    return row


def _changed_terms(before: GrantTerms, given: dict[str, Any]) -> GrantTerms:
    try:
        return GrantTerms.model_validate({**before.model_dump(), **given})
    except ValidationError as exc:
        problems = [
            f"{'.'.join(map(str, e['loc'])) or 'grant'}: {e['msg'].removeprefix('Value error, ')}" for e in exc.errors()
        ]
        raise InvalidInput("Nothing was changed:\n- " + "\n- ".join(problems)) from None


async def _terms_of_row(tx: Tx, row: Row, timezone: str) -> GrantTerms:
    budgets = [
        BudgetSpec(period=b["period"], max_count=b["max_count"], max_cents=b["max_cents"])
        for b in await budget_rows(tx, row["id"])
    ]
    return GrantTerms(
        mode=row["mode"],
        per_action_cap_cents=row["per_action_cap_cents"],
        budgets=budgets,
        scope_allow=json.loads(row["scope_allow"]),
        scope_deny=json.loads(row["scope_deny"]),
        expires_on=_last_day(row["expires_at"], timezone),
        on_timeout=row["on_timeout"],
        rationale=row["rationale"],
    )


def _terms_of_snapshot(snapshot: dict[str, Any], timezone: str) -> GrantTerms:
    # Snapshots written before grants had on_timeout lack it; those grants could only deny.
    return GrantTerms(
        mode=snapshot["mode"],
        per_action_cap_cents=snapshot["per_action_cap_cents"],
        budgets=[BudgetSpec(**b) for b in snapshot["budgets"]],
        scope_allow=snapshot["scope_allow"],
        scope_deny=snapshot["scope_deny"],
        expires_on=_last_day(snapshot["expires_at"], timezone),
        on_timeout=snapshot.get("on_timeout", "deny"),
        rationale=snapshot["rationale"],
    )


async def _apply_terms(
    tx: Tx, actor: Actor, row: Row, before: GrantTerms, after: GrantTerms, hint: str, detail: dict[str, Any]
) -> GrantView:
    """Write `after` as the grant's next version, once the actor may make the change; no change writes nothing."""
    space = await workspace.get(tx)
    reasons = widens(before, after)
    if reasons:
        await _allow_widening(tx, actor, before, after, reasons, hint)
    if after.rationale != before.rationale and not actor.is_operator:
        # The rationale is the operator's word in the letter every session reads as its authority: an agency
        # that could rewrite it would put its own words there ("the operator wants you to spend freely").
        short = ids.format_id("grant", row["id"])
        raise OperatorActRefused(
            f"rationale: {short}'s rationale is the operator's words in the authority letter, so only the operator "
            "changes it. Nothing was changed; send the change without a rationale, or ask the operator."
        )
    if after != before:
        expires_at = (
            row["expires_at"]
            if after.expires_on == before.expires_on
            else (None if after.expires_on is None else _end_instant(after.expires_on, space.timezone))
        )
        await tx.run(
            "UPDATE grants SET mode = ?, per_action_cap_cents = ?, scope_allow = ?, scope_deny = ?, "
            "expires_at = ?, on_timeout = ?, rationale = ?, updated_at = ?, version = version + 1 WHERE id = ?",
            (
                after.mode,
                after.per_action_cap_cents,
                json.dumps(after.scope_allow),
                json.dumps(after.scope_deny),
                expires_at,
                after.on_timeout,
                after.rationale,
                tx.now_text,
                row["id"],
            ),
        )
        await _replace_budgets(tx, row["id"], after.budgets)
        snapshot = await _snapshot(tx, row["id"], actor.channel)
        await audit.append(
            tx,
            actor,
            "grant.update",
            ids.format_id("grant", row["id"]),
            {"version": snapshot["version"], **detail, **_difference(before, after), "widens": reasons},
        )
        return await _announce(tx, await _grant_view(tx, row["id"], space.timezone), "updated", widens=reasons)
    return await _grant_view(tx, row["id"], space.timezone)


async def _announce(tx: Tx, view: GrantView, change: str, *, widens: list[str] | None = None) -> GrantView:
    """Tell the operator's webhooks, in the change's own transaction (the outbox)."""
    await outbox.emit(
        tx,
        "grant.changed",
        {
            "grant_id": view.id,
            "change": change,
            "version": view.version,
            "agency": view.agency,
            "role": view.role,
            "capability": view.capability,
            "mode": view.mode,
            "widens": widens or [],
        },
    )
    return view


async def _allow_widening(
    tx: Tx, actor: Actor, before: GrantTerms, after: GrantTerms, reasons: list[str], hint: str
) -> None:
    """Widening is an operator act; in chat only a raised money bound, drawn from the chat allowance."""
    act = f"Widening a grant ({'; '.join(reasons)})"
    trust.require_operator(actor, act, hint, console=True)
    never = authority_widening(before, after)
    if never:
        trust.refuse_in_chat(
            actor, act, f"chat may raise only money bounds, and this {'; '.join(never)}", hint, console=True
        )
    days = (await workspace.get(tx)).chat_window_days
    old, new = money_exposure(before, days), money_exposure(after, days)
    # From unbounded to bounded lowers the exposure; from bounded to unbounded is never for chat.
    added = None if new is None else (0 if old is None else max(new - old, 0))
    await trust.draw_chat(tx, actor, act, added, hint, console=True)


async def _replace_budgets(tx: Tx, grant_id: int, budgets: list[BudgetSpec]) -> None:
    """Kept periods change their limits in place (same row, same usage); dropped ones go with their usage."""
    existing = {b["period"]: b for b in await budget_rows(tx, grant_id)}
    wanted = {b.period: b for b in budgets}
    for period, row in existing.items():
        if period not in wanted:
            # A budget needs a limit (CHECK), so a dropped one cannot linger as limitless; its usage goes too.
            await tx.run("DELETE FROM budget_usage WHERE budget_id = ?", (row["id"],))
            await tx.run("DELETE FROM grant_budgets WHERE id = ?", (row["id"],))
        elif (row["max_count"], row["max_cents"]) != (wanted[period].max_count, wanted[period].max_cents):
            await tx.run(
                "UPDATE grant_budgets SET max_count = ?, max_cents = ? WHERE id = ?",
                (wanted[period].max_count, wanted[period].max_cents, row["id"]),
            )
    await tx.run_many(
        "INSERT INTO grant_budgets (grant_id, period, max_count, max_cents) VALUES (?, ?, ?, ?)",
        [(grant_id, b.period, b.max_count, b.max_cents) for b in budgets if b.period not in existing],
    )


def _difference(before: GrantTerms, after: GrantTerms) -> dict[str, dict[str, Any]]:
    """The changed fields, as they were and as they are."""
    old, new = before.model_dump(mode="json"), after.model_dump(mode="json")
    changed = [key for key in old if old[key] != new[key]]
    return {"before": {key: old[key] for key in changed}, "after": {key: new[key] for key in changed}}


async def list_grants(tx: Tx, *, agency: str | None = None, include_revoked: bool = False) -> list[GrantView]:
    """Grants with their usage in the current period, oldest first."""
    where, params = ["1 = 1"], []
    if agency is not None:
        where.append("g.agency_id = ?")
        params.append((await agencies.resolve_agency(tx, agency, field="agency"))["id"])
    if not include_revoked:
        where.append("g.status = 'active'")
    rows = await tx.all(f"{_VIEW_SELECT}WHERE {' AND '.join(where)} ORDER BY g.id", params)
    return await _grant_views(tx, rows, (await workspace.get(tx)).timezone)


def _require_active(agency: Row, role: Row | None) -> None:
    if agency["status"] != "active":
        raise Conflict(f"agency: {agency['name']} is retired; reactivate it with set_agency (status active) first.")
    if role is not None and role["status"] != "active":
        raise Conflict(f"role: {role['name']} is retired; reactivate it with set_role or grant to another role.")


async def _goal_of_agency(tx: Tx, ref: str | None, agency: Row) -> int | None:
    if ref is None:
        return None
    goal = await goals.resolve_goal(tx, ref, field="goal")
    if goal["agency_id"] != agency["id"]:
        raise InvalidInput(
            f"goal: {ids.format_id('goal', goal['id'])} belongs to another agency; send a goal of "
            f"{agency['name']} (call list_goals) or leave goal out."
        )
    return int(goal["id"])


def _end_of_day(tx: Tx, expires_on: date | None, timezone: str) -> str | None:
    """A grant ends at the END of its last local day."""
    if expires_on is None:
        return None
    if expires_on < local_date(tx.now, timezone):
        raise InvalidInput(f"expires_on: {expires_on} is already past; send today or a later YYYY-MM-DD.")
    return _end_instant(expires_on, timezone)


def _end_instant(last_day: date, timezone: str) -> str:
    return format_ts(local_midnight_utc(last_day + timedelta(days=1), timezone))


def _last_day(expires_at: str | None, timezone: str) -> date | None:
    """The local day a grant's end instant closes (the inverse of _end_instant)."""
    if expires_at is None:
        return None
    return local_date(parse_ts(expires_at) - timedelta(microseconds=1), timezone)


async def _snapshot(tx: Tx, grant_id: int, channel: str, *, reason: str | None = None) -> dict[str, Any]:
    """Record the grant as it now stands in grant_versions; returns the snapshot."""
    row = await grant_row(tx, grant_id)
    snapshot = {key: row[key] for key in row.keys() if key not in ("created_at", "updated_at")}  # noqa: SIM118
    snapshot["scope_allow"] = json.loads(row["scope_allow"])
    snapshot["scope_deny"] = json.loads(row["scope_deny"])
    snapshot["budgets"] = [
        {"period": b["period"], "max_count": b["max_count"], "max_cents": b["max_cents"]}
        for b in await budget_rows(tx, grant_id)
    ]
    if reason is not None:
        snapshot["reason"] = reason
    await tx.run(
        "INSERT INTO grant_versions (grant_id, version, snapshot, channel, created_at) VALUES (?, ?, ?, ?, ?)",
        (grant_id, row["version"], audit.canonical(snapshot), channel, tx.now_text),
    )
    return snapshot


def _grant_status(row: Row, now_text: str) -> GrantStatus:
    if row["status"] == "revoked":
        return "revoked"
    return "expired" if row["expires_at"] is not None and row["expires_at"] <= now_text else "active"


async def _grant_view(tx: Tx, grant_id: int, timezone: str) -> GrantView:
    row = await tx.one(f"{_VIEW_SELECT}WHERE g.id = ?", (grant_id,))
    assert row is not None  # written or checked earlier in this transaction
    return (await _grant_views(tx, [row], timezone))[0]


async def _grant_views(tx: Tx, rows: list[Row], timezone: str) -> list[GrantView]:
    """Views of grant rows read through _VIEW_SELECT; every budget and its usage in one more statement."""
    budgets = await _budget_views(tx, [row["id"] for row in rows], timezone)
    return [_grant_view_of(row, budgets.get(row["id"], []), timezone, tx.now_text) for row in rows]


def _grant_view_of(row: Row, budgets: list[BudgetView], timezone: str, now_text: str) -> GrantView:
    last_day = _last_day(row["expires_at"], timezone)
    expires_on = None if last_day is None else last_day.isoformat()
    agency = row["agency_name"] if row["agency_name"] is not None else ids.format_id("agency", row["agency_id"])
    role = (
        None
        if row["role_id"] is None
        else (row["role_name"] if row["role_name"] is not None else ids.format_id("role", row["role_id"]))
    )
    return GrantView(
        id=ids.format_id("grant", row["id"]),
        agency=agency,
        role=role,
        capability=row["capability"],
        mode=row["mode"],
        per_action_cap_cents=row["per_action_cap_cents"],
        budgets=budgets,
        scope_allow=json.loads(row["scope_allow"]),
        scope_deny=json.loads(row["scope_deny"]),
        expires_on=expires_on,
        goal=ids.format_id("goal", row["goal_id"]) if row["goal_id"] else None,
        rationale=row["rationale"],
        on_timeout=row["on_timeout"],
        status=_grant_status(row, now_text),
        version=row["version"],
    )


async def _budget_views(tx: Tx, grant_ids: list[int], timezone: str) -> dict[int, list[BudgetView]]:
    """Each grant's budgets with their usage in the current period, by grant id."""
    if not grant_ids:
        return {}
    keys = {period: period_key(period, tx.now, timezone) for period in ("day", "week", "month")}
    marks = ", ".join("?" * len(grant_ids))
    rows = await tx.all(
        "SELECT b.grant_id, b.period, b.max_count, b.max_cents, u.used_count, u.used_cents "
        "FROM grant_budgets AS b LEFT JOIN budget_usage AS u ON u.budget_id = b.id "
        "AND u.period_key = CASE b.period WHEN 'day' THEN ? WHEN 'week' THEN ? ELSE ? END "
        f"WHERE b.grant_id IN ({marks}) ORDER BY b.id",
        (keys["day"], keys["week"], keys["month"], *grant_ids),
    )
    views: dict[int, list[BudgetView]] = {}
    for b in rows:
        views.setdefault(b["grant_id"], []).append(
            BudgetView(
                period=b["period"],
                max_count=b["max_count"],
                max_cents=b["max_cents"],
                used_count=b["used_count"] or 0,
                used_cents=b["used_cents"] or 0,
                period_key=keys[b["period"]],
            )
        )
    return views


# --- the letter ---------------------------------------------------------------------------------


async def authority_letter(tx: Tx, *, agency: str | None = None) -> str:
    """The active grants as a readable delegation-of-authority letter (markdown); one agency's if named."""
    space = await workspace.get(tx)
    agency_id = None if agency is None else int((await agencies.resolve_agency(tx, agency))["id"])
    own = None if agency_id is None else ids.format_id("agency", agency_id)
    grants = [g for g in await list_grants(tx, agency=own) if g.status == "active"]
    lines = [
        f"# Delegation of authority — {_plain(space.name)}",
        "",
        f"As of {local_date(tx.now, space.timezone)} ({space.timezone}). The agency acts only within "
        "these grants; anything else comes to you as a decision first.",
        "",
        ROLES_NOTE,
        "",
    ]
    if not grants:
        lines.append("No authority is delegated yet: every action comes to you for approval.")
    for agency in sorted({g.agency for g in grants}, key=str.lower):
        lines += [f"## {_plain(agency)}", ""]
        lines += [await _letter_line(tx, g) for g in grants if g.agency == agency]
        lines.append("")
    lines += await _stopped_lines(tx, space.timezone, agency_id)
    return "\n".join(lines).rstrip() + "\n"


ROLES_NOTE = (
    "Roles: over a local (stdio) connection the agency is one principal and may name any of its roles, "
    "so a role's grants bind that role only when it connects with its own role token over HTTP."
)


async def _stopped_lines(tx: Tx, timezone: str, agency_id: int | None = None) -> list[str]:
    """Revoked or ended grants that still hold their space, so a broader grant does not take it over."""
    rows = await tx.all(
        f"{_VIEW_SELECT}WHERE g.handed_over_at IS NULL AND (g.status = 'revoked' OR g.expires_at <= ?) "
        "AND (? IS NULL OR g.agency_id = ?) ORDER BY g.id",
        (tx.now_text, agency_id, agency_id),
    )
    if not rows:
        return []
    lines = ["## Stopped grants that still hold their space", ""]
    for view in await _grant_views(tx, rows, timezone):
        who = f"{_plain(view.agency)} ({_plain(view.role)})" if view.role else _plain(view.agency)
        answer = "comes to you as a decision each time" if view.status == "revoked" else "is refused until renewed"
        lines.append(
            f"- **{view.id}** ({view.status}): {who} `{_plain(view.capability)}` {answer}; "
            f"`{hand_over_command(view.id)}` (or Hand over on the console's Authority page) lets broader grants "
            "cover it."
        )
    return [*lines, ""]


async def _letter_line(tx: Tx, grant: GrantView) -> str:
    who = _plain(grant.role) if grant.role else "Any role"
    parts = [f"- **{grant.id}**: {who} may `{_plain(grant.capability)}` {_MODE_WORDS[grant.mode]}", _money_words(grant)]
    if grant.scope_allow:
        parts.append("only for " + ", ".join(f"`{_plain(p)}`" for p in grant.scope_allow))
    if grant.scope_deny:
        parts.append("never for " + ", ".join(f"`{_plain(p)}`" for p in grant.scope_deny))
    parts.append(f"until the end of {grant.expires_on}" if grant.expires_on else "with no end date")
    if grant.goal:
        title = await tx.scalar("SELECT title FROM goals WHERE id = ?", (ids.parse_id("goal", grant.goal),))
        parts.append(f'toward {grant.goal} "{_plain(title or "")}"')
    if grant.rationale:
        parts.append(f'because "{_plain(grant.rationale)}"')
    if grant.on_timeout == "approve":
        parts.append("a request you leave unanswered until it expires goes ahead")
    return "; ".join(parts) + "."


def _money_words(grant: GrantView) -> str:
    limits = []
    if grant.per_action_cap_cents is not None:
        limits.append(f"up to {money(grant.per_action_cap_cents)} per action")
    for budget in grant.budgets:
        bounds = [f"{budget.max_count} times"] if budget.max_count is not None else []
        bounds += [money(budget.max_cents)] if budget.max_cents is not None else []
        limits.append(f"at most {' and '.join(bounds)} a {budget.period}")
    if grant.per_action_cap_cents is None and all(b.max_cents is None for b in grant.budgets):
        limits.append("with no money (amount 0 only)")
    return ", ".join(limits)
