"""The command line: a thin shell over the library.

`serve` is what Claude Desktop runs; its stdout belongs to the protocol, so every
command logs to stderr. The other commands are the operator's verified channel:
they run on the operator's own machine, outside the model's reach.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Callable
from typing import Any

import anyio

from chief_of_staff import __version__
from chief_of_staff.cli import (
    access,
    authority,
    console,
    decisions,
    goals,
    install,
    notify,
    outcomes,
    review,
    roster,
    tasks,
    workspace,
)
from chief_of_staff.core.config import Settings
from chief_of_staff.core.errors import ChiefOfStaffError, InvalidInput

log = logging.getLogger("chief_of_staff")


def cmd_serve(args: argparse.Namespace) -> int:
    from chief_of_staff.http.console_opener import LocalConsoleOpener
    from chief_of_staff.mcp.server import build_server

    if args.http:
        from chief_of_staff.cli.access import cmd_serve_http

        return cmd_serve_http(args)
    if args.workspace:
        raise InvalidInput("--workspace serves several workspaces over HTTP; add --http, or use --db for stdio.")
    settings = Settings.load(args.db)
    log.info("serving %s over stdio", settings.db_path)
    # On the operator's machine: the chat's open_console starts the console here and opens their browser.
    build_server(settings, console_opener=LocalConsoleOpener()).run("stdio")
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    from chief_of_staff.cli.demo import run_demo

    return anyio.run(run_demo, args.keep)


def _add_db(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--db", help="workspace database file (default: $CHIEF_OF_STAFF_DB or the per-user data path)")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="chief-of-staff",
        description="The operating system of your AI agency, served to your AI client over MCP.",
    )
    parser.add_argument("--version", action="version", version=f"chief-of-staff {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="log more to stderr")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def add(name: str, handler: Callable[[argparse.Namespace], int], help_text: str) -> argparse.ArgumentParser:
        sub = commands.add_parser(name, help=help_text, description=help_text)
        sub.set_defaults(handler=handler)
        _add_db(sub)
        return sub

    serve = add("serve", cmd_serve, "Serve the workspace over stdio (what Claude Desktop runs), or --http.")
    access.add_http_options(serve)
    access.register(add)
    demo = add("demo", cmd_demo, "Run a throwaway Outbound agency end to end over stdio and print the brief.")
    demo.add_argument("--keep", action="store_true", help="keep the demo workspace and print where it is")
    workspace.register(add)
    roster.register(add)
    goals.register(add)
    tasks.register(add)
    outcomes.register(add)
    decisions.register(add)
    console.register(add)
    authority.register(add)
    review.register(add)
    install.register(add)
    notify.register(add)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.WARNING,
        stream=sys.stderr,
        format="%(levelname)s %(name)s: %(message)s",
    )
    # httpx logs each request's full URL at INFO; a Slack webhook's path is its secret.
    logging.getLogger("httpx").setLevel(logging.WARNING)
    try:
        result: Any = args.handler(args)
    except ChiefOfStaffError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
    return int(result or 0)


if __name__ == "__main__":
    sys.exit(main())
