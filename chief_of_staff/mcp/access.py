"""Who is on the other end of a connection, as far as a bearer token says.

Over HTTP every request carries a token (see `tokens` and `http_server`); over stdio
there is none and the operator's own machine is the boundary. A tool call reads the
principal from the HTTP request the SDK attached to it and binds it for the call:

- an operator token makes every operator act `verified`;
- an agency token makes every call the agency's, whatever it sends: `confirm` is
  ignored, no approval prompt is shown, the `agency`, `role` and `viewer` arguments
  must be its own (left out, they are filled in), and objects named by id must be
  its own too (`toolkit.require_own`).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any

from mcp.server.auth.middleware.bearer_auth import AuthenticatedUser
from mcp.server.mcpserver import Context
from pydantic import BaseModel

from chief_of_staff.core import ids
from chief_of_staff.core.errors import InvalidInput
from chief_of_staff.domain.tokens import Principal

# The AccessToken claim the HTTP token verifier puts the Principal under.
PRINCIPAL_CLAIM = "chief_of_staff.principal"

current_principal: ContextVar[Principal | None] = ContextVar("current_principal", default=None)


def principal_of(ctx: Context[Any, Any]) -> Principal | None:
    """The principal of the HTTP request behind this call; None over stdio and in-process."""
    request = ctx.request_context.request
    scope = getattr(request, "scope", None)
    user = scope.get("user") if isinstance(scope, dict) else None
    if not isinstance(user, AuthenticatedUser):
        return None
    principal = (user.access_token.claims or {}).get(PRINCIPAL_CLAIM)
    return principal if isinstance(principal, Principal) else None


@contextmanager
def speaking_for(principal: Principal | None) -> Iterator[None]:
    """Make `principal` the caller for the rest of this tool call."""
    token = current_principal.set(principal)
    try:
        yield
    finally:
        current_principal.reset(token)


def _is_own(given: str, name: str | None, number: int | None, kind: str) -> bool:
    text = given.strip()
    return (name is not None and text.casefold() == name.casefold()) or (
        number is not None and text.upper() == ids.format_id(kind, number)
    )


def _refuse(field: str, given: str, own: str) -> InvalidInput:
    return InvalidInput(f"{field}: this connection's token acts for {own}, so it cannot act as {given!r}. "
                        f"Leave {field} out, or send {own!r}.")


def _own_fields(principal: Principal) -> list[tuple[str, str, int, str]]:
    held = (("agency", principal.agency, principal.agency_id, "agency"),
            ("role", principal.role, principal.role_id, "role"))
    return [(field, name, number, kind) for field, name, number, kind in held
            if name is not None and number is not None]


def fill_arguments(principal: Principal | None, model: type[BaseModel], arguments: dict[str, Any]) -> dict[str, Any]:
    """Raw arguments with an agency token's agency and role filled in where left out (required ones too)."""
    if principal is None or principal.kind != "agency":
        return arguments
    missing = {field: name for field, name, _, _ in _own_fields(principal)
               if field in model.model_fields and arguments.get(field) is None}
    return {**arguments, **missing} if missing else arguments


def bind_arguments(principal: Principal | None, arguments: BaseModel) -> BaseModel:
    """The arguments held to an agency token's own agency, role and viewer; refuses anyone else's.

    A matching name is replaced by the token's own id (A3, R2), so the domain resolves exactly the
    token's row: names that match only under Unicode case folding ("Straße", "STRASSE") may be two
    agencies in SQLite, whose NOCASE folds ASCII only.
    """
    if principal is None or principal.kind != "agency":
        return arguments
    fields = type(arguments).model_fields
    updates: dict[str, Any] = {}
    for field, name, number, kind in _own_fields(principal):
        if field not in fields:
            continue
        given = getattr(arguments, field)
        if given is not None and not _is_own(str(given), name, number, kind):
            raise _refuse(field, str(given), name)
        updates[field] = ids.format_id(kind, number)
    viewer = getattr(arguments, "viewer", None) if "viewer" in fields else None
    if viewer is not None and viewer != principal.viewer:
        if viewer != "operator":
            raise _refuse("viewer", viewer, principal.viewer)
        updates["viewer"] = principal.viewer  # the default: read as yourself, never move the operator's mark
    return arguments.model_copy(update=updates) if updates else arguments
