"""Fuzz every tool through both protocol modes and check what must hold whatever a client sends.

For every tool the server lists (tools/list through an in-process client) it draws arguments from
the tool's own input schema (hypothesis-jsonschema), with the workspace's real ids mixed in, and
malformed variants: wrong types, missing required and unknown extra properties, nulls, huge
strings, deep nesting, odd unicode (NUL, lone surrogates, RTL, emoji), out-of-range, negative,
float and bool numbers, non-object arguments; other spellings of targets and names wherever an
argument (at any depth) is one (fullwidth, zero-width, bidirectional, trailing dots, display names,
several recipients), huge and NaN-ish numbers at any depth, dates out of range; and calls to tool
names that do not exist. Each
case goes to an in-process `Client(server)` in the default (2026-07-28) mode and in mode="legacy"
(the 2025-11-25 handshake Claude Desktop speaks), on a workspace stood up from the Outbound
blueprint so the calls hit real rows. After every case it checks that:

1. the call returned, in time, a result or a protocol error (MCPError): no crash the SDK had to
   wrap ("Error executing tool X" with nothing after it), no exception logged, no hung session;
2. no text in the answer carries a stack trace, a file system path or a raw exception repr
   (unless the caller sent that very text earlier: the server may echo what it was given);
3. an error result or a protocol error wrote nothing, and a read-only tool never writes: an
   observer connection's `PRAGMA data_version` moves whenever another connection commits;
4. the server still answers a cheap call (`list_goals`).

Valid calls may write, and do: grants get revoked, tasks claimed, so later cases meet a changing
workspace. The server runs with deliveries=False: the webhook delivery loop is the only thing in
the server that writes in the background, and a fuzzer must never post to the URLs it invents.

    uv run python tools/fuzz.py --quick                  # CI: a few hundred cases, figures at the end
    uv run python tools/fuzz.py --cases 100              # per tool per mode: thousands of cases
    uv run python tools/fuzz.py --cases 50 --seed 7 --mode legacy --tool grant

Exits 1 on any violation, printing the minimal failing example Hypothesis shrank it to.
"""

from __future__ import annotations

import argparse
import json
import logging
import re
import sqlite3
import sys
import tempfile
import time
import warnings
from collections import Counter
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import anyio
from anyio.from_thread import BlockingPortal, start_blocking_portal
from hypothesis import HealthCheck, Phase, given, seed, settings
from hypothesis import strategies as st
from hypothesis_jsonschema import from_schema
from mcp import Client
from mcp.shared.exceptions import MCPError
from mcp.types import CallToolRequest, CallToolRequestParams, CallToolResult, TextContent, Tool

import chief_of_staff
from chief_of_staff.core.clock import Clock, FixedClock
from chief_of_staff.core.config import Settings
from chief_of_staff.mcp.server import build_server

MODES = ("auto", "legacy")
START = datetime(2026, 11, 23, 8, 0, tzinfo=UTC)  # the test suite's fixed Monday morning
CALL_LIMIT_SECONDS = 60.0  # a hung session shows as a violation, not as a fuzzer that never ends
QUICK_CASES = 5  # per tool per mode: 31 targets x 2 modes x 5 is a few hundred

