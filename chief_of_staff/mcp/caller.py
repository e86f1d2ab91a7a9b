"""Who is calling: built once per tool call by the runner, handed to the handler, never guessed later.

A tool call has one caller (design brief, Trust):

- over HTTP the token decides. An operator token is the verified channel; an agency token is
  the agency whatever it sends: `confirm` is ignored, no approval prompt is shown, and the
  `agency`, `role` and `viewer` arguments must be its own (left out, they are filled in);
- an operator act the human approved in the client's own prompt (elicitation) is verified;
- `confirm=true` is the model's word that the operator agreed in the conversation: the chat
  channel, which the domain bounds;
- anything else is the agency.

Ids that name an ownable object (a task, an authorization, a grant, a decision, a routine) say so in
their type (`TaskRef`, `AuthorizationRef`, `GrantRef`, `DecisionRef`, `RoutineRef`). The runner checks
every one of them before the handler runs: an agency token may not act on another agency's or role's object.
Objects with no agency, or no role, belong to everyone under them. Over stdio the agency is one
principal, so nothing is checked there.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Annotated, Any, Literal, get_args, get_origin

from mcp.server.auth.middleware.bearer_auth import AuthenticatedUser
from mcp.server.elicitation import AcceptedElicitation, ElicitationResult
from mcp.server.mcpserver import Context
from mcp.server.mcpserver.resolve import Elicit
from pydantic import BaseModel, Field, ValidationError

from chief_of_staff.core import ids
from chief_of_staff.core.audit import Actor, Channel
from chief_of_staff.core.db import Store
from chief_of_staff.core.errors import ChiefOfStaffError, Conflict, InvalidInput, OperatorActRefused
from chief_of_staff.domain import lookup
from chief_of_staff.domain.tokens import Principal

# The AccessToken claim the HTTP token verifier puts the Principal under.
PRINCIPAL_CLAIM = "chief_of_staff.principal"

OwnableKind = Literal["task", "authorization", "grant", "decision", "routine"]


@dataclass(frozen=True)
class Owned:
    """Marks an id field as naming an object that belongs to an agency (and maybe one role)."""

    kind: OwnableKind


def _ref(kind: OwnableKind, example: str) -> Any:
    return Annotated[str, Field(min_length=1, max_length=24, description=f'e.g. "{example}"'), Owned(kind)]


TaskRef = _ref("task", "T42")
AuthorizationRef = _ref("authorization", "AU7")
GrantRef = _ref("grant", "GR3")
DecisionRef = _ref("decision", "D7")
RoutineRef = _ref("routine", "RT2")


@dataclass(frozen=True)
class Caller:
    """Who makes this call: the token's holder (None over stdio), the channel, and the audit actor."""

    actor: Actor
    principal: Principal | None = None

    @property
    def channel(self) -> Channel:
        return self.actor.channel

    @property
    def is_agency_token(self) -> bool:
        return self.principal is not None and self.principal.kind == "agency"

    @classmethod
    def of(cls, principal: Principal | None, approved: Channel | None, arguments: BaseModel) -> Caller:
        """The one reading of who is calling, from the token, the client's approval prompt and the arguments."""
        if principal is not None:
            if principal.kind == "operator":
                return cls(Actor(f"operator:{principal.token_id}", "verified"), principal)
            return cls(Actor(principal.viewer, "agency"), principal)  # the token's name, whatever was sent
        if approved == "verified":
            return cls(Actor("operator", "verified"))
        if getattr(arguments, "confirm", False) is True:
            return cls(Actor("operator", "chat"))
        agency, role = getattr(arguments, "agency", None), getattr(arguments, "role", None)
        if agency and role:
            return cls(Actor(f"agency:{agency}/{role}", "agency"))
        return cls(Actor(f"agency:{agency}" if agency else "agency", "agency"))


# --- the token behind a request ----------------------------------------------------------------


def principal_of(ctx: Context[Any, Any]) -> Principal | None:
    """The principal of the HTTP request behind this call; None over stdio and in-process."""
    request = ctx.request_context.request
    scope = getattr(request, "scope", None)
    user = scope.get("user") if isinstance(scope, dict) else None
    if not isinstance(user, AuthenticatedUser):
        return None
    principal = (user.access_token.claims or {}).get(PRINCIPAL_CLAIM)
    return principal if isinstance(principal, Principal) else None


def _is_own(given: str, name: str | None, number: int | None, kind: str) -> bool:
    text = given.strip()
    return (name is not None and text.casefold() == name.casefold()) or (
        number is not None and text.upper() == ids.format_id(kind, number)
    )


def _refuse(field: str, given: str, own: str) -> InvalidInput:
    return InvalidInput(
        f"{field}: this connection's token acts for {own}, so it cannot act as {given!r}. "
        f"Leave {field} out, or send {own!r}."
    )


def _own_fields(principal: Principal) -> list[tuple[str, str, int, str]]:
    held = (
        ("agency", principal.agency, principal.agency_id, "agency"),
        ("role", principal.role, principal.role_id, "role"),
    )
    return [
        (field, name, number, kind) for field, name, number, kind in held if name is not None and number is not None
    ]


def fill_arguments(principal: Principal | None, model: type[BaseModel], arguments: dict[str, Any]) -> dict[str, Any]:
    """Raw arguments with an agency token's agency and role filled in where left out (required ones too)."""
    if principal is None or principal.kind != "agency":
        return arguments
    missing = {
        field: name
        for field, name, _, _ in _own_fields(principal)
        if field in model.model_fields and arguments.get(field) is None
    }
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


