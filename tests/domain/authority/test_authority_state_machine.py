"""Authority as a state machine: random grants, asks, settlements, approvals, revocations, time and restarts.

A plain-Python model predicts every answer and every budget balance; after each step the
database must agree with it, no budget may be over its bounds, every allowed authorization
must be justified by what the database itself records, no approval may be used twice, and
the audit chain must verify. HYPOTHESIS_PROFILE=thorough runs 2,000 examples instead of 40.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import tempfile
from collections.abc import Coroutine
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any, TypeVar
from zoneinfo import ZoneInfo

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule

from chief_of_staff.core import audit
from chief_of_staff.core.audit import OPERATOR_CLI, Actor
from chief_of_staff.core.clock import FixedClock
from chief_of_staff.core.db import Store
from chief_of_staff.core.errors import ChiefOfStaffError, Conflict, InvalidInput, NotFound
from chief_of_staff.domain import agencies, deciding, workspace
from chief_of_staff.domain.authority import grants, ledger
from chief_of_staff.domain.authority.grants import GrantSpec
from chief_of_staff.domain.authority.terms import BudgetSpec
from tests.conftest import START, TIMEZONE

T = TypeVar("T")
BERLIN = ZoneInfo(TIMEZONE)
RESERVATION_TTL = timedelta(hours=24)
DECISION_TTL = timedelta(hours=72)
REDEEM_WINDOW = timedelta(hours=24)
DENIAL_STANDS = timedelta(days=7)
ROLES = {"Outbound": ["SDR", "Researcher"], "Content": ["Writer"]}
# Weighted by repetition, so most asks meet a grant; "Writer" in Outbound (and "SDR" in Content) is unknown.
ASK_ROLES = {
    "Outbound": [None, "SDR", "SDR", "SDR", "Researcher", None, "SDR", "Writer"],
    "Content": [None, "Writer", "Writer", "Writer", "SDR"],
}
AGENCIES = ["Outbound", "Outbound", "Outbound", "Outbound", "Content"]
GRANT_CAPABILITIES = ["spend.ads", "spend.ads", "spend.*", "spend.tools", "email.send"]
ASK_CAPABILITIES = ["spend.ads", "spend.ads", "spend.ads", "spend.tools", "email.send"]
TARGETS = [None, "jane@acme.com", "acme.com", "ops@city.gov", "https://shop.evil.io/x"]
ALLOW = [[], [], ["acme.com"], ["*@acme.com"]]
DENY = [[], [], ["*.gov"], ["evil.io"]]
MODES = ["auto", "auto", "notify", "approve"]
AMOUNTS = [0, 0, 100, 250, 300, 300, 500, 1_000]

Request = tuple[str, str | None, str, int, str | None]  # agency, role, capability, amount, target

# The requests whose answers define "what the agency may do" for the monotonicity property.
PROBES: list[Request] = [
    (agency, role, capability, amount, target)
    for agency, role in [("Outbound", None), ("Outbound", "SDR"), ("Content", "Writer")]
    for capability in ["spend.ads", "spend.tools", "email.send"]
    for amount in [0, 1_000]
    for target in [None, "jane@acme.com", "ops@city.gov"]
]
# What the agency may do to a grant on its own: each only narrows.
NARROWINGS: list[dict[str, Any]] = [
    {"per_action_cap_cents": 250},
    {"expires_on": "today"},
    {"mode": "approve"},
    {"scope_deny": ["*.gov"]},
]


@dataclass
class Budget:
    id: int
    period: str
    max_count: int | None
    max_cents: int | None


@dataclass
class Grant:
    id: int
    agency: str
    role: str | None
    capability: str
    mode: str
    cap: int | None
    budgets: list[Budget]
    allow: list[str]
    deny: list[str]
    expires_at: datetime | None
    revoked: bool = False


@dataclass
class Decision:
    id: int
    request: Request
    status: str
    expires_at: datetime
    grant_id: int | None = None
    exceeds: frozenset[str] = frozenset()  # the bounds the operator was shown, by key
    decided_at: datetime | None = None


@dataclass
class Authorization:
    id: int
    request: Request
    answer: str
    status: str
    grant_id: int | None
    decision_id: int | None
    expires_at: datetime | None = None
    draws: dict[int, str] = field(default_factory=dict)
    settled: int | None = None
    forced: frozenset[int] = frozenset()  # budgets drawn past their limit by the operator's approval


def periods(instant: datetime) -> dict[str, str]:
    """The Berlin calendar periods holding `instant`, computed independently of the product."""
    day = instant.astimezone(BERLIN).date()
    year, week, _ = day.isocalendar()
    return {"day": day.isoformat(), "week": f"{year}-W{week:02d}", "month": f"{day.year}-{day.month:02d}"}


def covers(grant_capability: str, capability: str) -> bool:
    if grant_capability.endswith(".*"):
        return capability.startswith(grant_capability[:-1])
    return grant_capability == capability


def in_scope(allow: list[str], deny: list[str], target: str | None) -> bool:
    if target is None:
        return not allow and not deny  # a grant with patterns needs a target
    if any(grants.target_matches(p, target) for p in deny):
        return False
    return not allow or any(grants.target_matches(p, target) for p in allow)


def own_bounds(grant: Grant, amount: int) -> set[str]:
    """The grant's own bounds (not its budgets) that send a request to the operator, by key."""
    short = f"GR{grant.id}"
    bounds = set()
    if grant.revoked:  # a revoked grant governs as if in approve mode
        bounds.add(f"revoked:{short}")
    if grant.cap is not None and amount > grant.cap:
        bounds.add(f"cap:{short}")
    if grant.cap is None and amount > 0 and all(b.max_cents is None for b in grant.budgets):
        bounds.add(f"money:{short}")
    if grant.mode == "approve" and not grant.revoked:
        bounds.add(f"mode:{short}")
    return bounds


