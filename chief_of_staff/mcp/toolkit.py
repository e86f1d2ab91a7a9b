"""MCP plumbing for tools: one pydantic input and output model each, strict arguments, errors for the model.

The SDK builds a tool's argument model from the function signature and quietly
drops unknown arguments. A typo such as `priorty` must be an error instead, so
tools here are built from an explicit input model (extra fields forbidden) and
validated by `parse_arguments`, which writes errors a model can act on: the
field, what was wrong, and what to send instead.
"""

from __future__ import annotations

import difflib
import functools
import json
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Annotated, Any, Generic, TypeVar, get_args, get_origin

from mcp.server.elicitation import ElicitationResult
from mcp.server.mcpserver import Context
from mcp.server.mcpserver.exceptions import ToolError
from mcp.server.mcpserver.resolve import Resolve
from mcp.server.mcpserver.tools import Tool
from mcp.server.mcpserver.utilities.func_metadata import ArgModelBase, FuncMetadata
from mcp.types import CallToolResult, TextContent, ToolAnnotations
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from chief_of_staff.core.audit import Channel
from chief_of_staff.core.db import Store
from chief_of_staff.core.errors import ChiefOfStaffError, OperatorActRefused
from chief_of_staff.core.fields import Model
from chief_of_staff.domain.tokens import Principal
from chief_of_staff.mcp.caller import (
    Caller,
    OperatorApproval,
    approval_resolver,
    approved_channel,
    bind_arguments,
    fill_arguments,
    principal_of,
    require_owned,
)
from chief_of_staff.mcp.subscriptions import notify_changed

InputT = TypeVar("InputT", bound=BaseModel)
OutputT = TypeVar("OutputT", bound=BaseModel)

# A short id as the model sends it: "T42", "G3", "D7".
Ref = Annotated[str, Field(min_length=1, max_length=24)]
# The field every operator act takes: the model's word that the operator agreed (the chat channel).
CONFIRM = Field(False, description="true only if the operator said yes to this change, here")


class NoArguments(Model):
    """The input of a tool that takes no arguments (and refuses any)."""


# Claude Desktop tends to send lists and objects as JSON inside a string; accept that form too.
_CONTAINER_ORIGINS = (list, dict)


class _RawArguments(ArgModelBase):
    """Hands the tool its arguments untouched, so `parse_arguments` can judge every name."""

    model_config = ConfigDict(extra="allow", arbitrary_types_allowed=True)

    def model_dump_one_level(self) -> dict[str, Any]:
        return {"arguments": dict(self.__pydantic_extra__ or {})}


@dataclass(frozen=True)
class ToolSpec(Generic[InputT, OutputT]):
    """One tool: its name, description, models, handler and honest annotations."""

    name: str
    title: str
    description: str
    input_model: type[InputT]
    output_model: type[OutputT]
    # Called with the workspace, who is calling (built once by the runner) and the parsed arguments.
    handler: Callable[[Store, Caller, InputT], Awaitable[OutputT]]
    read_only: bool = False
    destructive: bool = False
    idempotent: bool = False
    # Whether the tool reaches beyond the workspace (open_console opens the operator's browser).
    open_world: bool = False
    # Operator acts are put to the human through elicitation when the client supports it;
    # `asks_operator` says whether these arguments are an act at all (a dry run is not).
    operator_act: bool = False
    asks_operator: Callable[[Any], bool] = lambda _: True
    # What the act means, read from the store (a decision's request, a grant's bounds before and after),
    # so the prompt never rests on the model's words alone.
    terms: Callable[[Store, Any], Awaitable[str | None]] | None = None
    # The resources (chief_of_staff.mcp.subscriptions URIs) a successful call changes; subscribers hear of it.
    changes: tuple[str, ...] = ()
    # Whether these arguments change anything at all (a list or a dry run does not); left out, the ones
    # asks_operator puts to the operator. Apart from it where only some acts are the operator's: a pause
    # asks nobody, and still changes the brief.
    acts: Callable[[Any], bool] | None = None