def looking_as(caller: Caller, viewer: str | None) -> tuple[str, bool]:
    """Whose view a read (brief, review) is, and whether it may move that viewer's "since you last looked" mark.

    A token says who looks: an agency token reads as its own viewer, an operator token as the operator
    unless it names another. Over a local connection the operator and the agency speak through one
    model, so only a look that names its viewer moves a mark: a work session's `brief` without a
    viewer must not mark as seen what the agency just did before the operator has seen it.
    """
    principal = caller.principal
    if principal is not None and principal.kind == "agency":
        return principal.viewer, True
    if viewer is not None:
        return viewer, True
    return "operator", principal is not None


# --- declared ownership ------------------------------------------------------------------------


def _marker(annotation: Any) -> Owned | None:
    """The Owned marker of an annotation, looking through Optional and list."""
    for arg in get_args(annotation):
        if isinstance(arg, Owned):
            return arg
    if get_origin(annotation) is not None:
        for arg in get_args(annotation):
            found = _marker(arg)
            if found is not None:
                return found
    return None


@functools.cache
def owned_fields(model: type[BaseModel]) -> tuple[tuple[str, OwnableKind], ...]:
    """The input fields that name ownable objects, and of which kind; worked out once per model."""
    found = []
    for name, field in model.model_fields.items():
        marker = next((m for m in field.metadata if isinstance(m, Owned)), None) or _marker(field.annotation)
        if marker is not None:
            found.append((name, marker.kind))
    return tuple(found)


def _values(value: Any) -> list[str]:
    if value is None:
        return []
    return [str(item) for item in value] if isinstance(value, list | tuple) else [str(value)]


async def require_owned(store: Store, caller: Caller, arguments: BaseModel) -> None:
    """Refuse an agency token acting on another agency's (or another role's) object, before anything runs."""
    principal = caller.principal
    if principal is None or principal.kind != "agency":
        return
    wanted = [
        (name, kind, ref) for name, kind in owned_fields(type(arguments)) for ref in _values(getattr(arguments, name))
    ]
    if not wanted:
        return
    async with store.read() as tx:
        for name, kind, ref in wanted:
            found = await lookup.owner(tx, kind, ref, field=name)
            if found is None:
                continue  # the domain call reports the unknown id
            agency_id, role_id = found
            if (agency_id is not None and agency_id != principal.agency_id) or (
                principal.role_id is not None and role_id is not None and role_id != principal.role_id
            ):
                raise Conflict(
                    f"{name}: {ref} belongs to another agency or role; this connection's token acts "
                    f"for {principal.viewer.removeprefix('agency:')} only. Nothing was changed."
                )


# --- approval in the client's own prompt ---------------------------------------------------------
#
# When the client declares form elicitation, an operator act is put to the human directly, outside
# the model's reach: the model cannot answer it, so an approval given there is `verified`. The SDK's
# resolver carries the question in either protocol era (a mid-call request on 2025-11-25, an
# input_required round trip on 2026-07-28). Clients without elicitation, Claude Desktop among them,
# are never asked; their operator acts fall back to the chat channel (confirm=true).


class OperatorApproval(BaseModel):
    approve: bool = Field(description="Approve this change")


# Free text the operator wrote goes last, so a long note can never push the changes out of view.
_FREE_TEXT = ("note", "rationale", "description", "details", "charter", "operating_spec", "purpose")
MESSAGE_LIMIT = 3000


def approval_message(title: str, arguments: dict[str, Any], facts: str | None = None) -> str:
    """The prompt: what the server's own records say first, then the request, the assistant's free text last."""
    shown = {key: value for key, value in arguments.items() if key != "confirm" and key not in _FREE_TEXT}
    free = {key: arguments[key] for key in _FREE_TEXT if key in arguments}
    parts = [] if facts is None else [f"From the server's records: {facts}"]
    parts.append(f"Requested: {json.dumps(shown, ensure_ascii=False, default=str)}")
    if free:
        parts.append(f"Written by the assistant, not checked: {json.dumps(free, ensure_ascii=False, default=str)}")
    text = "\n".join(parts)
    if len(text) > MESSAGE_LIMIT:
        text = (
            f"{text[:MESSAGE_LIMIT]} ... ({len(text) - MESSAGE_LIMIT} more characters not shown: if you cannot "
            "see every change, decline and make it from the command line)"
        )
    return f"{title}: {text}\nApprove this change?"


def approval_resolver(
    title: str,
    validate: Callable[[dict[str, Any]], Any],
    wanted: Callable[[Any], bool],
    terms: Callable[[Context[Any, Any], Any], Awaitable[str | None]] | None = None,
) -> Callable[..., Any]:
    """A resolver that asks the operator only when the client can be asked and the act is real and valid."""

    async def ask_operator(arguments: dict[str, Any], ctx: Context[Any, Any]) -> Elicit[OperatorApproval] | None:
        capabilities = ctx.client_capabilities
        if capabilities is None or capabilities.elicitation is None:
            return None
        if principal_of(ctx) is not None:
            return None  # a token already settled who may act: the operator's is verified, an agency's never is
        try:
            parsed = validate(arguments)
        except (ValidationError, Exception):
            return None  # the tool body reports the invalid arguments; never ask about them
        if not wanted(parsed):
            return None
        try:
            facts = None if terms is None else await terms(ctx, parsed)
        except ChiefOfStaffError:
            return None  # an unknown id or a refused change: the tool body says so; never ask about it
        return Elicit(approval_message(title, arguments, facts), OperatorApproval)

    return ask_operator


def approved_channel(outcome: ElicitationResult[OperatorApproval]) -> Channel | None:
    """`verified` when the operator approved in the prompt; None when nobody was asked."""
    if isinstance(outcome, AcceptedElicitation):
        if outcome.data is None:
            return None  # the resolver did not ask (no elicitation, or nothing to approve)
        if outcome.data.approve:
            return "verified"
    raise OperatorActRefused("The operator declined this change in the approval prompt. Nothing was changed.")