# Ids and names the seeded workspace has (or nearly has): generated strings that hit real rows.
REAL_IDS = (
    "G1",
    "G2",
    "KR1",
    "KR2",
    "KR3",
    "T1",
    "T2",
    "T3",
    "T4",
    "GR1",
    "GR2",
    "GR3",
    "D1",
    "D2",
    "AU1",
    "A1",
    "R1",
    "R2",
    "RT1",
    "O1",
    "L1",
    "CS1",
    "NE1",
    "Outbound",
    "SDR",
    "Researcher",
    "outbound",
    "email.send",
    "operator",
    "agency:Outbound/SDR",
    "P0",
    "P3",
    "2026-11-23",
    "weekdays",
)
ODD_TEXT = (
    "",
    " ",
    "\x00",
    "G1\x00",
    "\ud800",
    "T1\udfff",
    "\u202eT1",
    "\u200b",
    "\ufeff",
    "😀",
    "👩‍💻",
    "e\u0301",
    "\U0010ffff",
    "Ｇ１",
    "\r\n\t",
    "'; DROP TABLE tasks; --",
    "%s%n{0}",
    "../../etc/passwd",
    "${jndi:ldap://x}",
    "\\u0000",
    "null",
    "[]",
    "{}",
    '{"a": [1, 2]}',
    "[" * 5000,
    "[" * 900 + "]" * 900,
    '{"a":' * 900 + "1" + "}" * 900,
)
ODD_NUMBERS = (
    -1,
    0,
    2**31,
    2**63,
    2**64,
    -(2**63) - 1,
    10**30,
    1.5,
    -0.0,
    1e308,
    float("inf"),
    float("nan"),
    True,
    False,
    "12",
    "1e3",
)
WRONG_TYPES: tuple[Any, ...] = (
    123,
    -5,
    1.5,
    True,
    "text",
    "G1",
    [],
    ["T1"],
    [[]],
    {},
    {"a": 1},
    None,
    "[1, 2]",
    '{"a": 1}',
)
# Other spellings of a target: each must come out as the canonical target or be refused, never slip
# past a pattern (tests/domain/authority/test_targets.py holds the property; here: no crash, no write).
NASTY_TARGETS = (
    "jane@acme.com.",
    "JANE@ACME.COM",
    "ｊａｎｅ＠ａｃｍｅ．ｃｏｍ",
    "jane@acme\u3002com",
    "Jane <jane@acme.com>",
    '"Doe, Jane" <jane@acme.com>',
    '"Jane <jane@acme.com>',
    "<jane@acme.com> <ceo@acme.com>",
    "mailto:jane@acme.com",
    "jane@acme.com, ceo@acme.com",
    "jane@acme.com;ceo@acme.com",
    "jane@acme.com\nceo@acme.com",
    "jane@acme.com ceo@acme.com",
    "jane@acme\u200b.com",
    "jane@acme.com\u202e",
    "\u2066jane@acme.com",
    "ops@agency.ｇｏｖ",
    "agency.gov.",
    "agency.gov/x",
    "https://acme.com@evil.io/",
    "HTTPS://Shop.Evil.IO./x",
    "https://[::1/",
    "https://acme.com:99999/",
    "bücher.de",
    "xn--bcher-kva.de",
    "a..b",
    "*.gov",
    "list:VIP-1",
    "ﷺ" * 40,
)
# Other spellings of a name: none may become a second Outbound or SDR.
NASTY_NAMES = (
    "Ｏｕｔｂｏｕｎｄ",
    "OUTBOUND",
    "Out\u200bbound",
    "Outbound\u202e",
    "\u2066SDR",
    "ＳＤＲ",
    "S\u00adDR",
    "Outbound\u0000",
    "  Out   bound ",
    "ﬁnance",
    "Ａ１",
    "Ｒ１",
    "Ärzte",
    "ÄRZTE",
    "Meetings\ufe0f",
)
NASTY_NUMBERS: tuple[Any, ...] = (
    1e308,
    -1e308,
    1e12 + 1,
    -1e13,
    10**400,
    5e-324,
    2**53 + 1,
    float("inf"),
    float("nan"),
)
NASTY_DATES = ("9999-12-31", "2200-01-01", "2199-12-31", "1899-12-31", "0001-01-01", "1900-01-01")
# Where those go, by the argument's name at any depth; a list of such values is respelled item by item.
SPELLED_BY_KEY = {
    "target": NASTY_TARGETS,
    "scope_allow": NASTY_TARGETS,
    "scope_deny": NASTY_TARGETS,
    "agency": NASTY_NAMES,
    "role": NASTY_NAMES,
    "name": NASTY_NAMES,
    "agency_name": NASTY_NAMES,
    "metric": NASTY_NAMES,
    "key_result": NASTY_NAMES,
    "viewer": NASTY_NAMES,
}
ODD_NAMES = ("priorty", "confirm ", "", "__proto__", "constructor", "id", "x" * 300, "\x00", "Title", "$ref")
NON_OBJECTS: tuple[Any, ...] = ([], ["G1"], "G1", "", 5, 0, True, 1.5, [{"title": "x"}])
HUGE_SIZES = (10_001, 100_000, 1_000_000)
# The client's own serializer refuses nests deeper than about 254 in either mode; deeper ones go as JSON text.
DEPTHS = (64, 240)
MUTATIONS = (
    "wrong_type",
    "drop_required",
    "unknown_property",
    "null",
    "huge_string",
    "deep_nesting",
    "odd_text",
    "odd_number",
    "nasty_spelling",
    "nasty_number",
)