budget_specs = st.lists(
    st.tuples(st.sampled_from([None, 0, 1, 2, 3, 5]), st.sampled_from([None, 0, 500, 1_000, 2_000])).filter(
        lambda bounds: bounds != (None, None)
    ),
    min_size=3,
    max_size=3,
).flatmap(
    lambda bounds: st.lists(st.sampled_from(["day", "week", "month"]), unique=True, max_size=3).map(
        lambda chosen: [
            BudgetSpec.model_validate({"period": p, "max_count": bounds[i][0], "max_cents": bounds[i][1]})
            for i, p in enumerate(chosen)
        ]
    )
)
agency_and_role = st.sampled_from(AGENCIES).flatmap(
    lambda agency: st.tuples(st.just(agency), st.sampled_from(ASK_ROLES[agency]))
)


@st.composite
def grant_specs(draw: st.DrawFn) -> tuple[GrantSpec, int | None]:
    """A grant, and in how many local days from "now" it ends (a past day is refused, tested elsewhere)."""
    agency, role = draw(agency_and_role)
    spec = GrantSpec(
        agency=agency,
        role=role if role in ROLES[agency] and draw(st.booleans()) else None,
        capability=draw(st.sampled_from(GRANT_CAPABILITIES)),
        mode=draw(st.sampled_from(MODES)),
        per_action_cap_cents=draw(st.sampled_from([None, 300, 500, 1_000])),
        budgets=draw(budget_specs),
        scope_allow=draw(st.sampled_from(ALLOW)),
        scope_deny=draw(st.sampled_from(DENY)),
    )
    return spec, draw(st.sampled_from([None, None, 0, 1, 6]))


requests = st.tuples(
    agency_and_role, st.sampled_from(ASK_CAPABILITIES), st.sampled_from(AMOUNTS), st.sampled_from(TARGETS)
).map(lambda r: (r[0][0], r[0][1], r[1], r[2], r[3]))


class AuthorityMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.loop = asyncio.new_event_loop()
        self.folder = Path(tempfile.mkdtemp(prefix="cos-authority-"))
        self.clock = FixedClock(START)
        self.store = self.run(self._open_workspace())
        self.grants: dict[int, Grant] = {}
        self.decisions: dict[int, Decision] = {}
        self.auths: dict[int, Authorization] = {}
        self.keys: dict[str, int] = {}
        self.baseline: frozenset[Request] | None = None
        self.operator_acted = False

    def run(self, coroutine: Coroutine[Any, Any, T]) -> T:
        """Run one step's async body on the machine's own loop (aiosqlite binds to threads, not loops)."""
        return self.loop.run_until_complete(coroutine)

    def teardown(self) -> None:
        try:
            self.run(self.store.close())
        finally:
            self.loop.close()
            shutil.rmtree(self.folder, ignore_errors=True)

    async def _open_workspace(self) -> Store:
        store = await Store.open(self.folder / "w.db", self.clock)
        async with store.write() as tx:
            await workspace.ensure(tx, OPERATOR_CLI, name="Test Co", timezone=TIMEZONE)
            for agency, roles in ROLES.items():
                await agencies.create_agency(tx, OPERATOR_CLI, name=agency, purpose="Work")
                for role in roles:
                    await agencies.set_role(tx, OPERATOR_CLI, agency=agency, name=role, charter="Works")
        return store

    @property
    def now(self) -> datetime:
        return self.clock.now()

    # --- grants ---------------------------------------------------------------------------------

    @initialize(drawn=st.lists(grant_specs(), min_size=1, max_size=3))
    def first_grants(self, drawn: list[tuple[GrantSpec, int | None]]) -> None:
        for one in drawn:
            self.grant(one)

    @rule(drawn=grant_specs())
    def grant(self, drawn: tuple[GrantSpec, int | None]) -> None:
        spec, days = drawn
        if days is not None:
            spec = spec.model_copy(update={"expires_on": self.now.astimezone(BERLIN).date() + timedelta(days=days)})
        view = self.run(self._create_grant(spec))
        grant_id = int(view.id.removeprefix("GR"))
        assert grant_id == len(self.grants) + 1
        self.grants[grant_id] = Grant(
            grant_id,
            spec.agency,
            spec.role,
            spec.capability,
            spec.mode,
            spec.per_action_cap_cents,
            self.run(self._budgets(grant_id)),
            spec.scope_allow,
            spec.scope_deny,
            _end_of(spec.expires_on),
        )

    async def _create_grant(self, spec: GrantSpec) -> grants.GrantView:
        self.operator_acted = True
        async with self.store.write() as tx:
            return await grants.create_grant(tx, OPERATOR_CLI, spec)

    async def _budgets(self, grant_id: int) -> list[Budget]:
        async with self.store.read() as tx:
            rows = await tx.all("SELECT * FROM grant_budgets WHERE grant_id = ? ORDER BY id", (grant_id,))
        return [Budget(r["id"], r["period"], r["max_count"], r["max_cents"]) for r in rows]

    @precondition(lambda self: self.grants)
    @rule(which=st.integers(0, 100), act=st.sampled_from([True, False, False]))
    def revoke(self, which: int, act: bool) -> None:
        if not act:
            return  # revoking at one chance in three keeps enough grants alive for the asks to meet
        grant = self.grants[1 + which % len(self.grants)]
        expected = Conflict if grant.revoked else None
        self.expect(expected, grants.revoke_grant, Actor("Outbound", "agency"), f"GR{grant.id}")
        if expected is not None:
            return
        grant.revoked = True
        for decision in self.decisions.values():
            if decision.grant_id == grant.id and decision.status == "pending":
                decision.status = "expired"  # cancelled: the note says its grant was revoked

    @precondition(lambda self: self.grants)
    @rule(which=st.integers(0, 100), change=st.sampled_from(NARROWINGS))
    def narrow(self, which: int, change: dict[str, Any]) -> None:
        """The agency narrows a grant: a lower cap, an end date today, a stricter mode, one more deny pattern."""
        grant = self.grants[1 + which % len(self.grants)]
        if grant.revoked:
            return
        fields = dict(change)
        if "per_action_cap_cents" in fields:
            if grant.cap is None:
                return  # a first cap on a grant with no money bound would let money through: not a narrowing
            fields["per_action_cap_cents"] = min(grant.cap, fields["per_action_cap_cents"])
        if "expires_on" in fields:
            fields["expires_on"] = self.now.astimezone(BERLIN).date()
            end = _end_of(fields["expires_on"])
            if grant.expires_at is not None and end is not None and grant.expires_at <= end:
                return
        if "mode" in fields and ["approve", "notify", "auto"].index(grant.mode) < ["approve", "notify", "auto"].index(
            fields["mode"]
        ):
            return
        if "scope_deny" in fields:
            fields["scope_deny"] = [*grant.deny, *[p for p in fields["scope_deny"] if p not in grant.deny]]
        self.expect(None, grants.update_grant, Actor("Outbound", "agency"), f"GR{grant.id}", **fields)
        grant.cap = fields.get("per_action_cap_cents", grant.cap)
        grant.mode = fields.get("mode", grant.mode)
        grant.deny = fields.get("scope_deny", grant.deny)
        if "expires_on" in fields:
            grant.expires_at = _end_of(fields["expires_on"])

    # --- monotone agency acts (Trust, property 1) -------------------------------------------------

    def authority(self) -> frozenset[Request]:
        """Every request in a fixed set that `check` would allow with every budget fresh.

        Budgets are set aside because spending and releasing move them both ways by design; what
        an agency act must never do is widen what the grants and decisions allow.
        """
        return self.run(self._authority())

    async def _authority(self) -> frozenset[Request]:
        allowed = set()
        async with self.store.trial() as tx:
            await tx.run("DELETE FROM budget_usage")
            for request in PROBES:
                agency, role, capability, amount, target = request
                view = await ledger.check(
                    tx,
                    Actor(agency, "agency"),
                    agency=agency,
                    role=role,
                    capability=capability,
                    amount_cents=amount,
                    target=target,
                    task_id=None,
                )
                if view.answer == "allowed":
                    allowed.add(request)
        return frozenset(allowed)

    @invariant()
    def agency_acts_never_widen_authority(self) -> None:
        """Trust, property 1: after any step but an operator's, nothing is allowed that was not before.

        The operator's acts (a grant, a decision) reset the baseline; every other step is the
        agency's (revoke, narrow, authorize, settle, release) or time passing, or a restart.
        """
        now = self.authority()
        if self.baseline is not None and not self.operator_acted:
            assert now <= self.baseline, f"an agency step allowed {sorted(now - self.baseline, key=str)}"
        self.baseline, self.operator_acted = now, False

    # --- asking ---------------------------------------------------------------------------------

    @rule(batch=st.lists(requests, min_size=1, max_size=3))
    def authorize_fresh(self, batch: list[Request]) -> None:
        for request in batch:
            self.ask(request, f"k{len(self.keys) + 1}")

    @rule(request=requests)
    def authorize_without_key(self, request: Request) -> None:
        self.ask(request, None)

    @precondition(lambda self: self.keys)
    @rule(which=st.integers(0, 100), same=st.booleans(), other=requests)
    def authorize_reusing_a_key(self, which: int, same: bool, other: Request) -> None:
        key = sorted(self.keys)[which % len(self.keys)]
        self.ask(self.auths[self.keys[key]].request if same else other, key)

    @precondition(lambda self: any(d.status == "approved" for d in self.decisions.values()))
    @rule(which=st.integers(0, 100))
    def redeem(self, which: int) -> None:
        approved = [d for d in self.decisions.values() if d.status == "approved"]
        self.ask(approved[which % len(approved)].request, f"k{len(self.keys) + 1}")

    def ask(self, request: Request, key: str | None) -> None:
        agency, role = request[:2]
        if role is not None and role not in ROLES[agency]:
            return self.expect_authorize_error(NotFound, request, key)
        if key is not None and key in self.keys:
            first = self.auths[self.keys[key]]
            if first.request != request:
                return self.expect_authorize_error(InvalidInput, request, key)
            self.sweep()
            return self.check_view(self.call_authorize(request, key), first)
        self.sweep()
        expected = self.judge(request)
        self.check_view(self.call_authorize(request, key), expected)
        self.auths[expected.id] = expected
        if key is not None:
            self.keys[key] = expected.id
        return None

    def call_authorize(self, request: Request, key: str | None) -> ledger.AuthorizationView:
        agency, role, capability, amount, target = request
        view: ledger.AuthorizationView = self.run(
            self.write(
                ledger.authorize,
                Actor(agency, "agency"),
                agency=agency,
                role=role,
                capability=capability,
                amount_cents=amount,
                target=target,
                task_id=None,
                idempotency_key=key,
            )
        )
        return view

    def expect_authorize_error(self, error: type[Exception], request: Request, key: str | None) -> None:
        agency, role, capability, amount, target = request
        self.expect(
            error,
            ledger.authorize,
            Actor(agency, "agency"),
            agency=agency,
            role=role,
            capability=capability,
            amount_cents=amount,
            target=target,
            task_id=None,
            idempotency_key=key,
        )

    def check_view(self, view: ledger.AuthorizationView, expected: Authorization) -> None:
        assert (view.authorization_id, view.answer, view.status) == (
            f"AU{expected.id}",
            expected.answer,
            expected.status,
        ), view.reason
        assert view.grant_id == (None if expected.grant_id is None else f"GR{expected.grant_id}"), view.reason
        assert view.decision_id == (None if expected.decision_id is None else f"D{expected.decision_id}")

    # --- the model's answer ---------------------------------------------------------------------

    def judge(self, request: Request) -> Authorization:
        auth = Authorization(len(self.auths) + 1, request, "denied", "none", None, None)
        grant = self.choose_grant(request)
        if grant is None:
            return self.one_off_or_escalate(auth)
        auth.grant_id = grant.id
        if self.expired(grant) or not in_scope(grant.allow, grant.deny, request[4]):
            return auth
        asks = own_bounds(grant, request[3])
        if not asks:
            return self.draw(auth, grant, None)
        full = self.full_budgets(grant, request[3])
        bounds = asks | {f"budget:{b}" for b in full}
        approved = self.redeemable(request)
        if approved is not None and bounds <= approved.exceeds:
            return self.draw(auth, grant, approved, forced=full)
        return self.denied_or_escalate(auth, grant, bounds)

    def choose_grant(self, request: Request) -> Grant | None:
        """Role before agency-wide, exact before wildcard, newest; revoked and expired grants still govern."""
        agency, role, capability, _, _ = request
        candidates = [
            g
            for g in self.grants.values()
            if g.agency == agency and (g.role is None or g.role == role) and covers(g.capability, capability)
        ]
        candidates.sort(key=lambda g: (g.role is None, -len(g.capability), -g.id))
        return candidates[0] if candidates else None

    def expired(self, grant: Grant) -> bool:
        return grant.expires_at is not None and grant.expires_at <= self.now

    def redeemable(self, request: Request) -> Decision | None:
        """The newest unused approval of exactly this request."""
        return next(
            (
                d
                for d in sorted(self.decisions.values(), key=lambda d: -d.id)
                if d.request == request and d.status == "approved" and d.expires_at > self.now
            ),
            None,
        )

    def full_budgets(self, grant: Grant, amount: int) -> frozenset[int]:
        """The grant's budgets with no room for `amount` now."""
        keys, used = periods(self.now), self.expected_usage()
        full = set()
        for budget in grant.budgets:
            count, cents = used.get((budget.id, keys[budget.period]), (0, 0))
            if (budget.max_count is not None and count + 1 > budget.max_count) or (
                budget.max_cents is not None and cents + amount > budget.max_cents
            ):
                full.add(budget.id)
        return frozenset(full)

    def one_off_or_escalate(self, auth: Authorization) -> Authorization:
        """No grant: only a one-off approval allows, drawing no budget."""
        approved = self.redeemable(auth.request)
        if approved is None:
            return self.denied_or_escalate(auth, None, {"grant"})
        return self.allow(auth, approved, {})

    def denied_or_escalate(self, auth: Authorization, grant: Grant | None, bounds: set[str]) -> Authorization:
        """The operator's standing "no" to exactly this request answers it; otherwise the operator is asked."""
        standing = [
            d
            for d in self.decisions.values()
            if d.request == auth.request
            and d.status == "denied"
            and d.decided_at is not None
            and d.decided_at > self.now - DENIAL_STANDS
        ]
        if standing:
            auth.decision_id = max(d.id for d in standing)
            return auth
        return self.escalate(auth, grant, bounds)

    def escalate(self, auth: Authorization, grant: Grant | None, bounds: set[str]) -> Authorization:
        live = [
            d
            for d in sorted(self.decisions.values(), key=lambda d: d.id)
            if d.request == auth.request and d.status == "pending" and d.expires_at > self.now
        ]
        if live:
            decision = live[0]
        else:
            decision = Decision(
                len(self.decisions) + 1,
                auth.request,
                "pending",
                self.now + DECISION_TTL,
                grant and grant.id,
                frozenset(bounds),
            )
            self.decisions[decision.id] = decision
        auth.answer, auth.decision_id = "needs_approval", decision.id
        return auth

    def draw(
        self, auth: Authorization, grant: Grant, approved: Decision | None, forced: frozenset[int] = frozenset()
    ) -> Authorization:
        keys = periods(self.now)
        used = self.expected_usage()
        auth.forced = forced
        for budget in grant.budgets:
            if budget.id in forced:
                continue  # the operator admitted this one request past it
            count, cents = used.get((budget.id, keys[budget.period]), (0, 0))
            if budget.max_count is not None and count + 1 > budget.max_count:
                return auth
            if budget.max_cents is not None and cents + auth.request[3] > budget.max_cents:
                return auth
        return self.allow(auth, approved, {b.id: keys[b.period] for b in grant.budgets})

    def allow(self, auth: Authorization, approved: Decision | None, draws: dict[int, str]) -> Authorization:
        auth.answer, auth.status, auth.draws = "allowed", "held", draws
        auth.expires_at = self.now + RESERVATION_TTL
        if approved is not None:
            approved.status, auth.decision_id = "redeemed", approved.id
        return auth

    def sweep(self) -> None:
        """What spend_expired does at the start of authorize, settle and release: the hold is spent whole."""
        for auth in self.auths.values():
            if auth.status == "held" and auth.expires_at is not None and auth.expires_at <= self.now:
                auth.status, auth.settled = "expired", auth.request[3]

    def expected_usage(self, *, forced_only: bool = False) -> dict[tuple[int, str], tuple[int, int]]:
        """Held and run-out reservations count whole; settled ones count once at their actual amount."""
        usage: dict[tuple[int, str], tuple[int, int]] = {}
        for auth in self.auths.values():
            if auth.status in ("held", "settled", "expired"):
                cents = auth.request[3] if auth.status == "held" else auth.settled or 0
                for draw in auth.draws.items():
                    if forced_only and draw[0] not in auth.forced:
                        continue
                    count, total = usage.get(draw, (0, 0))
                    usage[draw] = (count + 1, total + cents)
        return usage

    # --- after acting ---------------------------------------------------------------------------

    def pick(self, which: int, any_status: bool) -> Authorization:
        """Mostly a held reservation; sometimes any authorization, to try closing what is not open."""
        held = [a for a in self.auths.values() if a.status == "held"]
        pool = held if held and not any_status else list(self.auths.values())
        return pool[which % len(pool)]

    @precondition(lambda self: self.auths)
    @rule(which=st.integers(0, 100), any_status=st.booleans(), percent=st.sampled_from([0, 50, 100, 101]))
    def settle(self, which: int, any_status: bool, percent: int) -> None:
        auth = self.pick(which, any_status)
        actual = auth.request[3] * percent // 100 + (1 if percent > 100 else 0)
        error = self.closing_error(auth) or (InvalidInput if actual > auth.request[3] else None)
        if auth.status == "settled" and auth.settled == actual:
            error = None  # the same settle again gets the same answer and changes nothing
        self.expect(error, ledger.settle, Actor("Outbound", "agency"), f"AU{auth.id}", actual_cents=actual)
        if error is None:
            self.sweep()
            auth.status, auth.settled = "settled", actual

    @precondition(lambda self: self.auths)
    @rule(which=st.integers(0, 100), any_status=st.booleans())
    def release(self, which: int, any_status: bool) -> None:
        auth = self.pick(which, any_status)
        error = None if auth.status == "released" else self.closing_error(auth)
        self.expect(error, ledger.release, Actor("Outbound", "agency"), f"AU{auth.id}")
        if error is None:
            self.sweep()
            auth.status = "released"

    def closing_error(self, auth: Authorization) -> type[Exception] | None:
        held = auth.status == "held" and auth.expires_at is not None and auth.expires_at > self.now
        return None if held else Conflict

    @precondition(lambda self: self.decisions)
    @rule(which=st.integers(0, 100), any_status=st.booleans(), approve=st.sampled_from([True, True, False]))
    def decide(self, which: int, any_status: bool, approve: bool) -> None:
        pending = [d for d in self.decisions.values() if d.status == "pending" and d.expires_at > self.now]
        pool = pending if pending and not any_status else list(self.decisions.values())
        decision = pool[which % len(pool)]
        self.operator_acted = True
        live = decision.status == "pending" and decision.expires_at > self.now
        self.expect(None if live else Conflict, deciding.decide, OPERATOR_CLI, f"D{decision.id}", approve=approve)
        if live:
            decision.status = "approved" if approve else "denied"
            decision.decided_at = self.now
            if approve:
                decision.expires_at = max(decision.expires_at, self.now + REDEEM_WINDOW)

    # --- time and restarts ----------------------------------------------------------------------

    @rule(
        delta=st.one_of(
            st.integers(1, 3 * 24 * 60).map(lambda m: timedelta(minutes=m)),
            st.sampled_from([timedelta(hours=15), timedelta(days=1), timedelta(days=7), timedelta(days=31)]),
        )
    )
    def advance_clock(self, delta: timedelta) -> None:
        self.clock.advance(delta)

    @rule()
    def restart(self) -> None:
        self.run(self.store.close())
        self.store = self.run(Store.open(self.folder / "w.db", self.clock))

    # --- calling the product --------------------------------------------------------------------

    async def write(self, function: Any, *args: Any, **kwargs: Any) -> Any:
        async with self.store.write() as tx:
            return await function(tx, *args, **kwargs)

    def expect(self, error: type[Exception] | None, function: Any, *args: Any, **kwargs: Any) -> None:
        """Call a writer; with an expected error, check it is raised and that nothing was written."""
        if error is None:
            self.run(self.write(function, *args, **kwargs))
            return
        before = self.run(self.snapshot())
        try:
            self.run(self.write(function, *args, **kwargs))
        except ChiefOfStaffError as exc:
            assert isinstance(exc, error), f"expected {error.__name__}, got {exc!r}"
        else:
            raise AssertionError(f"expected {error.__name__} from {function.__name__}")
        assert self.run(self.snapshot()) == before, "a failed call wrote something"

    async def snapshot(self) -> list[Any]:
        async with self.store.read() as tx:
            return [
                [tuple(r) for r in await tx.all(f"SELECT * FROM {table}")]
                for table in ("audit_log", "authorizations", "budget_usage", "decisions", "grants")
            ]

    # --- invariants -----------------------------------------------------------------------------

    @invariant()
    def budgets_hold_and_match_the_model(self) -> None:
        rows = self.run(
            self.read_all(
                "SELECT u.budget_id, u.period_key, u.used_count, u.used_cents, b.max_count, b.max_cents "
                "FROM budget_usage u JOIN grant_budgets b ON b.id = u.budget_id"
            )
        )
        # Only an operator's exception (an approval shown the full budget) draws past a limit, by its own amount.
        exceptions = self.expected_usage(forced_only=True)
        for row in rows:
            over_count, over_cents = exceptions.get((row["budget_id"], row["period_key"]), (0, 0))
            assert row["max_count"] is None or row["used_count"] <= row["max_count"] + over_count, tuple(row)
            assert row["max_cents"] is None or row["used_cents"] <= row["max_cents"] + over_cents, tuple(row)
        actual = {
            (r["budget_id"], r["period_key"]): (r["used_count"], r["used_cents"])
            for r in rows
            if r["used_count"] or r["used_cents"]
        }
        assert actual == self.expected_usage()

    @invariant()
    def ledger_and_decisions_match_the_model(self) -> None:
        auths = self.run(self.read_all("SELECT id, answer, status, settled_cents FROM authorizations"))
        assert {r["id"]: (r["answer"], r["status"], r["settled_cents"]) for r in auths} == {
            a.id: (a.answer, a.status, a.settled) for a in self.auths.values()
        }
        rows = self.run(self.read_all("SELECT id, status FROM decisions"))
        assert {r["id"]: r["status"] for r in rows} == {d.id: d.status for d in self.decisions.values()}

    @invariant()
    def every_allowed_authorization_is_justified_by_the_database(self) -> None:
        for row in self.run(self.read_all("SELECT * FROM authorizations WHERE answer = 'allowed'")):
            decision = self.run(self.redeemed_decision(row))
            if row["grant_id"] is None:
                assert decision, f"AU{row['id']} was allowed with neither a grant nor an approval"
                continue
            # The grant as it stood when asked: the version the ledger row names, from grant_versions.
            stored = self.run(
                self.read_all(
                    "SELECT snapshot FROM grant_versions WHERE grant_id = ? AND version = ?",
                    (row["grant_id"], row["grant_version"]),
                )
            )[0]
            self.check_grant_allowed(row, json.loads(stored["snapshot"]), decision)

    def check_grant_allowed(self, row: Any, grant: dict[str, Any], redeemed: bool) -> None:
        assert covers(grant["capability"], row["capability"]) and grant["agency_id"] == row["agency_id"]
        assert grant["role_id"] is None or grant["role_id"] == row["role_id"]
        assert grant["expires_at"] is None or grant["expires_at"] > row["created_at"]
        assert grant["status"] == "active" or redeemed, f"AU{row['id']}: revoked grant, no approval"
        assert in_scope(grant["scope_allow"], grant["scope_deny"], row["target"])
        budgets = grant["budgets"]
        cap = grant["per_action_cap_cents"]
        needed = (
            (cap is not None and row["amount_cents"] > cap)
            or grant["mode"] == "approve"
            or (cap is None and row["amount_cents"] > 0 and all(b["max_cents"] is None for b in budgets))
        )
        assert redeemed or not needed, f"AU{row['id']} needed the operator but redeemed no approval"

    async def redeemed_decision(self, row: Any) -> bool:
        if row["decision_id"] is None:
            return False
        async with self.store.read() as tx:
            decision = await tx.one("SELECT * FROM decisions WHERE id = ?", (row["decision_id"],))
        assert decision is not None and decision["request_hash"] == row["request_hash"]
        assert decision["status"] == "redeemed" and decision["decided_channel"] == "verified"
        return True

    @invariant()
    def approvals_are_redeemed_at_most_once(self) -> None:
        for sql in (
            "SELECT subject, count(*) FROM audit_log WHERE action = 'decision.redeem' GROUP BY subject",
            "SELECT decision_id, count(*) FROM authorizations WHERE answer = 'allowed' "
            "AND decision_id IS NOT NULL GROUP BY decision_id",
        ):
            assert all(row[1] <= 1 for row in self.run(self.read_all(sql))), sql

    @invariant()
    def audit_chain_verifies(self) -> None:
        async def verify() -> audit.ChainReport:
            async with self.store.read() as tx:
                return await audit.verify_chain(tx)

        report = self.run(verify())
        assert report.ok, report.problem

    async def read_all(self, sql: str, params: tuple[Any, ...] = ()) -> list[Any]:
        async with self.store.read() as tx:
            return await tx.all(sql, params)


