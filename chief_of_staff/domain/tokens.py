"""Access tokens for the HTTP transport: who is calling, and on whose authority.

A token belongs to the workspace file it was created in. Only its SHA-256 digest is
stored; the secret is shown once, at creation. Tokens are high-entropy random
strings, so a plain digest is enough: there is nothing to guess from it.

- An operator token is the verified operator channel (design brief, Trust).
- An agency token acts as that agency, or as one of its roles, and can never make an
  operator act, whatever it sends.

Creating a token hands out authority, so only the verified channel (the command line
on the operator's machine) may do it; nothing an MCP client sends can mint one.
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from sqlite3 import Row
from typing import Literal

from chief_of_staff.core import audit, ids
from chief_of_staff.core.audit import Actor
from chief_of_staff.core.clock import format_ts, parse_ts
from chief_of_staff.core.db import Tx
from chief_of_staff.core.errors import Conflict, InvalidInput, NotFound, OperatorActRefused
from chief_of_staff.core.fields import Model, checked_text
from chief_of_staff.domain import agencies

TokenKind = Literal["operator", "agency"]
TOKEN_PREFIX = "cos_"
MAX_EXPIRY_DAYS = 3650
# A token's last use is recorded at most this often, so authenticating stays a read.
LAST_USED_RESOLUTION = timedelta(minutes=5)
_LONGEST_TOKEN = 200

_CREATE_HINT = (
    "chief-of-staff token create --agency NAME --role NAME (a role's token; leave out --role for the "
    "agency's, or send --operator instead)"
)


class TokenView(Model):
    token_id: str
    kind: TokenKind
    agency: str | None
    role: str | None
    label: str
    status: Literal["active", "expired", "revoked"]
    created_at: str
    expires_at: str | None
    revoked_at: str | None
    last_used_at: str | None


@dataclass(frozen=True)
class Principal:
    """Who a valid token speaks for: the operator, or an agency (and maybe one role) by id and name."""

    token_id: str
    kind: TokenKind
    agency: str | None = None
    agency_id: int | None = None
    role: str | None = None
    role_id: int | None = None
    last_used_at: str | None = None

    @property
    def viewer(self) -> str:
        """The brief's viewer this principal reads as."""
        if self.kind == "operator":
            return "operator"
        return f"agency:{self.agency}/{self.role}" if self.role else f"agency:{self.agency}"


def digest(secret: str) -> str:
    return hashlib.sha256(secret.encode("utf-8", "surrogatepass")).hexdigest()


_SELECT = """
    SELECT t.*, a.name AS agency_name, r.name AS role_name
    FROM access_tokens t
    LEFT JOIN agencies a ON a.id = t.agency_id
    LEFT JOIN roles r ON r.id = t.role_id
"""


def _status(row: Row, now: str) -> Literal["active", "expired", "revoked"]:
    if row["revoked_at"] is not None:
        return "revoked"
    if row["expires_at"] is not None and row["expires_at"] <= now:
        return "expired"
    return "active"


def _view(row: Row, now: str) -> TokenView:
    return TokenView(
        token_id=ids.format_id("token", row["id"]),
        kind=row["kind"],
        agency=row["agency_name"],
        role=row["role_name"],
        label=row["label"],
        status=_status(row, now),
        created_at=row["created_at"],
        expires_at=row["expires_at"],
        revoked_at=row["revoked_at"],
        last_used_at=row["last_used_at"],
    )


def _require_verified(actor: Actor, act: str) -> None:
    if actor.channel != "verified":
        raise OperatorActRefused(
            f"{act} hands out access to the workspace, so only the operator can do it, from a terminal on "
            f"their own machine: {_CREATE_HINT}, or in the console's Settings page (open_console)"
        )


def _expiry(tx: Tx, expires_in_days: int | None) -> str | None:
    if expires_in_days is None:
        return None
    if isinstance(expires_in_days, bool) or not 1 <= expires_in_days <= MAX_EXPIRY_DAYS:
        raise InvalidInput(
            f"expires_in_days: send a whole number of days from 1 to {MAX_EXPIRY_DAYS}, "
            "or leave it out for a token that does not expire."
        )
    return format_ts(tx.now + timedelta(days=expires_in_days))