def _wants_container(annotation: Any) -> bool:
    origin = get_origin(annotation)
    if origin in _CONTAINER_ORIGINS:
        return True
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return True
    return any(_wants_container(arg) for arg in get_args(annotation) if arg is not type(None))


@functools.cache
def _container_fields(model: type[BaseModel]) -> frozenset[str]:
    """The fields that take a list or an object; worked out once per model, not on every call."""
    return frozenset(name for name, field in model.model_fields.items() if _wants_container(field.annotation))


def _unwrap_json_strings(model: type[BaseModel], arguments: dict[str, Any]) -> dict[str, Any]:
    fixed = dict(arguments)
    containers = _container_fields(model)
    for name, value in arguments.items():
        if name not in containers or not isinstance(value, str):
            continue
        try:
            parsed = json.loads(value)
        except (ValueError, RecursionError):
            continue
        if isinstance(parsed, list | dict):
            fixed[name] = parsed
    return fixed


def _short(value: Any) -> str:
    text = json.dumps(value, default=str)
    return text if len(text) <= 60 else text[:57] + "..."


def _describe_one(model: type[BaseModel], error: Any) -> str:
    location = ".".join(str(part) or "(empty name)" for part in error["loc"]) or "arguments"
    kind = error["type"]
    if kind == "extra_forbidden":
        if len(error["loc"]) == 1:
            known = list(model.model_fields)
            close = difflib.get_close_matches(str(error["loc"][0]), known, n=1)
            hint = f" Did you mean {close[0]!r}?" if close else ""
            return f"{location}: unknown argument.{hint} This tool takes: {', '.join(known)}."
        return f"{location}: unknown field; remove it."
    if kind == "missing":
        return f"{location}: required; send it."
    message = f"{location}: {error['msg']}"
    if "input" in error and kind not in ("string_too_long", "too_long"):
        message += f" (got {_short(error['input'])})"
    if location.endswith("_cents") and kind in ("int_type", "int_from_float", "greater_than_equal"):
        message += ". Send whole cents as a non-negative integer, e.g. 1250 for 12.50"
    return message


def describe_validation_error(model: type[BaseModel], exc: ValidationError) -> str:
    lines = [_describe_one(model, error) for error in exc.errors()[:8]]
    return "Invalid arguments, nothing was changed:\n- " + "\n- ".join(lines)


def parse_arguments(model: type[InputT], arguments: dict[str, Any]) -> InputT:
    """Validate raw tool arguments into the tool's input model, or raise a ToolError the model can act on."""
    try:
        return model.model_validate(_unwrap_json_strings(model, arguments))
    except ValidationError as exc:
        raise ToolError(describe_validation_error(model, exc)) from None


def as_result(result: BaseModel) -> CallToolResult:
    """Structured content plus the same data as compact JSON text: the text is what the model pays for."""
    data = result.model_dump(mode="json")
    text = json.dumps(data, separators=(",", ":"), ensure_ascii=False)
    return CallToolResult(content=[TextContent(type="text", text=text)], structured_content=data)


# In an input schema these say what the server checks anyway, and its error names the bound when a value
# is past it: a model writes names, ids, summaries and lists well inside them, so they are enforced, not
# published. So is a maximum no real value comes near (MAX_CENTS is a hundred million dollars).
_INPUT_ONLY_NOISE = ("minLength", "maxLength", "maxItems")
_UNREACHED = 1_000_000_000
_SCHEMA_MAPS = ("properties", "$defs", "patternProperties")
_SCHEMA_LISTS = ("anyOf", "oneOf", "allOf", "prefixItems")
_SCHEMA_ONES = ("items", "additionalProperties", "not")
_NULL = {"type": "null"}