def _end_of(expires_on: date | None) -> datetime | None:
    if expires_on is None:
        return None
    following = expires_on + timedelta(days=1)
    return datetime(following.year, following.month, following.day, tzinfo=BERLIN).astimezone(START.tzinfo)


THOROUGH = os.environ.get("HYPOTHESIS_PROFILE") == "thorough"
AuthorityMachine.TestCase.settings = settings(
    max_examples=2_000 if THOROUGH else 40,
    stateful_step_count=30,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
TestAuthorityStateMachine = AuthorityMachine.TestCase


def test_an_expired_narrow_grant_keeps_governing_its_space() -> None:
    """spend.ads ended last night: it still answers for spend.ads (denied), so spend.* cannot take over."""
    machine = AuthorityMachine()
    try:
        machine.first_grants([(GrantSpec(agency="Outbound", capability="spend.*"), None)])
        machine.grant((GrantSpec(agency="Outbound", capability="spend.ads"), 0))
        machine.advance_clock(timedelta(hours=15))  # 00:00 in Berlin: GR2's last day is over
        machine.authorize_fresh([("Outbound", None, "spend.ads", 0, None)])
        machine.authorize_fresh([("Outbound", None, "spend.tools", 0, None)])
        assert [(a.answer, a.grant_id) for a in machine.auths.values()] == [("denied", 2), ("allowed", 1)]
        machine.revoke(1, act=True)  # the agency revokes the expired GR2: it still governs
        machine.authorize_fresh([("Outbound", None, "spend.ads", 0, None)])
        assert (machine.auths[3].answer, machine.auths[3].grant_id) == ("denied", 2)  # its end date still binds
    finally:
        machine.teardown()