# What must never reach a client. Paths are added per run (the workspace folder, the package, home).
LEAK_MARKERS = (
    "Traceback",
    'File "',
    "site-packages",
    '.py"',
    ".py:",
    "/work/",
    "sqlite3.",
    "aiosqlite",
    "errors.pydantic.dev",
    "validation error for",
    "<class '",
    " object at 0x",
    "Error executing tool",
)
RAW_REPR = re.compile(r"\b[A-Z]\w*(?:Error|Exception)\(|\bat 0x[0-9a-f]{6,}")


_PLAIN_KINDS = ("schema", "non_object", "unknown_tool")


class Violation(AssertionError):
    """An invariant failed for one case; the message says which and shows the answer."""


@dataclass(frozen=True)
class Case:
    """One call: the tool name, the arguments as sent (not always an object) and how they were made."""

    tool: str
    arguments: Any
    kind: str

    def describe(self) -> str:
        shown = json.dumps(_shorten(self.arguments), ensure_ascii=True, default=repr)
        return f"{self.tool}({shown})  [{self.kind}]"


@dataclass
class Figures:
    """Counts for one mode. Cases replayed while Hypothesis shrinks a failure count too."""

    cases: int = 0
    valid: int = 0
    errors: int = 0
    protocol: int = 0
    wrote: int = 0
    kinds: Counter[str] = field(default_factory=Counter)  # schema, malformed, non_object, unknown_tool


@dataclass
class Report:
    figures: dict[str, Figures] = field(default_factory=dict)
    violations: list[str] = field(default_factory=list)
    seconds: float = 0.0
    tools: int = 0


@dataclass(frozen=True)
class FuzzConfig:
    cases: int = QUICK_CASES
    seed: int = 0
    modes: Sequence[str] = MODES
    tools: Sequence[str] = ()  # empty: every tool the server lists
    clock: Clock = field(default_factory=lambda: FixedClock(START))


def _shorten(value: Any) -> Any:
    """Huge strings and deep nests print as a note of their size, so a failing case stays readable."""
    if isinstance(value, str) and len(value) > 120:
        return f"{value[:40]}...({len(value)} chars)"
    if isinstance(value, list):
        return [_shorten(item) for item in value[:10]] if _depth(value) < 20 else f"<list nested {_depth(value)}>"
    if isinstance(value, dict):
        return {k: _shorten(v) for k, v in value.items()} if _depth(value) < 20 else f"<dict nested {_depth(value)}>"
    return value


def _depth(value: Any) -> int:
    depth = 0
    while isinstance(value, list | dict) and value:
        value = value[0] if isinstance(value, list) else next(iter(value.values()))
        depth += 1
    return depth


# --- drawing cases ----------------------------------------------------------------------------------

real_text = st.sampled_from(REAL_IDS) | st.tuples(st.sampled_from(REAL_IDS), st.text(max_size=3)).map("".join)


def _nested(depth: int, as_dict: bool) -> Any:
    value: Any = "G1"
    for _ in range(depth):
        value = {"a": value} if as_dict else [value]
    return value


def _free_text(schema: dict[str, Any]) -> bool:
    """A property any string fits: an enum, pattern or format would only turn a real id into a refusal."""
    text = json.dumps(schema)
    return not any(f'"{keyword}"' in text for keyword in ("enum", "const", "pattern", "format"))


@st.composite
def _with_real_ids(draw: st.DrawFn, schema: dict[str, Any]) -> dict[str, Any]:
    arguments: dict[str, Any] = dict(draw(from_schema(schema)))  # type: ignore[arg-type]  # an object schema
    free = {name for name, sub in schema.get("properties", {}).items() if _free_text(sub)}
    for name, value in arguments.items():
        if name not in free:
            continue
        if isinstance(value, str) and draw(st.booleans()):
            arguments[name] = draw(real_text)
        elif isinstance(value, list) and value and all(isinstance(item, str) for item in value) and draw(st.booleans()):
            arguments[name] = draw(st.lists(real_text, min_size=1, max_size=len(value)))
    return arguments