def slim_schema(schema: Any) -> Any:
    """An input schema with fewer bytes: tools/list is paid for on every turn.

    Drops pydantic's generated titles, empty defaults (null or ""), length bounds and maximums no real
    value reaches. An optional field
    (`T | None = None`) is published as plain `T`: leaving it out already means "none", so its
    `anyOf [T, null]` costs bytes and says nothing, except where null means something of its own
    (the field's description says what null does, as update_grant's "null removes the cap"): there it
    stays. Nullable fields are never `type: [T, null]`: clients that map schemas onto single-type
    dialects reject the array form. Keys inside `properties` are field names, not keywords, so they
    are kept whatever they are called.
    """
    if not isinstance(schema, dict):
        return schema
    schema = _without_null(schema)
    slim: dict[str, Any] = {}
    for key, value in schema.items():
        if (key == "title" and isinstance(value, str)) or (key == "default" and value in (None, "")):
            continue
        if key in _INPUT_ONLY_NOISE or (key == "maximum" and isinstance(value, int) and value >= _UNREACHED):
            continue
        if key in _SCHEMA_MAPS and isinstance(value, dict):
            slim[key] = {name: slim_schema(sub) for name, sub in value.items()}
        elif key in _SCHEMA_LISTS and isinstance(value, list):
            slim[key] = [slim_schema(sub) for sub in value]
        elif key in _SCHEMA_ONES:
            slim[key] = slim_schema(value)
        else:
            slim[key] = value
    return slim


def _without_null(schema: dict[str, Any]) -> dict[str, Any]:
    """`{anyOf: [T, null]}` as T, unless the field's own description gives null a meaning."""
    branches = schema.get("anyOf")
    if not isinstance(branches, list) or len(branches) != 2 or _NULL not in branches:
        return schema
    if "null" in str(schema.get("description", "")) or schema.get("default") is not None:
        return schema  # null is an answer of its own, not "left out"
    (kept,) = [branch for branch in branches if branch != _NULL]
    if not isinstance(kept, dict) or "anyOf" in kept:
        return schema
    # The field's own keys (its description, its default) win over the branch's.
    return {**kept, **{key: value for key, value in schema.items() if key != "anyOf"}}


def output_schema(model: type[BaseModel]) -> dict[str, Any]:
    """What a tool returns: the names of its top-level fields, each left open (`{}`).

    The server validates each result against the full pydantic model before it is sent, and the
    result itself carries every value, so types, nesting, `required`, enums and descriptions would
    add bytes, not meaning: publishing them would make output schemas a third of tools/list, which
    the operator pays for on every turn. The names say what comes back.
    """
    return {"type": "object", "properties": {name: {} for name in model.model_fields}}


def _runner(spec: ToolSpec[Any, Any]) -> Callable[..., Awaitable[CallToolResult]]:
    async def call(arguments: dict[str, Any], ctx: Context[Any, Any], approved: Channel | None) -> CallToolResult:
        principal = principal_of(ctx)
        try:
            raw = fill_arguments(principal, spec.input_model, arguments)
            parsed = bind_arguments(principal, parse_arguments(spec.input_model, raw))
            who = Caller.of(principal, approved, parsed)
            store = _store_of(ctx)
            await require_owned(store, who, parsed)
            result = await spec.handler(store, who, parsed)
        except OperatorActRefused as exc:
            raise ToolError(_refusal_for(principal, exc)) from None
        except ChiefOfStaffError as exc:
            raise ToolError(str(exc)) from None
        if spec.changes and (spec.acts or spec.asks_operator)(parsed):  # no act (a dry run, a list): no change
            await notify_changed(ctx, spec.changes)
        return as_result(result)

    async def run(arguments: dict[str, Any], ctx: Context[Any, Any]) -> CallToolResult:
        return await call(arguments, ctx, None)

    if not spec.operator_act:
        return run
    ask = approval_resolver(
        spec.title,
        lambda raw: parse_arguments(spec.input_model, raw),
        spec.asks_operator,
        None if spec.terms is None else _read_terms(spec.terms),
    )

    async def run_operator_act(
        arguments: dict[str, Any], ctx: Context[Any, Any], approval: ElicitationResult[OperatorApproval]
    ) -> CallToolResult:
        try:
            channel = approved_channel(approval)
        except ChiefOfStaffError as exc:
            raise ToolError(str(exc)) from None
        return await call(arguments, ctx, channel)

    # Real objects, not the strings this module's annotations are: `ask` is a closure the SDK can't eval.
    run_operator_act.__annotations__ = {
        "arguments": dict[str, Any],
        "ctx": Context[Any, Any],
        "approval": Annotated[ElicitationResult[OperatorApproval], Resolve(ask)],
        "return": CallToolResult,
    }
    return run_operator_act