async def _holder(tx: Tx, kind: str, agency: str | None, role: str | None) -> tuple[int | None, int | None]:
    """The agency and role ids a token of this kind speaks for; refuses a mismatched combination."""
    if kind == "operator":
        if agency is not None or role is not None:
            raise InvalidInput("An operator token speaks for the operator, not an agency: leave out agency and role.")
        return None, None
    if kind != "agency":
        raise InvalidInput(f"kind: send 'operator' or 'agency', not {kind!r}.")
    if agency is None:
        raise InvalidInput("agency: an agency token needs the agency it acts for, e.g. Outbound.")
    agency_row = await agencies.resolve_agency(tx, agency)
    role_row = await agencies.resolve_role(tx, agency_row["id"], role)
    return agency_row["id"], None if role_row is None else role_row["id"]


async def create_token(
    tx: Tx,
    actor: Actor,
    *,
    kind: str,
    agency: str | None = None,
    role: str | None = None,
    label: str = "",
    expires_in_days: int | None = None,
) -> tuple[TokenView, str]:
    """A new token and its secret. The secret is returned once and never stored."""
    _require_verified(actor, "Creating a token")
    label = checked_text(label, "label", 200)
    agency_id, role_id = await _holder(tx, kind, agency, role)
    expires_at = _expiry(tx, expires_in_days)
    secret = TOKEN_PREFIX + secrets.token_urlsafe(32)
    token_id = await tx.run(
        "INSERT INTO access_tokens (kind, agency_id, role_id, label, digest, created_at, expires_at) "
        "VALUES (?, ?, ?, ?, ?, ?, ?)",
        (kind, agency_id, role_id, label, digest(secret), tx.now_text, expires_at),
    )
    view = await _get(tx, token_id)
    await audit.append(
        tx,
        actor,
        "token.create",
        view.token_id,
        {"kind": kind, "agency": view.agency, "role": view.role, "expires_at": expires_at},
    )
    return view, secret


async def _get(tx: Tx, number: int) -> TokenView:
    row = await tx.one(_SELECT + " WHERE t.id = ?", (number,))
    if row is None:
        raise NotFound(f"token_id: there is no token TK{number}. Run `chief-of-staff token list` to see them.")
    return _view(row, tx.now_text)


async def revoke_token(tx: Tx, actor: Actor, token_id: str) -> TokenView:
    """Withdraw a token at once: the next request that carries it is refused."""
    _require_verified(actor, "Revoking a token")
    number = ids.parse_id("token", token_id, field="token_id")
    view = await _get(tx, number)
    if view.revoked_at is not None:
        raise Conflict(f"{view.token_id} was already revoked at {view.revoked_at}; nothing was changed.")
    await tx.run("UPDATE access_tokens SET revoked_at = ? WHERE id = ?", (tx.now_text, number))
    await audit.append(tx, actor, "token.revoke", view.token_id, {"kind": view.kind, "agency": view.agency})
    return await _get(tx, number)


async def list_tokens(tx: Tx, *, include_inactive: bool = True) -> list[TokenView]:
    """Every token of the workspace, newest first; never their secrets."""
    views = [_view(row, tx.now_text) for row in await tx.all(_SELECT + " ORDER BY t.id DESC")]
    return views if include_inactive else [view for view in views if view.status == "active"]


async def authenticate(tx: Tx, secret: str) -> Principal | None:
    """The principal of an active token of this workspace, or None: unknown, expired and revoked alike."""
    if not secret.startswith(TOKEN_PREFIX) or len(secret) > _LONGEST_TOKEN:
        return None
    row = await tx.one(_SELECT + " WHERE t.digest = ?", (digest(secret),))
    if row is None or _status(row, tx.now_text) != "active":
        return None
    return Principal(
        token_id=ids.format_id("token", row["id"]),
        kind=row["kind"],
        agency=row["agency_name"],
        agency_id=row["agency_id"],
        role=row["role_name"],
        role_id=row["role_id"],
        last_used_at=row["last_used_at"],
    )


def use_is_stale(principal: Principal, now: datetime) -> bool:
    """Whether the token's recorded last use is old enough to write again (so most requests only read)."""
    last = principal.last_used_at
    return last is None or now - parse_ts(last) >= LAST_USED_RESOLUTION


async def mark_used(tx: Tx, principal: Principal) -> None:
    """Record that the token was just used, for `token list`."""
    number = ids.parse_id("token", principal.token_id)
    await tx.run("UPDATE access_tokens SET last_used_at = ? WHERE id = ?", (tx.now_text, number))