def _respelled(draw: st.DrawFn, key: str, value: Any, numbers: bool) -> Any:
    """`value` with its targets, names and dates respelled (or, with `numbers`, its numbers made huge or NaN-ish)."""
    if isinstance(value, dict):
        return {k: _respelled(draw, k, v, numbers) for k, v in value.items()}
    if isinstance(value, list):
        return [_respelled(draw, key, item, numbers) for item in value]
    if numbers:
        plain_number = isinstance(value, int | float) and not isinstance(value, bool)
        return draw(st.sampled_from(NASTY_NUMBERS)) if plain_number else value
    if isinstance(value, str) and key in SPELLED_BY_KEY:
        return draw(st.sampled_from(SPELLED_BY_KEY[key]))
    if isinstance(value, str) and key.endswith(("_on", "_date")):
        return draw(st.sampled_from(NASTY_DATES))
    return value


def _respell(draw: st.DrawFn, properties: list[str], arguments: dict[str, Any], numbers: bool) -> None:
    """Respell every matching argument; when none matched, add one the schema names, so each case tries."""
    before = json.dumps(arguments, default=repr, sort_keys=True)
    arguments.update(_respelled(draw, "", arguments, numbers))
    if json.dumps(arguments, default=repr, sort_keys=True) != before:
        return
    keyed = [p for p in properties if p in SPELLED_BY_KEY or p.endswith(("_on", "_date"))]
    if keyed and not numbers:
        name = draw(st.sampled_from(keyed))
        arguments[name] = _respelled(draw, name, "x", numbers=False)


def _mutate(draw: st.DrawFn, kind: str, schema: dict[str, Any], arguments: dict[str, Any]) -> None:
    """Spoil the arguments one way; a property is picked from the schema so every one gets its turn."""
    properties = sorted(schema.get("properties", {}))
    name = draw(st.sampled_from(properties)) if properties else "x"
    if kind in ("nasty_spelling", "nasty_number"):
        _respell(draw, properties, arguments, numbers=kind == "nasty_number")
    elif kind == "drop_required":
        required = [p for p in schema.get("required", []) if p in arguments]
        if required:
            arguments.pop(draw(st.sampled_from(required)))
    elif kind == "unknown_property":
        extra = draw(st.sampled_from(ODD_NAMES) | st.text(max_size=20))
        if extra not in properties:
            arguments[extra] = draw(st.sampled_from(WRONG_TYPES))
    elif kind == "wrong_type":
        arguments[name] = draw(st.sampled_from(WRONG_TYPES))
    elif kind == "null":
        arguments[name] = None
    elif kind == "huge_string":
        size = draw(st.sampled_from(HUGE_SIZES))
        arguments[name] = draw(st.sampled_from(["x", "é", "😀", "T1 "])) * size
    elif kind == "deep_nesting":
        arguments[name] = _nested(draw(st.sampled_from(DEPTHS)), draw(st.booleans()))
    elif kind == "odd_text":
        arguments[name] = draw(st.sampled_from(ODD_TEXT) | st.tuples(real_text, st.sampled_from(ODD_TEXT)).map("".join))
    else:
        arguments[name] = draw(st.sampled_from(ODD_NUMBERS))


@st.composite
def _malformed(draw: st.DrawFn, tool: Tool, schema_args: st.SearchStrategy[dict[str, Any]]) -> Case:
    arguments = dict(draw(schema_args))
    kinds = draw(st.lists(st.sampled_from(MUTATIONS), min_size=1, max_size=3))
    # Not an object at all: now and then. A branch of its own would be drawn first, being the simplest.
    if draw(st.integers(min_value=0, max_value=7)) == 3:
        return Case(tool.name, draw(st.sampled_from(NON_OBJECTS)), "non_object")
    for kind in kinds:
        _mutate(draw, kind, tool.input_schema, arguments)
    return Case(tool.name, arguments, "+".join(kinds))


def cases_for(tool: Tool) -> st.SearchStrategy[Case]:
    """Half drawn from the input schema (with real ids), half malformed (a few of them not even an object)."""
    schema_args = _with_real_ids(tool.input_schema)
    drawn = schema_args.map(lambda arguments: Case(tool.name, arguments, "schema"))
    return st.one_of(drawn, _malformed(tool, schema_args))