def _refusal_for(principal: Principal | None, exc: OperatorActRefused) -> str:
    """An agency token cannot be talked into an operator act, so don't suggest confirm=true to it."""
    if principal is None or principal.kind != "agency":
        return str(exc)
    return (
        f"This connection's token ({principal.token_id}) acts for the agency {principal.agency}, and an agency "
        "token never makes operator acts, whatever it sends. Nothing was changed. Ask the operator: they decide "
        "from a terminal (`chief-of-staff decisions`, `chief-of-staff approve D7`, `chief-of-staff grants`) or "
        "from a client connected with an operator token."
    )


def published_schemas(spec: ToolSpec[Any, Any]) -> dict[str, Any]:
    """The schemas tools/list shows for a tool: its input model's, slimmed, and its output's field names.

    Models' docstrings are left out, the input model's and those of the models nested in it: they are
    written for the code, the tool's description says what the tool is for, and every field of every
    model carries its own description (tests/mcp/test_field_descriptions.py).
    """
    parameters = slim_schema(spec.input_model.model_json_schema())
    parameters.pop("description", None)
    for nested in parameters.get("$defs", {}).values():
        nested.pop("description", None)
    return {"parameters": parameters, "output": output_schema(spec.output_model)}


def build_tool(spec: ToolSpec[Any, Any], schemas: dict[str, Any] | None = None) -> Tool:
    """Turn a ToolSpec into the SDK's Tool, publishing the input model's own schema.

    `schemas` are published_schemas(spec) when the caller already has them (schema_cache).
    """
    schemas = schemas or published_schemas(spec)
    runner = _runner(spec)
    annotations = ToolAnnotations(
        read_only_hint=spec.read_only,
        destructive_hint=spec.destructive,
        idempotent_hint=spec.idempotent,
        open_world_hint=spec.open_world,
    )
    # from_function wires the resolver of an operator act; every other runner has one and the same
    # signature, so the SDK inspects it once (a tenth of the start-up was thirty such inspections).
    if spec.operator_act:
        tool = Tool.from_function(
            runner, name=spec.name, title=spec.title, description=spec.description, annotations=annotations
        )
    else:
        tool = _plain_template().model_copy(
            update={
                "fn": runner,
                "name": spec.name,
                "title": spec.title,
                "description": spec.description,
                "annotations": annotations,
            }
        )
    return tool.model_copy(
        update={
            "parameters": schemas["parameters"],
            "fn_metadata": FuncMetadata(
                arg_model=_RawArguments,
                output_model=spec.output_model,
                output_schema=schemas["output"],
            ),
        }
    )


@functools.cache
def _plain_template() -> Tool:
    """The SDK's reading of a runner that is not an operator act: its context argument, no resolvers."""
    template: ToolSpec[Any, Any] = ToolSpec("template", "Template", "", BaseModel, BaseModel, _no_handler)
    return Tool.from_function(_runner(template), name=template.name, description=template.description)


async def _no_handler(store: Store, caller: Caller, args: Any) -> BaseModel:
    raise NotImplementedError("the template tool is never registered")


def _read_terms(terms: Callable[[Store, Any], Awaitable[str | None]]) -> Callable[..., Awaitable[str | None]]:
    async def read(ctx: Context[Any, Any], parsed: Any) -> str | None:
        return await terms(_store_of(ctx), parsed)

    return read


def _store_of(ctx: Context[Any, Any]) -> Store:
    """The workspace store opened by the server's lifespan."""
    store: Store = ctx.request_context.lifespan_context.store
    return store
