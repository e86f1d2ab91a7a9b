"""Commands that open the workspace to other clients: `serve --http` and `token`.

Tokens are created here and nowhere else: the command line is the operator's verified
channel, and nothing an MCP client sends can mint one. The secret goes to stdout alone
(so a script can capture it), the explanation to stderr.
"""

from __future__ import annotations

import argparse
import sys

import anyio

from chief_of_staff.cli.support import Add, add_nested, workspace_command
from chief_of_staff.core.audit import OPERATOR_CLI
from chief_of_staff.core.config import Settings
from chief_of_staff.core.db import Store
from chief_of_staff.core.errors import InvalidInput
from chief_of_staff.domain import tokens
from chief_of_staff.http.server import DEFAULT_PORT, HttpOptions, parse_workspaces, serve_http


def cmd_serve_http(args: argparse.Namespace) -> int:
    if args.workspace and args.db:
        raise InvalidInput("Send either --db (one workspace) or --workspace for each workspace, not both.")
    specs = args.workspace or [str(Settings.load(args.db).db_path)]
    served = parse_workspaces(specs, Settings.load)
    options = HttpOptions(
        host=args.host,
        port=args.port,
        allowed_hosts=tuple(args.allow_host),
        allowed_origins=tuple(args.allow_origin),
        public_url=args.public_url,
        console=args.console,
    )
    anyio.run(serve_http, served, options)
    return 0


def add_http_options(serve: argparse.ArgumentParser) -> None:
    """The `serve` command's HTTP flags; without --http it serves stdio as before."""
    serve.add_argument(
        "--http", action="store_true", help="serve Streamable HTTP instead of stdio; every request needs a token"
    )
    serve.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1: this machine)")
    serve.add_argument("--port", type=int, default=DEFAULT_PORT, help=f"port (default {DEFAULT_PORT}; 0 picks one)")
    serve.add_argument(
        "--workspace",
        action="append",
        default=[],
        metavar="[NAME=]PATH",
        help="serve this workspace file at /NAME/mcp; repeat for several (instead of --db)",
    )
    serve.add_argument(
        "--allow-host",
        action="append",
        default=[],
        metavar="HOST[:PORT|:*]",
        help="also accept this Host header, e.g. cos.example.com:* (loopback is always allowed)",
    )
    serve.add_argument(
        "--allow-origin",
        action="append",
        default=[],
        metavar="ORIGIN",
        help="also accept this Origin header, e.g. https://cos.example.com",
    )
    serve.add_argument("--public-url", help="the URL clients reach the server at, if not http://HOST:PORT")
    serve.add_argument(
        "--console",
        action="store_true",
        help="with --http: also serve each workspace's operator console; log in with `chief-of-staff console --link`",
    )


@workspace_command
async def cmd_token_create(args: argparse.Namespace, store: Store) -> int:
    kind = "operator" if args.operator else "agency"
    async with store.write() as tx:
        view, secret = await tokens.create_token(
            tx,
            OPERATOR_CLI,
            kind=kind,
            agency=args.agency,
            role=args.role,
            label=args.label,
            expires_in_days=args.expires_in_days,
        )
    who = (
        "the operator (verified channel: may approve and widen)"
        if kind == "operator"
        else (f"agency {view.agency}" + (f", role {view.role}" if view.role else "") + " (never an operator act)")
    )
    expiry = f"until {view.expires_at}" if view.expires_at else "until revoked"
    print(f"{view.token_id}: acts for {who}, {expiry}. It is shown once; store it like a password.", file=sys.stderr)
    print(
        f"Send it as 'Authorization: Bearer <token>'. Revoke: chief-of-staff token revoke {view.token_id}",
        file=sys.stderr,
    )
    print(secret, flush=True)
    return 0


@workspace_command
async def cmd_token_list(args: argparse.Namespace, store: Store) -> int:
    async with store.read() as tx:
        views = await tokens.list_tokens(tx, include_inactive=args.all)
    if not views:
        print("No tokens. Create one: chief-of-staff token create --agency NAME --role NAME (or --operator)")
    for view in views:
        who = (
            "operator" if view.kind == "operator" else f"agency {view.agency}" + (f"/{view.role}" if view.role else "")
        )
        print(
            f"{view.token_id:6} {view.status:8} {who:28} created {view.created_at[:10]}  "
            f"expires {(view.expires_at or 'never')[:10]:10}  last used {(view.last_used_at or 'never')[:16]}"
            + (f"  {view.label}" if view.label else "")
        )
    return 0


@workspace_command
async def cmd_token_revoke(args: argparse.Namespace, store: Store) -> int:
    async with store.write() as tx:
        view = await tokens.revoke_token(tx, OPERATOR_CLI, args.token)
    print(f"{view.token_id} revoked: the next request that carries it is refused.")
    return 0


def register(add: Add) -> None:
    token = add("token", cmd_token_list, "Access tokens for the HTTP server: create, list, revoke.")
    commands = token.add_subparsers(
        dest="token_command", required=True, metavar="ACTION", help="create, list or revoke"
    )
    create = add_nested(commands, "create", cmd_token_create, "Create an access token (its secret is shown once).")
    who = create.add_mutually_exclusive_group(required=True)
    who.add_argument(
        "--operator",
        action="store_true",
        help="the operator: a verified channel that may approve decisions and widen grants",
    )
    who.add_argument("--agency", help="an agency, by name or id: it works and asks, never makes operator acts")
    create.add_argument("--role", help="with --agency: act as this role only")
    create.add_argument("--expires-in-days", type=int, metavar="N", help="refuse the token after N days")
    create.add_argument("--label", default="", help="what it is for, e.g. 'Cowork laptop'")
    listing = add_nested(commands, "list", cmd_token_list, "List the workspace's tokens (never their secrets).")
    listing.add_argument("--all", action="store_true", help="include expired and revoked tokens")
    revoke = add_nested(commands, "revoke", cmd_token_revoke, "Revoke a token at once.")
    revoke.add_argument("token", help="token id, e.g. TK3")