def _utf8(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def unknown_tool_cases(known: set[str], mode: str = "legacy") -> st.SearchStrategy[Case]:
    """Names that are not tools: near misses of real names, odd text, a huge name.

    On 2026-07-28 the client copies the tool name into an Mcp-Name header and cannot encode a lone
    surrogate (UnicodeEncodeError before anything is sent), so there such names are left out.
    """
    near = st.sampled_from(sorted(known)).flatmap(
        lambda name: st.sampled_from(
            [name.upper(), f" {name}", f"{name} ", f"{name}\x00", name.replace("_", "-"), f"../{name}", f"{name}\ud800"]
        )
    )
    odd = st.sampled_from(["", "tools/call", "x" * 10_000, "😀", "\u202ebrief"]) | st.text(max_size=30)
    names = (near | odd).filter(lambda name: name not in known and (mode == "legacy" or _utf8(name)))
    return st.builds(Case, names, st.sampled_from([{}, {"title": "x"}, None]), st.just("unknown_tool"))


# --- one session: a seeded workspace, a client, an observer -----------------------------------------


class _ErrorLog(logging.Handler):
    """Everything logged at ERROR or above while a case runs: the SDK logs each crash it wraps."""

    def __init__(self) -> None:
        super().__init__(logging.ERROR)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


@dataclass
class Session:
    """One mode's client on its own workspace, with a read-only observer of the same file."""

    mode: str
    client: Client
    observer: sqlite3.Connection
    markers: tuple[str, ...]
    figures: Figures
    errors: _ErrorLog
    # Markers found in arguments sent so far: the server may echo (or store and show) what it was given.
    echoable: set[str] = field(default_factory=set)

    def data_version(self) -> int:
        return int(self.observer.execute("PRAGMA data_version").fetchone()[0])

    async def answer(self, case: Case) -> CallToolResult | MCPError:
        """Send the case; MCPError is an answer, any other exception escapes as a crash."""
        try:
            if isinstance(case.arguments, dict) or case.arguments is None:
                return await self.client.call_tool(case.tool, case.arguments)
            return await self._send_raw(case)
        except MCPError as exc:
            return exc

    async def _send_raw(self, case: Case) -> CallToolResult:
        # The client types arguments as an object; a non-object has to go around its model.
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # pydantic warns that it serialises an unexpected type
            params = CallToolRequestParams.model_construct(name=case.tool, arguments=case.arguments)
            request = CallToolRequest.model_construct(method="tools/call", params=params)
            return await self.client.session.send_request(request, CallToolResult)

    async def run_case(self, case: Case, read_only: bool) -> None:
        """Send one case and check every invariant; raise Violation on the first that fails."""
        self.figures.cases += 1
        self.figures.kinds[case.kind if case.kind in _PLAIN_KINDS else "malformed"] += 1
        self._note_sent(json.dumps([case.tool, case.arguments], ensure_ascii=False, default=repr))
        before, self.errors.records = self.data_version(), []
        try:
            with anyio.fail_after(CALL_LIMIT_SECONDS):
                answer = await self.answer(case)
        except Exception as exc:
            raise Violation(f"the call raised {type(exc).__name__}: {str(exc)[:300]}") from None
        wrote = self.data_version() != before
        self.figures.wrote += wrote
        failed = self._tally(answer)
        self.check_text(_text_of(answer))
        self._check_log()
        if wrote and (failed or read_only):
            raise Violation(
                f"{'a read-only tool' if read_only and not failed else 'a refused call'} wrote to the "
                f"database; the answer was: {_text_of(answer)[:300]}"
            )
        await self._still_answers()

    def _tally(self, answer: CallToolResult | MCPError) -> bool:
        if isinstance(answer, MCPError):
            self.figures.protocol += 1
            return True
        if answer.is_error:
            self.figures.errors += 1
            return True
        self.figures.valid += 1
        return False

    def _note_sent(self, text: str) -> None:
        self.echoable.update(marker for marker in self.markers if marker in text)
        if RAW_REPR.search(text):
            self.echoable.add(RAW_REPR.pattern)

    def _check_log(self) -> None:
        if not self.errors.records:
            return
        record = self.errors.records[0]
        kind, exc = record.exc_info[:2] if record.exc_info else (None, None)
        cause = f" ({kind.__name__}: {exc})" if kind is not None else ""
        raise Violation(f"the server logged an error: {record.getMessage()}{cause}")

    def check_text(self, text: str) -> None:
        """Refuse a crash, a leaked trace or path, or a raw exception repr in what the client was told."""
        if re.fullmatch(r"Error executing tool [^:]*", text.strip()):
            raise Violation(f"the tool crashed (the SDK wrapped an unexpected exception): {text!r}")
        for marker in self.markers:
            if marker in text and marker not in self.echoable:
                raise Violation(f"{marker!r} leaked into the answer: {text[:500]!r}")
        found = RAW_REPR.search(text)
        if found and RAW_REPR.pattern not in self.echoable:
            raise Violation(f"a raw exception repr ({found.group(0)!r}) leaked into the answer: {text[:500]!r}")

    async def _still_answers(self) -> None:
        try:
            with anyio.fail_after(CALL_LIMIT_SECONDS):
                result = await self.client.call_tool("list_goals", {})
        except Exception as exc:
            raise Violation(f"the server stopped answering: {type(exc).__name__}: {exc}") from None
        if result.is_error:
            raise Violation(f"the server stopped answering list_goals: {_text_of(result)[:300]}")


def _text_of(answer: CallToolResult | MCPError) -> str:
    """The text the client sees, the MCP error's message and data included, without the prefix the SDK adds."""
    if isinstance(answer, MCPError):
        return f"{answer.error.message} {json.dumps(answer.error.data, default=repr)}"
    parts = [item.text for item in answer.content if isinstance(item, TextContent)]
    text = "\n".join(parts)
    # "Error executing tool X: <our message>": the prefix is the SDK's, and only a bare prefix is a crash.
    return text.removeprefix(f"Error executing tool {_tool_prefix(text)}: ") if ": " in text else text


def _tool_prefix(text: str) -> str:
    found = re.match(r"Error executing tool (\S+): ", text)
    return found.group(1) if found else "\x00"


def _markers(workdir: Path) -> tuple[str, ...]:
    home = str(Path.home())
    paths = (str(workdir), str(workdir.resolve()), str(Path(chief_of_staff.__file__).parent))
    return LEAK_MARKERS + paths + ((home,) if len(home) > 1 else ())


SEED_CALLS: tuple[tuple[str, dict[str, Any]], ...] = (
    ("apply_blueprint", {"name": "outbound", "dry_run": False, "confirm": True}),
    ("request_decision", {"agency": "Outbound", "kind": "question", "title": "Which list first?"}),
    (
        "authorize",
        {
            "agency": "Outbound",
            "role": "SDR",
            "capability": "email.send",
            "target": "jane@acme.com",
            "idempotency_key": "fuzz-seed",
        },
    ),
    ("claim_next_task", {"agency": "Outbound"}),
    ("log_outcome", {"agency": "Outbound", "summary": "Sent five", "result": "success", "lesson": "Short works"}),
)


@asynccontextmanager
async def open_session(db_path: Path, mode: str, clock: Clock, figures: Figures) -> AsyncIterator[Session]:
    """A server on a fresh file stood up from the Outbound blueprint, a client in `mode` and an observer."""
    server = build_server(Settings(db_path=db_path, clock=clock), deliveries=False)
    errors = _ErrorLog()
    logging.getLogger().addHandler(errors)
    try:
        async with Client(server, mode=mode) as client:
            for tool, arguments in SEED_CALLS:
                seeded = await client.call_tool(tool, arguments)
                if seeded.is_error:
                    raise RuntimeError(f"seeding the workspace failed at {tool}: {_text_of(seeded)}")
            observer = sqlite3.connect(f"file:{db_path}?mode=ro", uri=True, check_same_thread=False)
            try:
                yield Session(mode, client, observer, _markers(db_path.parent), figures, errors)
            finally:
                observer.close()
    finally:
        logging.getLogger().removeHandler(errors)


# --- driving Hypothesis -----------------------------------------------------------------------------


def _settings(cases: int) -> settings:
    return settings(
        max_examples=cases,
        deadline=None,
        database=None,
        derandomize=False,
        print_blob=False,
        phases=(Phase.explicit, Phase.generate, Phase.shrink),
        report_multiple_bugs=False,
        # The server is slow next to a pure function, and a huge string is the point, not a problem.
        suppress_health_check=[
            HealthCheck.too_slow,
            HealthCheck.data_too_large,
            HealthCheck.filter_too_much,
            HealthCheck.large_base_example,
        ],
    )


def _fuzz_target(
    portal: BlockingPortal,
    session: Session,
    strategy: st.SearchStrategy[Case],
    read_only: bool,
    config: FuzzConfig,
    salt: int,
    name: str,
) -> str | None:
    """Run one tool's cases; the minimal failing example and its violation, or None when all held."""
    failing: list[str] = []

    @seed(config.seed * 1000 + salt)
    @_settings(config.cases)
    @given(case=strategy)
    def fuzz(case: Case) -> None:
        try:
            portal.call(session.run_case, case, read_only)
        except Violation as exc:
            failing.append(f"[{session.mode}] {case.describe()}\n    {exc}")  # the last one is the shrunk one
            raise

    try:
        fuzz()
    except Exception as exc:  # Violation, or Hypothesis's own report when a failure would not replay
        return failing[-1] if failing else f"[{session.mode}] {name}: {type(exc).__name__}: {exc}"
    return None


def _fuzz_mode(portal: BlockingPortal, mode: str, workdir: Path, config: FuzzConfig, report: Report) -> None:
    figures = report.figures.setdefault(mode, Figures())
    with portal.wrap_async_context_manager(open_session(workdir / f"{mode}.db", mode, config.clock, figures)) as s:
        tools: list[Tool] = portal.call(_list_tools, s.client)
        chosen = [t for t in tools if not config.tools or t.name in config.tools]
        report.tools = len(chosen)
        targets = [(cases_for(t), bool(t.annotations and t.annotations.read_only_hint)) for t in chosen]
        targets.append((unknown_tool_cases({t.name for t in tools}, mode), True))
        names = [t.name for t in chosen] + ["(unknown tool)"]
        for salt, (strategy, read_only) in enumerate(targets):
            failure = _fuzz_target(portal, s, strategy, read_only, config, salt, names[salt])
            if failure is not None:
                report.violations.append(failure)


async def _list_tools(client: Client) -> list[Tool]:
    return list((await client.list_tools()).tools)


def run(config: FuzzConfig, workdir: Path) -> Report:
    """Fuzz every chosen tool in every chosen mode, each mode on its own seeded workspace in workdir."""
    report, started = Report(), time.perf_counter()
    with start_blocking_portal() as portal:
        for mode in config.modes:
            _fuzz_mode(portal, mode, workdir, config, report)
    report.seconds = time.perf_counter() - started
    return report


# --- the command ------------------------------------------------------------------------------------


def _print_report(report: Report, config: FuzzConfig, out: Callable[[str], None]) -> None:
    out(f"fuzz: {report.tools} tools + unknown names, {config.cases} cases each per mode, seed {config.seed}")
    out(f"{'mode':<8}{'cases':>7}{'valid':>7}{'error':>7}{'protocol':>10}{'wrote':>7}")
    total = Figures()
    for mode, f in report.figures.items():
        out(f"{mode:<8}{f.cases:>7}{f.valid:>7}{f.errors:>7}{f.protocol:>10}{f.wrote:>7}")
        for name in ("cases", "valid", "errors", "protocol", "wrote"):
            setattr(total, name, getattr(total, name) + getattr(f, name))
    out(f"{'total':<8}{total.cases:>7}{total.valid:>7}{total.errors:>7}{total.protocol:>10}{total.wrote:>7}")
    kinds = sum((f.kinds for f in report.figures.values()), Counter[str]())
    out("by kind: " + ", ".join(f"{kind} {count}" for kind, count in sorted(kinds.items())))
    out(f"violations: {len(report.violations)}   time: {report.seconds:.1f} s")
    for failure in report.violations:
        readable = failure.encode("utf-8", "backslashreplace").decode("utf-8")  # lone surrogates print escaped
        out(f"\nVIOLATION (minimal example):\n  {readable}")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help=f"CI: {QUICK_CASES} cases per tool per mode")
    parser.add_argument("--cases", type=int, default=None, help="cases per tool per mode (default: 100)")
    parser.add_argument("--seed", type=int, default=0, help="Hypothesis seed; the same seed draws the same cases")
    parser.add_argument("--mode", choices=MODES, action="append", help="only this protocol mode (repeatable)")
    parser.add_argument("--tool", action="append", default=[], help="only this tool (repeatable)")
    args = parser.parse_args(argv)
    cases = args.cases or (QUICK_CASES if args.quick else 100)
    config = FuzzConfig(cases=cases, seed=args.seed, modes=tuple(args.mode or MODES), tools=tuple(args.tool))
    # Before the server configures logging: crashes are caught and reported by the fuzzer, not printed.
    logging.basicConfig(level=logging.WARNING, handlers=[logging.NullHandler()])
    with tempfile.TemporaryDirectory(prefix="cos-fuzz-") as folder:
        report = run(config, Path(folder))
    _print_report(report, config, print)
    return 1 if report.violations else 0


if __name__ == "__main__":
    sys.exit(main())
